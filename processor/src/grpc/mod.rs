//! The gRPC server: TransactionService, plus health and reflection on the same port.

pub mod conversions;
pub mod transaction_service;

use payments_proto::v1::transaction_service_server::TransactionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use transaction_service::TransactionServiceImpl;

/// Streams a client may reset before the server accepted them, before it is cut off.
const MAX_PENDING_RESET_STREAMS: usize = 10_000;

/// Serves until `shutdown`, then lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    service: TransactionServiceImpl,
    health: HealthReporter,
    max_concurrent_calls: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health_service = HealthServer::new(HealthService::from_health_reporter(health));
    // v1 and v1alpha: grpcurl and older clients ask for either.
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    tonic::transport::Server::builder()
        // Callers are internal (the gateway) and hang up whenever their deadline passes:
        // under load that is many resets at once, which h2's default (20) treats as an
        // attack and answers with GOAWAY, failing every call on the connection.
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESET_STREAMS))
        // The processor's own overload guard: past the limit a call is refused at once
        // (RESOURCE_EXHAUSTED) rather than queued without bound.
        .concurrency_limit_per_connection(max_concurrent_calls)
        .load_shed(true)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(TransactionServiceServer::new(service))
        // TCP_NODELAY: small gRPC frames must not wait on Nagle's algorithm (tens of ms).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// Reflection over every service served here, and over `google.rpc` so that clients can
/// decode the `BadRequest` details of an `INVALID_ARGUMENT`.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(payments_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}
