//! Storing a webhook's transaction once and scheduling its processing.

pub mod batcher;

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

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
    /// is done by a batch writer, so it completes even when this caller hangs up or its
    /// deadline passes.
    pub async fn ingest(
        &self,
        transaction: NewTransaction,
        request_id: Option<String>,
    ) -> Result<Ingested> {
        let answer = self.submit(transaction, request_id).await?;
        Self::answer(answer).await
    }

    /// As [`Self::ingest`] for many: all are queued before any answer is awaited, so they
    /// share the writers' batches. The answers come in the order given; an item that is
    /// already an error (it failed validation) stays that error in its place.
    pub async fn ingest_many(
        &self,
        transactions: Vec<Result<(NewTransaction, Option<String>)>>,
    ) -> Vec<Result<Ingested>> {
        let mut answers = Vec::with_capacity(transactions.len());
        for transaction in transactions {
            answers.push(match transaction {
                Ok((transaction, request_id)) => self.submit(transaction, request_id).await,
                Err(error) => Err(error),
            });
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => Self::answer(answer).await,
                Err(error) => Err(error),
            });
        }
        results
    }

    async fn submit(
        &self,
        transaction: NewTransaction,
        request_id: Option<String>,
    ) -> Result<oneshot::Receiver<Result<Ingested>>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(batcher::Pending {
                transaction,
                request_id,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable("the ingest writers have stopped".to_owned()))?;
        Ok(answer)
    }

    async fn answer(answer: oneshot::Receiver<Result<Ingested>>) -> Result<Ingested> {
        answer
            .await
            .map_err(|_| Error::Internal("the ingest writer dropped the call".to_owned()))?
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
