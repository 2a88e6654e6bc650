//! Gathers concurrent webhooks into `IngestTransactions` calls. A unary gRPC call costs
//! the gateway and the processor several times the webhook's own work (an HTTP/2 stream,
//! its headers, a task on each side); one call per batch pays that once. Under light load
//! a batch is one webhook and nothing waits: a webhook waits only while `CALLS_IN_FLIGHT`
//! calls are already out, and then goes with everything that queued meanwhile.
//!
//! One deadline per webhook, `PROCESSOR_TIMEOUT` from when it was queued: the time it
//! waits for a call counts against it, a call's deadline is the earliest of the webhooks it
//! carries, and a webhook whose deadline passed is answered at once (503) instead of sent.
//! So a webhook is answered within `PROCESSOR_TIMEOUT` however slow the processor is.

use std::{sync::Arc, time::Duration};

use payments_proto::v1::{
    self as pb, ingest_transaction_result::Outcome,
    transaction_service_client::TransactionServiceClient,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    time::Instant,
};
use tonic::{Request, Status, transport::Channel};

/// Calls out at once. More would only split the same webhooks into smaller batches; the
/// processor's writers batch again on their side.
pub(crate) const CALLS_IN_FLIGHT: usize = 4;

/// Most webhooks in one call.
const MAX_BATCH: usize = 256;
const _: () = assert!(
    MAX_BATCH <= payments_proto::limits::MAX_ITEMS_PER_CALL,
    "a batch the processor would refuse"
);

type Answer = Result<pb::IngestTransactionResponse, Status>;

/// One webhook waiting for its call.
struct Queued {
    item: pb::IngestTransactionItem,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// Where webhooks go to be ingested; cheap to clone.
#[derive(Clone)]
pub struct IngestCalls {
    queue: mpsc::Sender<Queued>,
    /// Each webhook's budget, from when it is queued to its answer.
    budget: Duration,
}

impl IngestCalls {
    /// Starts the task that makes the calls; it ends when every clone is dropped.
    pub fn start(client: TransactionServiceClient<Channel>, budget: Duration) -> Self {
        let (queue, receiver) = mpsc::channel(MAX_BATCH * CALLS_IN_FLIGHT);
        tokio::spawn(dispatch(client, receiver));
        Self { queue, budget }
    }

    /// The processor's answer for this one transaction, as `IngestTransaction` would give it.
    pub async fn ingest(
        &self,
        transaction: pb::IngestTransactionRequest,
        request_id: Option<&str>,
    ) -> Answer {
        let deadline = Instant::now() + self.budget;
        let (reply, answer) = oneshot::channel();
        let item = pb::IngestTransactionItem {
            transaction: Some(transaction),
            request_id: request_id.unwrap_or_default().to_owned(),
        };
        let answered = tokio::time::timeout_at(deadline, async {
            self.queue
                .send(Queued {
                    item,
                    deadline,
                    reply,
                })
                .await
                .map_err(|_| Status::unavailable("the gateway's ingest calls have stopped"))?;
            answer
                .await
                .map_err(|_| Status::internal("the ingest call was dropped unanswered"))?
        })
        .await;
        answered.unwrap_or_else(|_| Err(past_deadline()))
    }
}

fn past_deadline() -> Status {
    Status::deadline_exceeded("the processor did not answer within PROCESSOR_TIMEOUT")
}

async fn dispatch(client: TransactionServiceClient<Channel>, mut queue: mpsc::Receiver<Queued>) {
    let calls = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    loop {
        // The permit first: while every call is out, webhooks gather in the queue.
        let Ok(permit) = calls.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // Those whose time ran out while they waited are answered, not sent.
        let now = Instant::now();
        let (batch, expired): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|queued| queued.deadline > now);
        for queued in expired {
            let _ = queued.reply.send(Err(past_deadline()));
        }
        let Some(deadline) = batch.iter().map(|queued| queued.deadline).min() else {
            continue;
        };
        tokio::spawn(call(client.clone(), deadline - now, batch, permit));
    }
}

/// One `IngestTransactions` call, within `timeout`; each webhook gets its own item's
/// answer, or the call's error when the call as a whole failed.
async fn call(
    mut client: TransactionServiceClient<Channel>,
    timeout: Duration,
    batch: Vec<Queued>,
    _permit: OwnedSemaphorePermit,
) {
    let (items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.item, queued.reply))
        .unzip();
    let mut request = Request::new(pb::IngestTransactionsRequest { items });
    // Sent as grpc-timeout too, so the processor stops working on an abandoned call.
    request.set_timeout(timeout);
    // Ended here too: the slot is free at the deadline whatever the processor does.
    let results = match tokio::time::timeout(timeout, client.ingest_transactions(request)).await {
        Ok(Ok(response)) => response.into_inner().results,
        Ok(Err(status)) => return fail_all(replies, &status),
        Err(_) => return fail_all(replies, &past_deadline()),
    };
    if results.len() != replies.len() {
        let status = Status::internal(format!(
            "the processor answered {} results for {} transactions",
            results.len(),
            replies.len()
        ));
        return fail_all(replies, &status);
    }
    for (reply, result) in replies.into_iter().zip(results) {
        // The caller may have gone (its deadline passed): the work is done either way.
        let _ = reply.send(answer(result));
    }
}

/// The call's error, for every webhook it carried.
fn fail_all(replies: Vec<oneshot::Sender<Answer>>, status: &Status) {
    for reply in replies {
        let _ = reply.send(Err(status.clone()));
    }
}

fn answer(result: pb::IngestTransactionResult) -> Answer {
    match result.outcome {
        Some(Outcome::Ingested(ingested)) => Ok(ingested),
        Some(Outcome::Error(error)) => Err(error.into()),
        None => Err(Status::internal(
            "the processor answered a transaction with no outcome",
        )),
    }
}
