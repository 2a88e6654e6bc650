//! End-to-end tests: the real gateway and the real processor, both on port 0, over real
//! HTTP and gRPC, against real PostgreSQL and Redis. Each test owns its database and stream.

mod helpers;

mod health;
mod openapi;
mod overload;
mod signatures;
mod transactions;
mod validation;
mod webhooks;
