//! Processing what the consumer reads: claim each transaction (a lease on its row), make
//! the external call, record the outcome, acknowledge the entry; on failure retry with
//! exponential backoff and jitter, up to `max_attempts`, then FAILED. A heartbeat renews
//! every lease held (one row: this consumer's registration) and keeps the held entries'
//! idle time short, so nobody reclaims them while their holder lives.
//!
//! Waiting scales with memory, not with tasks: one scheduler task holds every waiting
//! transaction as a small record in a timer wheel (`scheduler`), and the database and
//! Redis work is done in batches as deadlines pass (`steps`).

mod heartbeat;
mod scheduler;
mod steps;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::sync::OwnedSemaphorePermit;

use crate::{db::consumers::Registration, external::ExternalCall, stream::settle::Settlement};

pub use scheduler::{STEP_WIND_DOWN, Scheduler};

/// How a transaction is retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
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

/// Everything the processing steps need, shared by the scheduler and its jobs.
pub struct Processing {
    pub db: DatabaseConnection,
    /// Acknowledgements, held entries and dead letters: the stream's side of settling.
    pub settlement: Settlement,
    /// This process's hold on its consumer name, the owner of its leases.
    pub registration: Registration,
    /// How long the leases outlive the last heartbeat (renewed every third of it).
    pub lease: Duration,
    pub external: ExternalCall,
    pub retry: RetryPolicy,
    /// How long in-flight work may go on after shutdown begins.
    pub shutdown_grace: Duration,
}

/// One stream entry handed to processing. Small on purpose: up to `MAX_IN_FLIGHT` of
/// them wait out their delay at once.
#[derive(Debug)]
pub struct Delivery {
    pub entry_id: Box<str>,
    pub transaction_id: Arc<str>,
    /// The webhook's request id, for the logs and the external call.
    pub request_id: Option<Box<str>>,
    /// False when the entry may be another live holder's own (claimed from it with
    /// XAUTOCLAIM, or ours from an earlier attempt): then a transaction found held
    /// elsewhere leaves it pending instead of acknowledging it.
    pub fresh: bool,
    /// Held until this delivery is settled: the consumer reads no further than its
    /// in-flight bound, so reaching the bound slows reading and never drops work.
    pub slot: OwnedSemaphorePermit,
}

/// What handling one delivery did, for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This delivery moved it to PROCESSED.
    Processed,
    /// Every attempt failed: it is now FAILED.
    Failed,
    /// It was already finished (a redelivery): nothing was done again.
    AlreadyFinished,
    /// Another live consumer holds it: that one will finish it.
    HeldElsewhere,
    /// Our lease lapsed mid-way and another consumer took over; we recorded nothing.
    LeaseLost,
    /// No such transaction in PostgreSQL: nothing to do.
    Unknown,
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
        };
        for _ in 0..100 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(3) <= Duration::from_millis(400));
            assert!(policy.backoff(30) <= Duration::from_secs(1));
        }
    }
}
