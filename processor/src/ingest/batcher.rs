//! Groups concurrent ingests: whatever is waiting when a writer is free goes into one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING *` and one pipelined
//! XADD, and each caller gets its own outcome. Under light load a batch is one webhook and
//! nothing waits; under heavy load batches grow while the previous ones are written, so
//! PostgreSQL commits far fewer, larger transactions. A writer does not wait for more to
//! arrive: the gateway already sends webhooks in batches (`IngestTransactions`), and a
//! gathering pause only added its length to every answer. The writers are tasks of their
//! own: a caller that hangs up cannot cut a commit-and-publish in half.
//!
//! Each INSERT takes its rows in `transaction_id` order, so two batches that share ids
//! lock them in the same order and cannot deadlock each other (a sender retrying while its
//! first try is still in flight sends the same ids again, in any order). A batch that
//! fails for a reason a retry at once can cure (a lost connection, a deadlock with another
//! writer of the database) is written once more, on a new connection when the old one was
//! lost, before its callers are answered UNAVAILABLE. A saturated or stalled database
//! (a full pool, a statement time-out) already made them wait: they are answered at once.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Ingested, differences};
use crate::{
    db::{
        Renewal,
        repository::{self, StoredTransaction},
    },
    domain::NewTransaction,
    error::{Error, Result, Transience},
    stream::publisher::Publisher,
};

/// Longest an answer waits for the XADDs after the commit. A slow or absent Redis must not
/// turn a committed transaction into an error: the publish goes on in the background,
/// and if it fails the outbox publishes the rows later.
pub(super) const PUBLISH_WAIT: Duration = Duration::from_millis(100);

/// One caller's ingest, waiting for its batch.
pub struct Pending {
    pub transaction: NewTransaction,
    pub request_id: Option<String>,
    pub reply: oneshot::Sender<Result<Ingested>>,
}

#[derive(Clone)]
pub struct BatchSettings {
    /// Most webhooks in one INSERT.
    pub max_batch: usize,
    /// Batches written at once (each holds one database connection while it runs).
    pub writers: usize,
    pub republish_after: Duration,
}

/// Starts the writers; ingests go in through the returned sender. The writers stop once
/// every sender is dropped and the queue is empty.
pub fn start(
    db: DatabaseConnection,
    renewal: Renewal,
    publisher: Publisher,
    settings: BatchSettings,
) -> mpsc::Sender<Pending> {
    let (sender, receiver) = mpsc::channel(settings.max_batch * settings.writers * 4);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..settings.writers {
        let writer = Writer {
            db: db.clone(),
            renewal: renewal.clone(),
            publisher: publisher.clone(),
            settings: settings.clone(),
        };
        tokio::spawn(writer.run(receiver.clone()));
    }
    sender
}

struct Writer {
    db: DatabaseConnection,
    renewal: Renewal,
    publisher: Publisher,
    settings: BatchSettings,
}

impl Writer {
    async fn run(self, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        loop {
            let mut batch = Vec::with_capacity(self.settings.max_batch);
            // Everything queued, up to a batch; the other writers' batches are in flight.
            if queue
                .lock()
                .await
                .recv_many(&mut batch, self.settings.max_batch)
                .await
                == 0
            {
                return;
            }
            // A caller gone (its deadline passed while the database was slow, or it hung
            // up) was answered already, and not with 202: its write is shed rather than
            // adding to the backlog. The sender's retry finds its id anew.
            batch.retain(|pending| !pending.reply.is_closed());
            if !batch.is_empty() {
                self.write(batch).await;
            }
        }
    }

    async fn write(&self, batch: Vec<Pending>) {
        // One caller per id goes into the INSERT (the first); repeats within the batch
        // are compared with what it stored, like repeats across batches.
        let is_first: Vec<bool> = {
            let mut seen: HashSet<&str> = HashSet::with_capacity(batch.len());
            batch
                .iter()
                .map(|pending| seen.insert(pending.transaction.transaction_id.as_str()))
                .collect()
        };
        let repeats_within = is_first.iter().any(|first| !first);
        let mut candidates: Vec<&NewTransaction> = batch
            .iter()
            .zip(&is_first)
            .filter(|(_, first)| **first)
            .map(|(pending, _)| &pending.transaction)
            .collect();
        candidates
            .sort_unstable_by(|a, b| a.transaction_id.as_str().cmp(b.transaction_id.as_str()));

        let (mut created, existing) = match self.store_retrying_once(&candidates).await {
            Ok(stored) => stored,
            Err(error) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(error.duplicate()));
                }
                return;
            }
        };
        self.publish(&batch, &created).await;
        for (index, pending) in batch.into_iter().enumerate() {
            let id = pending.transaction.transaction_id.as_str();
            let answer = if !is_first[index] {
                None
            } else if repeats_within {
                // A later repeat of this id compares with the row: keep it.
                created.get(id).cloned()
            } else {
                created.remove(id)
            }
            .map(|stored| Ingested {
                created: true,
                transaction: stored,
            });
            let answer = match answer {
                Some(ingested) => Ok(ingested),
                None => match created.get(id).or_else(|| existing.get(id)) {
                    Some(stored) => compare(&pending.transaction, stored),
                    None => Err(Error::Internal(format!(
                        "transaction {id} conflicted but cannot be read"
                    ))),
                },
            };
            // The caller may have gone: the work is done either way.
            let _ = pending.reply.send(answer);
        }
    }

    /// [`Self::store`], and once more when it failed for a reason a retry at once cures.
    async fn store_retrying_once(
        &self,
        candidates: &[&NewTransaction],
    ) -> Result<(
        HashMap<String, StoredTransaction>,
        HashMap<String, StoredTransaction>,
    )> {
        let error = match self.store(candidates).await {
            Err(error) if error.transience().is_worth_retrying_at_once() => error,
            done => return done,
        };
        if error.transience() == Transience::ConnectionLost {
            // The pool's other idle connections most likely went with this one.
            self.renewal.connections_lost();
        }
        tracing::warn!(%error, count = candidates.len(), "writing an ingest batch failed; trying once more");
        self.store(candidates).await
    }

    /// Inserts the new ones; reads the ones that existed. Returns both by id. The INSERT
    /// and the read are separate statements: a failure between them leaves committed rows
    /// that a retry finds as existing, created by nobody, so their callers are answered
    /// as repeats of the same payload (202 either way) and the outbox publishes them.
    async fn store(
        &self,
        candidates: &[&NewTransaction],
    ) -> Result<(
        HashMap<String, StoredTransaction>,
        HashMap<String, StoredTransaction>,
    )> {
        let inserted =
            repository::insert_many_if_absent(&self.db, candidates, self.settings.republish_after)
                .await?;
        let created: HashMap<String, StoredTransaction> = inserted
            .into_iter()
            .map(|stored| (stored.transaction_id.clone(), stored))
            .collect();
        let missing: Vec<String> = candidates
            .iter()
            .filter(|t| !created.contains_key(t.transaction_id.as_str()))
            .map(|t| t.transaction_id.to_string())
            .collect();
        let existing = if missing.is_empty() {
            HashMap::new()
        } else {
            repository::find_many(&self.db, &missing)
                .await?
                .into_iter()
                .map(|stored| (stored.transaction_id.clone(), stored))
                .collect()
        };
        Ok((created, existing))
    }

    /// XADDs the rows this batch created, in one pipeline, waiting at most `PUBLISH_WAIT`.
    async fn publish(&self, batch: &[Pending], created: &HashMap<String, StoredTransaction>) {
        if created.is_empty() {
            return;
        }
        let mut published: HashSet<&str> = HashSet::with_capacity(created.len());
        let mut entries: Vec<(String, Option<String>)> = Vec::with_capacity(created.len());
        for pending in batch {
            let id = pending.transaction.transaction_id.as_str();
            if created.contains_key(id) && published.insert(id) {
                entries.push((id.to_owned(), pending.request_id.clone()));
            }
        }
        let publisher = self.publisher.clone();
        let publish = tokio::spawn(async move {
            if let Err(error) = publisher.publish_many(&entries).await {
                // Committed, so accepted: the outbox publishes them later.
                tracing::warn!(count = entries.len(), %error, "committed but not yet published; the outbox will publish them");
            }
        });
        let _ = tokio::time::timeout(PUBLISH_WAIT, publish).await;
    }
}

/// A repeat of a stored transaction: the same payload is a duplicate, another a conflict.
fn compare(transaction: &NewTransaction, stored: &StoredTransaction) -> Result<Ingested> {
    let fields = differences(transaction, stored);
    if fields.is_empty() {
        Ok(Ingested {
            created: false,
            transaction: stored.clone(),
        })
    } else {
        Err(Error::Conflict {
            transaction_id: stored.transaction_id.clone(),
            fields,
        })
    }
}
