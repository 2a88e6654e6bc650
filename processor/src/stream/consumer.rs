//! Reads the work stream through the consumer group and hands each entry to the worker,
//! many at once (see the design note in `stream/mod.rs`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use fred::{
    prelude::{Client, StreamsInterface},
    types::{Value, streams::XReadResponse},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{StreamNames, TRANSACTION_ID_FIELD};
use crate::worker::Worker;

/// How long one XREADGROUP waits for new entries before the loop looks around again.
const BLOCK_MILLIS: u64 = 1_000;
/// Pause after a failed read, so a Redis outage is not a busy loop.
const READ_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Stream entries: id and fields.
pub type Entries = Vec<(String, HashMap<String, String>)>;

pub struct Consumer {
    /// Dedicated to the blocking XREADGROUP, which holds its connection while it waits.
    pub reader: Client,
    /// Shared with the rest of the processor for XACK and XDEL.
    pub acker: Client,
    pub names: StreamNames,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    pub worker: Worker,
}

/// Creates the group (and the stream) unless it exists. Safe to call from every replica.
pub async fn ensure_group(client: &Client, names: &StreamNames) -> Result<(), fred::error::Error> {
    match client
        .xgroup_create::<(), _, _, _>(&names.key, &names.group, "0", true)
        .await
    {
        Err(error) if !error.details().contains("BUSYGROUP") => Err(error),
        _ => Ok(()),
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

impl Consumer {
    /// Reads and processes until `shutdown`, then gives in-flight work `shutdown_grace` to
    /// finish; whatever is unfinished stays pending in the group for redelivery.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), fred::error::Error> {
        ensure_group(&self.acker, &self.names).await?;
        let consumer = Arc::new(self);
        let in_flight = Arc::new(Semaphore::new(consumer.max_in_flight));
        let tasks = TaskTracker::new();
        let abandon = CancellationToken::new();
        // Own pending entries first (read before a restart, never acknowledged), then new.
        let mut cursor = String::from("0");
        tracing::info!(consumer = %consumer.names.consumer, stream = %consumer.names.key, "consumer started");

        loop {
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
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = consumer.read(&cursor, count, !reading_own_pending) => read,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "reading the stream failed; retrying");
                    drop(first_slot);
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
            let mut first_slot = Some(first_slot);
            for (entry_id, fields) in entries {
                let slot = match first_slot.take() {
                    Some(slot) => slot,
                    None => match in_flight.clone().acquire_owned().await {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                };
                let consumer = consumer.clone();
                let abandon = abandon.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        // Past the grace period: leave the entry pending for redelivery.
                        _ = abandon.cancelled() => {}
                        () = consumer.handle(entry_id, fields, slot) => {}
                    }
                });
            }
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
            tracing::warn!(
                left_pending = tasks.len(),
                "grace period over; unfinished entries stay pending"
            );
            abandon.cancel();
            tasks.wait().await;
        }
        Ok(())
    }

    async fn read(
        &self,
        cursor: &str,
        count: usize,
        block: bool,
    ) -> Result<Entries, fred::error::Error> {
        read_entries(
            &self.reader,
            &self.names,
            cursor,
            count,
            block.then_some(BLOCK_MILLIS),
        )
        .await
    }

    async fn handle(
        &self,
        entry_id: String,
        fields: HashMap<String, String>,
        _slot: OwnedSemaphorePermit,
    ) {
        let Some(transaction_id) = fields.get(TRANSACTION_ID_FIELD) else {
            tracing::warn!(%entry_id, "stream entry without a transaction id; discarding it");
            self.acknowledge(&entry_id).await;
            return;
        };
        match self.worker.process(transaction_id).await {
            Ok(outcome) => {
                tracing::info!(%transaction_id, %entry_id, ?outcome, "transaction handled");
                self.acknowledge(&entry_id).await;
            }
            Err(error) => {
                tracing::warn!(%transaction_id, %entry_id, %error, "processing failed; entry stays pending for redelivery");
            }
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
            // Still pending: it will be redelivered and found finished.
            tracing::warn!(%entry_id, %error, "acknowledging the entry failed");
        }
    }
}
