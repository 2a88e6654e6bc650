//! This crate's processor started from a test's `Setup`, in the test's process: shared by
//! the `it` and `faults` test binaries (each includes this file).

use processor::Config;
use test_support::{RunningProcessor, Setup};
use tokio::net::TcpListener;

/// Starts the processor a [`Setup`] describes, in this process.
pub trait StartProcessor {
    /// The processor's configuration, read from the setup's settings.
    fn config(&self) -> Config;
    /// The real processor on ephemeral ports.
    async fn start(&self) -> RunningProcessor;
}

impl StartProcessor for Setup {
    fn config(&self) -> Config {
        Config::from_lookup(service_support::settings::from_pairs(&self.environment()))
            .expect("valid test configuration")
    }

    async fn start(&self) -> RunningProcessor {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let application =
            processor::build_with_listeners(self.config(), listener, metrics_listener)
                .await
                .expect("processor starts");
        let addr = application.grpc_addr().expect("bound address");
        let metrics_addr = application.metrics_addr().expect("bound address");
        RunningProcessor::spawn(addr, metrics_addr, |shutdown| {
            application.run_until_stopped(shutdown)
        })
    }
}
