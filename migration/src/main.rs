//! `migration up | down | status | fresh`, against `DATABASE_URL` (SPEC's default if unset).

use sea_orm_migration::sea_orm::Database;

#[tokio::main]
async fn main() {
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| migration::DEFAULT_DATABASE_URL.to_owned());
    sea_orm_migration::cli::run_cli_with_custom_connection(migration::Migrator, async || {
        Database::connect(database_url).await
    })
    .await;
}
