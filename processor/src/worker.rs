//! Processing one transaction: claim it, make the external call, record the outcome;
//! on failure retry with exponential backoff and jitter, up to `max_attempts`, then FAILED.
//! Knows nothing of Redis or gRPC.

use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;

use crate::{
    db::repository::{self, AttemptRecord},
    domain::Status,
    error::Result,
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

#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    external: ExternalCall,
    retry: RetryPolicy,
    /// Lease holder name: the consumer's.
    owner: String,
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
        Self {
            db,
            external,
            retry,
            owner,
        }
    }

    /// Processes the transaction once, whatever happens to the other deliveries of it.
    /// An `Err` is a database failure: nothing was lost, the delivery stays pending.
    pub async fn process(&self, transaction_id: &str) -> Result<Outcome> {
        let lease = self.external.delay + self.retry.lease_margin;
        loop {
            let Some(claim) =
                repository::claim(&self.db, transaction_id, &self.owner, lease).await?
            else {
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
                        .finish(|db| repository::record_success(db, &record))
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
                        .finish(|db| {
                            repository::record_failure(db, &record, &error, last, backoff + lease)
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
        Fut: std::future::Future<Output = std::result::Result<bool, sea_orm::DbErr>>,
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
        Ok(record(&self.db).await?)
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
