//! Settling stream entries once PostgreSQL says their transaction is finished:
//! acknowledgement (XACK, then XDEL so the stream does not grow without end) and the
//! dead-letter report of a transaction that ended FAILED.
//!
//! [`Settlement`] is all processing knows of the stream: what to do with an entry once
//! its transaction's fate is decided, never how Redis does it.

use fred::prelude::{Client, StreamsInterface};

use super::{StreamNames, TRANSACTION_ID_FIELD};

/// Entries per XCLAIM when keeping held entries fresh.
const KEEP_CHUNK: usize = 1_000;

/// What processing may do to one shard's entries: acknowledge them, keep them held, and
/// report a FAILED transaction on that shard's dead-letter stream.
#[derive(Clone)]
pub struct Settlement {
    client: Client,
    names: StreamNames,
    dead_letter_key: String,
}

impl Settlement {
    /// Settles the entries of `names` (as its consumer) through `client`, which must not be
    /// a blocking reader's; dead letters go to `dead_letter_key`.
    pub fn new(client: Client, names: StreamNames, dead_letter_key: String) -> Self {
        Self {
            client,
            names,
            dead_letter_key,
        }
    }

    /// The client and the names, for the rest of the stream module (the consumer reads,
    /// claims and makes its group through them).
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn names(&self) -> &StreamNames {
        &self.names
    }

    /// One XACK and one XDEL for many entries, in one round trip. A failure leaves them
    /// pending: they are claimed again later and found finished.
    pub async fn acknowledge(&self, entry_ids: &[&str]) {
        if entry_ids.is_empty() {
            return;
        }
        let names = &self.names;
        let pipeline = self.client.pipeline();
        let queued = async {
            let () = pipeline
                .xack(&names.key, &names.group, entry_ids.to_vec())
                .await?;
            let () = pipeline.xdel(&names.key, entry_ids.to_vec()).await?;
            pipeline.all::<Vec<fred::types::Value>>().await
        };
        if let Err(error) = queued.await {
            tracing::warn!(count = entry_ids.len(), %error, "acknowledging entries failed; they stay pending");
        }
    }

    /// Reports a FAILED transaction on the dead-letter stream. PostgreSQL already says
    /// FAILED (the source of truth); a lost report is logged, never retried forever.
    pub async fn dead_letter(&self, transaction_id: &str, attempts: u32, error: &str) {
        let attempts = attempts.to_string();
        let fields = vec![
            (TRANSACTION_ID_FIELD, transaction_id),
            ("attempts", attempts.as_str()),
            ("error", error),
        ];
        let added: Result<String, _> = self
            .client
            .xadd(&self.dead_letter_key, false, None, "*", fields)
            .await;
        if let Err(error) = added {
            tracing::error!(%transaction_id, %error, "could not add the FAILED transaction to the dead-letter stream");
        }
    }

    /// Resets the idle time of entries this consumer is working on (XCLAIM to itself with
    /// JUSTID, which leaves the delivery count alone), so XAUTOCLAIM elsewhere, which takes
    /// entries idle past a lease, never takes one whose holder is alive and renewing. An
    /// entry another consumer had claimed meanwhile comes back to us, its holder.
    pub async fn keep_pending(&self, entry_ids: &[&str]) {
        if entry_ids.is_empty() {
            return;
        }
        let names = &self.names;
        let pipeline = self.client.pipeline();
        let queued = async {
            for chunk in entry_ids.chunks(KEEP_CHUNK) {
                let () = pipeline
                    .xclaim(
                        &names.key,
                        &names.group,
                        &names.consumer,
                        0,
                        chunk.to_vec(),
                        None,
                        None,
                        None,
                        false,
                        true,
                    )
                    .await?;
            }
            pipeline.all::<Vec<fred::types::Value>>().await
        };
        if let Err(error) = queued.await {
            tracing::warn!(count = entry_ids.len(), %error, "keeping held entries fresh failed; another consumer may claim them and find them held");
        }
    }
}
