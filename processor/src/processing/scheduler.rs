//! The scheduler: one task that holds every transaction this consumer is working on and
//! starts a batched step (`steps`) whenever deliveries arrive, calls end or backoffs pass.
//! A simulated call is a record in a timer wheel (`DelayQueue`), a few hundred bytes; an
//! HTTP call is a task; database round trips grow with batches, not with transactions.
//!
//! On shutdown it admits nothing more and starts no new call: transactions backing off
//! are let go at once (their entries stay pending), the calls under way finish and are
//! recorded, and the heartbeat keeps their leases until then. Only past the grace are
//! calls cut; a cut call is made again elsewhere, with the same idempotency key.

use std::{
    collections::{HashMap, HashSet},
    future::{Future, poll_fn},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::{AbortHandle, JoinHandle, JoinSet},
    time::{Instant, MissedTickBehavior},
};
use tokio_util::{sync::CancellationToken, time::DelayQueue};

use super::{
    Delivery, Processing,
    heartbeat::{self, Held},
    steps::{self, Call, Claimed, StepResult},
};
use crate::{
    db::{consumers, repository},
    external::CallResult,
    metrics,
};

/// Most transactions one step takes: one statement and one round trip for them all.
const STEP_BATCH: usize = 512;
/// Entries are kept fresh every this many heartbeats, not at each one. Beats come every
/// third of the lease, and XAUTOCLAIM elsewhere takes entries idle a whole lease, so an
/// entry is at most two beats idle when it is refreshed: one beat to spare. Refreshing at
/// every beat cost one XCLAIM per held entry every few seconds, the most Redis work per
/// webhook under a 30 s delay (BENCHMARKS.md, issue 19).
const KEEP_FRESH_EVERY: u32 = 2;
/// Steps running at once; each holds a database connection while it runs. When all are
/// busy, expired timers simply wait and the next step takes more of them.
const CONCURRENT_STEPS: usize = 4;
/// After the grace period, how long steps already running may take to end.
pub const STEP_WIND_DOWN: Duration = Duration::from_secs(5);

/// The consumer's handle on the scheduler.
pub struct Scheduler {
    admissions: mpsc::Sender<Delivery>,
    running: JoinHandle<()>,
}

impl Scheduler {
    /// Starts it; `shutdown` is cancelled should this consumer find its name taken.
    pub fn start(processing: Processing, shutdown: CancellationToken) -> Self {
        let (admissions, received) = mpsc::channel(STEP_BATCH * 2);
        let running = tokio::spawn(
            State {
                processing: Arc::new(processing),
                simulated: DelayQueue::new(),
                backoffs: DelayQueue::new(),
                handling: HashMap::new(),
                lost: HashSet::new(),
                steps: JoinSet::new(),
                step_ids: HashMap::new(),
                calls: JoinSet::new(),
                call_ids: HashMap::new(),
                call_aborts: HashMap::new(),
                beats: 0,
                shutdown,
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

    /// Stops admitting and lets the calls under way finish within the grace period;
    /// what is left then stays pending in the group, its leases released.
    pub async fn finish(self) {
        drop(self.admissions);
        if let Err(error) = self.running.await {
            tracing::error!(%error, "the scheduler panicked");
        }
    }
}

/// A transaction in hand.
struct InHand {
    /// The entry it was delivered by.
    entry: Box<str>,
    /// Further entries naming it (a duplicate publication, our own entry claimed back):
    /// acknowledged with it once it is settled.
    repeats: Vec<Box<str>>,
    phase: Phase,
    /// The heartbeat (`State::beats`) that last reset its entries' idle time, or the one
    /// under way when it was delivered (a delivery resets it too).
    kept_fresh_at: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Being claimed: no lease yet, or (a retry) the lease kept through the backoff.
    Claiming,
    /// Its call is under way.
    Calling,
    /// Waiting out a backoff before its next attempt, the lease kept.
    BackingOff,
}

struct State {
    processing: Arc<Processing>,
    /// Simulated calls, each ending with its result after its delay.
    simulated: DelayQueue<(Claimed, CallResult)>,
    /// Failed transactions waiting out their backoff.
    backoffs: DelayQueue<Delivery>,
    /// Transactions handled here, so a second delivery of one (a duplicate entry, or an
    /// entry of ours claimed back) does not start a second run.
    handling: HashMap<Arc<str>, InHand>,
    /// Transactions whose lease was taken over while a timer of theirs waits: dropped
    /// when it fires, with nothing recorded.
    lost: HashSet<Arc<str>>,
    steps: JoinSet<StepResult>,
    /// The transactions each running step holds, released should the step panic.
    step_ids: HashMap<tokio::task::Id, Vec<Arc<str>>>,
    /// HTTP calls under way, one task each (a real call is a connection, not a timer).
    calls: JoinSet<(Claimed, CallResult)>,
    /// The transaction of each call, released should the call's task fail.
    call_ids: HashMap<tokio::task::Id, Arc<str>>,
    /// How to stop a call whose lease was lost.
    call_aborts: HashMap<Arc<str>, AbortHandle>,
    /// Heartbeats started so far (wrapping).
    beats: u32,
    shutdown: CancellationToken,
}

impl State {
    async fn run(mut self, mut admissions: mpsc::Receiver<Delivery>) {
        let mut admitting = true;
        let mut grace_ends: Option<Instant> = None;
        let mut received = Vec::with_capacity(STEP_BATCH);
        let mut heartbeat = tokio::time::interval(self.processing.lease / 3);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut beating: Option<JoinHandle<StepResult>> = None;
        loop {
            if !admitting && self.handling.is_empty() && self.steps.is_empty() {
                break;
            }
            let room = self.steps.len() < CONCURRENT_STEPS;
            tokio::select! {
                biased;
                // Finished steps first: they free room and start timers.
                Some(done) = self.steps.join_next_with_id(), if !self.steps.is_empty() => {
                    self.absorb(done);
                }
                beat = wait_for(&mut beating), if beating.is_some() => {
                    beating = None;
                    match beat {
                        Ok(result) => self.absorb_heartbeat(result),
                        Err(error) => tracing::error!(%error, "the heartbeat failed"),
                    }
                }
                _ = heartbeat.tick(), if beating.is_none() => {
                    let processing = self.processing.clone();
                    let held = self.held();
                    beating = Some(tokio::spawn(async move { heartbeat::beat(&processing, held).await }));
                }
                due = take_expired(&mut self.simulated), if room && !self.simulated.is_empty() => {
                    self.calls_ended(due);
                }
                Some(ended) = self.calls.join_next_with_id(), if room && !self.calls.is_empty() => {
                    self.record_calls(ended);
                }
                due = take_expired(&mut self.backoffs), if room && !self.backoffs.is_empty() => {
                    self.retry(due);
                }
                count = admissions.recv_many(&mut received, STEP_BATCH), if room && admitting => {
                    if count == 0 {
                        admitting = false;
                        grace_ends = Some(Instant::now() + self.processing.shutdown_grace);
                        self.let_backoffs_go();
                        tracing::info!(in_flight = self.handling.len(), "consumer stopping; letting the calls under way finish");
                    } else {
                        self.admit(std::mem::take(&mut received));
                    }
                }
                () = sleep_until(grace_ends) => {
                    self.abandon().await;
                    break;
                }
            }
            ::metrics::gauge!(metrics::IN_FLIGHT).set(self.handling.len() as f64);
        }
        if let Some(beating) = beating {
            beating.abort();
        }
        self.stop().await;
    }

    fn admit(&mut self, deliveries: Vec<Delivery>) {
        let mut fresh = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match self.handling.get_mut(&delivery.transaction_id) {
                // The run already under way here settles it too; until then it is kept
                // fresh with the run's own entry.
                Some(in_hand) => {
                    if *in_hand.entry != *delivery.entry_id
                        && !in_hand.repeats.contains(&delivery.entry_id)
                    {
                        in_hand.repeats.push(delivery.entry_id.clone());
                    }
                    tracing::info!(transaction_id = %delivery.transaction_id, entry_id = %delivery.entry_id, "repeat delivery of a transaction in hand; settled with it");
                }
                None => {
                    self.handling.insert(
                        delivery.transaction_id.clone(),
                        InHand {
                            entry: delivery.entry_id.clone(),
                            repeats: Vec::new(),
                            phase: Phase::Claiming,
                            kept_fresh_at: self.beats,
                        },
                    );
                    fresh.push(delivery);
                }
            }
        }
        self.claim(fresh);
    }

    /// Transactions whose lease was lost while they waited are dropped here.
    fn still_ours(&mut self, transaction_id: &Arc<str>) -> bool {
        if self.lost.remove(transaction_id) {
            self.handling.remove(transaction_id);
            tracing::warn!(%transaction_id, "lease lost to another consumer; nothing recorded");
            false
        } else {
            true
        }
    }

    fn calls_ended(&mut self, ended: Vec<(Claimed, CallResult)>) {
        let ended = ended
            .into_iter()
            .filter(|(claimed, _)| self.still_ours(&claimed.delivery.transaction_id))
            .collect();
        self.finish(ended);
    }

    fn retry(&mut self, due: Vec<Delivery>) {
        let due: Vec<Delivery> = due
            .into_iter()
            .filter(|delivery| self.still_ours(&delivery.transaction_id))
            .collect();
        for delivery in &due {
            self.set_phase(&delivery.transaction_id, Phase::Claiming);
        }
        self.claim(due);
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
                    self.call_aborts.remove(&call.0.delivery.transaction_id);
                    ended.push(call);
                }
                Err(error) => {
                    if let Some(transaction_id) = self.call_ids.remove(&error.id()) {
                        self.call_aborts.remove(&transaction_id);
                        self.handling.remove(&transaction_id);
                        if error.is_cancelled() {
                            tracing::warn!(%transaction_id, "call stopped: the lease was lost to another consumer; nothing recorded");
                        } else {
                            tracing::error!(%transaction_id, %error, "an external call's task failed; its entry stays pending");
                        }
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

    fn start_call(&mut self, call: Call) {
        let transaction_id = call.claimed.delivery.transaction_id.clone();
        let handle = self.calls.spawn(call.run());
        self.call_ids.insert(handle.id(), transaction_id.clone());
        self.call_aborts.insert(transaction_id, handle);
    }

    fn spawn(
        &mut self,
        ids: Vec<Arc<str>>,
        step: impl Future<Output = StepResult> + Send + 'static,
    ) {
        let handle = self.steps.spawn(step);
        self.step_ids.insert(handle.id(), ids);
    }

    fn set_phase(&mut self, transaction_id: &str, phase: Phase) {
        if let Some(in_hand) = self.handling.get_mut(transaction_id) {
            in_hand.phase = phase;
        }
    }

    fn absorb(&mut self, done: Result<(tokio::task::Id, StepResult), tokio::task::JoinError>) {
        match done {
            Ok((id, result)) => {
                self.step_ids.remove(&id);
                self.apply(result);
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

    fn apply(&mut self, result: StepResult) {
        for (claimed, outcome, delay) in result.simulated {
            self.set_phase(&claimed.delivery.transaction_id, Phase::Calling);
            self.simulated.insert((claimed, outcome), delay);
        }
        for call in result.calls {
            self.set_phase(&call.claimed.delivery.transaction_id, Phase::Calling);
            self.start_call(call);
        }
        for (delivery, backoff) in result.retries {
            self.set_phase(&delivery.transaction_id, Phase::BackingOff);
            self.backoffs.insert(delivery, backoff);
        }
        for transaction_id in result.released {
            self.handling.remove(&transaction_id);
        }
        let mut repeats: Vec<Box<str>> = Vec::new();
        for transaction_id in result.acknowledged {
            if let Some(in_hand) = self.handling.remove(&transaction_id) {
                repeats.extend(in_hand.repeats);
            }
        }
        if !repeats.is_empty() {
            let processing = self.processing.clone();
            self.steps.spawn(async move {
                let entry_ids: Vec<&str> = repeats.iter().map(|e| &**e).collect();
                processing.settlement.acknowledge(&entry_ids).await;
                StepResult::default()
            });
        }
    }

    /// What the next heartbeat renews (every transaction in hand) and keeps fresh (the
    /// entries last kept fresh `KEEP_FRESH_EVERY` beats ago or more).
    fn held(&mut self) -> Vec<Held> {
        self.beats = self.beats.wrapping_add(1);
        let beat = self.beats;
        self.handling
            .iter_mut()
            .map(|(transaction_id, in_hand)| {
                let stale = beat.wrapping_sub(in_hand.kept_fresh_at) >= KEEP_FRESH_EVERY;
                let entries = if stale {
                    in_hand.kept_fresh_at = beat;
                    std::iter::once(in_hand.entry.clone())
                        .chain(in_hand.repeats.iter().cloned())
                        .collect()
                } else {
                    Vec::new()
                };
                Held {
                    transaction_id: transaction_id.clone(),
                    leased: in_hand.phase != Phase::Claiming,
                    entries,
                }
            })
            .collect()
    }

    fn absorb_heartbeat(&mut self, result: StepResult) {
        for transaction_id in result.lost {
            match self.call_aborts.remove(&transaction_id) {
                // Its task ends as cancelled and is let go then.
                Some(call) => call.abort(),
                None => {
                    if self.handling.contains_key(&transaction_id) {
                        self.lost.insert(transaction_id);
                    }
                }
            }
        }
        if result.identity_lost {
            self.shutdown.cancel();
        }
        if result.keep_all_fresh_next {
            // Paused or cut off past the lease (entries may have been taken meanwhile), or
            // not renewed (none kept fresh): the next beat takes every one back.
            let stale = self.beats.wrapping_sub(KEEP_FRESH_EVERY);
            for in_hand in self.handling.values_mut() {
                in_hand.kept_fresh_at = stale;
            }
        }
    }

    /// Shutdown: a transaction waiting out a backoff starts no new call; it is let go now,
    /// its entry pending for another consumer, its lease released when this one stops.
    fn let_backoffs_go(&mut self) {
        self.handling
            .retain(|_, in_hand| in_hand.phase != Phase::BackingOff);
        self.backoffs.clear();
    }

    /// The grace period is over: steps already running may end, the calls still under way
    /// are cut (their entries stay pending; another consumer calls again, with the same
    /// idempotency key, and counts the repeat).
    async fn abandon(&mut self) {
        let cut = self.simulated.len() + self.calls.len();
        self.simulated.clear();
        self.backoffs.clear();
        self.calls.abort_all();
        if tokio::time::timeout(STEP_WIND_DOWN, async {
            while self.steps.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            self.steps.abort_all();
        }
        tracing::warn!(
            cut,
            "grace period over; calls still under way were cut and are left for other consumers"
        );
    }

    /// Gives up what is left: the leases of transactions not finished here, and the name.
    async fn stop(&self) {
        let processing = &self.processing;
        match repository::release_leases(&processing.db, &processing.registration).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(
                released,
                "unfinished transactions released for other consumers"
            ),
            Err(error) => {
                tracing::warn!(%error, "releasing leases failed; they lapse with the registration")
            }
        }
        if let Err(error) = consumers::deregister(&processing.db, &processing.registration).await {
            tracing::warn!(%error, "giving up the consumer name failed; it lapses");
        }
    }
}

/// Every timer that has expired, up to one step's worth; pending while none has.
async fn take_expired<T>(timers: &mut DelayQueue<T>) -> Vec<T> {
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

async fn wait_for<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
