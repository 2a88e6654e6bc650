//! The ingest gateway: the REST API of SPEC, served by axum, answered by the processor
//! over gRPC. Stateless. `main.rs` only reads the configuration and calls [`build`].

pub mod config;
pub mod conversions;
pub mod error;
pub mod ingest_calls;
pub mod metrics;
pub mod payload;
pub mod processor_client;
pub mod routes;
pub mod signatures;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use processor_client::ProcessorClient;
use signatures::Verifier;

/// What every handler shares. Behind an `Arc`: axum clones the state for every request,
/// and a clone of the fields themselves (two gRPC clients, a token) costs allocations.
pub type AppState = Arc<Shared>;

pub struct Shared {
    pub processor: ProcessorClient,
    pub max_body_bytes: usize,
    pub admin_token: Option<config::AdminToken>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub signatures: Arc<Verifier>,
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

/// Binds `config.http_addr` and prepares the routes.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on HTTP_ADDR={}", config.http_addr))?;
    build_with_listener(config, listener)
}

/// As [`build`], on a listener the caller bound (tests bind port 0).
pub fn build_with_listener(config: Config, listener: TcpListener) -> anyhow::Result<Application> {
    let processor = ProcessorClient::new(&config.processor_url, config.processor_timeout)
        .with_context(|| {
            format!(
                "PROCESSOR_URL={:?} is not a valid endpoint",
                config.processor_url
            )
        })?;
    let state = Arc::new(Shared {
        processor,
        max_body_bytes: config.max_body_bytes,
        admin_token: config.admin_token.clone(),
        metrics: metrics::handle(),
        signatures: Arc::new(config.signatures.clone()),
    });
    let limits = routes::Limits {
        max_concurrent_requests: config.max_concurrent_requests,
        request_timeout: config.request_timeout,
    };
    Ok(Application {
        listener,
        router: routes::router(state, limits),
    })
}

impl Application {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, then finishes the requests in flight.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // TCP_NODELAY: a small response must not wait on Nagle's algorithm.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("HTTP server failed")
    }
}
