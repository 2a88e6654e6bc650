//! Storing a webhook's transaction once and scheduling its processing.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::{
    db::repository::{self, StoredTransaction},
    domain::NewTransaction,
    error::{Error, Result},
    stream::publisher::Publisher,
};

/// What an ingest did.
#[derive(Clone, Debug)]
pub struct Ingested {
    /// True when this call stored it; false for a repeat of the same payload.
    pub created: bool,
    pub transaction: StoredTransaction,
}

/// Longest an answer waits for the XADD after the commit. A slow or absent Redis must not
/// turn a committed transaction into an error: the publish goes on in the background,
/// and if it fails the outbox publishes the row later.
const PUBLISH_WAIT: Duration = Duration::from_millis(100);

/// Stores transactions and schedules their processing.
#[derive(Clone)]
pub struct Ingestor {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    /// When the outbox publishes a row again if nobody claimed it.
    pub republish_after: Duration,
}

impl Ingestor {
    /// The commit-and-publish, run as its own task so that it completes even when the
    /// caller hangs up or its deadline passes (a dropped handler future would otherwise
    /// leave a committed row that never reaches the stream).
    pub async fn ingest(
        &self,
        transaction: NewTransaction,
        request_id: Option<String>,
    ) -> Result<Ingested> {
        let ingestor = self.clone();
        tokio::spawn(async move {
            ingestor
                .ingest_to_completion(&transaction, request_id)
                .await
        })
        .await
        .map_err(|error| Error::Internal(format!("ingest task ended abnormally: {error}")))?
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
        self.publish_soon(transaction_id.to_owned(), None).await;
        repository::find(&self.db, transaction_id)
            .await?
            .ok_or_else(|| Error::NotFound(transaction_id.to_owned()))
    }

    async fn ingest_to_completion(
        &self,
        transaction: &NewTransaction,
        request_id: Option<String>,
    ) -> Result<Ingested> {
        let db = &self.db;
        if let Some(stored) =
            repository::insert_if_absent(db, transaction, self.republish_after).await?
        {
            // Published only when the row is new: a duplicate makes no second processing.
            self.publish_soon(stored.transaction_id.clone(), request_id)
                .await;
            return Ok(Ingested {
                created: true,
                transaction: stored,
            });
        }
        self.existing(transaction).await
    }

    /// Publishes in a task of its own, waiting at most `PUBLISH_WAIT` for it.
    async fn publish_soon(&self, transaction_id: String, request_id: Option<String>) {
        let publisher = self.publisher.clone();
        let publish = tokio::spawn(async move {
            if let Err(error) = publisher
                .publish(&transaction_id, request_id.as_deref())
                .await
            {
                // Committed, so accepted: the outbox publishes it later.
                tracing::warn!(%transaction_id, %error, "committed but not yet published; the outbox will publish it");
            }
        });
        let _ = tokio::time::timeout(PUBLISH_WAIT, publish).await;
    }

    async fn existing(&self, transaction: &NewTransaction) -> Result<Ingested> {
        let id = transaction.transaction_id.as_str();
        let stored = repository::find(&self.db, id).await?.ok_or_else(|| {
            Error::Internal(format!("transaction {id} conflicted but cannot be read"))
        })?;
        let fields = differences(transaction, &stored);
        if fields.is_empty() {
            Ok(Ingested {
                created: false,
                transaction: stored,
            })
        } else {
            Err(Error::Conflict {
                transaction_id: id.to_owned(),
                fields,
            })
        }
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
