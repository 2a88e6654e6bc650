//! The gateway's one error type. Every error leaves as `application/problem+json`
//! (RFC 9457) from the single `IntoResponse` below, and every gRPC status maps to an HTTP
//! status in the single `From<tonic::Status>` below.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// One offending field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    #[error("invalid fields")]
    InvalidFields(Vec<FieldError>),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String, Vec<FieldError>),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not ready")]
    NotReady(Vec<FieldError>),
    #[error("internal: {0}")]
    Internal(String),
}

/// The problem+json body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::UnreadableBody(_) => (
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable body",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::InvalidFields(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-fields",
                "Invalid fields",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(..) => (
                StatusCode::CONFLICT,
                "conflicting-duplicate",
                "Conflicting duplicate",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready"),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::MalformedJson(cause) => format!("the body is not valid JSON: {cause}"),
            Self::UnreadableBody(cause) => format!("the body could not be read: {cause}"),
            Self::UnsupportedMediaType => {
                "send the body with Content-Type: application/json".to_owned()
            }
            Self::PayloadTooLarge { limit } => format!("the body must be at most {limit} bytes"),
            Self::InvalidFields(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            Self::NotFound(what) | Self::Conflict(what, _) => what.clone(),
            Self::Unavailable(_) => {
                "the service cannot take this request now; retry later".to_owned()
            }
            Self::MethodNotAllowed => "this method is not allowed on this resource".to_owned(),
            Self::Unauthorized(what) | Self::Forbidden(what) => what.clone(),
            Self::NotReady(down) => {
                let names: Vec<&str> = down.iter().map(|d| d.field.as_str()).collect();
                format!("not ready: {} down", names.join(", "))
            }
            // The cause is logged, never sent: it may hold internals.
            Self::Internal(_) => "an internal error occurred".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            _ => {}
        }
        let kind = format!("urn:payment-webhooks:problem:{slug}");
        let errors = match &self {
            Self::InvalidFields(errors) | Self::Conflict(_, errors) | Self::NotReady(errors) => {
                errors.as_slice()
            }
            _ => &[],
        };
        let problem = Problem {
            kind: &kind,
            title,
            status: status.as_u16(),
            detail: self.detail(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
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
            code => Self::Internal(format!("processor answered {code:?}: {}", status.message())),
        }
    }
}
