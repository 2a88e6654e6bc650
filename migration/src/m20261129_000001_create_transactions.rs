//! The transactions table: one row per `transaction_id`, the source of truth for status.
//!
//! Plain SQL, because the guarantees live in constraints sea-query does not express well:
//! the status set, `amount > 0`, and `processed_at` being set exactly when processing ended.
//!
//! On a database where the Python service ran, its `transactions` table is adopted into
//! this one instead (`python_service`); any other table of that name is refused.

use sea_orm_migration::prelude::*;

use crate::python_service::{self, Found};

/// The table as a fresh database gets it; adoption creates it the same way.
const CREATE_TRANSACTIONS: &str = r#"
    CREATE TABLE transactions (
        transaction_id      TEXT        PRIMARY KEY,
        source_account      TEXT        NOT NULL,
        destination_account TEXT        NOT NULL,
        -- Unconstrained NUMERIC keeps the amount exactly as sent (scale included).
        amount              NUMERIC     NOT NULL CHECK (amount > 0),
        currency            TEXT        NOT NULL,
        status              TEXT        NOT NULL DEFAULT 'PROCESSING'
            CHECK (status IN ('PROCESSING', 'PROCESSED', 'FAILED')),
        attempts            INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error          TEXT,
        created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        processed_at        TIMESTAMPTZ,
        CONSTRAINT processed_at_iff_finished
            CHECK ((status = 'PROCESSING') = (processed_at IS NULL))
    );
    -- Finding work still to do (re-drive, listing by status) without a full scan.
    CREATE INDEX transactions_status_created_at ON transactions (status, created_at);
"#;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match python_service::inspect(db).await? {
            Found::Nothing => {
                db.execute_unprepared(CREATE_TRANSACTIONS).await?;
            }
            Found::PythonService => {
                python_service::adopt(db, CREATE_TRANSACTIONS).await?;
            }
            Found::Other(differences) => return Err(python_service::refusal(&differences)),
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS transactions")
            .await?;
        Ok(())
    }
}
