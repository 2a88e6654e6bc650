//! Admission of an API request: its body is read first, within `BODY_READ_TIMEOUT` (408
//! past it) and `MAX_BODY_BYTES` (413), and only then does it take a permit of its class,
//! so a slow sender holds a connection (bounded by the server) but never a permit. Past
//! the class's limit the answer is 503 at once, never a queue; a permitted request has
//! `REQUEST_TIMEOUT` to be answered (503 past it).
//!
//! Webhooks and reads are separate classes with budgets of their own
//! (`MAX_CONCURRENT_REQUESTS`, `MAX_CONCURRENT_READS`): no number of reads can take the
//! permits ingest needs.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// One class's budget and deadlines.
#[derive(Clone, Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    body_read_timeout: Duration,
    max_body_bytes: usize,
    request_timeout: Duration,
}

impl Admission {
    pub fn new(
        permits: usize,
        body_read_timeout: Duration,
        max_body_bytes: usize,
        request_timeout: Duration,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            body_read_timeout,
            max_body_bytes,
            request_timeout,
        }
    }
}

/// Middleware: body, then permit, then the handler within its deadline.
pub async fn admit(
    State(admission): State<Admission>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, admission.max_body_bytes);
    let bytes = match tokio::time::timeout(admission.body_read_timeout, body.collect()).await {
        Err(_) => return Err(ApiError::BodyTimeout(admission.body_read_timeout)),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::PayloadTooLarge {
                limit: admission.max_body_bytes,
            });
        }
        Ok(Err(error)) => return Err(ApiError::UnreadableBody(error.to_string())),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let Ok(_permit) = admission.permits.clone().try_acquire_owned() else {
        return Err(ApiError::Overloaded);
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    tokio::time::timeout(admission.request_timeout, next.run(request))
        .await
        .map_err(|_| {
            ApiError::Unavailable("the request took longer than REQUEST_TIMEOUT".to_owned())
        })
}
