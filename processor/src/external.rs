//! The slow external call that processing a transaction stands for: a delay, and a
//! failure when configured (a share of calls, or ids with a given prefix) so retries,
//! FAILED and the dead-letter stream can be seen working.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ExternalCall {
    pub delay: Duration,
    pub failure_rate: f64,
    pub failing_id_prefix: Option<String>,
}

impl ExternalCall {
    /// Waits the delay (a timer, not a busy worker), then succeeds or fails.
    pub async fn call(&self, transaction_id: &str) -> Result<(), String> {
        tokio::time::sleep(self.delay).await;
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
