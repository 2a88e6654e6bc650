//! Storing a webhook's transaction once and scheduling its processing.

pub mod batcher;

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    db::{
        Renewal,
        repository::{self, StoredTransaction},
    },
    domain::NewTransaction,
    error::{Error, Result},
    stream::publisher::Publisher,
};

pub use batcher::BatchSettings;

/// When a caller with `deadline` is answered UNAVAILABLE if its ingest is not done: a
/// tenth of its time before the deadline (20 to 250 ms), so that the answer reaches it
/// while it still listens, on a busy machine too, instead of its call expiring with
/// nothing said.
fn answer_by(deadline: Instant) -> Instant {
    let margin = (deadline.saturating_duration_since(Instant::now()) / 10)
        .clamp(Duration::from_millis(20), Duration::from_millis(250));
    deadline.checked_sub(margin).unwrap_or(deadline)
}

/// What an ingest did.
#[derive(Clone, Debug)]
pub struct Ingested {
    /// True when this call stored it; false for a repeat of the same payload.
    pub created: bool,
    pub transaction: StoredTransaction,
}

/// Stores transactions and schedules their processing.
#[derive(Clone)]
pub struct Ingestor {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    /// When the outbox publishes a row again if nobody claimed it.
    pub republish_after: Duration,
    queue: mpsc::Sender<batcher::Pending>,
}

impl Ingestor {
    /// Starts the batch writers (see `batcher`); `renewal` is the pool's.
    pub fn start(
        db: DatabaseConnection,
        renewal: Renewal,
        publisher: Publisher,
        settings: BatchSettings,
    ) -> Self {
        let republish_after = settings.republish_after;
        let queue = batcher::start(db.clone(), renewal, publisher.clone(), settings);
        Self {
            db,
            publisher,
            republish_after,
            queue,
        }
    }

    /// Stores the transaction unless its id exists, and publishes it when new. The work
    /// is done by a batch writer: once a writer has taken it, it completes even when this
    /// caller hangs up or its deadline passes; until then, a caller gone is work shed.
    pub async fn ingest(
        &self,
        transaction: NewTransaction,
        request_id: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<Ingested> {
        let answer = self.submit(transaction, request_id)?;
        Self::answer(answer, deadline).await
    }

    /// As [`Self::ingest`] for many: all are queued before any answer is awaited, so they
    /// share the writers' batches. The answers come in the order given; an item that is
    /// already an error (it failed validation) stays that error in its place.
    pub async fn ingest_many(
        &self,
        transactions: Vec<Result<(NewTransaction, Option<String>)>>,
        deadline: Option<Instant>,
    ) -> Vec<Result<Ingested>> {
        let answers: Vec<_> = transactions
            .into_iter()
            .map(|transaction| {
                transaction
                    .and_then(|(transaction, request_id)| self.submit(transaction, request_id))
            })
            .collect();
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => Self::answer(answer, deadline).await,
                Err(error) => Err(error),
            });
        }
        results
    }

    /// Queues the ingest for a writer. A full queue means the writers are far behind (a
    /// stalled database): the caller is answered UNAVAILABLE at once, not queued to
    /// expire.
    fn submit(
        &self,
        transaction: NewTransaction,
        request_id: Option<String>,
    ) -> Result<oneshot::Receiver<Result<Ingested>>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(batcher::Pending {
                transaction,
                request_id,
                reply,
            })
            .map_err(|error| {
                Error::Unavailable(match error {
                    mpsc::error::TrySendError::Full(_) => {
                        "the ingest queue is full: PostgreSQL is behind".to_owned()
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        "the ingest writers have stopped".to_owned()
                    }
                })
            })?;
        Ok(answer)
    }

    /// The writer's answer, or UNAVAILABLE shortly before `deadline`.
    async fn answer(
        answer: oneshot::Receiver<Result<Ingested>>,
        deadline: Option<Instant>,
    ) -> Result<Ingested> {
        let answered = match deadline {
            None => answer.await,
            Some(deadline) => tokio::time::timeout_at(answer_by(deadline), answer)
                .await
                .map_err(|_| {
                    Error::Unavailable(
                        "the ingest was not stored within the call's deadline".to_owned(),
                    )
                })?,
        };
        answered.map_err(|_| Error::Internal("the ingest writer dropped the call".to_owned()))?
    }

    /// FAILED → PROCESSING again, and published. Only a FAILED transaction may be re-driven.
    pub async fn redrive(&self, transaction_id: &str) -> Result<StoredTransaction> {
        if !repository::redrive_failed(&self.db, transaction_id, self.republish_after).await? {
            return Err(match repository::find(&self.db, transaction_id).await? {
                None => Error::NotFound(transaction_id.to_owned()),
                Some(stored) => Error::NotRetryable {
                    transaction_id: transaction_id.to_owned(),
                    status: stored.status,
                },
            });
        }
        let publisher = self.publisher.clone();
        let id = transaction_id.to_owned();
        let publish = tokio::spawn(async move {
            if let Err(error) = publisher.publish(&id, None).await {
                tracing::warn!(transaction_id = %id, %error, "re-driven but not yet published; the outbox will publish it");
            }
        });
        let _ = tokio::time::timeout(batcher::PUBLISH_WAIT, publish).await;
        repository::find(&self.db, transaction_id)
            .await?
            .ok_or_else(|| Error::NotFound(transaction_id.to_owned()))
    }
}

/// The fields of `new` that differ from the stored transaction with its id. Amounts
/// compare as numbers, so `1500` and `1500.00` are the same payload.
fn differences(new: &NewTransaction, stored: &StoredTransaction) -> Vec<&'static str> {
    [
        (
            "source_account",
            new.source_account.as_str() == stored.source_account,
        ),
        (
            "destination_account",
            new.destination_account.as_str() == stored.destination_account,
        ),
        ("amount", new.amount.value() == stored.amount),
        ("currency", new.currency.code() == stored.currency),
    ]
    .into_iter()
    .filter_map(|(field, same)| (!same).then_some(field))
    .collect()
}
