//! `POST /v1/transactions/{transaction_id}/retry`: re-drives a FAILED transaction.
//! An operator's action, so it needs `Authorization: Bearer $ADMIN_TOKEN`; without
//! `ADMIN_TOKEN` configured the route refuses every call.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    routing::post,
};

use super::request_id;
use crate::{
    AppState,
    conversions::TransactionView,
    error::{ApiError, Result},
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/transactions/{transaction_id}/retry",
        post(retry_transaction),
    )
}

async fn retry_transaction(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<TransactionView>)> {
    authorize(&state, &headers)?;
    let transaction = state
        .processor
        .retry(transaction_id, request_id(&headers))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TransactionView::try_from(transaction)?),
    ))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::Forbidden(
            "the admin API is disabled: set ADMIN_TOKEN to enable it".to_owned(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if expected.matches(token) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized(
            "the bearer token is not valid".to_owned(),
        )),
        None => Err(ApiError::Unauthorized(
            "send Authorization: Bearer <ADMIN_TOKEN>".to_owned(),
        )),
    }
}
