//! The one gRPC client of the processor, shared by every request: one HTTP/2 channel
//! (TLS for an `https://` URL), a deadline on every call, and the request id carried along
//! (in metadata, or in the item of a batched ingest).
//!
//! A call is never cancelled because its HTTP caller went away: it runs in a task of its
//! own until the processor answers or its deadline passes, and at most
//! `payments_proto::limits::MAX_CALLS_IN_FLIGHT` run at once. Cancelling is a reset
//! stream, and callers hanging up in numbers (a load balancer dropping connections, a
//! benchmark ending, an attacker) would otherwise reset streams faster than a busy
//! processor accepts them, which h2 answers with GOAWAY, failing every call on the
//! connection.

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use payments_proto::{
    limits::MAX_CALLS_IN_FLIGHT,
    request_id,
    v1::{self as pb, transaction_service_client::TransactionServiceClient},
};
use tokio::{
    sync::{Semaphore, oneshot},
    time::Instant,
};
use tonic::{
    Request, Response, Status,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    config::ProcessorTls,
    ingest_calls::{self, IngestCalls},
    payload::WebhookPayload,
};

#[derive(Clone)]
pub struct ProcessorClient {
    client: TransactionServiceClient<Channel>,
    ingests: IngestCalls,
    health: HealthClient<Channel>,
    deadline: Duration,
    /// Permits of the calls other than ingest batches (those have their own).
    calls: Arc<Semaphore>,
}

impl ProcessorClient {
    /// Does not connect yet: the gateway starts, and answers 503, while the processor is down.
    /// Must be called within the Tokio runtime (it starts the ingest calls' task).
    pub fn new(url: &str, deadline: Duration, tls: &ProcessorTls) -> anyhow::Result<Self> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("PROCESSOR_URL={url:?} is not a valid endpoint"))?
            .connect_timeout(deadline)
            .timeout(deadline)
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tls_config(tls)?)
                .context("cannot set up TLS towards PROCESSOR_URL: PROCESSOR_TLS_CA_FILE, PROCESSOR_TLS_CERT_FILE or PROCESSOR_TLS_KEY_FILE does not hold a usable PEM certificate or key, or no system roots were found")?;
        }
        let channel = endpoint.connect_lazy();
        let client = TransactionServiceClient::new(channel.clone());
        Ok(Self {
            ingests: IngestCalls::start(client.clone(), deadline),
            client,
            health: HealthClient::new(channel),
            deadline,
            calls: Arc::new(Semaphore::new(
                MAX_CALLS_IN_FLIGHT - ingest_calls::CALLS_IN_FLIGHT,
            )),
        })
    }

    /// Ingests through `IngestTransactions`, batched with the webhooks arriving meanwhile
    /// (see `ingest_calls`); the answer is this webhook's own.
    pub async fn ingest(
        &self,
        payload: WebhookPayload,
        request_id: Option<&str>,
    ) -> Result<pb::IngestTransactionResponse, tonic::Status> {
        self.ingests
            .ingest(pb::IngestTransactionRequest::from(payload), request_id)
            .await
    }

    pub async fn get(
        &self,
        transaction_id: String,
        request_id: Option<&str>,
    ) -> Result<pb::Transaction, Status> {
        let mut client = self.client.clone();
        let message = pb::GetTransactionRequest { transaction_id };
        self.call(message, request_id, move |request| async move {
            client.get_transaction(request).await
        })
        .await
    }

    pub async fn list(
        &self,
        message: pb::ListTransactionsRequest,
        request_id: Option<&str>,
    ) -> Result<pb::ListTransactionsResponse, Status> {
        let mut client = self.client.clone();
        self.call(message, request_id, move |request| async move {
            client.list_transactions(request).await
        })
        .await
    }

    pub async fn retry(
        &self,
        transaction_id: String,
        request_id: Option<&str>,
    ) -> Result<pb::Transaction, Status> {
        let mut client = self.client.clone();
        let message = pb::RetryTransactionRequest { transaction_id };
        self.call(message, request_id, move |request| async move {
            client.retry_transaction(request).await
        })
        .await
    }

    /// Whether the processor reports `service` as SERVING.
    pub async fn serving(&self, service: &str) -> Result<bool, Status> {
        let mut health = self.health.clone();
        let message = HealthCheckRequest {
            service: service.to_owned(),
        };
        let answer = self
            .call(message, None, move |request| async move {
                health.check(request).await
            })
            .await?;
        Ok(answer.status() == ServingStatus::Serving)
    }

    /// Makes the call `send` starts in a task of its own, once a permit is free, with what
    /// is left of the deadline; waiting for the permit counts against the deadline.
    async fn call<M, T, F>(
        &self,
        message: M,
        request_id: Option<&str>,
        send: impl FnOnce(Request<M>) -> F,
    ) -> Result<T, Status>
    where
        T: Send + 'static,
        F: Future<Output = Result<Response<T>, Status>> + Send + 'static,
    {
        let deadline = Instant::now() + self.deadline;
        let permit = tokio::time::timeout_at(deadline, self.calls.clone().acquire_owned())
            .await
            .map_err(|_| Status::deadline_exceeded("every call slot to the processor stayed busy"))?
            .map_err(|_| Status::unavailable("the gateway's processor client has stopped"))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let call = send(self.request(message, request_id, remaining));
        let (reply, answer) = oneshot::channel();
        tokio::spawn(async move {
            // The caller may be gone; the answer is dropped then, the stream ended cleanly.
            let _ = reply.send(call.await.map(Response::into_inner));
            drop(permit);
        });
        answer
            .await
            .map_err(|_| Status::internal("the call to the processor ended unanswered"))?
    }

    fn request<T>(&self, message: T, request_id: Option<&str>, timeout: Duration) -> Request<T> {
        let mut request = Request::new(message);
        // Sent as grpc-timeout too, so the processor stops working on an abandoned call.
        request.set_timeout(timeout);
        if let Some(id) = request_id.and_then(|id| MetadataValue::try_from(id).ok()) {
            request.metadata_mut().insert(request_id::KEY, id);
        }
        request
    }
}

/// Trusts `PROCESSOR_TLS_CA_FILE` alone when set, else the system's roots; presents the
/// client certificate when one is configured. The name checked (and sent as SNI) is the
/// URL's host, as a platform's front end such as Cloud Run's routes on it.
fn tls_config(tls: &ProcessorTls) -> anyhow::Result<ClientTlsConfig> {
    let config = match &tls.ca_file {
        Some(file) => ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("PROCESSOR_TLS_CA_FILE", file)?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    Ok(match &tls.client_identity {
        Some(identity) => config.identity(Identity::from_pem(
            read("PROCESSOR_TLS_CERT_FILE", &identity.cert_file)?,
            read("PROCESSOR_TLS_KEY_FILE", &identity.key_file)?,
        )),
        None => config,
    })
}

fn read(name: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {name}={}", path.display()))
}
