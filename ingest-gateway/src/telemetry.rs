//! Logs through `tracing`: readable text or JSON (`LOG_FORMAT`), level from `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// `filter` is `RUST_LOG`'s value; `info` by default.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter);
    // A second init (tests start many servers in one process) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
