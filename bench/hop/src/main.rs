//! The storage-free hop, as a benchmark baseline (issue 19): what an axum front end and a
//! tonic back end cost with nothing behind them. Two processes, like the stack:
//!
//! - `hop grpc` serves the project's `TransactionService` (`payments-proto`) on `GRPC_ADDR`;
//!   `IngestTransaction` answers at once as created, echoing the transaction, and stores
//!   nothing; every other RPC is `UNIMPLEMENTED`.
//! - `hop http` serves `POST /v1/webhooks/transactions` on `HTTP_ADDR` with axum: it parses
//!   the JSON body (the gateway's webhook fields), makes ONE unary `IngestTransaction` call
//!   per request to `PROCESSOR_URL` over one HTTP/2 channel, and answers 202 (503 when the
//!   call fails or passes its 450 ms deadline, the gateway's default `PROCESSOR_TIMEOUT`).
//!
//! It ignores signatures: no `webhook-*` header is read, so a signed load costs the hop
//! nothing but the bytes. No validation beyond the JSON shape, no batching, no metrics, no
//! tracing, no graceful shutdown (SIGTERM ends it). mimalloc is the allocator, as in the
//! stack's binaries, so that the comparison is of what each does per request and not of
//! allocators.
//!
//! Plaintext gRPC by default. With the stack's TLS variables it speaks (mutual) TLS as the
//! production configuration does: `GRPC_TLS_CERT_FILE`, `GRPC_TLS_KEY_FILE` and optionally
//! `GRPC_TLS_CLIENT_CA_FILE` for `hop grpc`; an `https://` `PROCESSOR_URL` with
//! `PROCESSOR_TLS_CA_FILE` (else the system's roots) and optionally
//! `PROCESSOR_TLS_CERT_FILE` + `PROCESSOR_TLS_KEY_FILE` for `hop http`.
//!
//!   GRPC_ADDR=127.0.0.1:50052 hop grpc &
//!   HTTP_ADDR=127.0.0.1:8101 PROCESSOR_URL=http://127.0.0.1:50052 hop http

use std::{env, path::Path, time::Duration, time::SystemTime};

use anyhow::{Context, bail};
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use payments_proto::v1::{
    self as pb,
    transaction_service_client::TransactionServiceClient,
    transaction_service_server::{TransactionService, TransactionServiceServer},
};
use serde::Deserialize;
use tonic::{
    Request, Response, Status,
    transport::{
        Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
    },
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway's default `PROCESSOR_TIMEOUT`.
const CALL_DEADLINE: Duration = Duration::from_millis(450);

fn setting(name: &str, default: &str) -> String {
    env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn optional(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn read(name: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(Path::new(path)).with_context(|| format!("cannot read {name}={path}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match env::args().nth(1).as_deref() {
        Some("grpc") => serve_grpc().await,
        Some("http") => serve_http().await,
        _ => bail!("usage: hop grpc | hop http (see the crate's doc comment for the settings)"),
    }
}

// ---- hop grpc ----

struct StorageFree;

fn ingest_only<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the hop answers IngestTransaction only",
    ))
}

#[tonic::async_trait]
impl TransactionService for StorageFree {
    async fn ingest_transaction(
        &self,
        request: Request<pb::IngestTransactionRequest>,
    ) -> Result<Response<pb::IngestTransactionResponse>, Status> {
        let request = request.into_inner();
        let now = prost_types::Timestamp::from(SystemTime::now());
        Ok(Response::new(pb::IngestTransactionResponse {
            created: true,
            transaction: Some(pb::Transaction {
                transaction_id: request.transaction_id,
                source_account: request.source_account,
                destination_account: request.destination_account,
                amount: request.amount,
                currency: request.currency,
                status: pb::TransactionStatus::Processing.into(),
                created_at: Some(now),
                updated_at: Some(now),
                processed_at: None,
                attempts: 0,
                last_error: String::new(),
            }),
        }))
    }

    async fn ingest_transactions(
        &self,
        _: Request<pb::IngestTransactionsRequest>,
    ) -> Result<Response<pb::IngestTransactionsResponse>, Status> {
        ingest_only()
    }

    async fn get_transaction(
        &self,
        _: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        ingest_only()
    }

    async fn retry_transaction(
        &self,
        _: Request<pb::RetryTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        ingest_only()
    }

    async fn list_transactions(
        &self,
        _: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        ingest_only()
    }

    type WatchTransactionStream = tokio_stream::Empty<Result<pb::Transaction, Status>>;

    async fn watch_transaction(
        &self,
        _: Request<pb::WatchTransactionRequest>,
    ) -> Result<Response<Self::WatchTransactionStream>, Status> {
        ingest_only()
    }
}

async fn serve_grpc() -> anyhow::Result<()> {
    let address = setting("GRPC_ADDR", "127.0.0.1:50052")
        .parse()
        .context("GRPC_ADDR must be host:port")?;
    let mut server = Server::builder();
    if let (Some(cert), Some(key)) = (
        optional("GRPC_TLS_CERT_FILE"),
        optional("GRPC_TLS_KEY_FILE"),
    ) {
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
            read("GRPC_TLS_CERT_FILE", &cert)?,
            read("GRPC_TLS_KEY_FILE", &key)?,
        ));
        if let Some(ca) = optional("GRPC_TLS_CLIENT_CA_FILE") {
            tls = tls.client_ca_root(Certificate::from_pem(read("GRPC_TLS_CLIENT_CA_FILE", &ca)?));
        }
        server = server
            .tls_config(tls)
            .context("GRPC_TLS_* do not hold a usable PEM certificate or key")?;
    }
    server
        .add_service(TransactionServiceServer::new(StorageFree))
        .serve(address)
        .await?;
    Ok(())
}

// ---- hop http ----

#[derive(Deserialize)]
struct Webhook {
    transaction_id: String,
    source_account: String,
    destination_account: String,
    amount: serde_json::Number,
    currency: String,
}

async fn serve_http() -> anyhow::Result<()> {
    let url = setting("PROCESSOR_URL", "http://127.0.0.1:50052");
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("PROCESSOR_URL={url:?} is not a valid endpoint"))?
        .connect_timeout(CALL_DEADLINE)
        .timeout(CALL_DEADLINE)
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let mut tls = match optional("PROCESSOR_TLS_CA_FILE") {
            Some(ca) => ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read("PROCESSOR_TLS_CA_FILE", &ca)?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (
            optional("PROCESSOR_TLS_CERT_FILE"),
            optional("PROCESSOR_TLS_KEY_FILE"),
        ) {
            tls = tls.identity(Identity::from_pem(
                read("PROCESSOR_TLS_CERT_FILE", &cert)?,
                read("PROCESSOR_TLS_KEY_FILE", &key)?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("PROCESSOR_TLS_* do not hold a usable PEM certificate or key")?;
    }
    let client = TransactionServiceClient::new(endpoint.connect_lazy());
    let app = Router::new()
        .route("/", axum::routing::get(|| async { "storage-free hop" }))
        .route("/v1/webhooks/transactions", post(ingest))
        .with_state(client);
    let listener = tokio::net::TcpListener::bind(setting("HTTP_ADDR", "127.0.0.1:8101")).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(
    State(mut client): State<TransactionServiceClient<Channel>>,
    Json(webhook): Json<Webhook>,
) -> StatusCode {
    let request = pb::IngestTransactionRequest {
        transaction_id: webhook.transaction_id,
        source_account: webhook.source_account,
        destination_account: webhook.destination_account,
        amount: webhook.amount.to_string(),
        currency: webhook.currency,
    };
    match client.ingest_transaction(request).await {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
