//! Schema migrations of the transactions store, in the order they apply.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_transactions;
mod m20261129_000002_processing_leases_and_attempts;
pub mod minor_unit;
pub mod python_service;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_transactions::Migration),
            Box::new(m20261129_000002_processing_leases_and_attempts::Migration),
        ]
    }
}

/// Arbitrary key for the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_KEY: i64 = 0x7061_796d_656e_7473;

/// Applies every pending migration in one transaction, under an advisory lock, so
/// replicas (or a migration job) starting together do not race each other, and a failed
/// migration (such as an adoption that stops) leaves the database exactly as it was,
/// `seaql_migrations` included. PostgreSQL DDL is transactional. The processor runs this
/// at start, and `migration up` runs it too.
pub async fn apply_pending(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let transaction = db.begin().await?;
    transaction
        .execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await?;
    Migrator::up(&transaction, None).await?;
    transaction.commit().await
}

/// Used when `DATABASE_URL` is not set (SPEC's default).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/webhooks";
