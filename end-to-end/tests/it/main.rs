//! End-to-end tests: the real gateway and the real processor, both on port 0, over real
//! HTTP and gRPC, against real PostgreSQL and Redis. Each test owns its database and stream.
// A test that cannot set up or whose call fails panics: that is the failure report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod helpers;

mod access;
mod cloud_run;
mod hang_ups;
mod health;
mod openapi;
mod operations;
mod overload;
mod python_service;
mod schemathesis;
mod signature_cost;
mod signatures;
mod slow_peers;
mod tls;
mod transactions;
mod validation;
mod webhooks;
