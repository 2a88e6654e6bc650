//! `POST /v1/transactions/{transaction_id}/retry`: re-drives a FAILED transaction.
//! An operator's action, so it needs `Authorization: Bearer $ADMIN_TOKEN`; without
//! `ADMIN_TOKEN` configured the route refuses every call.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::request_id;
use crate::{
    AppState, auth,
    conversions::TransactionView,
    error::{ApiError, Problem, Result},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(retry_transaction))
}

/// Re-drives a FAILED transaction: back to PROCESSING, its attempts starting over.
#[utoipa::path(
    post,
    path = "/v1/transactions/{transaction_id}/retry",
    tag = "admin",
    security(("admin_token" = [])),
    params(("transaction_id" = inline(crate::openapi::Identifier), Path, description = "The FAILED transaction's id", example = "txn_abc123def456")),
    responses(
        (status = 202, description = "Re-driven; processing again", body = TransactionView),
        (status = 401, description = "Missing or wrong bearer token (Authorization: Bearer ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "ADMIN_TOKEN is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown transaction", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The transaction is not FAILED", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An id that cannot exist", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Processor unavailable, or load shed", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
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
    match auth::presented(headers) {
        Some(token) if expected.accepts(token) => Ok(()),
        Some(_) => Err(ApiError::Unauthenticated(
            "the bearer token is not ADMIN_TOKEN".to_owned(),
        )),
        None => Err(ApiError::Unauthenticated(
            "send Authorization: Bearer <ADMIN_TOKEN>".to_owned(),
        )),
    }
}
