//! The gRPC server: TransactionService, plus health and reflection on the same port.

pub mod conversions;
pub mod tls;
pub mod transaction_service;

use anyhow::Context;
use payments_proto::v1::transaction_service_server::TransactionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use transaction_service::TransactionServiceImpl;

/// The transport as configured: TLS when the `GRPC_TLS_*` files are set (checked here, so
/// a bad file stops start-up), and the limits that protect the server.
pub fn server(config: &crate::Config) -> anyhow::Result<Server> {
    let server = Server::builder()
        // Streams a client may reset before the server accepted them; past it h2 answers
        // GOAWAY, which is what stops a rapid-reset flood. Our gateway never has more calls
        // out than this (it does not cancel a call when its HTTP caller hangs up), so only
        // a flood meets it.
        .http2_max_pending_accept_reset_streams(Some(payments_proto::limits::MAX_CALLS_IN_FLIGHT))
        // The processor's own overload guard: past the limit a call is refused at once
        // (RESOURCE_EXHAUSTED) rather than queued without bound.
        .concurrency_limit_per_connection(config.max_concurrent_calls)
        .load_shed(true);
    match &config.grpc_tls {
        None => Ok(server),
        Some(tls) => server.tls_config(tls::server_config(tls)?).context(
            "GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE or GRPC_TLS_CLIENT_CA_FILE does not hold a usable PEM certificate or key",
        ),
    }
}

/// Serves until `shutdown`, then lets in-flight calls finish.
pub async fn serve(
    mut server: Server,
    listener: TcpListener,
    service: TransactionServiceImpl,
    health: HealthReporter,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health_service = HealthServer::new(HealthService::from_health_reporter(health));
    // v1 and v1alpha: grpcurl and older clients ask for either.
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    server
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
