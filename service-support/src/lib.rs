//! Code both binaries run that is no part of the domain and speaks no gRPC: the shutdown
//! signal, logging, the Prometheus recorder, and the parsing of settings. Each module is
//! one of these; the binaries' own settings and metrics stay in their crates.

pub mod logging;
pub mod metrics;
pub mod settings;
pub mod shutdown;
