//! Schema migrations of the transactions store, in the order they apply.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_transactions;
mod m20261129_000002_processing_leases_and_attempts;

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

/// Used when `DATABASE_URL` is not set (SPEC's default).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/webhooks";
