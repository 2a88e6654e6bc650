//! The heartbeat: while a consumer works, it renews its registration (and with it every
//! lease it holds) every third of a lease, and keeps the entries it holds fresh (those the
//! scheduler names: each at every other beat). A
//! heartbeat that finds the registration had lapsed (the process was paused, or cut off
//! from PostgreSQL, past the lease) checks which leases are still its own: the others were
//! taken over, and their work stops without recording anything.

use std::{collections::HashSet, sync::Arc};

use super::{Processing, steps::StepResult};
use crate::db::{
    consumers::{self, Renewal},
    repository,
};

/// One transaction in hand, as the heartbeat sees it.
pub(super) struct Held {
    pub(super) transaction_id: Arc<str>,
    /// Whether it has been claimed (a call or a backoff under way), so holds a lease.
    pub(super) leased: bool,
    /// Its entries to keep fresh at this beat (the one it was delivered by, and any
    /// repeats), or none when they were kept fresh at the one before.
    pub(super) entries: Vec<Box<str>>,
}

pub(super) async fn beat(processing: &Processing, held: Vec<Held>) -> StepResult {
    let mut result = StepResult::default();
    let renewal =
        consumers::renew(&processing.db, &processing.registration, processing.lease).await;
    let lost: HashSet<Arc<str>> = match renewal {
        Ok(Renewal::Renewed) => HashSet::new(),
        Ok(Renewal::RenewedAfterLapse) => {
            result.keep_all_fresh_next = true;
            let leased: Vec<String> = held
                .iter()
                .filter(|h| h.leased)
                .map(|h| h.transaction_id.to_string())
                .collect();
            match repository::held_by(&processing.db, &leased, &processing.registration).await {
                Ok(still) => {
                    let still: HashSet<String> = still.into_iter().collect();
                    let lost: HashSet<Arc<str>> = held
                        .iter()
                        .filter(|h| h.leased && !still.contains(&*h.transaction_id))
                        .map(|h| h.transaction_id.clone())
                        .collect();
                    tracing::warn!(
                        lost = lost.len(),
                        kept = still.len(),
                        "the registration had lapsed (paused or cut off past the lease); leases taken over meanwhile are given up"
                    );
                    lost
                }
                Err(error) => {
                    // Finishing checks the lease again, so nothing is recorded twice.
                    tracing::warn!(%error, "cannot tell which leases survived the lapse");
                    HashSet::new()
                }
            }
        }
        Ok(Renewal::Lost) => {
            tracing::error!(consumer = %processing.registration.name, "another process has taken this consumer name after it lapsed; giving up every lease and stopping");
            result.identity_lost = true;
            result.lost = held.into_iter().map(|h| h.transaction_id).collect();
            return result;
        }
        Err(error) => {
            // Not renewed: the entries are left to idle, so that should this consumer be cut
            // off for good, others take its work over once the leases lapse.
            tracing::warn!(%error, "renewing the leases failed; retrying at the next heartbeat");
            result.keep_all_fresh_next = true;
            return result;
        }
    };
    let entries: Vec<&str> = held
        .iter()
        .filter(|h| !lost.contains(&h.transaction_id))
        .flat_map(|h| h.entries.iter().map(|e| &**e))
        .collect();
    processing.settlement.keep_pending(&entries).await;
    result.lost = lost.into_iter().collect();
    result
}
