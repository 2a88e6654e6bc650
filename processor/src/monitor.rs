//! Looks at the dependencies and the stream every few seconds: the gRPC health status
//! and the stream gauges.
//!
//! Health service names (`payments_proto::health`): `""` and the service for the whole,
//! SERVING while PostgreSQL answers (ingest and reads need nothing else: without Redis,
//! rows are committed and published later); one name per dependency (Redis is the stream:
//! while it is not serving, nothing is processed), so a probe can say which one is down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fred::prelude::{Client, ClientLike, StreamsInterface};
use payments_proto::health;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    metrics,
    stream::{StreamNames, lost::StreamLost},
};

/// A probe that takes longer than this counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Monitor {
    pub db: DatabaseConnection,
    pub redis: Client,
    /// Every shard of the stream; the gauges are their sums.
    pub names: Vec<StreamNames>,
    pub health: HealthReporter,
    pub interval: Duration,
    /// Signalled when Redis answers again after a look found it down: the rows committed
    /// meanwhile are published at once, not a `REPUBLISH_AFTER` later.
    pub redis_returned: Arc<StreamLost>,
    pub redis_was_up: AtomicBool,
    /// Whether Redis has answered this process yet. Until it has, a failed look is the
    /// client still connecting (or Redis away at start, which the wait for the stream
    /// group signals itself), not an outage to recover from.
    pub redis_answered: AtomicBool,
}

impl Monitor {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.observe().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        // Going away: tell load balancers first.
        for name in ["", health::SERVICE] {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    }

    /// One look: probes both dependencies and samples the stream.
    pub async fn observe(&self) {
        let postgres_up = probe(self.db.execute_unprepared("SELECT 1")).await;
        let redis_up = probe(self.redis.ping::<String>(None)).await;
        for (name, dependency, up) in [
            (health::POSTGRES, "postgres", postgres_up),
            (health::REDIS, "redis", redis_up),
        ] {
            self.health.set_service_status(name, serving(up)).await;
            ::metrics::gauge!(metrics::DEPENDENCY_UP, "dependency" => dependency)
                .set(f64::from(u8::from(up)));
        }
        for name in ["", health::SERVICE] {
            self.health
                .set_service_status(name, serving(postgres_up))
                .await;
        }
        let redis_was_up = self.redis_was_up.swap(redis_up, Ordering::Relaxed);
        let answered_before = if redis_up {
            self.redis_answered.swap(true, Ordering::Relaxed)
        } else {
            self.redis_answered.load(Ordering::Relaxed)
        };
        if redis_up && !redis_was_up && answered_before {
            tracing::info!("Redis answers again; publishing what was committed meanwhile");
            self.redis_returned.signal(chrono::Utc::now());
        }
        if redis_up {
            self.sample_stream().await;
        }
    }

    async fn sample_stream(&self) {
        let (mut length, mut pending) = (Some(0_u64), Some(0_u64));
        for names in &self.names {
            let shard_length = self.redis.xlen::<u64, _>(&names.key).await.ok();
            let summary: Result<Vec<fred::types::Value>, _> =
                self.redis.xpending(&names.key, &names.group, ()).await;
            let shard_pending = summary
                .ok()
                .and_then(|s| s.first().and_then(fred::types::Value::as_u64));
            length = length.zip(shard_length).map(|(sum, n)| sum + n);
            pending = pending.zip(shard_pending).map(|(sum, n)| sum + n);
        }
        if let Some(length) = length {
            ::metrics::gauge!(metrics::STREAM_LENGTH).set(length as f64);
        }
        if let Some(pending) = pending {
            ::metrics::gauge!(metrics::STREAM_PENDING).set(pending as f64);
        }
    }
}

async fn probe<T, E>(check: impl std::future::Future<Output = Result<T, E>>) -> bool {
    matches!(tokio::time::timeout(PROBE_TIMEOUT, check).await, Ok(Ok(_)))
}

fn serving(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
