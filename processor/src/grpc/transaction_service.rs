//! `payments.v1.TransactionService`: transport only; the work is in `ingest` and `db`.

use std::{pin::Pin, time::Duration};

use payments_proto::v1::{
    self as pb, ingest_transaction_result::Outcome, transaction_service_server::TransactionService,
};
use sea_orm::DatabaseConnection;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use payments_proto::{limits::MAX_ITEMS_PER_CALL, request_id::checked as checked_request_id};

use super::conversions::{deadline, list_filter, lookup_id, request_id};
use crate::{
    db::{listing, repository},
    domain::{FieldViolation, NewTransaction},
    error::Error,
    ingest::{Ingested, Ingestor},
    metrics,
};

#[derive(Clone)]
pub struct TransactionServiceImpl {
    ingestor: Ingestor,
    /// The reads' own pool (`db::connect_reads`): get, list and watch never wait for, or
    /// hold, a connection of the write path.
    reads: DatabaseConnection,
    watch_poll_interval: Duration,
}

impl TransactionServiceImpl {
    pub fn new(
        ingestor: Ingestor,
        reads: DatabaseConnection,
        watch_poll_interval: Duration,
    ) -> Self {
        Self {
            ingestor,
            reads,
            watch_poll_interval,
        }
    }
}

/// Records the call's code and latency, whatever the outcome.
fn observed<T>(
    method: &'static str,
    started: Instant,
    result: Result<T, Status>,
) -> Result<T, Status> {
    let code = result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok);
    metrics::grpc_call(method, code, started.elapsed());
    result
}

/// Counts a rejected or failed ingest under its outcome.
fn count(error: &Error) {
    let outcome = match error {
        Error::InvalidArgument(_) => "rejected",
        Error::Conflict { .. } => "conflict",
        error if error.transience().is_transient() => "unavailable",
        _ => "error",
    };
    ::metrics::counter!(metrics::INGEST_TOTAL, "outcome" => outcome).increment(1);
}

/// Counts and logs a stored (or repeated) ingest, and answers it.
fn answer(ingested: Ingested, request_id: Option<&str>) -> pb::IngestTransactionResponse {
    let outcome = if ingested.created {
        "created"
    } else {
        "duplicate"
    };
    ::metrics::counter!(metrics::INGEST_TOTAL, "outcome" => outcome).increment(1);
    tracing::info!(transaction_id = %ingested.transaction.transaction_id, request_id = request_id.unwrap_or_default(), outcome, "ingest");
    pb::IngestTransactionResponse {
        created: ingested.created,
        transaction: Some(ingested.transaction.into()),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Transaction, Status>> + Send>>;

#[tonic::async_trait]
impl TransactionService for TransactionServiceImpl {
    async fn ingest_transaction(
        &self,
        request: Request<pb::IngestTransactionRequest>,
    ) -> Result<Response<pb::IngestTransactionResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let request_id = request_id(&request);
            let transaction = NewTransaction::try_from(request.get_ref()).inspect_err(count)?;
            let ingested = self
                .ingestor
                .ingest(transaction, request_id.clone(), deadline(&request))
                .await
                .inspect_err(count)?;
            Ok(Response::new(answer(ingested, request_id.as_deref())))
        }
        .await;
        observed("IngestTransaction", started, result)
    }

    async fn ingest_transactions(
        &self,
        request: Request<pb::IngestTransactionsRequest>,
    ) -> Result<Response<pb::IngestTransactionsResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let deadline = deadline(&request);
            let items = request.into_inner().items;
            if items.len() > MAX_ITEMS_PER_CALL {
                return Err(Error::InvalidArgument(vec![FieldViolation::new(
                    "items",
                    format!("at most {MAX_ITEMS_PER_CALL} per call, got {}", items.len()),
                )])
                .into());
            }
            // Every item is checked alone; the valid ones are ingested together.
            let parsed = items
                .iter()
                .map(|item| {
                    let transaction = match &item.transaction {
                        Some(transaction) => NewTransaction::try_from(transaction),
                        None => NewTransaction::try_from(&pb::IngestTransactionRequest::default()),
                    }?;
                    Ok((
                        transaction,
                        checked_request_id(&item.request_id).map(str::to_owned),
                    ))
                })
                .collect();
            let results = self
                .ingestor
                .ingest_many(parsed, deadline)
                .await
                .into_iter()
                .zip(&items)
                .map(|(result, item)| pb::IngestTransactionResult {
                    outcome: Some(match result.inspect_err(count) {
                        Ok(stored) => {
                            Outcome::Ingested(answer(stored, checked_request_id(&item.request_id)))
                        }
                        Err(error) => Outcome::Error(Status::from(error).into()),
                    }),
                })
                .collect();
            Ok(Response::new(pb::IngestTransactionsResponse { results }))
        }
        .await;
        observed("IngestTransactions", started, result)
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let started = Instant::now();
        let result = async {
            let id = lookup_id(&request.get_ref().transaction_id)?;
            let stored = repository::find(&self.reads, &id)
                .await
                .map_err(Error::from)?
                .ok_or(Error::NotFound(id))?;
            Ok(Response::new(stored.into()))
        }
        .await;
        observed("GetTransaction", started, result)
    }

    async fn retry_transaction(
        &self,
        request: Request<pb::RetryTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let started = Instant::now();
        let result = async {
            let id = lookup_id(&request.get_ref().transaction_id)?;
            let stored = self.ingestor.redrive(&id).await?;
            tracing::info!(transaction_id = %id, request_id = request_id(&request).unwrap_or_default(), "FAILED transaction re-driven");
            Ok(Response::new(stored.into()))
        }
        .await;
        observed("RetryTransaction", started, result)
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let filter = list_filter(request.get_ref())?;
            let (page, next) = listing::list(&self.reads, &filter)
                .await
                .map_err(Error::from)?;
            Ok(Response::new(pb::ListTransactionsResponse {
                transactions: page.into_iter().map(Into::into).collect(),
                next_page_token: next.map(|cursor| cursor.encode()).unwrap_or_default(),
            }))
        }
        .await;
        observed("ListTransactions", started, result)
    }

    type WatchTransactionStream = WatchStream;

    async fn watch_transaction(
        &self,
        request: Request<pb::WatchTransactionRequest>,
    ) -> Result<Response<Self::WatchTransactionStream>, Status> {
        let started = Instant::now();
        let result = async {
            let id = lookup_id(&request.get_ref().transaction_id)?;
            let first: pb::Transaction = repository::find(&self.reads, &id)
                .await
                .map_err(Error::from)?
                .ok_or_else(|| Error::NotFound(id.clone()))?
                .into();
            let (sender, receiver) = mpsc::channel(4);
            tokio::spawn(watch(
                self.reads.clone(),
                id,
                first,
                sender,
                self.watch_poll_interval,
            ));
            Ok(Response::new(
                Box::pin(ReceiverStream::new(receiver)) as WatchStream
            ))
        }
        .await;
        observed("WatchTransaction", started, result)
    }
}

/// Sends the current state, then each change, until a final status or until the caller
/// goes away (its deadline included: tonic drops the stream, closing the channel).
async fn watch(
    db: DatabaseConnection,
    id: String,
    mut last: pb::Transaction,
    sender: mpsc::Sender<Result<pb::Transaction, Status>>,
    poll: Duration,
) {
    if sender.send(Ok(last.clone())).await.is_err() {
        return;
    }
    while last.status() == pb::TransactionStatus::Processing {
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(poll) => {}
        }
        match repository::find(&db, &id).await {
            Ok(Some(stored)) => {
                let current = pb::Transaction::from(stored);
                if current != last {
                    if sender.send(Ok(current.clone())).await.is_err() {
                        return;
                    }
                    last = current;
                }
            }
            Ok(None) => return,
            Err(error) => {
                let _ = sender.send(Err(Error::from(error).into())).await;
                return;
            }
        }
    }
}
