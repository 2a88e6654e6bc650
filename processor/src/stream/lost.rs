//! The signal that the stream may lack entries for transactions committed before a given
//! moment: the group had to be made anew (a new stream, a Redis that lost its data), or
//! Redis was away and has answered again. The outbox then publishes every unfinished
//! transaction committed before that moment, and none committed after it: those were
//! published by their own ingest into the stream as it is now, and a second entry each
//! would only be work for nothing.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

#[derive(Default)]
pub struct StreamLost {
    /// The latest moment signalled and not yet taken: the later one covers more rows.
    before: Mutex<Option<DateTime<Utc>>>,
    notify: Notify,
}

impl StreamLost {
    /// Transactions committed before `before` may have no entry in the stream.
    pub fn signal(&self, before: DateTime<Utc>) {
        let mut pending = self.before.lock().unwrap_or_else(PoisonError::into_inner);
        *pending = Some(pending.map_or(before, |earlier| earlier.max(before)));
        drop(pending);
        self.notify.notify_one();
    }

    /// Waits for a signal and takes its moment.
    pub async fn wait(&self) -> DateTime<Utc> {
        loop {
            self.notify.notified().await;
            let taken = self
                .before
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(before) = taken {
                return before;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_sent_before_the_wait_is_kept_and_the_later_of_two_wins() {
        let lost = StreamLost::default();
        let (earlier, later) = (Utc::now(), Utc::now() + chrono::Duration::seconds(5));
        lost.signal(later);
        lost.signal(earlier);
        let taken = tokio::time::timeout(Duration::from_secs(1), lost.wait()).await;
        assert_eq!(taken.ok(), Some(later));
        // Taken once: no second wake-up for the same signals.
        let again = tokio::time::timeout(Duration::from_millis(100), lost.wait()).await;
        assert!(again.is_err(), "woken again by a signal already taken");
    }
}
