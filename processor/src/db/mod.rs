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
        // Every statement at INFO would drown the logs on the hot path.
        .sqlx_logging(false);
    Database::connect(options).await
}
