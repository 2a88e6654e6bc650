//! Retention: what would otherwise grow for ever.
//!
//! - With `RETENTION` set, finished transactions created and finished longer ago than that
//!   are deleted with their attempt records, a small batch per statement (so no lock is
//!   held for long and ingest never waits behind it), and the dead-letter stream is trimmed
//!   to the same horizon (`XTRIM MINID`: entry ids are their insertion times). Once a
//!   transaction's row is gone, a webhook repeating its id is new: the duplicate window is
//!   the retention. PROCESSING rows are never deleted, whatever their age.
//! - Always: consumers that left the group are removed from it. A consumer with nothing
//!   pending that has not read for longer than a lease (the rule by which its entries
//!   would be claimed, were there any) is gone; the check and the `XGROUP DELCONSUMER`
//!   are one Lua script, so a consumer that reads meanwhile is not removed with entries
//!   pending (which would drop them from the group). A live one removed by mistake loses
//!   nothing: its next XREADGROUP makes it again.
//!
//! Every `RECONCILE_INTERVAL`, on every replica; replicas skip each other's rows.

use std::time::Duration;

use chrono::Utc;
use fred::{
    prelude::{Client, LuaInterface, StreamsInterface},
    types::streams::{XCapKind, XCapTrim},
};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{db::repository, metrics::RETENTION_REMOVED_TOTAL, stream::StreamNames};

/// Rows per delete: a few milliseconds of work and of row locks.
const BATCH: u64 = 1_000;

/// Removes the group's consumers with nothing pending idle longer than `ARGV[2]` ms, except
/// `ARGV[3]` (this replica); returns how many. KEYS[1] is the stream, ARGV[1] the group.
const REMOVE_DEPARTED_CONSUMERS: &str = r"
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
  if fields['pending'] == 0 and fields['idle'] > tonumber(ARGV[2])
     and fields['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    removed = removed + 1
  end
end
return removed
";

pub struct Retention {
    pub db: DatabaseConnection,
    pub redis: Client,
    /// Every shard of the stream, with its dead-letter stream.
    pub shards: Vec<(StreamNames, String)>,
    /// `RETENTION`; `None` keeps every row and dead letter.
    pub keep: Option<Duration>,
    /// A consumer idle this long with nothing pending has left the group.
    pub consumer_idle_limit: Duration,
    pub interval: Duration,
}

impl Retention {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.round(&shutdown).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass of everything; a failure is logged and the next round tries again.
    pub async fn round(&self, shutdown: &CancellationToken) {
        if let Some(keep) = self.keep {
            if let Err(error) = self.delete_old_rows(keep, shutdown).await {
                tracing::warn!(%error, "retention could not delete old transactions; retrying next round");
            }
            for (_, dead_letter_key) in &self.shards {
                if let Err(error) = self.trim_dead_letters(dead_letter_key, keep).await {
                    tracing::debug!(%error, "retention could not trim the dead-letter stream");
                }
            }
        }
        for (names, _) in &self.shards {
            if let Err(error) = self.remove_departed_consumers(names).await {
                tracing::debug!(%error, "retention could not look at the group's consumers");
            }
        }
    }

    /// Deletes batch after batch until one comes back short; returns the rows removed.
    pub async fn delete_old_rows(
        &self,
        keep: Duration,
        shutdown: &CancellationToken,
    ) -> Result<repository::Removed, sea_orm::DbErr> {
        let mut total = repository::Removed::default();
        while !shutdown.is_cancelled() {
            let removed = repository::delete_finished_older_than(&self.db, keep, BATCH).await?;
            ::metrics::counter!(RETENTION_REMOVED_TOTAL, "kind" => "transactions")
                .increment(removed.transactions);
            ::metrics::counter!(RETENTION_REMOVED_TOTAL, "kind" => "processing_attempts")
                .increment(removed.attempts);
            total.transactions += removed.transactions;
            total.attempts += removed.attempts;
            if removed.transactions < BATCH {
                break;
            }
        }
        if total.transactions > 0 {
            tracing::info!(
                transactions = total.transactions,
                attempts = total.attempts,
                "retention deleted finished transactions"
            );
        }
        Ok(total)
    }

    /// `XTRIM MINID` at the horizon; returns the entries removed.
    pub async fn trim_dead_letters(
        &self,
        dead_letter_key: &str,
        keep: Duration,
    ) -> Result<u64, fred::error::Error> {
        let horizon =
            Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::TimeDelta::MAX);
        let min_id = horizon.timestamp_millis().max(0).to_string();
        let removed: u64 = self
            .redis
            .xtrim(dead_letter_key, (XCapKind::MinID, XCapTrim::Exact, min_id))
            .await?;
        ::metrics::counter!(RETENTION_REMOVED_TOTAL, "kind" => "dead_letters").increment(removed);
        Ok(removed)
    }

    /// Returns how many consumers were removed.
    pub async fn remove_departed_consumers(
        &self,
        names: &StreamNames,
    ) -> Result<u64, fred::error::Error> {
        let idle_ms = u64::try_from(self.consumer_idle_limit.as_millis()).unwrap_or(u64::MAX);
        let removed: u64 = self
            .redis
            .eval(
                REMOVE_DEPARTED_CONSUMERS,
                vec![names.key.clone()],
                vec![
                    names.group.clone(),
                    idle_ms.to_string(),
                    names.consumer.clone(),
                ],
            )
            .await?;
        if removed > 0 {
            tracing::info!(removed, "removed consumers that left the group");
        }
        ::metrics::counter!(RETENTION_REMOVED_TOTAL, "kind" => "consumers").increment(removed);
        Ok(removed)
    }
}
