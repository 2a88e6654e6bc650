//! PostgreSQL access: the connection pools, the entity, and the queries.

pub mod consumers;
pub mod entity;
pub mod listing;
pub mod repository;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// How long a connection may take to open, and (on the write pool) to be handed out. Short,
/// so an unreachable database is an error within a request's deadline instead of a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The write path's pool: ingest, processing, the outbox, re-drive.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    connect_renewable(url, max_connections, &Renewal::default()).await
}

/// Tells a pool that its connections were lost (a restart, a failover, terminated
/// backends). Those still idle in the pool look fine until used, and a retry would take
/// the next of them and fail again; after [`Renewal::connections_lost`], every idle
/// connection opened before that moment is closed when next taken, and a new one is
/// opened in its place.
#[derive(Clone, Debug, Default)]
pub struct Renewal {
    lost_at: Arc<Mutex<Option<Instant>>>,
}

impl Renewal {
    pub fn connections_lost(&self) {
        *self.lost_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Whether a connection opened `age` ago was opened after the last loss.
    fn keeps(&self, age: Duration) -> bool {
        self.lost_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|lost_at| age < lost_at.elapsed())
    }
}

/// As [`connect`], with a pool that `renewal` can tell to replace its connections.
pub async fn connect_renewable(
    url: &str,
    max_connections: u32,
    renewal: &Renewal,
) -> Result<DatabaseConnection, DbErr> {
    let renewal = renewal.clone();
    let mut options = pool_options(url, max_connections, "processor", Vec::new());
    options
        .acquire_timeout(CONNECT_TIMEOUT)
        .map_sqlx_postgres_before_acquire(move |_connection, metadata| {
            let keep = renewal.keeps(metadata.age);
            Box::pin(async move { Ok(keep) })
        });
    Database::connect(options).await
}

/// The API's reads (get, list, watch), on a small pool of their own, so that no number of
/// them holds a connection the write path needs. Each statement is cancelled by the server
/// after `statement_timeout` (a query keeps running after its caller gave up, unless
/// PostgreSQL stops it), a read waits at most as long for a connection, and the sessions
/// are read-only, so a replica (`DATABASE_READ_URL`) serves them as well as the primary.
/// Connections open when reads need them: the processor starts whether or not the reads'
/// server answers.
pub async fn connect_reads(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = pool_options(
        url,
        max_connections,
        "processor-reads",
        vec![
            (
                "statement_timeout",
                format!("{}ms", statement_timeout.as_millis().max(1)),
            ),
            ("default_transaction_read_only", "on".to_owned()),
        ],
    );
    options
        .min_connections(0)
        .connect_lazy(true)
        .acquire_timeout(statement_timeout.min(CONNECT_TIMEOUT));
    // Lazy: this parses the options and opens nothing, so it does not wait.
    Database::connect(options).await
}

fn pool_options(
    url: &str,
    max_connections: u32,
    application_name: &'static str,
    settings: Vec<(&'static str, String)>,
) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(CONNECT_TIMEOUT)
        // Ping only a connection that sat idle (it may have been cut meanwhile), not every
        // one handed out: under load that ping was one more round trip before each batch.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        // Every statement at INFO would drown the logs on the hot path.
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |options| {
            options
                .application_name(application_name)
                // Plan every execution with its own parameters. A generic plan cached while
                // the table was small (a seq scan) would otherwise outlive its growth until
                // the next ANALYZE, and without autovacuum that may never come: claims went
                // from index lookups to scanning every row, against each of hundreds of ids.
                // Our statements are few and batched, so planning each costs little.
                .options(
                    std::iter::once(("plan_cache_mode", "force_custom_plan".to_owned()))
                        .chain(settings.iter().cloned()),
                )
        });
    options
}
