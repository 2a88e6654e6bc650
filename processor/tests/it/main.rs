//! Processor integration tests: the real gRPC server and consumer, on port 0, against real
//! PostgreSQL and Redis. Each test owns a fresh database and its own stream and group.

mod helpers;

mod consumer;
mod grpc_api;
mod ingest;
