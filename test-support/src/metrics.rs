//! Reading a `/metrics` page, as Prometheus would.

use std::net::SocketAddr;

/// The value of the first sample line of a `/metrics` page starting with `line_prefix`
/// (a name, or a name and its labels), or 0 when there is none. Metrics are process-wide:
/// tests that share a process compare before and after.
pub async fn metric(metrics_addr: SocketAddr, line_prefix: &str) -> f64 {
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|line| line.starts_with(line_prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}
