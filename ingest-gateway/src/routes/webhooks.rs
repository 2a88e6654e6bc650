//! `POST /v1/webhooks/transactions`: 202 once the transaction is committed, with no body.

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
    routing::post,
};

use super::request_id;
use crate::{AppState, error::ApiError, error::Result, payload::WebhookPayload};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/transactions", post(receive_webhook))
}

async fn receive_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> Result<StatusCode> {
    let payload = WebhookPayload::from_json(&body)?;
    state
        .processor
        .ingest(payload, request_id(&headers))
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The raw body of a JSON request, kept as bytes (signatures are computed over them);
/// its rejections are our problem+json errors.
struct WebhookBody(Bytes);

impl FromRequest<AppState> for WebhookBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: state.max_body_bytes,
                    }
                } else {
                    ApiError::UnreadableBody(rejection.body_text())
                }
            })?;
        Ok(Self(body))
    }
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}
