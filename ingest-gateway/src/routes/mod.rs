//! Every route of the REST API, merged in one place with the layers that wrap them.

mod admin;
mod health;
mod readiness;
mod transactions;
mod webhooks;

use axum::{Router, extract::DefaultBodyLimit, http::HeaderName};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{AppState, error::ApiError, processor_client::REQUEST_ID_KEY};

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_KEY);
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .merge(health::router())
        .merge(webhooks::router())
        .merge(transactions::router())
        .merge(readiness::router())
        .merge(admin::router())
        .route(
            "/metrics",
            axum::routing::get(|axum::extract::State(state): axum::extract::State<AppState>| async move {
                state.metrics.render()
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Inside the routing, so each request is counted under its matched route.
        .route_layer(axum::middleware::from_fn(crate::metrics::record))
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Outermost first: the request id is set before the trace span opens, so the span
        // and the response both carry it.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(
                    |request: &axum::http::Request<_>| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID_KEY)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!("http", method = %request.method(), uri = %request.uri(), request_id)
                    },
                ))
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
}

/// The request id that `SetRequestIdLayer` guaranteed, for passing on to the processor.
fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_KEY)
        .and_then(|value| value.to_str().ok())
}
