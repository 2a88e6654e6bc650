//! `payments.v1.TransactionService`: transport only; the work is in `ingest` and `db`.

use payments_proto::v1::{self as pb, transaction_service_server::TransactionService};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use super::conversions::lookup_id;
use crate::{
    db::repository, domain::NewTransaction, error::Error, ingest, stream::publisher::Publisher,
};

#[derive(Clone)]
pub struct TransactionServiceImpl {
    db: DatabaseConnection,
    publisher: Publisher,
}

impl TransactionServiceImpl {
    pub fn new(db: DatabaseConnection, publisher: Publisher) -> Self {
        Self { db, publisher }
    }
}

#[tonic::async_trait]
impl TransactionService for TransactionServiceImpl {
    async fn ingest_transaction(
        &self,
        request: Request<pb::IngestTransactionRequest>,
    ) -> Result<Response<pb::IngestTransactionResponse>, Status> {
        let transaction = NewTransaction::try_from(request.get_ref())?;
        let ingested =
            ingest::ingest_detached(self.db.clone(), self.publisher.clone(), transaction).await?;
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
        let stored = repository::find(&self.db, &id)
            .await
            .map_err(Error::from)?
            .ok_or(Error::NotFound(id))?;
        Ok(Response::new(stored.into()))
    }
}
