//! The slow external call that processing a transaction stands for: a delay, and a
//! failure when configured (a share of calls, or ids with a given prefix) so retries,
//! FAILED and the dead-letter stream can be seen working.
//!
//! The call is modelled as its delay: the scheduler (`processing`) waits it out as one
//! timer among many, then asks for the call's result. No task sits per waiting call.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ExternalCall {
    pub delay: Duration,
    pub failure_rate: f64,
    pub failing_id_prefix: Option<String>,
}

impl ExternalCall {
    /// The result of a call for `transaction_id` whose delay has passed.
    pub fn result(&self, transaction_id: &str) -> Result<(), String> {
        if self
            .failing_id_prefix
            .as_deref()
            .is_some_and(|prefix| transaction_id.starts_with(prefix))
        {
            return Err("simulated failure: the id matches SIMULATED_FAILURE_ID_PREFIX".to_owned());
        }
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return Err("simulated failure (SIMULATED_FAILURE_RATE)".to_owned());
        }
        Ok(())
    }
}
