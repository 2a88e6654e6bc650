//! The scheduler: one task that holds every transaction this consumer is working on as a
//! record in a timer wheel (`DelayQueue`), and starts a batched step (`steps`) whenever
//! deliveries arrive or deadlines pass. Memory grows with the number waiting, a few
//! hundred bytes each; tasks and database round trips grow with batches, not with
//! transactions.

use std::{
    collections::{HashMap, HashSet},
    future::{Future, poll_fn},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::{JoinHandle, JoinSet},
    time::Instant,
};
use tokio_util::time::DelayQueue;

use super::{
    Delivery, Processing,
    steps::{self, Call, Claimed, StepResult, Timer},
};
use crate::{db::repository, external::CallResult, metrics, stream::settle};

/// Most transactions one step takes: one statement and one round trip for them all.
const STEP_BATCH: usize = 512;
/// Steps running at once; each holds a database connection while it runs. When all are
/// busy, expired timers simply wait and the next step takes more of them.
const CONCURRENT_STEPS: usize = 4;
/// After the grace period, how long steps already running may take to end.
const STEP_WIND_DOWN: Duration = Duration::from_secs(5);

/// The consumer's handle on the scheduler.
pub struct Scheduler {
    admissions: mpsc::Sender<Delivery>,
    running: JoinHandle<()>,
}

impl Scheduler {
    pub fn start(processing: Processing) -> Self {
        let (admissions, received) = mpsc::channel(STEP_BATCH * 2);
        let running = tokio::spawn(
            State {
                processing: Arc::new(processing),
                timers: DelayQueue::new(),
                handling: HashSet::new(),
                steps: JoinSet::new(),
                step_ids: HashMap::new(),
                calls: JoinSet::new(),
                call_ids: HashMap::new(),
            }
            .run(received),
        );
        Self {
            admissions,
            running,
        }
    }

    /// Hands one delivery in. Waits only while the scheduler is catching up.
    pub async fn admit(&self, delivery: Delivery) {
        if self.admissions.send(delivery).await.is_err() {
            // The scheduler stopped; the entry stays pending for a later delivery.
            tracing::warn!("the scheduler has stopped; leaving the entry pending");
        }
    }

    /// Stops admitting and lets the work in hand finish within the grace period; what
    /// is left then stays pending in the group, its leases released for other consumers.
    pub async fn finish(self) {
        drop(self.admissions);
        if let Err(error) = self.running.await {
            tracing::error!(%error, "the scheduler panicked");
        }
    }
}

struct State {
    processing: Arc<Processing>,
    timers: DelayQueue<Timer>,
    /// Transactions handled here, so a second delivery of one (a duplicate entry, or an
    /// entry of ours claimed back) does not start a second run.
    handling: HashSet<Arc<str>>,
    steps: JoinSet<StepResult>,
    /// The transactions each running step holds, released should the step panic.
    step_ids: HashMap<tokio::task::Id, Vec<Arc<str>>>,
    /// HTTP calls under way, one task each (a real call is a connection, not a timer).
    calls: JoinSet<(Claimed, CallResult)>,
    /// The transaction of each call, released should the call's task panic.
    call_ids: HashMap<tokio::task::Id, Arc<str>>,
}

impl State {
    async fn run(mut self, mut admissions: mpsc::Receiver<Delivery>) {
        let mut admitting = true;
        let mut grace_ends: Option<Instant> = None;
        let mut received = Vec::with_capacity(STEP_BATCH);
        loop {
            if !admitting
                && self.timers.is_empty()
                && self.steps.is_empty()
                && self.calls.is_empty()
            {
                return;
            }
            let room = self.steps.len() < CONCURRENT_STEPS;
            tokio::select! {
                biased;
                // Finished steps first: they free room and start timers.
                Some(done) = self.steps.join_next_with_id(), if !self.steps.is_empty() => {
                    self.absorb(done);
                }
                due = take_expired(&mut self.timers), if room && !self.timers.is_empty() => {
                    self.start_due(due);
                }
                Some(ended) = self.calls.join_next_with_id(), if room && !self.calls.is_empty() => {
                    self.record_calls(ended);
                }
                count = admissions.recv_many(&mut received, STEP_BATCH), if room && admitting => {
                    if count == 0 {
                        admitting = false;
                        grace_ends = Some(Instant::now() + self.processing.shutdown_grace);
                        tracing::info!(in_flight = self.handling.len(), "consumer stopping; letting in-flight work finish");
                    } else {
                        self.admit(std::mem::take(&mut received));
                    }
                }
                () = sleep_until(grace_ends) => {
                    self.abandon().await;
                    return;
                }
            }
            ::metrics::gauge!(metrics::IN_FLIGHT).set(self.handling.len() as f64);
        }
    }

    fn admit(&mut self, deliveries: Vec<Delivery>) {
        let (fresh, repeats): (Vec<Delivery>, Vec<Delivery>) = deliveries
            .into_iter()
            .partition(|delivery| self.handling.insert(delivery.transaction_id.clone()));
        if !repeats.is_empty() {
            // The run already under way here will finish each of them.
            let processing = self.processing.clone();
            self.steps.spawn(async move {
                let entry_ids: Vec<&str> = repeats.iter().map(|d| &*d.entry_id).collect();
                settle::acknowledge(&processing.redis, &processing.names, &entry_ids).await;
                for delivery in &repeats {
                    tracing::info!(transaction_id = %delivery.transaction_id, entry_id = %delivery.entry_id, "repeat delivery of a transaction in hand; acknowledged");
                }
                StepResult::default()
            });
        }
        self.claim(fresh);
    }

    fn start_due(&mut self, due: Vec<Timer>) {
        let mut calls_ended: Vec<(Claimed, CallResult)> = Vec::new();
        let mut retries: Vec<Delivery> = Vec::new();
        for timer in due {
            match timer {
                Timer::CallEnds(claimed, result) => calls_ended.push((claimed, result)),
                Timer::RetryDue(delivery) => retries.push(delivery),
            }
        }
        self.finish(calls_ended);
        self.claim(retries);
    }

    /// Takes the HTTP call that ended and every other that has, up to one step's worth,
    /// and records them in one step.
    fn record_calls(
        &mut self,
        first: Result<(tokio::task::Id, (Claimed, CallResult)), tokio::task::JoinError>,
    ) {
        let mut ended = Vec::new();
        let mut next = Some(first);
        while let Some(call) = next.take() {
            match call {
                Ok((id, call)) => {
                    self.call_ids.remove(&id);
                    ended.push(call);
                }
                Err(error) => {
                    // Its entry stays pending and is delivered again.
                    tracing::error!(%error, "an external call's task failed; its entry stays pending");
                    if let Some(transaction_id) = self.call_ids.remove(&error.id()) {
                        self.handling.remove(&transaction_id);
                    }
                }
            }
            if ended.len() < STEP_BATCH {
                next = self.calls.try_join_next_with_id();
            }
        }
        self.finish(ended);
    }

    fn finish(&mut self, ended: Vec<(Claimed, CallResult)>) {
        if ended.is_empty() {
            return;
        }
        let ids = ended
            .iter()
            .map(|(c, _)| c.delivery.transaction_id.clone())
            .collect();
        let processing = self.processing.clone();
        self.spawn(ids, async move { steps::finish(&processing, ended).await });
    }

    fn start_call(&mut self, call: Call) {
        let transaction_id = call.claimed.delivery.transaction_id.clone();
        let handle = self.calls.spawn(call.run());
        self.call_ids.insert(handle.id(), transaction_id);
    }

    fn claim(&mut self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let ids = deliveries
            .iter()
            .map(|d| d.transaction_id.clone())
            .collect();
        let processing = self.processing.clone();
        self.spawn(
            ids,
            async move { steps::claim(&processing, deliveries).await },
        );
    }

    fn spawn(
        &mut self,
        ids: Vec<Arc<str>>,
        step: impl Future<Output = StepResult> + Send + 'static,
    ) {
        let handle = self.steps.spawn(step);
        self.step_ids.insert(handle.id(), ids);
    }

    fn absorb(&mut self, done: Result<(tokio::task::Id, StepResult), tokio::task::JoinError>) {
        match done {
            Ok((id, result)) => {
                self.step_ids.remove(&id);
                for (timer, delay) in result.wait {
                    self.timers.insert(timer, delay);
                }
                for call in result.calls {
                    self.start_call(call);
                }
                for transaction_id in result.released {
                    self.handling.remove(&transaction_id);
                }
            }
            Err(error) => {
                // Its deliveries are dropped unacknowledged: they stay pending and are
                // delivered again, so they must not be mistaken for work in hand.
                tracing::error!(%error, "a processing step failed; its entries stay pending");
                for transaction_id in self.step_ids.remove(&error.id()).unwrap_or_default() {
                    self.handling.remove(&transaction_id);
                }
            }
        }
    }

    /// The grace period is over: steps already running may end, the rest is left pending
    /// in the group and its leases released so other consumers take it over at once.
    async fn abandon(&mut self) {
        let waiting = self.timers.len() + self.calls.len();
        self.timers.clear();
        self.calls.abort_all();
        if tokio::time::timeout(STEP_WIND_DOWN, async {
            while self.steps.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            self.steps.abort_all();
        }
        match repository::release_leases(&self.processing.db, self.processing.owner()).await {
            Ok(released) => tracing::warn!(
                waiting,
                released,
                "grace period over; unfinished transactions released for other consumers"
            ),
            Err(error) => tracing::warn!(
                waiting,
                %error,
                "grace period over; releasing leases failed, they will expire"
            ),
        }
    }
}

/// Every timer that has expired, up to one step's worth; pending while none has.
async fn take_expired(timers: &mut DelayQueue<Timer>) -> Vec<Timer> {
    poll_fn(|context| {
        let mut due = Vec::new();
        while due.len() < STEP_BATCH {
            match timers.poll_expired(context) {
                Poll::Ready(Some(expired)) => due.push(expired.into_inner()),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if due.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(due)
        }
    })
    .await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
