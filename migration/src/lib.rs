//! Schema migrations of the transactions store, in the order they apply.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_transactions;
mod m20261129_000002_processing_leases_and_attempts;
mod m20261201_000003_list_indexes;
mod m20261201_000004_consumers_and_calls;
mod m20261201_000005_attempts_without_foreign_key;
pub mod minor_unit;
pub mod python_service;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_transactions::Migration),
            Box::new(m20261129_000002_processing_leases_and_attempts::Migration),
            Box::new(m20261201_000003_list_indexes::Migration),
            Box::new(m20261201_000004_consumers_and_calls::Migration),
            Box::new(m20261201_000005_attempts_without_foreign_key::Migration),
        ]
    }
}

/// Arbitrary key for the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_KEY: i64 = 0x7061_796d_656e_7473;

/// Applies every pending migration, one replica (or migration job) at a time, under an
/// advisory lock. Consecutive pending migrations that run in a transaction are applied in
/// one, so a failed one (such as an adoption that stops) leaves the database exactly as it
/// was, `seaql_migrations` included; PostgreSQL DDL is transactional. A migration that
/// builds indexes `CONCURRENTLY` (`use_transaction() == Some(false)`) cannot run in a
/// transaction and is applied alone, after the ones before it committed. The processor
/// runs this at start, and `migration up` runs it too.
///
/// The lock is held by a session of its own, taken by polling `pg_try_advisory_lock`
/// rather than waiting in `pg_advisory_lock`: a replica waiting inside a statement holds a
/// snapshot, which the lock holder's concurrent index build would wait for while that
/// replica waits for the lock.
pub async fn apply_pending(database_url: &str) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    let session = connect_session(database_url).await?;
    let mut taken = false;
    while !taken {
        taken = session
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY}) AS taken"),
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "taken"))
            .transpose()?
            .unwrap_or(false);
        if !taken {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let applied = apply_pending_locked(&session).await;
    // Closing the session releases the lock too; unlocking first releases it at once.
    let unlocked = session
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .await;
    session.close().await.ok();
    applied?;
    unlocked.map(|_| ())
}

async fn apply_pending_locked(session: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;
    loop {
        let transaction = session.begin().await?;
        let pending = Migrator::get_pending_migrations(&transaction).await?;
        let in_one_transaction = pending
            .iter()
            .take_while(|pending| runs_in_a_transaction(pending.name()))
            .count();
        if in_one_transaction > 0 {
            Migrator::up(&transaction, Some(count(in_one_transaction))).await?;
            transaction.commit().await?;
        } else {
            transaction.commit().await?;
            if pending.is_empty() {
                return Ok(());
            }
            Migrator::up(session, Some(1)).await?;
        }
    }
}

fn runs_in_a_transaction(name: &str) -> bool {
    Migrator::migrations()
        .iter()
        .find(|migration| migration.name() == name)
        .is_none_or(|migration| migration.use_transaction() != Some(false))
}

fn count(migrations: usize) -> u32 {
    <u32 as std::convert::TryFrom<usize>>::try_from(migrations).unwrap_or(u32::MAX)
}

/// One connection that stays one session while it is open (never recycled for being idle
/// or old), so the advisory lock it takes holds until it is released.
async fn connect_session(database_url: &str) -> Result<sea_orm::DatabaseConnection, DbErr> {
    let mut options = sea_orm::ConnectOptions::new(database_url);
    options
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(std::time::Duration::from_secs(3))
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|options| options.application_name("migrations"));
    sea_orm::Database::connect(options).await
}

/// Used when `DATABASE_URL` is not set (SPEC's default).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/webhooks";
