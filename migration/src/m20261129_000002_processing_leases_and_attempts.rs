//! What reliable processing needs: a lease on the row while one consumer works on it, a
//! time after which an unclaimed row is published again (the outbox), and a record of
//! every processing attempt.

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
                ALTER TABLE transactions
                    -- The consumer working on the transaction, until the lease expires.
                    ADD COLUMN lease_owner      TEXT,
                    ADD COLUMN lease_expires_at TIMESTAMPTZ,
                    -- When the reconciler may publish it again if nobody has claimed it.
                    ADD COLUMN republish_at     TIMESTAMPTZ NOT NULL DEFAULT now() + interval '30 seconds';

                -- The reconciler's scan: unfinished rows due for another publication.
                CREATE INDEX transactions_processing_republish_at
                    ON transactions (republish_at) WHERE status = 'PROCESSING';

                CREATE TABLE processing_attempts (
                    id             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    transaction_id TEXT        NOT NULL REFERENCES transactions (transaction_id),
                    attempt        INTEGER     NOT NULL CHECK (attempt >= 1),
                    consumer       TEXT        NOT NULL,
                    started_at     TIMESTAMPTZ NOT NULL,
                    finished_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
                    outcome        TEXT        NOT NULL CHECK (outcome IN ('SUCCEEDED', 'FAILED')),
                    error          TEXT
                );
                CREATE INDEX processing_attempts_transaction_id ON processing_attempts (transaction_id);
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
                DROP TABLE IF EXISTS processing_attempts;
                DROP INDEX IF EXISTS transactions_processing_republish_at;
                ALTER TABLE transactions
                    DROP COLUMN IF EXISTS lease_owner,
                    DROP COLUMN IF EXISTS lease_expires_at,
                    DROP COLUMN IF EXISTS republish_at;
                "#,
            )
            .await?;
        Ok(())
    }
}
