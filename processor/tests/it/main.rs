//! Processor integration tests: the real gRPC server and consumer, on port 0, against real
//! PostgreSQL and Redis. Each test owns a fresh database and its own stream and group.
// A test that cannot set up or whose call fails panics: that is the failure report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod helpers;

mod consumer;
mod grpc_api;
mod grpcurl;
mod heroku;
mod ingest;
mod observability;
mod outbox;
mod python_service;
mod reads;
mod resets;
mod retention;
mod stalling_proxy;
mod startup;
mod tls_dependencies;
