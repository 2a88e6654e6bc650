//! Indexes that serve every page of the list in its order (`created_at DESC,
//! transaction_id DESC`), so a page costs the same at ten rows or ten million: one for the
//! unfiltered list and the creation-time filters, one for the status filter (which also
//! serves status with a time range, and retention's scan of finished rows). The second
//! replaces `(status, created_at)`, which needed a sort to break ties by id.
//!
//! Built `CONCURRENTLY`, outside a transaction: a plain `CREATE INDEX` on a table of
//! months of history would block every ingest for as long as the build takes. An interrupted
//! concurrent build leaves an invalid index behind, which `IF NOT EXISTS` would take for
//! done, so one is dropped and built again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Name and columns of each index this migration builds.
const INDEXES: &[(&str, &str)] = &[
    ("transactions_created_at_id", "(created_at, transaction_id)"),
    (
        "transactions_status_created_at_id",
        "(status, created_at, transaction_id)",
    ),
];

/// The index the status one replaces.
const REPLACED: (&str, &str) = ("transactions_status_created_at", "(status, created_at)");

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns) in INDEXES {
            build_concurrently(manager, name, columns).await?;
        }
        drop_concurrently(manager, REPLACED.0).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        build_concurrently(manager, REPLACED.0, REPLACED.1).await?;
        for (name, _) in INDEXES {
            drop_concurrently(manager, name).await?;
        }
        Ok(())
    }

    /// `CREATE INDEX CONCURRENTLY` cannot run inside a transaction. Each statement below
    /// stands alone and may be repeated, so a run cut short is finished by the next one.
    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}

async fn build_concurrently(
    manager: &SchemaManager<'_>,
    name: &str,
    columns: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let invalid = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS invalid FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid",
            [name.into()],
        ))
        .await?
        .is_some();
    if invalid {
        drop_concurrently(manager, name).await?;
    }
    db.execute_unprepared(&format!(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON transactions {columns}"
    ))
    .await?;
    Ok(())
}

async fn drop_concurrently(manager: &SchemaManager<'_>, name: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
        .await?;
    Ok(())
}
