//! Between the REST representation and the processor's protobuf messages, in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use payments_proto::{time::from_timestamp, v1 as pb};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::{error::ApiError, payload::WebhookPayload};

impl From<WebhookPayload> for pb::IngestTransactionRequest {
    fn from(payload: WebhookPayload) -> Self {
        Self {
            transaction_id: payload.transaction_id,
            source_account: payload.source_account,
            destination_account: payload.destination_account,
            amount: payload.amount,
            currency: payload.currency,
        }
    }
}

/// `GET /v1/transactions/{id}`'s body, shaped as the seed's README shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    pub transaction_id: String,
    pub source_account: String,
    pub destination_account: String,
    /// The stored NUMERIC written as a JSON number, digit for digit.
    #[schema(value_type = f64, example = 1500.50)]
    pub amount: Box<RawValue>,
    pub currency: String,
    #[schema(value_type = String, pattern = "^(PROCESSING|PROCESSED|FAILED)$", example = "PROCESSING")]
    pub status: &'static str,
    pub created_at: String,
    /// `null` until processed.
    pub processed_at: Option<String>,
}

impl TryFrom<pb::Transaction> for TransactionView {
    type Error = ApiError;

    fn try_from(transaction: pb::Transaction) -> Result<Self, Self::Error> {
        let status = match transaction.status() {
            pb::TransactionStatus::Processing => "PROCESSING",
            pb::TransactionStatus::Processed => "PROCESSED",
            pb::TransactionStatus::Failed => "FAILED",
            pb::TransactionStatus::Unspecified => {
                return Err(ApiError::Internal("processor sent no status".to_owned()));
            }
        };
        let amount = RawValue::from_string(transaction.amount.clone()).map_err(|_| {
            ApiError::Internal(format!("processor sent amount {:?}", transaction.amount))
        })?;
        let created_at = transaction
            .created_at
            .as_ref()
            .and_then(from_timestamp)
            .map(format_time)
            .ok_or_else(|| ApiError::Internal("processor sent no created_at".to_owned()))?;
        Ok(Self {
            processed_at: transaction
                .processed_at
                .as_ref()
                .and_then(from_timestamp)
                .map(format_time),
            transaction_id: transaction.transaction_id,
            source_account: transaction.source_account,
            destination_account: transaction.destination_account,
            amount,
            currency: transaction.currency,
            status,
            created_at,
        })
    }
}

/// RFC 3339 in UTC with `Z`, to the second, as SPEC's examples.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
