//! Storing a webhook's transaction once and scheduling its processing.

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

/// The commit-and-publish, run as its own task so that it completes even when the caller
/// hangs up or its deadline passes (a dropped handler future would otherwise leave a
/// committed row that never reaches the stream).
pub async fn ingest_detached(
    db: DatabaseConnection,
    publisher: Publisher,
    transaction: NewTransaction,
) -> Result<Ingested> {
    tokio::spawn(async move { ingest(&db, &publisher, &transaction).await })
        .await
        .map_err(|error| Error::Internal(format!("ingest task ended abnormally: {error}")))?
}

async fn ingest(
    db: &DatabaseConnection,
    publisher: &Publisher,
    transaction: &NewTransaction,
) -> Result<Ingested> {
    if let Some(stored) = repository::insert_if_absent(db, transaction).await? {
        // Published only when the row is new: a duplicate makes no second processing.
        if let Err(error) = publisher.publish(&stored.transaction_id).await {
            // The row is committed and stays the source of truth; the caller is told it was
            // accepted because it was.
            tracing::error!(transaction_id = %stored.transaction_id, %error, "committed but not published to the stream");
        }
        return Ok(Ingested {
            created: true,
            transaction: stored,
        });
    }
    let id = transaction.transaction_id.as_str();
    let stored = repository::find(db, id).await?.ok_or_else(|| {
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
