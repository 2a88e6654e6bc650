//! `GET /v1/transactions/{transaction_id}`: a transaction's stored state.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    routing::get,
};

use super::request_id;
use crate::{AppState, conversions::TransactionView, error::Result};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/transactions/{transaction_id}", get(get_transaction))
}

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
