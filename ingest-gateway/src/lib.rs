//! The ingest gateway: the REST API of SPEC, served by axum, answered by the processor
//! over gRPC. Stateless. `main.rs` only reads the configuration and calls [`build`].

pub mod auth;
pub mod config;
pub mod conversions;
pub mod error;
pub mod ingest_calls;
pub mod metrics;
pub mod openapi;
pub mod payload;
pub mod processor_client;
pub mod routes;
pub mod server;
pub mod signatures;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use auth::BearerTokens;
pub use config::Config;
use processor_client::ProcessorClient;
use signatures::Verifier;

/// What every handler shares. Behind an `Arc`: axum clones the state for every request,
/// and a clone of the fields themselves (two gRPC clients, a token) costs allocations.
pub type AppState = Arc<Shared>;

pub struct Shared {
    pub processor: ProcessorClient,
    pub max_body_bytes: usize,
    pub admin_token: Option<BearerTokens>,
    /// `API_TOKENS`; `None` when reads are open (`ALLOW_UNAUTHENTICATED_READS=true`).
    pub read_tokens: Option<BearerTokens>,
    pub signatures: Arc<Verifier>,
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    router: axum::Router,
    connection_limits: server::ConnectionLimits,
    open_connections: server::OpenConnections,
}

/// Binds `config.http_addr` and `config.metrics_addr` and prepares the routes.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on HTTP_ADDR={}", config.http_addr))?;
    let metrics_listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR={}", config.metrics_addr))?;
    build_with_listeners(config, listener, metrics_listener)
}

/// As [`build`] on a listener the caller bound (tests bind port 0), with the metrics on
/// an ephemeral loopback port (see [`Application::metrics_addr`]).
pub fn build_with_listener(config: Config, listener: TcpListener) -> anyhow::Result<Application> {
    let metrics_listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|metrics| {
            metrics.set_nonblocking(true)?;
            TcpListener::from_std(metrics)
        })
        .context("cannot listen for metrics on a loopback port")?;
    build_with_listeners(config, listener, metrics_listener)
}

/// As [`build`], on listeners the caller bound: the API, then metrics.
pub fn build_with_listeners(
    config: Config,
    listener: TcpListener,
    metrics_listener: TcpListener,
) -> anyhow::Result<Application> {
    metrics::handle();
    let processor = ProcessorClient::new(
        &config.processor_url,
        config.processor_timeout,
        &config.processor_tls,
    )?;
    let state = Arc::new(Shared {
        processor,
        max_body_bytes: config.max_body_bytes,
        admin_token: config.admin_token.clone(),
        read_tokens: config.api_tokens.clone(),
        signatures: Arc::new(config.signatures.clone()),
    });
    Ok(Application {
        listener,
        metrics_listener,
        router: routes::router(state, config.limits),
        open_connections: server::OpenConnections::new(config.connections.max_connections),
        connection_limits: config.connections,
    })
}

impl Application {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// The count of open API connections, as the `MAX_CONNECTIONS` cap sees it.
    pub fn open_connections(&self) -> server::OpenConnections {
        self.open_connections.clone()
    }

    /// Serves until `shutdown`, then finishes the requests in flight.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Metrics on a port of their own, so the public one serves none.
        let metrics = service_support::metrics::serve(self.metrics_listener, shutdown.clone());
        let api = server::serve(
            self.listener,
            self.router,
            self.connection_limits,
            self.open_connections,
            shutdown,
        );
        let ((), metrics) = tokio::join!(api, metrics);
        metrics.context("metrics server failed")
    }
}
