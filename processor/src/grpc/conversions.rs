//! Between protobuf messages and the processor's own types, in one place.

use chrono::{DateTime, Utc};
use payments_proto::v1 as pb;

use crate::{
    db::repository::StoredTransaction,
    domain::{FieldViolation, NewTransaction, Status, TransactionInput},
    error::Error,
};

impl TryFrom<&pb::IngestTransactionRequest> for NewTransaction {
    type Error = Error;

    fn try_from(request: &pb::IngestTransactionRequest) -> Result<Self, Self::Error> {
        NewTransaction::parse(TransactionInput {
            transaction_id: &request.transaction_id,
            source_account: &request.source_account,
            destination_account: &request.destination_account,
            amount: &request.amount,
            currency: &request.currency,
        })
        .map_err(Error::InvalidArgument)
    }
}

impl From<StoredTransaction> for pb::Transaction {
    fn from(stored: StoredTransaction) -> Self {
        let status = match stored.status.parse::<Status>() {
            Ok(Status::Processing) => pb::TransactionStatus::Processing,
            Ok(Status::Processed) => pb::TransactionStatus::Processed,
            Ok(Status::Failed) => pb::TransactionStatus::Failed,
            Err(_) => pb::TransactionStatus::Unspecified,
        };
        Self {
            transaction_id: stored.transaction_id,
            source_account: stored.source_account,
            destination_account: stored.destination_account,
            amount: stored.amount.to_string(),
            currency: stored.currency,
            status: status.into(),
            created_at: Some(timestamp(stored.created_at)),
            updated_at: Some(timestamp(stored.updated_at)),
            processed_at: stored.processed_at.map(timestamp),
            attempts: u32::try_from(stored.attempts).unwrap_or_default(),
            last_error: stored.last_error.unwrap_or_default(),
        }
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// A transaction id to look up, checked by the same rule as at ingest.
pub fn lookup_id(transaction_id: &str) -> Result<String, Error> {
    crate::domain::Identifier::parse("transaction_id", transaction_id)
        .map(|id| id.to_string())
        .map_err(|violation: FieldViolation| Error::InvalidArgument(vec![violation]))
}
