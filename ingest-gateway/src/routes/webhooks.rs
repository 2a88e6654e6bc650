//! `POST /v1/webhooks/transactions`: 202 once the transaction is committed, with no body.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
};
use chrono::Utc;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::request_id;
use crate::{
    AppState,
    error::{ApiError, Problem, Result},
    payload::WebhookPayload,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_webhook))
}

/// Receives a transaction webhook: 202 once it is committed. When a signature secret is
/// configured, the request must be signed (Razorpay, Standard Webhooks or Stripe headers).
#[utoipa::path(
    post,
    path = "/v1/webhooks/transactions",
    tag = "webhooks",
    request_body(content = WebhookPayload, content_type = "application/json"),
    params(
        ("X-Razorpay-Signature" = Option<String>, Header, description = "Razorpay: hex HMAC-SHA256 of the body"),
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks: message id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks: Unix seconds"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks: space-separated v1,<base64> signatures"),
        ("Stripe-Signature" = Option<String>, Header, description = "Stripe: t=<Unix seconds>,v1=<hex>[,v1=...]"),
    ),
    responses(
        (status = 202, description = "Stored durably; processing follows in the background"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, stale or wrong signature (only when a secret is configured)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same transaction_id came before with a different payload", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than MAX_BODY_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        (status = 431, description = "A signature header longer than any signature needs", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Processor unavailable, or load shed; see Retry-After", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
async fn receive_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> Result<StatusCode> {
    // Over the raw bytes, before any parsing.
    state
        .signatures
        .verify(&headers, &body, Utc::now().timestamp())?;
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
