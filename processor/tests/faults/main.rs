//! Fault tests: the real `processor` binary, killed, restarted and deprived of Redis or
//! PostgreSQL for real. Each test ends with SPEC's guarantee: every accepted transaction
//! is stored and ends PROCESSED or FAILED, processed exactly once, and no other row
//! appeared. Tests that stop a service run their own instance on a free port.
// A test that cannot set up or whose call fails panics: that is the failure report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod downstream;
mod helpers;
mod redis_cluster;
mod senders;

mod anomalies;
mod cluster;
mod consumers;
mod contention;
mod external_calls;
mod failover;
mod postgres;
mod redis;
mod repeats;
mod retries;
