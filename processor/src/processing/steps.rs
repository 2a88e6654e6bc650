//! The batched steps of processing. Each step takes many transactions at once and costs
//! one statement in PostgreSQL and one round trip to Redis for all of them: claiming
//! leases, recording outcomes, acknowledging entries.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use super::{Delivery, Outcome, Processing};
use crate::{
    db::repository::{self, AttemptRecord},
    domain::Status,
    external::{self, CallResult, ExternalCall, HttpCall},
    metrics,
};

/// A delivery whose transaction this consumer has claimed: its external call is under way.
#[derive(Debug)]
pub(super) struct Claimed {
    pub(super) delivery: Delivery,
    pub(super) attempt: u32,
    pub(super) created_at: DateTime<Utc>,
}

/// An HTTP call about to be made for a claimed transaction.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) claimed: Claimed,
    http: Arc<HttpCall>,
    body: Vec<u8>,
}

impl Call {
    pub(super) async fn run(self) -> (Claimed, CallResult) {
        let delivery = &self.claimed.delivery;
        let result = self
            .http
            .call(
                &delivery.transaction_id,
                delivery.request_id.as_deref(),
                self.body,
            )
            .await;
        (self.claimed, result)
    }
}

/// A call that did not succeed.
struct Failure {
    error: String,
    retry_after: Option<Duration>,
    /// False when the downstream refused it: it is FAILED at once.
    retryable: bool,
}

/// What a step hands back to the scheduler.
#[derive(Debug, Default)]
pub(super) struct StepResult {
    /// Simulated calls started: each ends with its result after its delay.
    pub(super) simulated: Vec<(Claimed, CallResult, Duration)>,
    /// HTTP calls to start.
    pub(super) calls: Vec<Call>,
    /// Failed transactions to claim again after their backoff (the lease is kept).
    pub(super) retries: Vec<(Delivery, Duration)>,
    /// Transactions settled here: their entries are acknowledged.
    pub(super) acknowledged: Vec<Arc<str>>,
    /// Transactions no longer handled here whose entries stay pending in the group for a
    /// later delivery (or for the holder that now has them).
    pub(super) released: Vec<Arc<str>>,
    /// Leases the heartbeat found taken by another consumer: stop, record nothing.
    pub(super) lost: Vec<Arc<str>>,
    /// The heartbeat found this consumer's name taken by another process.
    pub(super) identity_lost: bool,
    /// The next heartbeat keeps every held entry fresh: this one found the registration
    /// had lapsed (entries may have been taken meanwhile), or it could not renew and kept
    /// none fresh.
    pub(super) keep_all_fresh_next: bool,
}

impl StepResult {
    fn release(&mut self, delivery: Delivery) {
        self.released.push(delivery.transaction_id);
    }
}

/// Claims a lease on each delivery's transaction; the claimed start their call.
pub(super) async fn claim(processing: &Processing, deliveries: Vec<Delivery>) -> StepResult {
    let mut result = StepResult::default();
    let ids: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.transaction_id.to_string())
        .collect();
    let claims: HashMap<String, repository::Claimed> = match repository::claim_many(
        &processing.db,
        &ids,
        &processing.registration,
    )
    .await
    {
        Ok(claims) => claims
            .into_iter()
            .map(|claim| (claim.transaction.transaction_id.clone(), claim))
            .collect(),
        Err(error) => {
            tracing::warn!(count = ids.len(), %error, "claiming failed; the entries stay pending and will be delivered again");
            deliveries.into_iter().for_each(|d| result.release(d));
            return result;
        }
    };
    let mut unclaimed = Vec::new();
    for delivery in deliveries {
        let Some(claim) = claims.get(&*delivery.transaction_id) else {
            unclaimed.push(delivery);
            continue;
        };
        if claim.cut_calls > 0 {
            // An earlier call was cut (a crash, a stop grace): this one repeats it, with
            // the same idempotency key.
            ::metrics::counter!(metrics::EXTERNAL_CALLS_REPEATED_TOTAL)
                .increment(u64::from(claim.cut_calls));
            tracing::warn!(transaction_id = %delivery.transaction_id, cut_calls = claim.cut_calls, "calling again after a call that was cut");
        }
        let claimed = Claimed {
            delivery,
            attempt: u32::try_from(claim.transaction.attempts).unwrap_or_default(),
            created_at: claim.transaction.created_at,
        };
        match &processing.external {
            ExternalCall::Simulated(simulated) => {
                let outcome = simulated.result(&claimed.delivery.transaction_id);
                result.simulated.push((claimed, outcome, simulated.delay));
            }
            ExternalCall::Http(http) => match external::request_body(&claim.transaction) {
                Ok(body) => result.calls.push(Call {
                    claimed,
                    http: http.clone(),
                    body,
                }),
                Err(error) => {
                    // Cannot happen for a stored row; the lease lapses and it is tried again.
                    tracing::error!(transaction_id = %claimed.delivery.transaction_id, %error, "cannot encode the call's body");
                    result.release(claimed.delivery);
                }
            },
        }
    }
    settle_unclaimed(processing, unclaimed, &mut result).await;
    result
}

/// Deliveries whose transaction could not be claimed: finished already, held by another
/// live consumer, or unknown. Each is acknowledged, the transaction needs nothing from
/// us, except an entry held elsewhere that may be the holder's own: that one stays
/// pending for its holder, who takes it back with its next heartbeat.
async fn settle_unclaimed(
    processing: &Processing,
    unclaimed: Vec<Delivery>,
    result: &mut StepResult,
) {
    if unclaimed.is_empty() {
        return;
    }
    let ids: Vec<String> = unclaimed
        .iter()
        .map(|delivery| delivery.transaction_id.to_string())
        .collect();
    let statuses: HashMap<String, String> = match repository::find_many(&processing.db, &ids).await
    {
        Ok(found) => found
            .into_iter()
            .map(|stored| (stored.transaction_id, stored.status))
            .collect(),
        Err(error) => {
            tracing::warn!(count = ids.len(), %error, "reading unclaimed transactions failed; their entries stay pending");
            unclaimed.into_iter().for_each(|d| result.release(d));
            return;
        }
    };
    let mut settled = Vec::with_capacity(unclaimed.len());
    for delivery in unclaimed {
        let outcome = match statuses.get(&*delivery.transaction_id) {
            None => {
                orphan(&delivery);
                Outcome::Unknown
            }
            Some(status) if status == Status::Processing.as_str() => Outcome::HeldElsewhere,
            Some(_) => Outcome::AlreadyFinished,
        };
        if outcome == Outcome::HeldElsewhere && !delivery.fresh {
            tracing::info!(transaction_id = %delivery.transaction_id, entry_id = %delivery.entry_id, "held by another live consumer; its entry stays pending for it");
            result.release(delivery);
        } else {
            settled.push((delivery, outcome));
        }
    }
    settle(processing, settled, result).await;
}

/// An entry whose transaction PostgreSQL does not have. Nothing can be done with it, so it
/// is acknowledged, but it should not happen (ingest publishes only committed rows): a row
/// lost in an asynchronous failover, or a stray XADD. Loud, and counted for an alert.
fn orphan(delivery: &Delivery) {
    tracing::error!(
        transaction_id = %delivery.transaction_id,
        request_id = delivery.request_id.as_deref().unwrap_or_default(),
        entry_id = %delivery.entry_id,
        "stream entry names a transaction PostgreSQL does not have; acknowledging it unprocessed"
    );
    ::metrics::counter!(metrics::ORPHAN_ENTRIES_TOTAL).increment(1);
}

/// Records the result of every call that has ended: successes in one statement,
/// failures each with their error. Failures with attempts left wait out a backoff.
pub(super) async fn finish(processing: &Processing, due: Vec<(Claimed, CallResult)>) -> StepResult {
    let mut result = StepResult::default();
    let mut succeeded = Vec::with_capacity(due.len());
    let mut failed = Vec::new();
    for (claimed, outcome) in due {
        ::metrics::counter!(metrics::EXTERNAL_CALLS_TOTAL, "outcome" => outcome.kind())
            .increment(1);
        match outcome {
            CallResult::Succeeded => succeeded.push(claimed),
            CallResult::Retryable {
                error, retry_after, ..
            } => failed.push((
                claimed,
                Failure {
                    error,
                    retry_after,
                    retryable: true,
                },
            )),
            CallResult::Refused { error } => failed.push((
                claimed,
                Failure {
                    error,
                    retry_after: None,
                    retryable: false,
                },
            )),
        }
    }
    let mut settled = Vec::with_capacity(succeeded.len() + failed.len());
    record_successes(processing, succeeded, &mut settled, &mut result).await;
    for (claimed, failure) in failed {
        record_failure(processing, claimed, failure, &mut settled, &mut result).await;
    }
    settle(processing, settled, &mut result).await;
    result
}

async fn record_successes(
    processing: &Processing,
    succeeded: Vec<Claimed>,
    settled: &mut Vec<(Delivery, Outcome)>,
    result: &mut StepResult,
) {
    if succeeded.is_empty() {
        return;
    }
    ::metrics::counter!(metrics::ATTEMPTS_TOTAL, "outcome" => "succeeded")
        .increment(succeeded.len() as u64);
    let records: Vec<(String, u32)> = succeeded
        .iter()
        .map(|c| (c.delivery.transaction_id.to_string(), c.attempt))
        .collect();
    let recorded = persistently(|| {
        repository::record_successes(&processing.db, &processing.registration, &records)
    })
    .await;
    let recorded: HashSet<String> = match recorded {
        Ok(recorded) => recorded.into_iter().collect(),
        Err(error) => {
            tracing::warn!(count = records.len(), %error, "recording successes failed; the entries stay pending and will be delivered again");
            succeeded
                .into_iter()
                .for_each(|c| result.release(c.delivery));
            return;
        }
    };
    for claimed in succeeded {
        if recorded.contains(&*claimed.delivery.transaction_id) {
            finished(Status::Processed, claimed.created_at);
            settled.push((claimed.delivery, Outcome::Processed));
        } else {
            lease_lost(claimed.delivery, result);
        }
    }
}

async fn record_failure(
    processing: &Processing,
    claimed: Claimed,
    failure: Failure,
    settled: &mut Vec<(Delivery, Outcome)>,
    result: &mut StepResult,
) {
    ::metrics::counter!(metrics::ATTEMPTS_TOTAL, "outcome" => "failed").increment(1);
    let transaction_id = &*claimed.delivery.transaction_id;
    let attempt = claimed.attempt;
    let Failure {
        error,
        retry_after,
        retryable,
    } = failure;
    let last = !retryable || attempt >= processing.retry.max_attempts;
    // The downstream's Retry-After is a floor under our own backoff.
    let backoff = processing
        .retry
        .backoff(attempt)
        .max(retry_after.unwrap_or_default());
    tracing::warn!(%transaction_id, attempt, %error, last, "external call failed");
    let record = AttemptRecord {
        transaction_id,
        holder: &processing.registration,
        attempt,
    };
    let recorded =
        persistently(|| repository::record_failure(&processing.db, &record, &error, last)).await;
    match recorded {
        Ok(true) if last => {
            tracing::warn!(%transaction_id, attempts = attempt, %error, "transaction FAILED");
            processing
                .settlement
                .dead_letter(transaction_id, attempt, &error)
                .await;
            finished(Status::Failed, claimed.created_at);
            settled.push((claimed.delivery, Outcome::Failed));
        }
        Ok(true) => {
            let mut delivery = claimed.delivery;
            // Its entry is ours; should the transaction be held elsewhere by the next
            // attempt, that holder took the entry too.
            delivery.fresh = false;
            result.retries.push((delivery, backoff));
        }
        Ok(false) => lease_lost(claimed.delivery, result),
        Err(error) => {
            tracing::warn!(%transaction_id, %error, "recording a failure failed; the entry stays pending and will be delivered again");
            result.release(claimed.delivery);
        }
    }
}

/// Acknowledges the entries of settled deliveries, in one round trip, and logs each.
async fn settle(
    processing: &Processing,
    settled: Vec<(Delivery, Outcome)>,
    result: &mut StepResult,
) {
    if settled.is_empty() {
        return;
    }
    let entry_ids: Vec<&str> = settled.iter().map(|(d, _)| &*d.entry_id).collect();
    processing.settlement.acknowledge(&entry_ids).await;
    for (delivery, outcome) in settled {
        tracing::info!(
            transaction_id = %delivery.transaction_id,
            request_id = delivery.request_id.as_deref().unwrap_or_default(),
            entry_id = %delivery.entry_id,
            ?outcome,
            "transaction handled"
        );
        result.acknowledged.push(delivery.transaction_id);
    }
}

/// Another consumer took the transaction over while we worked on it (we were paused or
/// cut off past the lease): nothing is recorded, and the entry, now the new holder's to
/// acknowledge, stays pending.
fn lease_lost(delivery: Delivery, result: &mut StepResult) {
    tracing::warn!(transaction_id = %delivery.transaction_id, entry_id = %delivery.entry_id, outcome = ?Outcome::LeaseLost, "lease lost to another consumer; nothing recorded");
    result.release(delivery);
}

/// Runs a write, retrying briefly on a database error: the external call has been made,
/// and redoing it because one UPDATE failed would call it twice.
async fn persistently<T, F, Fut>(write: F) -> Result<T, DbErr>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let mut pause = Duration::from_millis(100);
    for _ in 0..5 {
        match write().await {
            Ok(done) => return Ok(done),
            Err(error) => {
                tracing::warn!(%error, "recording an outcome failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    write().await
}

/// Counts a final status and how long the transaction took from creation.
fn finished(status: Status, created_at: DateTime<Utc>) {
    ::metrics::counter!(metrics::FINISHED_TOTAL, "status" => status.as_str()).increment(1);
    let seconds = (Utc::now() - created_at).num_milliseconds() as f64 / 1_000.0;
    ::metrics::histogram!(metrics::CREATED_TO_FINISHED_SECONDS).record(seconds.max(0.0));
}
