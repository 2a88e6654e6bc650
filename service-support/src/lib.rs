//! Code both binaries run that is no part of the domain and speaks no gRPC: the shutdown
//! signal, logging, the Prometheus recorder, the parsing of settings, and a URL whose
//! password never prints. Each module is one of these; the binaries' own settings and
//! metrics stay in their crates.

pub mod logging;
pub mod metrics;
pub mod secret_url;
pub mod settings;
pub mod shutdown;
