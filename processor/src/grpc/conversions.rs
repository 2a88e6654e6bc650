//! Between protobuf messages and the processor's own types, in one place.

use std::time::Duration;

use payments_proto::{
    limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
    time::{from_timestamp, to_timestamp},
    v1 as pb,
};
use tokio::time::Instant;

use crate::{
    db::{
        listing::{Cursor, ListFilter},
        repository::StoredTransaction,
    },
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
            created_at: Some(to_timestamp(stored.created_at)),
            updated_at: Some(to_timestamp(stored.updated_at)),
            processed_at: stored.processed_at.map(to_timestamp),
            attempts: u32::try_from(stored.attempts).unwrap_or_default(),
            last_error: stored.last_error.unwrap_or_default(),
        }
    }
}

/// A transaction id to look up, checked by the same rule as at ingest.
pub fn lookup_id(transaction_id: &str) -> Result<String, Error> {
    crate::domain::Identifier::parse("transaction_id", transaction_id)
        .map(|id| id.to_string())
        .map_err(|violation: FieldViolation| Error::InvalidArgument(vec![violation]))
}

/// The request id the gateway passed along, if any.
pub fn request_id<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .metadata()
        .get(payments_proto::request_id::KEY)
        .and_then(|value| value.to_str().ok())
        .and_then(payments_proto::request_id::checked)
        .map(str::to_owned)
}

/// When the caller stops waiting: now plus the call's `grpc-timeout` (gRPC's wire format,
/// digits then a unit), if it sent one.
pub fn deadline<T>(request: &tonic::Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

/// A list request checked field by field.
pub fn list_filter(request: &pb::ListTransactionsRequest) -> Result<ListFilter, Error> {
    let mut violations = Vec::new();
    let status = match request.status() {
        pb::TransactionStatus::Unspecified => None,
        pb::TransactionStatus::Processing => Some(Status::Processing),
        pb::TransactionStatus::Processed => Some(Status::Processed),
        pb::TransactionStatus::Failed => Some(Status::Failed),
    };
    let time = |field: &'static str,
                value: Option<&prost_types::Timestamp>,
                violations: &mut Vec<FieldViolation>| {
        value.and_then(|t| {
            let parsed = from_timestamp(t);
            if parsed.is_none() {
                violations.push(FieldViolation::new(field, "is not a valid timestamp"));
            }
            parsed
        })
    };
    let created_after = time(
        "created_after",
        request.created_after.as_ref(),
        &mut violations,
    );
    let created_before = time(
        "created_before",
        request.created_before.as_ref(),
        &mut violations,
    );
    let page_size = match request.page_size {
        0 => DEFAULT_PAGE_SIZE,
        size if size <= MAX_PAGE_SIZE => size,
        _ => {
            violations.push(FieldViolation::new(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE}"),
            ));
            DEFAULT_PAGE_SIZE
        }
    };
    let after = if request.page_token.is_empty() {
        None
    } else {
        let cursor = Cursor::decode(&request.page_token);
        if cursor.is_none() {
            violations.push(FieldViolation::new(
                "page_token",
                "is not a token this service returned",
            ));
        }
        cursor
    };
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(ListFilter {
        status,
        created_after,
        created_before,
        after,
        page_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(header: &str) -> Option<Duration> {
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("grpc-timeout", header.parse().ok()?);
        let before = Instant::now();
        deadline(&request).map(|deadline| deadline - before)
    }

    #[test]
    fn grpc_timeouts_become_deadlines() {
        let near = |header, expected: Duration| {
            let timeout = timeout_of(header).unwrap_or_default();
            assert!(
                timeout >= expected && timeout < expected + Duration::from_secs(1),
                "{header}: {timeout:?}"
            );
        };
        near("450m", Duration::from_millis(450));
        near("2S", Duration::from_secs(2));
        near("3M", Duration::from_secs(180));
        near("1000000u", Duration::from_secs(1));
        for junk in ["", "m", "12", "12x", "-5m"] {
            assert_eq!(timeout_of(junk), None, "{junk:?}");
        }
    }
}
