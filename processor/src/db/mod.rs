//! PostgreSQL access: the connection pool, the entity, and the queries.

pub mod entity;
pub mod listing;
pub mod repository;

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Opens the pool. Short acquire and connect timeouts make an unreachable database an
/// error within a request's deadline instead of a hang.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        // Ping only a connection that sat idle (it may have been cut meanwhile), not every
        // one handed out: under load that ping was one more round trip before each batch.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        // Every statement at INFO would drown the logs on the hot path.
        .sqlx_logging(false)
        // Plan every execution with its own parameters. A generic plan cached while the
        // table was small (a seq scan) would otherwise outlive its growth until the next
        // ANALYZE, and without autovacuum that may never come: claims went from index
        // lookups to scanning every row, against each of hundreds of ids. Our statements
        // are few and batched, so planning each costs little.
        .map_sqlx_postgres_opts(|options| {
            options.options([("plan_cache_mode", "force_custom_plan")])
        });
    Database::connect(options).await
}
