//! `processing_attempts` no longer checks its `transaction_id` against `transactions` with a
//! foreign key.
//!
//! The check ran a query per attempt row, and with the pools' `force_custom_plan`
//! (`processor/src/db/mod.rs`) PostgreSQL planned that query anew for every row: a fifth of
//! the database's CPU during ingest (BENCHMARKS.md, issue 19). The rows stay consistent by
//! construction: an attempt is only inserted by the claim, from the transaction rows the same
//! statement has just locked and updated, and retention deletes a transaction's attempts in
//! the statement that deletes it (`processor/tests/it/retention.rs` checks that none is left).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE processing_attempts
                     DROP CONSTRAINT IF EXISTS processing_attempts_transaction_id_fkey",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM processing_attempts a
                  WHERE NOT EXISTS (SELECT 1 FROM transactions t
                                     WHERE t.transaction_id = a.transaction_id);
                 ALTER TABLE processing_attempts
                     ADD CONSTRAINT processing_attempts_transaction_id_fkey
                         FOREIGN KEY (transaction_id) REFERENCES transactions (transaction_id)",
            )
            .await?;
        Ok(())
    }
}
