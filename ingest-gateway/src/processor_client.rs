//! The one gRPC client of the processor, shared by every request: one HTTP/2 channel,
//! a deadline on every call, and the request id carried along (in metadata, or in the
//! item of a batched ingest).

use std::time::Duration;

use payments_proto::{
    request_id,
    v1::{self as pb, transaction_service_client::TransactionServiceClient},
};
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{ingest_calls::IngestCalls, payload::WebhookPayload};

#[derive(Clone)]
pub struct ProcessorClient {
    client: TransactionServiceClient<Channel>,
    ingests: IngestCalls,
    health: HealthClient<Channel>,
    deadline: Duration,
}

impl ProcessorClient {
    /// Does not connect yet: the gateway starts, and answers 503, while the processor is down.
    /// Must be called within the Tokio runtime (it starts the ingest calls' task).
    pub fn new(url: &str, deadline: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(deadline)
            .timeout(deadline)
            .tcp_nodelay(true)
            .connect_lazy();
        let client = TransactionServiceClient::new(channel.clone());
        Ok(Self {
            ingests: IngestCalls::start(client.clone(), deadline),
            client,
            health: HealthClient::new(channel),
            deadline,
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
    ) -> Result<pb::Transaction, tonic::Status> {
        let request = self.request(pb::GetTransactionRequest { transaction_id }, request_id);
        Ok(self
            .client
            .clone()
            .get_transaction(request)
            .await?
            .into_inner())
    }

    pub async fn list(
        &self,
        request: pb::ListTransactionsRequest,
        request_id: Option<&str>,
    ) -> Result<pb::ListTransactionsResponse, tonic::Status> {
        let request = self.request(request, request_id);
        Ok(self
            .client
            .clone()
            .list_transactions(request)
            .await?
            .into_inner())
    }

    pub async fn retry(
        &self,
        transaction_id: String,
        request_id: Option<&str>,
    ) -> Result<pb::Transaction, tonic::Status> {
        let request = self.request(pb::RetryTransactionRequest { transaction_id }, request_id);
        Ok(self
            .client
            .clone()
            .retry_transaction(request)
            .await?
            .into_inner())
    }

    /// Whether the processor reports `service` as SERVING.
    pub async fn serving(&self, service: &str) -> Result<bool, tonic::Status> {
        let request = self.request(
            HealthCheckRequest {
                service: service.to_owned(),
            },
            None,
        );
        let answer = self.health.clone().check(request).await?.into_inner();
        Ok(answer.status() == ServingStatus::Serving)
    }

    fn request<T>(&self, message: T, request_id: Option<&str>) -> Request<T> {
        let mut request = Request::new(message);
        // Sent as grpc-timeout too, so the processor stops working on an abandoned call.
        request.set_timeout(self.deadline);
        if let Some(id) = request_id.and_then(|id| MetadataValue::try_from(id).ok()) {
            request.metadata_mut().insert(request_id::KEY, id);
        }
        request
    }
}
