//! Leases that live as long as their holder, and a record of every call.
//!
//! - `consumers`: one row per live consumer name, renewed by its heartbeat. A transaction's
//!   lease (`lease_owner`) is live while its owner's row has not expired, so a holder
//!   renews all its leases with one statement, and two live processes never share a name.
//! - `processing_attempts` gets a row when a call starts (`CALLING`), finished in place
//!   (`SUCCEEDED`, `FAILED`); one still `CALLING` when the transaction is claimed again
//!   was cut (a crash, a stop grace) and becomes `INTERRUPTED`: the new call is a repeat.

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
                CREATE TABLE consumers (
                    name       TEXT        PRIMARY KEY,
                    -- The process that holds the name: a restart under the same name is a new one.
                    instance   TEXT        NOT NULL,
                    expires_at TIMESTAMPTZ NOT NULL
                );

                ALTER TABLE processing_attempts
                    DROP CONSTRAINT processing_attempts_outcome_check,
                    ADD CONSTRAINT processing_attempts_outcome_check
                        CHECK (outcome IN ('CALLING', 'SUCCEEDED', 'FAILED', 'INTERRUPTED')),
                    ALTER COLUMN finished_at DROP NOT NULL,
                    ALTER COLUMN finished_at DROP DEFAULT;
                "#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
                DELETE FROM processing_attempts WHERE outcome IN ('CALLING', 'INTERRUPTED');
                ALTER TABLE processing_attempts
                    DROP CONSTRAINT processing_attempts_outcome_check,
                    ADD CONSTRAINT processing_attempts_outcome_check
                        CHECK (outcome IN ('SUCCEEDED', 'FAILED')),
                    ALTER COLUMN finished_at SET DEFAULT now(),
                    ALTER COLUMN finished_at SET NOT NULL;
                DROP TABLE IF EXISTS consumers;
                "#,
            )
            .await?;
        Ok(())
    }
}
