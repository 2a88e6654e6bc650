//! Prometheus metrics of the gateway, served at `GET /metrics`: every request counted by
//! method, route and status, with its latency.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics_exporter_prometheus::PrometheusHandle;

pub const HTTP_REQUESTS_TOTAL: &str = "gateway_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "gateway_http_request_duration_seconds";

/// The process-wide recorder (see `service_support::metrics`), with this binary's
/// metrics described.
pub fn handle() -> PrometheusHandle {
    let handle = service_support::metrics::handle();
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by method, route and status."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_SECONDS,
        "HTTP request latency by method and route."
    );
    handle
}

/// Middleware: counts and times every request under its route template, so ids in paths
/// do not make one series per transaction.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
