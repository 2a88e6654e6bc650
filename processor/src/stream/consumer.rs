//! Reads the work stream through the consumer group and hands each entry to the worker,
//! many at once (see the design note in `stream/mod.rs`).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fred::{
    prelude::{Client, StreamsInterface},
    types::{Value, streams::XReadResponse},
};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{REQUEST_ID_FIELD, StreamNames, TRANSACTION_ID_FIELD};
use crate::{
    batch::Batcher,
    metrics,
    worker::{Outcome, Worker},
};

/// How long one XREADGROUP waits for new entries before the loop looks around again.
const BLOCK_MILLIS: u64 = 1_000;
/// Acknowledgements per XACK, and round trips at once.
const ACK_BATCH: usize = 512;
const ACK_WORKERS: usize = 2;
/// Pause after a failed read, so a Redis outage is not a busy loop.
const READ_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Stream entries: id and fields.
pub type Entries = Vec<(String, HashMap<String, String>)>;

pub struct Consumer {
    /// Dedicated to the blocking XREADGROUP, which holds its connection while it waits.
    pub reader: Client,
    /// Shared with the rest of the processor for XACK, XDEL, XAUTOCLAIM and dead letters.
    pub acker: Client,
    pub names: StreamNames,
    /// Where a transaction that ended FAILED is reported.
    pub dead_letter_key: String,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    /// Entries pending this long belong to a consumer presumed dead: they are claimed.
    pub claim_min_idle: Duration,
    /// How often to look for such entries.
    pub claim_interval: Duration,
    pub worker: Worker,
    /// Acknowledges finished entries in batches (`ack_batcher`).
    pub acks: Batcher<String, ()>,
    /// Signalled when the group had vanished (Redis lost its data): the outbox then
    /// publishes every unfinished transaction again.
    pub stream_lost: Arc<Notify>,
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

/// What the running loop shares with the tasks it spawns.
struct Shared {
    consumer: Consumer,
    /// Transaction ids being handled in this process, so a second delivery of one (a
    /// duplicate entry, or an entry of ours claimed back) does not start a second run.
    handling: Mutex<HashSet<String>>,
}

impl Consumer {
    /// Reads and processes until `shutdown`, then gives in-flight work `shutdown_grace` to
    /// finish; whatever is unfinished stays pending in the group for redelivery.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), fred::error::Error> {
        ensure_group(&self.acker, &self.names).await?;
        let shared = Arc::new(Shared {
            consumer: self,
            handling: Mutex::new(HashSet::new()),
        });
        let consumer = &shared.consumer;
        let in_flight = Arc::new(Semaphore::new(consumer.max_in_flight));
        let tasks = TaskTracker::new();
        let abandon = CancellationToken::new();
        // Own pending entries first (read before a restart, never acknowledged), then new.
        let mut cursor = String::from("0");
        let mut last_claim = Instant::now();
        tracing::info!(consumer = %consumer.names.consumer, stream = %consumer.names.key, "consumer started");

        loop {
            if last_claim.elapsed() >= consumer.claim_interval {
                last_claim = Instant::now();
                match claim_stale_entries(
                    &consumer.acker,
                    &consumer.names,
                    consumer.claim_min_idle,
                    consumer.batch_size,
                )
                .await
                {
                    Ok(entries) if !entries.is_empty() => {
                        tracing::info!(
                            count = entries.len(),
                            "claimed entries idle past the lease"
                        );
                        dispatch(&shared, entries, None, &in_flight, &tasks, &abandon).await;
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
            let count = consumer.batch_size.min(in_flight.available_permits() + 1);
            let reading_own_pending = cursor != ">";
            let block = (!reading_own_pending).then_some(BLOCK_MILLIS);
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = read_entries(&consumer.reader, &consumer.names, &cursor, count, block) => read,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    drop(first_slot);
                    consumer.recover_from_read_error(&error).await;
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
            dispatch(
                &shared,
                entries,
                Some(first_slot),
                &in_flight,
                &tasks,
                &abandon,
            )
            .await;
        }

        tracing::info!(
            in_flight = tasks.len(),
            "consumer stopping; letting in-flight work finish"
        );
        tasks.close();
        if tokio::time::timeout(consumer.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            abandon.cancel();
            tasks.wait().await;
            match consumer.worker.release_leases().await {
                Ok(released) => tracing::warn!(
                    released,
                    "grace period over; unfinished transactions released for other consumers"
                ),
                Err(error) => {
                    tracing::warn!(%error, "grace period over; releasing leases failed, they will expire")
                }
            }
        }
        Ok(())
    }

    /// A missing group means Redis lost the stream (restart without persistence, flush):
    /// make it again and have the outbox publish every unfinished transaction anew.
    async fn recover_from_read_error(&self, error: &fred::error::Error) {
        if error.details().contains("NOGROUP") {
            tracing::warn!(
                "the consumer group is gone (Redis lost its data); recreating it and re-driving from PostgreSQL"
            );
            match ensure_group(&self.acker, &self.names).await {
                Ok(_) => self.stream_lost.notify_one(),
                Err(error) => {
                    tracing::warn!(%error, "recreating the consumer group failed; retrying")
                }
            }
        } else {
            tracing::warn!(%error, "reading the stream failed; retrying");
        }
    }

    async fn handle(
        &self,
        handling: &Mutex<HashSet<String>>,
        entry_id: String,
        fields: HashMap<String, String>,
    ) {
        let Some(transaction_id) = fields.get(TRANSACTION_ID_FIELD) else {
            tracing::warn!(%entry_id, "stream entry without a transaction id; discarding it");
            self.acknowledge(&entry_id).await;
            return;
        };
        let first_here = handling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(transaction_id.clone());
        if !first_here {
            // The run already under way here will finish it.
            self.acknowledge(&entry_id).await;
            return;
        }
        let request_id = fields
            .get(REQUEST_ID_FIELD)
            .map(String::as_str)
            .unwrap_or_default();
        // Every log line of this run carries the transaction and the webhook's request id.
        let span = tracing::info_span!("transaction", %transaction_id, request_id);
        async {
            ::metrics::gauge!(metrics::IN_FLIGHT).increment(1.0);
            let outcome = self.worker.process(transaction_id).await;
            ::metrics::gauge!(metrics::IN_FLIGHT).decrement(1.0);
            handling
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(transaction_id);
            match outcome {
                Ok(Outcome::Failed { attempts, error }) => {
                    tracing::warn!(attempts, %error, "transaction FAILED");
                    self.dead_letter(transaction_id, attempts, &error).await;
                    self.acknowledge(&entry_id).await;
                }
                Ok(outcome) => {
                    tracing::info!(%entry_id, ?outcome, "transaction handled");
                    self.acknowledge(&entry_id).await;
                }
                Err(error) => {
                    tracing::warn!(%entry_id, %error, "processing interrupted; the entry stays pending and will be claimed again");
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Reports a FAILED transaction on the dead-letter stream. PostgreSQL already says
    /// FAILED (the source of truth); a lost report is logged, never retried forever.
    async fn dead_letter(&self, transaction_id: &str, attempts: u32, error: &str) {
        let attempts = attempts.to_string();
        let fields = vec![
            (TRANSACTION_ID_FIELD, transaction_id),
            ("attempts", attempts.as_str()),
            ("error", error),
        ];
        let added: Result<String, _> = self
            .acker
            .xadd(&self.dead_letter_key, false, None, "*", fields)
            .await;
        if let Err(error) = added {
            tracing::error!(%transaction_id, %error, "could not add the FAILED transaction to the dead-letter stream");
        }
    }

    /// XACK, then XDEL: the entry is done and need not be kept.
    async fn acknowledge(&self, entry_id: &str) {
        let names = &self.names;
        let acked: Result<i64, _> = self.acker.xack(&names.key, &names.group, entry_id).await;
        let deleted = match acked {
            Ok(_) => self
                .acker
                .xdel::<i64, _, _>(&names.key, entry_id)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = deleted {
            // Still pending: it will be claimed again and found finished.
            tracing::warn!(%entry_id, %error, "acknowledging the entry failed");
        }
    }
}

/// Starts the batcher that acknowledges entries for `Consumer::acks`.
pub fn ack_batcher(client: Client, names: StreamNames) -> Batcher<String, ()> {
    Batcher::start(ACK_BATCH, ACK_WORKERS, move |entry_ids: Vec<String>| {
        let (client, names) = (client.clone(), names.clone());
        async move {
            acknowledge_batch(&client, &names, &entry_ids).await;
            vec![(); entry_ids.len()]
        }
    })
}

/// One XACK and one XDEL for many entries.
async fn acknowledge_batch(client: &Client, names: &StreamNames, entry_ids: &[String]) {
    let ids: Vec<&str> = entry_ids.iter().map(String::as_str).collect();
    let acked: Result<i64, _> = client.xack(&names.key, &names.group, ids.clone()).await;
    let deleted = match acked {
        Ok(_) => client.xdel::<i64, _, _>(&names.key, ids).await.map(|_| ()),
        Err(error) => Err(error),
    };
    if let Err(error) = deleted {
        // Still pending: they will be claimed again and found finished.
        tracing::warn!(count = entry_ids.len(), %error, "acknowledging entries failed");
    }
}

/// Spawns one task per entry, each holding an in-flight slot until it is done.
async fn dispatch(
    shared: &Arc<Shared>,
    entries: Entries,
    mut first_slot: Option<OwnedSemaphorePermit>,
    in_flight: &Arc<Semaphore>,
    tasks: &TaskTracker,
    abandon: &CancellationToken,
) {
    for (entry_id, fields) in entries {
        let slot = match first_slot.take() {
            Some(slot) => slot,
            None => match in_flight.clone().acquire_owned().await {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let shared = shared.clone();
        let abandon = abandon.clone();
        tasks.spawn(async move {
            let _slot = slot;
            tokio::select! {
                // Past the grace period: leave the entry pending for redelivery.
                _ = abandon.cancelled() => {}
                () = shared.consumer.handle(&shared.handling, entry_id, fields) => {}
            }
        });
    }
}
