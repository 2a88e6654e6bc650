//! Processing one transaction: claim it, make the external call, record the outcome;
//! on failure retry with exponential backoff and jitter, up to `max_attempts`, then FAILED.
//! Knows nothing of Redis or gRPC.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use crate::{
    batch::Batcher,
    db::repository::{self, AttemptRecord, Claim},
    domain::Status,
    error::{Error, Result},
    external::ExternalCall,
    metrics,
};

/// How a worker retries and how long its claims last.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Added to the call's delay to make the lease: past it, the claim is presumed dead.
    pub lease_margin: Duration,
}

impl RetryPolicy {
    /// Full jitter: a random wait up to `base × 2^(attempt−1)`, capped at `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// Concurrent claims and successes go to PostgreSQL in batches (see `batch`).
const DB_BATCH: usize = 256;
const DB_BATCH_WORKERS: usize = 4;

type ClaimBatcher = Batcher<String, Result<Option<Claim>>>;
type SuccessBatcher = Batcher<(String, u32, DateTime<Utc>), Result<bool>>;

#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    external: ExternalCall,
    retry: RetryPolicy,
    /// Lease holder name: the consumer's.
    owner: String,
    claims: ClaimBatcher,
    successes: SuccessBatcher,
}

/// What handling one delivery of a transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This delivery moved it to PROCESSED.
    Processed { attempts: u32 },
    /// Every attempt failed: it is now FAILED.
    Failed { attempts: u32, error: String },
    /// It was already finished (a redelivery): nothing was done again.
    AlreadyFinished,
    /// Another live consumer holds it: that one will finish it.
    HeldElsewhere,
    /// Our lease expired mid-way and another consumer took over; we stopped.
    LeaseLost,
    /// No such transaction in PostgreSQL: nothing to do.
    Unknown,
}

impl Worker {
    pub fn new(
        db: DatabaseConnection,
        external: ExternalCall,
        retry: RetryPolicy,
        owner: String,
    ) -> Self {
        let lease = external.delay + retry.lease_margin;
        let claims = {
            let (db, owner) = (db.clone(), owner.clone());
            Batcher::start(DB_BATCH, DB_BATCH_WORKERS, move |ids: Vec<String>| {
                let (db, owner) = (db.clone(), owner.clone());
                async move { claim_batch(&db, &owner, lease, ids).await }
            })
        };
        let successes = {
            let (db, owner) = (db.clone(), owner.clone());
            Batcher::start(
                DB_BATCH,
                DB_BATCH_WORKERS,
                move |records: Vec<(String, u32, DateTime<Utc>)>| {
                    let (db, owner) = (db.clone(), owner.clone());
                    async move { success_batch(&db, &owner, records).await }
                },
            )
        };
        Self {
            db,
            external,
            retry,
            owner,
            claims,
            successes,
        }
    }

    /// Processes the transaction once, whatever happens to the other deliveries of it.
    /// An `Err` is a database failure: nothing was lost, the delivery stays pending.
    pub async fn process(&self, transaction_id: &str) -> Result<Outcome> {
        let lease = self.external.delay + self.retry.lease_margin;
        loop {
            let claimed = self
                .claims
                .call(transaction_id.to_owned())
                .await
                .unwrap_or_else(|| {
                    Err(Error::Unavailable(
                        "the claim writers have stopped".to_owned(),
                    ))
                })?;
            let Some(claim) = claimed else {
                return self.why_not_claimed(transaction_id).await;
            };
            let attempt = claim.attempt;
            let record = AttemptRecord {
                transaction_id,
                owner: &self.owner,
                attempt,
                started_at: Utc::now(),
            };
            match self.external.call(transaction_id).await {
                Ok(()) => {
                    ::metrics::counter!(metrics::ATTEMPTS_TOTAL, "outcome" => "succeeded")
                        .increment(1);
                    let recorded = self
                        .finish(|_| async {
                            self.successes
                                .call((transaction_id.to_owned(), attempt, record.started_at))
                                .await
                                .unwrap_or_else(|| {
                                    Err(Error::Unavailable(
                                        "the success writers have stopped".to_owned(),
                                    ))
                                })
                        })
                        .await?;
                    if !recorded {
                        return Ok(Outcome::LeaseLost);
                    }
                    finished("PROCESSED", claim.created_at);
                    return Ok(Outcome::Processed { attempts: attempt });
                }
                Err(error) => {
                    ::metrics::counter!(metrics::ATTEMPTS_TOTAL, "outcome" => "failed")
                        .increment(1);
                    let last = attempt >= self.retry.max_attempts;
                    let backoff = self.retry.backoff(attempt);
                    tracing::warn!(%transaction_id, attempt, %error, last, "external call failed");
                    let recorded = self
                        .finish(|db| async {
                            Ok(repository::record_failure(
                                db,
                                &record,
                                &error,
                                last,
                                backoff + lease,
                            )
                            .await?)
                        })
                        .await?;
                    if !recorded {
                        return Ok(Outcome::LeaseLost);
                    }
                    if last {
                        finished("FAILED", claim.created_at);
                        return Ok(Outcome::Failed {
                            attempts: attempt,
                            error,
                        });
                    }
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Records an outcome, retrying briefly on a database error: the external call has
    /// been made, and redoing it because one UPDATE failed would call it twice.
    async fn finish<'a, F, Fut>(&'a self, record: F) -> Result<bool>
    where
        F: Fn(&'a DatabaseConnection) -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let mut pause = Duration::from_millis(100);
        for _ in 0..5 {
            match record(&self.db).await {
                Ok(recorded) => return Ok(recorded),
                Err(error) => {
                    tracing::warn!(%error, "recording the outcome failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        record(&self.db).await
    }

    /// Gives up every lease this worker holds, so other consumers may take over at once.
    pub async fn release_leases(&self) -> Result<u64> {
        Ok(repository::release_leases(&self.db, &self.owner).await?)
    }

    async fn why_not_claimed(&self, transaction_id: &str) -> Result<Outcome> {
        Ok(match repository::find(&self.db, transaction_id).await? {
            None => Outcome::Unknown,
            Some(stored) if stored.status == Status::Processing.as_str() => Outcome::HeldElsewhere,
            Some(_) => Outcome::AlreadyFinished,
        })
    }
}

/// One statement for a batch of claims; each id gets its claim, `None`, or the error.
async fn claim_batch(
    db: &DatabaseConnection,
    owner: &str,
    lease: Duration,
    ids: Vec<String>,
) -> Vec<Result<Option<Claim>>> {
    match repository::claim_many(db, &ids, owner, lease).await {
        Ok(claimed) => {
            let mut claimed: HashMap<String, Claim> = claimed.into_iter().collect();
            // `remove`: should an id appear twice, only its first caller holds the claim.
            ids.iter().map(|id| Ok(claimed.remove(id))).collect()
        }
        Err(error) => {
            let error = Error::from(error);
            ids.iter().map(|_| Err(error.duplicate())).collect()
        }
    }
}

/// One statement for a batch of successes; each gets whether it was recorded.
async fn success_batch(
    db: &DatabaseConnection,
    owner: &str,
    records: Vec<(String, u32, DateTime<Utc>)>,
) -> Vec<Result<bool>> {
    match repository::record_successes(db, owner, &records).await {
        Ok(recorded) => {
            let recorded: HashSet<String> = recorded.into_iter().collect();
            records
                .iter()
                .map(|(id, _, _)| Ok(recorded.contains(id)))
                .collect()
        }
        Err(error) => {
            let error = Error::from(error);
            records.iter().map(|_| Err(error.duplicate())).collect()
        }
    }
}

/// Counts a final status and how long the transaction took from creation.
fn finished(status: &'static str, created_at: chrono::DateTime<Utc>) {
    ::metrics::counter!(metrics::FINISHED_TOTAL, "status" => status).increment(1);
    let seconds = (Utc::now() - created_at).num_milliseconds() as f64 / 1_000.0;
    ::metrics::histogram!(metrics::CREATED_TO_FINISHED_SECONDS).record(seconds.max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            lease_margin: Duration::from_secs(1),
        };
        for _ in 0..100 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(3) <= Duration::from_millis(400));
            assert!(policy.backoff(30) <= Duration::from_secs(1));
        }
    }
}
