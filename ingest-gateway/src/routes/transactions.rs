//! `GET /v1/transactions/{transaction_id}`: a transaction's stored state.

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::request_id;
use crate::{
    AppState,
    conversions::TransactionView,
    error::{Problem, Result},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_transaction))
}

/// A transaction's stored state: `PROCESSING`, then `PROCESSED` or `FAILED`.
#[utoipa::path(
    get,
    path = "/v1/transactions/{transaction_id}",
    tag = "transactions",
    params(("transaction_id" = String, Path, description = "The webhook's transaction_id", pattern = "^[A-Za-z0-9_.:-]{1,128}$", min_length = 1, max_length = 128)),
    responses(
        (status = 200, body = TransactionView),
        (status = 404, description = "Unknown transaction", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An id that cannot exist", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Processor unavailable, or load shed; see Retry-After", body = Problem, content_type = "application/problem+json"),
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
