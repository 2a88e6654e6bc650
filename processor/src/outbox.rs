//! The outbox: PostgreSQL is the source of truth, and a transaction committed there is
//! published to the stream even if the XADD at ingest never happened (Redis down, the
//! processor killed between commit and publish), its entry was dropped, or the stream was
//! lost since.
//!
//! Every `RECONCILE_INTERVAL` it publishes the unfinished transactions that nobody holds
//! a lease on and whose `republish_at` (last publication + `REPUBLISH_AFTER`) has passed,
//! and moves that time on by `REPUBLISH_AFTER`. An extra publication is harmless: the
//! worker's lease and conditional updates process a transaction once however many entries
//! name it. It is not free, though: while the group has unread entries (consumers at their
//! `MAX_IN_FLIGHT`, a backlog after an outage), an unclaimed row published after the last
//! entry the group was delivered is most likely one of the unread ones, so only rows
//! published before that are due. A stranded row is so published again at most
//! `REPUBLISH_AFTER` after the group has read past it, however long the backlog lasts,
//! and rows waiting their turn get no copies. When the stream was lost, every row
//! committed before the loss is published at once.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    db::repository,
    stream::{StreamNames, backlog, lost::StreamLost, publisher::Publisher},
};

/// Rows taken per round trip.
const BATCH: u64 = 500;

/// Between a row's commit (which sets its `republish_at`, by PostgreSQL's clock) and its
/// XADD (whose id is Redis's clock): the time the publish takes, and clock skew. A row
/// within this of the group's read position counts as not read yet.
const PUBLISH_MARGIN: chrono::Duration = chrono::Duration::seconds(1);

pub struct Outbox {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    /// To see how far the group has read.
    pub redis: fred::prelude::Client,
    /// Every shard of the stream: the one read least far bounds what is due.
    pub names: Vec<StreamNames>,
    pub republish_after: Duration,
    pub interval: Duration,
    /// Signalled when the stream or group had to be made anew (at start, or by the
    /// consumer when they vanished), and when Redis answers again after an outage.
    pub stream_lost: Arc<StreamLost>,
}

impl Outbox {
    /// Runs until `shutdown`. Each `stream_lost` signal re-drives, at once, everything
    /// committed before the moment it names.
    pub async fn run(self, shutdown: CancellationToken) {
        let republish_after =
            chrono::Duration::from_std(self.republish_after).unwrap_or(chrono::Duration::MAX);
        let mut lost_before: Option<DateTime<Utc>> = None;
        loop {
            let redrive = lost_before.take();
            let cutoff = match redrive {
                // Every row last published before the loss, whatever its republish_at.
                Some(before) => before
                    .checked_add_signed(republish_after)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                None => self.due_cutoff(republish_after).await,
            };
            match self.publish_due(cutoff).await {
                Ok(0) => {}
                Ok(published) => tracing::info!(
                    published,
                    redrive = redrive.is_some(),
                    "outbox published unfinished transactions"
                ),
                Err(error) => tracing::warn!(%error, "outbox round failed; retrying next round"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
                before = self.stream_lost.wait() => lost_before = Some(before),
            }
        }
    }

    /// Rows whose `republish_at` is before this are due: now, or while a shard has unread
    /// entries, the time its group was last delivered one, moved on by `REPUBLISH_AFTER`
    /// (so it compares with last publications) less `PUBLISH_MARGIN`.
    async fn due_cutoff(&self, republish_after: chrono::Duration) -> DateTime<Utc> {
        let mut cutoff = Utc::now();
        for names in &self.names {
            match backlog::delivered_until_while_behind(&self.redis, names).await {
                Ok(None) => {}
                Ok(Some(delivered_until)) => {
                    let read_until = delivered_until
                        .checked_add_signed(republish_after - PUBLISH_MARGIN)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    cutoff = cutoff.min(read_until);
                }
                Err(error) => {
                    // A copy too many is harmless; a row never published is not.
                    tracing::debug!(%error, "cannot tell how far the group has read; publishing what is due");
                }
            }
        }
        cutoff
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
