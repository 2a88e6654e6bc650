//! Test fixtures, shared by the processor's and the gateway's tests. Only tests depend on
//! this crate, and it depends on no binary of the workspace: a test crate starts its
//! processor itself (`processor::build`) and hands it to [`RunningProcessor::spawn`].
//! A fixture that cannot set up panics: that is the test failing.
#![allow(clippy::expect_used)]

mod calls;
mod database;
mod invariants;
mod metrics;
mod polling;
mod processes;
pub mod python_service;
mod running;
mod setup;
pub mod tls;

pub use calls::{request, unique_id};
pub use database::{TEST_DATABASE_PREFIX, admin_database_url, create_database};
pub use invariants::{
    assert_each_accepted_finished_exactly_once, count_by_status, settle, successful_attempts,
};
pub use metrics::metric;
pub use polling::eventually;
pub use processes::{PostgresCluster, RedisServer, free_port};
pub use running::RunningProcessor;
pub use setup::{Setup, redis_url};
pub use tls::redis_client_config;
