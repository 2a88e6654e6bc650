//! Processing one transaction: the slow external call (simulated by a delay), then the
//! status change. Knows nothing of Redis or gRPC.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::{db::repository, domain::Status, error::Result};

#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    delay: Duration,
}

/// What handling one delivery of a transaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This delivery moved it to PROCESSED.
    Processed,
    /// It was already finished (a redelivery): nothing was done again.
    AlreadyFinished,
    /// No such transaction in PostgreSQL: nothing to do.
    Unknown,
}

impl Worker {
    pub fn new(db: DatabaseConnection, delay: Duration) -> Self {
        Self { db, delay }
    }

    pub async fn process(&self, transaction_id: &str) -> Result<Outcome> {
        let Some(stored) = repository::find(&self.db, transaction_id).await? else {
            return Ok(Outcome::Unknown);
        };
        if stored.status != Status::Processing.as_str() {
            return Ok(Outcome::AlreadyFinished);
        }
        // The external call: a wait, not a busy worker, so thousands can wait at once.
        tokio::time::sleep(self.delay).await;
        Ok(
            if repository::mark_processed(&self.db, transaction_id).await? {
                Outcome::Processed
            } else {
                Outcome::AlreadyFinished
            },
        )
    }
}
