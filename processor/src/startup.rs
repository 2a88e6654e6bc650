//! Waiting for the dependencies at start, instead of exiting because one is away.
//!
//! - PostgreSQL is the source of truth: nothing can be served without it, so `build`
//!   waits for it (connect, then migrate), retrying with backoff and logging why, and
//!   the gRPC port opens only after that.
//! - Redis only delivers work: ingest commits rows without it. The processor starts
//!   whether Redis answers or not; its client keeps reconnecting with backoff, and the
//!   consumer starts once the group could be made. Rows committed meanwhile are published
//!   by the outbox once Redis answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::Client;
use sea_orm::{
    DatabaseConnection,
    sqlx::{self, Connection},
};
use tokio_util::sync::CancellationToken;

use crate::{
    Config, db,
    error::db_transience,
    stream::{StreamNames, consumer::ensure_group, lost::StreamLost},
};

const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Pauses that double from `FIRST_PAUSE` up to `LONGEST_PAUSE`.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(FIRST_PAUSE)
    }

    fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(LONGEST_PAUSE);
        pause
    }
}

/// Connects to PostgreSQL and applies pending migrations (when `RUN_MIGRATIONS`), retrying
/// while the database cannot be used yet (down, starting, failing over, refusing
/// connections, not yet created). A migration that fails for another reason, a bad
/// migration, stops start-up: retrying would fail the same way.
pub async fn wait_for_postgres(
    config: &Config,
    renewal: &db::Renewal,
) -> anyhow::Result<DatabaseConnection> {
    let mut backoff = Backoff::new();
    loop {
        let cause = match connect_and_migrate(config, renewal).await {
            Ok(db) => return Ok(db),
            Err(Failed::Permanently(error)) => return Err(error),
            Err(Failed::ForNow(cause)) => cause,
        };
        let pause = backoff.next();
        tracing::warn!(%cause, retry_in = ?pause, "PostgreSQL at DATABASE_URL is not usable yet; the gRPC port opens once it is");
        tokio::time::sleep(pause).await;
    }
}

enum Failed {
    /// Worth another try; the cause, for the log.
    ForNow(String),
    Permanently(anyhow::Error),
}

async fn connect_and_migrate(
    config: &Config,
    renewal: &db::Renewal,
) -> Result<DatabaseConnection, Failed> {
    reach(config.database_url.expose())
        .await
        .map_err(|error| Failed::ForNow(format!("cannot connect: {error}")))?;
    let db = db::connect_renewable(
        config.database_url.expose(),
        config.database_max_connections,
        renewal,
    )
    .await
    .map_err(|error| Failed::ForNow(format!("cannot connect: {error}")))?;
    if config.run_migrations {
        migration::apply_pending(config.database_url.expose())
            .await
            .map_err(|error| {
                if db_transience(&error).is_transient() {
                    Failed::ForNow(format!("cannot apply migrations: {error}"))
                } else {
                    Failed::Permanently(
                        anyhow::Error::new(error).context("applying migrations failed"),
                    )
                }
            })?;
    }
    Ok(db)
}

/// One connection, opened and closed: its error says why the database cannot be reached
/// (refused, unknown host, authentication, no such database), where the pool's says only
/// that it timed out.
async fn reach(url: &str) -> Result<(), sqlx::Error> {
    sqlx::PgConnection::connect(url).await?.close().await
}

/// Makes the consumer group once Redis answers, retrying with backoff. True once it
/// exists; false when `shutdown` came first. When it had to be made (a new stream, or a
/// Redis that lost its data), `stream_lost` tells the outbox to publish the unfinished
/// transactions committed before `started_at`: this process published its own since, into
/// the stream as it is now. When Redis was away at start, the rows committed until it
/// answered may have no entries, and the moment is then.
pub async fn wait_for_stream_group(
    redis: &Client,
    names: &StreamNames,
    stream_lost: &StreamLost,
    started_at: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new();
    let mut waited = false;
    loop {
        match ensure_group(redis, names).await {
            Ok(created) => {
                if waited {
                    stream_lost.signal(Utc::now());
                } else if created {
                    stream_lost.signal(started_at);
                }
                return true;
            }
            Err(error) => {
                waited = true;
                let pause = backoff.next();
                tracing::warn!(%error, retry_in = ?pause, "Redis at REDIS_URL does not answer; ingest goes on, processing starts once it does");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest() {
        let mut backoff = Backoff::new();
        let pauses: Vec<Duration> = (0..7).map(|_| backoff.next()).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(pauses[6], LONGEST_PAUSE);
    }
}
