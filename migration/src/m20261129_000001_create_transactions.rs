//! The transactions table: one row per `transaction_id`, the source of truth for status.
//!
//! Plain SQL, because the guarantees live in constraints sea-query does not express well:
//! the status set, `amount > 0`, and `processed_at` being set exactly when processing ended.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
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
                "#,
            )
            .await?;
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
