//! Reads the work stream through the consumer group and hands each entry to processing
//! (see the design note in `stream/mod.rs`), up to `MAX_IN_FLIGHT` at once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use fred::{
    prelude::{Client, StreamsInterface},
    types::{Value, streams::XReadResponse},
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    REQUEST_ID_FIELD, StreamNames, TRANSACTION_ID_FIELD, lost::StreamLost, settle::Settlement,
};
use crate::{
    processing::{Delivery, Processing, Scheduler},
    startup,
};

/// How long one XREADGROUP waits for new entries before the loop looks around again.
const BLOCK_MILLIS: u64 = 1_000;
/// Pause after a read that found fewer entries than it asked for: the next read, and the
/// claim that follows it, then take many entries at once instead of one or two each.
/// Against a delay of seconds the pickup latency it adds is nothing.
const READ_GATHER: Duration = Duration::from_millis(10);
/// Pause after a failed read, so a Redis outage is not a busy loop.
const READ_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Stream entries: id and fields.
pub type Entries = Vec<(String, HashMap<String, String>)>;

pub struct Consumer {
    /// Dedicated to the blocking XREADGROUP, which holds its connection while it waits.
    /// XAUTOCLAIM and the consumer group go through `processing.settlement`'s client.
    pub reader: Client,
    pub batch_size: usize,
    pub max_in_flight: usize,
    /// Entries pending this long belong to a consumer presumed dead: they are claimed. A
    /// live holder keeps its entries' idle time below it (its heartbeat), so this is a
    /// lease, not a delivery time.
    pub claim_min_idle: Duration,
    /// How often to look for such entries.
    pub claim_interval: Duration,
    /// Signalled when the group had vanished (Redis lost its data): the outbox then
    /// publishes every unfinished transaction again.
    pub stream_lost: Arc<StreamLost>,
    /// What is done with each entry read.
    pub processing: Processing,
}

/// Creates the group (and the stream) unless it exists. Safe to call from every replica.
/// Returns true when it had to create it: the stream was new or had been lost.
pub async fn ensure_group(
    client: &Client,
    names: &StreamNames,
) -> Result<bool, fred::error::Error> {
    match client
        .xgroup_create::<(), _, _, _>(&names.key, &names.group, "0", true)
        .await
    {
        Ok(()) => Ok(true),
        Err(error) if error.details().contains("BUSYGROUP") => Ok(false),
        Err(error) => Err(error),
    }
}

/// One XREADGROUP of up to `count` entries after `cursor` (`>` for new entries, an id for
/// this consumer's own pending ones), waiting up to `block_millis` when there are none.
pub async fn read_entries(
    reader: &Client,
    names: &StreamNames,
    cursor: &str,
    count: usize,
    block_millis: Option<u64>,
) -> Result<Entries, fred::error::Error> {
    let reply: Value = reader
        .xreadgroup(
            &names.group,
            &names.consumer,
            Some(count as u64),
            block_millis,
            false,
            &names.key,
            cursor,
        )
        .await?;
    // A blocking read that times out answers nil, which is "nothing yet", not an error.
    if reply.is_null() {
        return Ok(Vec::new());
    }
    let mut response: XReadResponse<String, String, String, String> =
        reply.into_xread_response()?;
    Ok(response.remove(&names.key).unwrap_or_default())
}

/// Takes over entries pending longer than `min_idle` (their consumer is presumed dead),
/// up to `count`, with XAUTOCLAIM.
pub async fn claim_stale_entries(
    client: &Client,
    names: &StreamNames,
    min_idle: Duration,
    count: usize,
) -> Result<Entries, fred::error::Error> {
    let min_idle_millis = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
    let (_cursor, entries): (String, Entries) = client
        .xautoclaim_values(
            &names.key,
            &names.group,
            &names.consumer,
            min_idle_millis,
            "0-0",
            Some(count as u64),
            false,
        )
        .await?;
    Ok(entries)
}

impl Consumer {
    /// Waits for the consumer group (Redis may be away at start), then reads and hands
    /// entries to processing until `shutdown`, then gives in-flight work `shutdown_grace`
    /// to finish; whatever is unfinished stays pending in the group for redelivery. A read
    /// that finds the group gone makes it again. `started_at` is when this process began
    /// to serve (see `startup::wait_for_stream_group`).
    pub async fn run(self, started_at: DateTime<Utc>, shutdown: CancellationToken) {
        let Consumer {
            reader,
            batch_size,
            max_in_flight,
            claim_min_idle,
            claim_interval,
            stream_lost,
            processing,
        } = self;
        let settlement = processing.settlement.clone();
        let (redis, names) = (settlement.client(), settlement.names());
        // The scheduler's heartbeat keeps this consumer's name registered while it waits.
        let scheduler = Scheduler::start(processing, shutdown.clone());
        if !startup::wait_for_stream_group(redis, names, &stream_lost, started_at, &shutdown).await
        {
            scheduler.finish().await;
            return;
        }
        let in_flight = Arc::new(Semaphore::new(max_in_flight));
        let reading = Reading {
            settlement: &settlement,
            scheduler: &scheduler,
            in_flight: &in_flight,
            shutdown: &shutdown,
        };
        // Own pending entries first (read before a restart, never acknowledged), then new.
        let mut cursor = String::from("0");
        let mut last_claim = Instant::now();
        tracing::info!(consumer = %names.consumer, stream = %names.key, "consumer started");

        loop {
            if last_claim.elapsed() >= claim_interval {
                last_claim = Instant::now();
                match claim_stale_entries(redis, names, claim_min_idle, batch_size).await {
                    Ok(entries) if !entries.is_empty() => {
                        tracing::info!(
                            count = entries.len(),
                            "claimed entries idle past the lease"
                        );
                        ::metrics::counter!(crate::metrics::CLAIMED_ENTRIES_TOTAL)
                            .increment(entries.len() as u64);
                        reading.hand_over(entries, None, false).await;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "claiming idle entries failed"),
                }
            }
            // Reaching the in-flight bound slows reading; it never drops work.
            let first_slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = in_flight.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let count = batch_size.min(in_flight.available_permits() + 1);
            let reading_own_pending = cursor != ">";
            let block = (!reading_own_pending).then_some(BLOCK_MILLIS);
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = read_entries(&reader, names, &cursor, count, block) => read,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    drop(first_slot);
                    recover_from_read_error(redis, names, &stream_lost, &error).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        () = tokio::time::sleep(READ_RETRY_PAUSE) => continue,
                    }
                }
            };
            if reading_own_pending {
                match entries.last() {
                    Some((last_id, _)) => cursor.clone_from(last_id),
                    None => cursor = String::from(">"),
                }
            }
            let short = entries.len() < count;
            reading.hand_over(entries, Some(first_slot), true).await;
            if short && !reading_own_pending {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    () = tokio::time::sleep(READ_GATHER) => {}
                }
            }
        }
        scheduler.finish().await;
    }
}

/// A missing group means Redis lost the stream (restart without persistence, flush):
/// make it again and have the outbox publish every unfinished transaction anew.
async fn recover_from_read_error(
    redis: &Client,
    names: &StreamNames,
    stream_lost: &StreamLost,
    error: &fred::error::Error,
) {
    if error.details().contains("NOGROUP") {
        tracing::warn!(
            "the consumer group is gone (Redis lost its data); recreating it and re-driving from PostgreSQL"
        );
        match ensure_group(redis, names).await {
            Ok(_) => stream_lost.signal(chrono::Utc::now()),
            Err(error) => {
                tracing::warn!(%error, "recreating the consumer group failed; retrying")
            }
        }
    } else {
        tracing::warn!(%error, "reading the stream failed; retrying");
    }
}

/// What the read loop needs to hand entries over.
struct Reading<'a> {
    /// Malformed entries are acknowledged through it: nothing can ever process them.
    settlement: &'a Settlement,
    scheduler: &'a Scheduler,
    in_flight: &'a Arc<Semaphore>,
    shutdown: &'a CancellationToken,
}

impl Reading<'_> {
    /// Hands each entry to the scheduler with an in-flight slot, waiting for slots when
    /// the bound is reached. `fresh`: read through the group, not claimed from another
    /// consumer (see `Delivery::fresh`).
    async fn hand_over(
        &self,
        entries: Entries,
        mut first_slot: Option<OwnedSemaphorePermit>,
        fresh: bool,
    ) {
        let mut malformed: Vec<String> = Vec::new();
        for (entry_id, mut fields) in entries {
            let Some(transaction_id) = fields.remove(TRANSACTION_ID_FIELD) else {
                tracing::warn!(%entry_id, "stream entry without a transaction id; discarding it");
                malformed.push(entry_id);
                continue;
            };
            let slot = match first_slot.take() {
                Some(slot) => slot,
                // At the bound, wait for a slot, but not past shutdown: entries not handed
                // over stay pending in the group and are delivered again.
                None => tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    slot = self.in_flight.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                },
            };
            self.scheduler
                .admit(Delivery {
                    entry_id: entry_id.into_boxed_str(),
                    transaction_id: Arc::from(transaction_id),
                    request_id: fields.remove(REQUEST_ID_FIELD).map(String::into_boxed_str),
                    fresh,
                    slot,
                })
                .await;
        }
        let malformed: Vec<&str> = malformed.iter().map(String::as_str).collect();
        self.settlement.acknowledge(&malformed).await;
    }
}
