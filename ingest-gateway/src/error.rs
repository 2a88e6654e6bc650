//! The gateway's one error type. Every error leaves as `application/problem+json`
//! (RFC 9457) from the single `IntoResponse` below, and every gRPC status maps to an HTTP
//! status in the single `From<tonic::Status>` below.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

use crate::signatures::Rejection;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

tokio::task_local! {
    /// The `X-Request-Id` of the request being answered, which every problem body carries.
    static REQUEST_ID: HeaderValue;
}

/// Runs `answer` (the routes, their layers and fallbacks) with `id` as the request id that
/// every problem made inside it carries: the body is written once, with the id in it.
pub async fn with_request_id<F: Future>(id: Option<HeaderValue>, answer: F) -> F::Output {
    match id {
        Some(id) => REQUEST_ID.scope(id, answer).await,
        None => answer.await,
    }
}

/// `body`, a problem without `request_id`, given the id that [`with_request_id`] set
/// around this answer, if any: the member is appended last, as `Problem` writes it.
fn append_request_id(body: &mut Vec<u8>) {
    let _ = REQUEST_ID.try_with(|id| {
        let Ok(id) = id.to_str() else { return };
        if body.last() == Some(&b'}') {
            body.pop();
            body.extend_from_slice(b",\"request_id\":");
            // A str always serializes; a failure would leave no id, not a broken body.
            if serde_json::to_writer(&mut *body, id).is_err() {
                body.truncate(body.len().saturating_sub(b",\"request_id\":".len()));
            }
            body.push(b'}');
        }
    });
}

/// A problem's body, `request_id` left for [`append_request_id`].
fn problem_json(answer: Answer) -> Vec<u8> {
    let problem = Problem {
        kind: format!("urn:payment-webhooks:problem:{}", answer.slug),
        title: answer.title.to_owned(),
        status: answer.status.as_u16(),
        detail: answer.detail,
        errors: answer.errors,
        request_id: None,
    };
    serde_json::to_vec(&problem).unwrap_or_default()
}

/// The shed answer's body but its request id: the same for every shed request, so written
/// once (shedding is meant to cost little).
static OVERLOADED: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| problem_json(ApiError::Overloaded.answer()));

/// One offending field (or header) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unreadable body: {0}")]
    UnreadableBody(String),
    /// The body did not arrive within `BODY_READ_TIMEOUT`.
    #[error("body not read within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("invalid fields")]
    InvalidFields(Vec<FieldError>),
    /// A signature scheme is configured and the request did not verify under it.
    #[error("signature not accepted")]
    Unauthorized(Vec<FieldError>),
    /// A signature header longer than any signature needs: refused unread.
    #[error("signature header too large")]
    HeaderTooLarge(Vec<FieldError>),
    /// The concurrency limit is reached: shed rather than queued.
    #[error("overloaded")]
    Overloaded,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String, Vec<FieldError>),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A read or admin route called without the right bearer token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not ready")]
    NotReady(Vec<FieldError>),
    #[error("internal: {0}")]
    Internal(String),
}

/// An `application/problem+json` body (RFC 9457), as every error answer carries it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:payment-webhooks:problem:invalid-fields",
    "title": "Invalid fields",
    "status": 422,
    "detail": "invalid fields: amount",
    "errors": [{"field": "amount", "detail": "must be greater than 0"}],
    "request_id": "0b6d3c1e-6a7e-4a43-9a55-2f0f1bb7c7a1"
}))]
pub struct Problem {
    /// A URN naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    pub detail: String,
    /// Each offending field or header, when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request's `X-Request-Id`, to quote when asking about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What one error answers: its row of the table in [`ApiError::answer`].
struct Answer {
    status: StatusCode,
    /// The last part of the problem's `type` URN.
    slug: &'static str,
    title: &'static str,
    detail: String,
    /// Whatever a caller can fix is named: fields, headers, or the body as a whole.
    errors: Vec<FieldError>,
}

fn answer(
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: impl Into<String>,
    errors: Vec<FieldError>,
) -> Answer {
    Answer {
        status,
        slug,
        title,
        detail: detail.into(),
        errors,
    }
}

/// The fields (or headers, or components) named, as a detail quotes them.
fn names(errors: &[FieldError]) -> String {
    let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    names.join(", ")
}

fn body_error(detail: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new("body", detail)]
}

impl ApiError {
    /// The one table: every variant's status, problem type, title, detail and fields.
    fn answer(self) -> Answer {
        use StatusCode as S;
        match self {
            Self::MalformedJson(cause) => answer(
                S::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not valid JSON: {cause}"),
                body_error("is not valid JSON"),
            ),
            Self::UnreadableBody(cause) => answer(
                S::BAD_REQUEST,
                "unreadable-body",
                "Unreadable body",
                format!("the body could not be read: {cause}"),
                body_error("could not be read"),
            ),
            Self::BodyTimeout(limit) => answer(
                S::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                format!(
                    "the body did not arrive within {} (BODY_READ_TIMEOUT)",
                    humantime::format_duration(limit)
                ),
                body_error("arrived too slowly"),
            ),
            Self::UnsupportedMediaType => answer(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body with Content-Type: application/json",
                vec![FieldError::new(
                    "content-type",
                    "must be application/json (or application/*+json)",
                )],
            ),
            Self::PayloadTooLarge { limit } => answer(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!("the body must be at most {limit} bytes"),
                body_error(format!("must be at most {limit} bytes")),
            ),
            Self::InvalidFields(errors) => answer(
                S::UNPROCESSABLE_ENTITY,
                "invalid-fields",
                "Invalid fields",
                format!("invalid fields: {}", names(&errors)),
                errors,
            ),
            Self::Unauthorized(errors) => answer(
                S::UNAUTHORIZED,
                "invalid-signature",
                "Invalid webhook signature",
                format!(
                    "the webhook signature was not accepted; see header(s): {}",
                    names(&errors)
                ),
                errors,
            ),
            Self::HeaderTooLarge(errors) => answer(
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header-too-large",
                "Request header too large",
                format!("header(s) too large to be a signature: {}", names(&errors)),
                errors,
            ),
            Self::Overloaded => answer(
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                "Service overloaded",
                "too many requests in progress; retry after the time in Retry-After",
                Vec::new(),
            ),
            Self::NotFound(what) => {
                answer(S::NOT_FOUND, "not-found", "Not found", what, Vec::new())
            }
            Self::Conflict(what, errors) => answer(
                S::CONFLICT,
                "conflicting-duplicate",
                "Conflicting duplicate",
                what,
                errors,
            ),
            // The cause is logged, never sent: it may hold internals.
            Self::Unavailable(_) => answer(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the service cannot take this request now; retry later",
                Vec::new(),
            ),
            Self::MethodNotAllowed => answer(
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this method is not allowed on this resource",
                Vec::new(),
            ),
            Self::Unauthenticated(what) => answer(
                S::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                what,
                Vec::new(),
            ),
            Self::Forbidden(what) => {
                answer(S::FORBIDDEN, "forbidden", "Forbidden", what, Vec::new())
            }
            Self::NotReady(down) => answer(
                S::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                format!("not ready: {} down", names(&down)),
                down,
            ),
            // The cause is logged, never sent: it may hold internals.
            Self::Internal(_) => answer(
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
                "an internal error occurred",
                Vec::new(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            Self::Unauthorized(errors) => {
                tracing::info!(rejections = ?errors, "webhook signature not accepted");
            }
            _ => {}
        }
        let (status, slug, mut body) = if matches!(self, Self::Overloaded) {
            let mut body = Vec::with_capacity(OVERLOADED.len() + 64);
            body.extend_from_slice(&OVERLOADED);
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded", body)
        } else {
            let answer = self.answer();
            (answer.status, answer.slug, problem_json(answer))
        };
        // The id set around every request by the request-id middleware in routes/mod.rs.
        append_request_id(&mut body);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED && slug == "unauthorized" {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The rest of a slow body is not worth waiting for: hyper closes after this answer.
        if status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<Vec<Rejection>> for ApiError {
    /// One entry per header at fault; what is wrong, never a secret or an expected value.
    /// An oversized signature header is a 431 whatever else was wrong; the rest are 401.
    fn from(rejections: Vec<Rejection>) -> Self {
        let oversized = rejections
            .iter()
            .any(|r| matches!(r, Rejection::HeaderTooLarge { .. }));
        let errors = rejections
            .iter()
            .map(|r| FieldError::new(r.header(), r.to_string()))
            .collect();
        if oversized {
            Self::HeaderTooLarge(errors)
        } else {
            Self::Unauthorized(errors)
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let field_errors = || -> Vec<FieldError> {
            status
                .get_error_details()
                .bad_request()
                .map(|bad| {
                    bad.field_violations
                        .iter()
                        .map(|v| FieldError::new(&v.field, &v.description))
                        .collect()
                })
                .unwrap_or_default()
        };
        match status.code() {
            Code::InvalidArgument => Self::InvalidFields(field_errors()),
            Code::NotFound => Self::NotFound(status.message().to_owned()),
            Code::AlreadyExists => Self::Conflict(status.message().to_owned(), field_errors()),
            // Such as retrying a transaction that is not FAILED: the resource's state conflicts.
            Code::FailedPrecondition => Self::Conflict(status.message().to_owned(), Vec::new()),
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled => Self::Unavailable(format!(
                "processor answered {:?}: {}",
                status.code(),
                status.message()
            )),
            // The connection itself failed (TLS refused, reset, closed): the processor is
            // away from here, whatever the cause; the cause goes to the log.
            Code::Unknown if transport_error(&status).is_some() => Self::Unavailable(format!(
                "cannot reach the processor: {:#}",
                anyhow::Error::from(status)
            )),
            code => Self::Internal(format!("processor answered {code:?}: {}", status.message())),
        }
    }
}

fn transport_error(status: &tonic::Status) -> Option<&tonic::transport::Error> {
    std::error::Error::source(status)?.downcast_ref::<tonic::transport::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_problem_made_under_a_request_id_carries_it_in_its_body() {
        let id = HeaderValue::from_static("req-made-here-7");
        let response =
            with_request_id(Some(id), async { ApiError::Overloaded.into_response() }).await;
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(problem["request_id"], "req-made-here-7", "{problem}");
        assert_eq!(problem["type"], "urn:payment-webhooks:problem:overloaded");
        // Without one (no request-id layer around it) the member is left out, not empty.
        let (_, body) = body_of(ApiError::Overloaded).await;
        assert!(!body.contains("request_id"), "{body}");
    }

    #[tokio::test]
    async fn the_request_id_is_written_as_problem_writes_it() {
        for (error, id) in [
            (ApiError::Overloaded, "req-1"),
            (
                ApiError::NotFound("no such \"thing\"".to_owned()),
                "req \\ with \"quotes\"",
            ),
            (
                ApiError::InvalidFields(vec![FieldError::new("amount", "must be positive")]),
                "0b6d3c1e-6a7e-4a43-9a55-2f0f1bb7c7a1",
            ),
        ] {
            let value = HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("x"));
            let response = with_request_id(Some(value), async { error.into_response() }).await;
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let Ok(mut problem) = serde_json::from_slice::<Problem>(&bytes) else {
                panic!("not a problem: {}", String::from_utf8_lossy(&bytes));
            };
            assert_eq!(problem.request_id.as_deref(), Some(id));
            // Byte for byte what the derived serialization writes.
            assert_eq!(
                serde_json::to_vec(&problem).ok().as_deref(),
                Some(&bytes[..])
            );
            problem.request_id = None;
            assert!(
                !serde_json::to_string(&problem)
                    .unwrap_or_default()
                    .contains("request_id")
            );
        }
    }

    #[tokio::test]
    async fn internal_causes_never_reach_the_caller() {
        let cause = "SELECT * FROM transactions WHERE password = 'hunter2'";
        let (status, body) = body_of(ApiError::Internal(cause.to_owned())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !body.contains("SELECT") && !body.contains("hunter2"),
            "{body}"
        );
        let (status, body) = body_of(ApiError::Unavailable(cause.to_owned())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !body.contains("SELECT") && !body.contains("hunter2"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_unknown_grpc_failure_is_an_opaque_500() {
        let status = tonic::Status::internal("relation \"transactions\" does not exist");
        let (code, body) = body_of(ApiError::from(status)).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("relation"), "{body}");
    }
}
