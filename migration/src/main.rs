//! `migration up | down | status | fresh`, against `DATABASE_URL` (SPEC's default if unset).
//!
//! `migration up` (all pending, the command release phases and jobs run) applies them as
//! the processor does (`migration::apply_pending`): under the advisory lock, in one
//! transaction but for concurrent index builds, so a migration that stops (an adoption of
//! the Python service's table that finds rows to fix) leaves the database as it was. Every
//! other command is sea-orm-migration's own.

use std::process::ExitCode;

use sea_orm_migration::sea_orm::Database;

#[tokio::main]
async fn main() -> ExitCode {
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| migration::DEFAULT_DATABASE_URL.to_owned());
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.is_empty() || arguments == ["up"] {
        return up(&database_url).await;
    }
    sea_orm_migration::cli::run_cli_with_custom_connection(migration::Migrator, async || {
        Database::connect(database_url).await
    })
    .await;
    ExitCode::SUCCESS
}

async fn up(database_url: &str) -> ExitCode {
    match migration::apply_pending(database_url).await {
        Ok(()) => {
            println!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("migration up failed: {error}");
            ExitCode::FAILURE
        }
    }
}
