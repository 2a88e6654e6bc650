//! Settling stream entries once PostgreSQL says their transaction is finished:
//! acknowledgement (XACK, then XDEL so the stream does not grow without end) and the
//! dead-letter report of a transaction that ended FAILED.

use fred::prelude::{Client, StreamsInterface};

use super::{StreamNames, TRANSACTION_ID_FIELD};

/// One XACK and one XDEL for many entries, in one round trip. A failure leaves them
/// pending: they are claimed again later and found finished.
pub async fn acknowledge(client: &Client, names: &StreamNames, entry_ids: &[&str]) {
    if entry_ids.is_empty() {
        return;
    }
    let pipeline = client.pipeline();
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
pub async fn dead_letter(
    client: &Client,
    dead_letter_key: &str,
    transaction_id: &str,
    attempts: u32,
    error: &str,
) {
    let attempts = attempts.to_string();
    let fields = vec![
        (TRANSACTION_ID_FIELD, transaction_id),
        ("attempts", attempts.as_str()),
        ("error", error),
    ];
    let added: Result<String, _> = client.xadd(dead_letter_key, false, None, "*", fields).await;
    if let Err(error) = added {
        tracing::error!(%transaction_id, %error, "could not add the FAILED transaction to the dead-letter stream");
    }
}

/// Entries per XCLAIM when keeping held entries fresh.
const KEEP_CHUNK: usize = 1_000;

/// Resets the idle time of entries this consumer is working on (XCLAIM to itself with
/// JUSTID, which leaves the delivery count alone), so XAUTOCLAIM elsewhere, which takes
/// entries idle past a lease, never takes one whose holder is alive and renewing. An entry
/// another consumer had claimed meanwhile comes back to us, its holder.
pub async fn keep_pending(client: &Client, names: &StreamNames, entry_ids: &[&str]) {
    if entry_ids.is_empty() {
        return;
    }
    let pipeline = client.pipeline();
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
