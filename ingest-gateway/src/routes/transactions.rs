//! `GET /v1/transactions/{transaction_id}`: a transaction's stored state, and
//! `GET /v1/transactions?status=…`: a page of them, newest first (the REST mirror of
//! ListTransactions).

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use chrono::{DateTime, Utc};
use payments_proto::{limits::MAX_PAGE_SIZE, time::to_timestamp, v1 as pb};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::request_id;
use crate::{
    AppState,
    conversions::TransactionView,
    error::{ApiError, FieldError, Problem, Result},
    openapi::{Identifier, PageSize},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_transaction))
        .routes(routes!(list_transactions))
}

/// A transaction's stored state: `PROCESSING`, then `PROCESSED` or `FAILED`.
#[utoipa::path(
    get,
    path = "/v1/transactions/{transaction_id}",
    tag = "transactions",
    security(("api_token" = [])),
    params(("transaction_id" = inline(Identifier), Path, description = "The webhook's transaction_id", example = "txn_abc123def456")),
    responses(
        (status = 200, body = TransactionView),
        (status = 404, description = "Unknown transaction", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An id that cannot exist", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token (Authorization: Bearer <one of API_TOKENS>)", body = Problem, content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 503, description = "Processor unavailable, or load shed; see Retry-After", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
async fn get_transaction(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TransactionView>> {
    let transaction = state
        .processor
        .get(transaction_id, request_id(&headers))
        .await?;
    Ok(Json(TransactionView::try_from(transaction)?))
}

/// One page of transactions.
#[derive(Serialize, utoipa::ToSchema)]
struct TransactionPage {
    transactions: Vec<TransactionView>,
    /// Pass as `page_token` for the next page; null on the last one.
    next_page_token: Option<String>,
}

/// Transactions newest first, filtered by status and creation time, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/transactions",
    tag = "transactions",
    security(("api_token" = [])),
    params(
        ("status" = Option<String>, Query, description = "PROCESSING, PROCESSED or FAILED", pattern = "^(PROCESSING|PROCESSED|FAILED)$"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "RFC 3339; created at or after"),
        ("created_before" = Option<String>, Query, format = DateTime, description = "RFC 3339; created before"),
        ("page_size" = inline(Option<PageSize>), Query, description = "1 to 500; 50 if absent"),
        ("page_token" = Option<String>, Query, description = "next_page_token of the previous page"),
    ),
    responses(
        (status = 200, body = TransactionPage),
        (status = 422, description = "A parameter is invalid; each is named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token (Authorization: Bearer <one of API_TOKENS>)", body = Problem, content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 503, description = "Processor unavailable, or load shed; see Retry-After", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
async fn list_transactions(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<TransactionPage>> {
    let request = list_request(&query)?;
    let page = state.processor.list(request, request_id(&headers)).await?;
    Ok(Json(TransactionPage {
        transactions: page
            .transactions
            .into_iter()
            .map(TransactionView::try_from)
            .collect::<Result<_>>()?,
        next_page_token: Some(page.next_page_token).filter(|token| !token.is_empty()),
    }))
}

/// The query string as a ListTransactions request, each bad parameter named.
fn list_request(query: &HashMap<String, String>) -> Result<pb::ListTransactionsRequest> {
    let mut errors = Vec::new();
    let mut request = pb::ListTransactionsRequest::default();
    for (name, value) in query {
        match name.as_str() {
            "status" => match value.as_str() {
                "PROCESSING" => request.set_status(pb::TransactionStatus::Processing),
                "PROCESSED" => request.set_status(pb::TransactionStatus::Processed),
                "FAILED" => request.set_status(pb::TransactionStatus::Failed),
                _ => errors.push(FieldError::new(
                    name,
                    "must be PROCESSING, PROCESSED or FAILED",
                )),
            },
            "created_after" | "created_before" => match DateTime::parse_from_rfc3339(value) {
                Ok(at) => {
                    let timestamp = Some(to_timestamp(at.with_timezone(&Utc)));
                    if name == "created_after" {
                        request.created_after = timestamp;
                    } else {
                        request.created_before = timestamp;
                    }
                }
                Err(_) => errors.push(FieldError::new(
                    name,
                    "must be an RFC 3339 time such as 2025-10-31T10:30:00Z",
                )),
            },
            // 0 would mean "absent" to the processor; here absent is absent. The upper
            // bound is the processor's.
            "page_size" => match value.parse::<u32>() {
                Ok(size) if size > 0 => request.page_size = size,
                _ => errors.push(FieldError::new(
                    name,
                    format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                )),
            },
            "page_token" => request.page_token.clone_from(value),
            _ => errors.push(FieldError::new(name, "is not a parameter of this list")),
        }
    }
    if errors.is_empty() {
        Ok(request)
    } else {
        Err(ApiError::InvalidFields(errors))
    }
}
