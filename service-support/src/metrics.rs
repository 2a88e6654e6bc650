//! The process's Prometheus recorder, and the `GET /metrics` server that renders it. Each
//! binary names and describes its own metrics; this is only the plumbing they share.

use std::sync::OnceLock;

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Buckets of every `*_seconds` histogram: from half a millisecond (a gateway answer) to
/// five minutes (a transaction from webhook to final status).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// The process-wide recorder, installed on the first call. Metrics are global, and tests
/// run a gateway and processors in one process: they share this one.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            builder
                .install_recorder()
                // Another recorder is installed: keep a detached one so rendering works.
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// The router that answers `GET /metrics` with the recorder's text.
pub fn router() -> Router {
    let handle = handle();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    )
}

/// Serves [`router`] on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_what_was_recorded() -> anyhow::Result<()> {
        let handle = handle();
        metrics::counter!("support_test_total").increment(3);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, shutdown.clone()));
        let answer = reqwest::get(format!("http://{addr}/metrics")).await?;
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        let text = answer.text().await?;
        shutdown.cancel();
        server.await??;
        assert!(text.contains("support_test_total 3"), "{text}");
        assert!(handle.render().contains("support_test_total 3"));
        Ok(())
    }
}
