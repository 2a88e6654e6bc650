//! `payments.v1.TransactionService`: transport only; the work is in `ingest` and `db`.

use payments_proto::v1::{self as pb, transaction_service_server::TransactionService};
use tonic::{Request, Response, Status};

use super::conversions::lookup_id;
use crate::{db::repository, domain::NewTransaction, error::Error, ingest::Ingestor};

#[derive(Clone)]
pub struct TransactionServiceImpl {
    ingestor: Ingestor,
}

impl TransactionServiceImpl {
    pub fn new(ingestor: Ingestor) -> Self {
        Self { ingestor }
    }
}

#[tonic::async_trait]
impl TransactionService for TransactionServiceImpl {
    async fn ingest_transaction(
        &self,
        request: Request<pb::IngestTransactionRequest>,
    ) -> Result<Response<pb::IngestTransactionResponse>, Status> {
        let transaction = NewTransaction::try_from(request.get_ref())?;
        let ingested = self.ingestor.ingest(transaction).await?;
        if ingested.created {
            tracing::info!(transaction_id = %ingested.transaction.transaction_id, "transaction stored");
        }
        Ok(Response::new(pb::IngestTransactionResponse {
            created: ingested.created,
            transaction: Some(ingested.transaction.into()),
        }))
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let id = lookup_id(&request.get_ref().transaction_id)?;
        let stored = repository::find(&self.ingestor.db, &id)
            .await
            .map_err(Error::from)?
            .ok_or(Error::NotFound(id))?;
        Ok(Response::new(stored.into()))
    }

    async fn retry_transaction(
        &self,
        request: Request<pb::RetryTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let id = lookup_id(&request.get_ref().transaction_id)?;
        let stored = self.ingestor.redrive(&id).await?;
        tracing::info!(transaction_id = %id, "FAILED transaction re-driven");
        Ok(Response::new(stored.into()))
    }
}
