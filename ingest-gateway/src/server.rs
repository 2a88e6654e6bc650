//! The HTTP server: our own accept loop over hyper's HTTP/1.1 connections (instead of
//! `axum::serve`, which sets no header deadline, no idle timeout and no connection cap), so
//! that what a slow, silent or numerous peer can hold is fixed by the configuration:
//!
//! - at most `MAX_CONNECTIONS` open at once; past it a new connection is closed at once
//!   (and counted), never queued;
//! - every connection's deadlines as [`clock`] describes (`HEADER_READ_TIMEOUT`,
//!   `IDLE_TIMEOUT`);
//! - a request head of at most `MAX_HEADER_BYTES` (hyper answers 431 above it);
//! - HTTP/1.1 only: webhook senders and status readers speak it, and HTTP/2's streams
//!   and resets would be one more budget to hold.
//!
//! The body deadline and the request permits are per route class: `routes/admission.rs`.

mod clock;

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{Router, extract::Request, response::Response};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use clock::{ConnectionClock, TimedIo, Timeouts, TrackedBody};

pub const CONNECTIONS_OPEN: &str = "gateway_http_connections_open";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "gateway_http_connections_refused_total";

/// What bounds the connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// `MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `MAX_HEADER_BYTES`: the largest request head (at least 8 192, hyper's minimum).
    pub max_header_bytes: usize,
    /// `HEADER_READ_TIMEOUT`.
    pub header_read_timeout: Duration,
    /// `IDLE_TIMEOUT`.
    pub idle_timeout: Duration,
}

/// How many connections are open now (what the cap counts), for tests and the gauge.
#[derive(Clone, Debug)]
pub struct OpenConnections {
    slots: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub fn count(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets the requests in flight finish
/// (idle connections close at once; the rest within their deadlines).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    open: OpenConnections,
    shutdown: CancellationToken,
) {
    metrics::describe_gauge!(CONNECTIONS_OPEN, "HTTP connections open.");
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "HTTP connections closed at once because MAX_CONNECTIONS were open."
    );
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The clock keeps the header deadline (hyper's would also cut idle connections).
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes);
    let timeouts = Timeouts {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Such as too many open files: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = open.slots.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED_TOTAL).increment(1);
            drop(stream);
            continue;
        };
        // A small response must not wait on Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let clock = ConnectionClock::new(timeouts);
        let io = TokioIo::new(TimedIo::new(stream, clock.clone()));
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            clock.request_started();
            let (router, clock) = (router.clone(), clock.clone());
            async move {
                let response: Response = router
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, clock)))
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        let open = open.clone();
        tokio::spawn(async move {
            metrics::gauge!(CONNECTIONS_OPEN).set(open.count() as f64);
            // Errors here are the peer's (reset, timed out, malformed): nothing to report.
            let _ = connection.await;
            drop(slot);
            metrics::gauge!(CONNECTIONS_OPEN).set(open.count() as f64);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
