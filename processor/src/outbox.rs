//! The outbox: PostgreSQL is the source of truth, and a transaction committed there is
//! published to the stream even if the XADD at ingest never happened (Redis down, the
//! processor killed between commit and publish) or the stream was lost since.
//!
//! Every `RECONCILE_INTERVAL` it publishes the unfinished transactions that nobody holds
//! a lease on and whose `republish_at` has passed, and moves that time on by
//! `REPUBLISH_AFTER`. When the stream was lost, it publishes all of them at once. An extra
//! publication is harmless: the worker's lease and conditional updates process a
//! transaction once however many entries name it. It is not free, though: while the group
//! has unread entries (consumers at their `MAX_IN_FLIGHT`, a backlog after an outage), an
//! unclaimed row is most likely one of them, so the outbox waits until the group has read
//! everything instead of queueing a copy of each every `REPUBLISH_AFTER`.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    db::repository,
    stream::{StreamNames, backlog, publisher::Publisher},
};

/// Rows taken per round trip.
const BATCH: u64 = 500;

pub struct Outbox {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    /// To see whether the group has unread entries.
    pub redis: fred::prelude::Client,
    /// Every shard of the stream: the outbox waits while any has unread entries.
    pub names: Vec<StreamNames>,
    pub republish_after: Duration,
    pub interval: Duration,
    /// Signalled when the stream or group had to be made anew (at start, or by the
    /// consumer when they vanished), and when Redis answers again after an outage.
    pub stream_lost: Arc<Notify>,
}

impl Outbox {
    /// Runs until `shutdown`. Each `stream_lost` signal re-drives everything at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut everything = false;
        loop {
            // When re-driving everything, the cutoff reaches past every row committed
            // before now, whatever its republish_at.
            let cutoff = if everything {
                Utc::now() + chrono::Duration::from_std(self.republish_after).unwrap_or_default()
            } else {
                Utc::now()
            };
            let round = if !everything && self.group_has_unread_entries().await {
                Ok(0)
            } else {
                self.publish_due(cutoff).await
            };
            match round {
                Ok(0) => {}
                Ok(published) => tracing::info!(
                    published,
                    everything,
                    "outbox published unfinished transactions"
                ),
                Err(error) => tracing::warn!(%error, "outbox round failed; retrying next round"),
            }
            everything = false;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
                () = self.stream_lost.notified() => everything = true,
            }
        }
    }

    /// Whether this round should wait for the group to read the stream's backlog.
    async fn group_has_unread_entries(&self) -> bool {
        for names in &self.names {
            match backlog::group_has_unread_entries(&self.redis, names).await {
                Ok(false) => {}
                Ok(true) => return true,
                Err(error) => {
                    // A copy too many is harmless; a row never published is not.
                    tracing::debug!(%error, "cannot tell whether the group has unread entries; publishing");
                    return false;
                }
            }
        }
        false
    }

    /// Publishes every due transaction; returns how many.
    pub async fn publish_due(&self, cutoff: chrono::DateTime<Utc>) -> anyhow::Result<usize> {
        let mut published = 0;
        loop {
            let due =
                repository::take_due_for_publication(&self.db, cutoff, self.republish_after, BATCH)
                    .await?;
            // One pipelined round trip per batch. On failure the rows wait for their next
            // republish_at: Redis is likely down.
            let entries: Vec<(String, Option<String>)> =
                due.iter().map(|id| (id.clone(), None)).collect();
            self.publisher.publish_many(&entries).await?;
            published += due.len();
            ::metrics::counter!(crate::metrics::OUTBOX_PUBLISHED_TOTAL).increment(due.len() as u64);
            if (due.len() as u64) < BATCH {
                return Ok(published);
            }
        }
    }
}
