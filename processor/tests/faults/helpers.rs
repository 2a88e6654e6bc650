//! Real processes for fault tests: the processor binary, a private redis-server, and a
//! throwaway PostgreSQL cluster made with initdb.
#![allow(clippy::expect_used)]

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use payments_proto::v1::{self as pb, transaction_service_client::TransactionServiceClient};
use test_support::{Setup, eventually};
use tonic::transport::Channel;

pub use test_support::{
    PostgresCluster, RedisServer, assert_each_accepted_finished_exactly_once, count_by_status,
    metric, request, settle, unique_id,
};

pub use test_support::free_port;

#[path = "../shared/start_processor.rs"]
mod start_processor;

pub use start_processor::StartProcessor;

fn log_file(name: &str) -> (File, PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "pw-fault-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    (File::create(&path).expect("log file"), path)
}

/// The real processor binary, configured by a test's `Setup`.
pub struct ProcessorProcess {
    child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl ProcessorProcess {
    /// Starts it and waits until its gRPC port answers.
    pub async fn start(setup: &Setup, consumer_name: &str) -> Self {
        Self::start_with_defaults(setup, consumer_name, &[]).await
    }

    /// As `start`, leaving the settings named in `defaults` to the processor's defaults.
    pub async fn start_with_defaults(
        setup: &Setup,
        consumer_name: &str,
        defaults: &[&str],
    ) -> Self {
        let process = Self::spawn_with_defaults(setup, consumer_name, defaults);
        process.wait_until_listening(Duration::from_secs(60)).await;
        process
    }

    /// Where it serves `/metrics`.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.metrics_port))
    }

    /// Starts it without waiting for anything.
    pub fn spawn(setup: &Setup, consumer_name: &str) -> Self {
        Self::spawn_with_defaults(setup, consumer_name, &[])
    }

    fn spawn_with_defaults(setup: &Setup, consumer_name: &str, defaults: &[&str]) -> Self {
        let port = free_port();
        let metrics_port = free_port();
        let (log, log_path) = log_file(consumer_name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_processor"));
        command.env_clear();
        for (name, value) in setup.environment() {
            if !defaults.contains(&name) {
                command.env(name, value);
            }
        }
        command
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("CONSUMER_NAME", consumer_name)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = command.spawn().expect("start the processor binary");
        Self {
            child,
            port,
            metrics_port,
            log: log_path,
        }
    }

    /// Waits until its gRPC port answers, up to `limit`.
    pub async fn wait_until_listening(&self, limit: Duration) {
        let url = self.url();
        let up = eventually(limit, || async {
            TransactionServiceClient::connect(url.clone()).await.is_ok()
        })
        .await;
        assert!(up, "processor did not start; log: {}", self.log_text());
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::connect(self.url())
            .await
            .expect("connect to the processor")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of a counter (summed over its labels) on this processor's `/metrics`.
    pub async fn counter(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGSTOP: the process is frozen, as by a stalled VM or CPU throttling.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// SIGKILL: no shutdown, no cleanup, as a crash or an OOM kill.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for the process to exit on its own.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "processor did not stop within 30 s of SIGTERM; log: {}",
            self.log_text()
        );
    }
}

impl Drop for ProcessorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Ingests `count` transactions with ids `prefix_…`, returning the ids the processor
/// accepted (answered OK). Calls that fail are not accepted and must leave no row.
pub async fn ingest_many(
    client: &TransactionServiceClient<Channel>,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut client = client.clone();
        let id = unique_id(prefix);
        calls.spawn(async move {
            let mut request = tonic::Request::new(request(&id, "12.34"));
            request.set_timeout(Duration::from_secs(5));
            client.ingest_transaction(request).await.ok().map(|_| id)
        });
    }
    let mut accepted = Vec::new();
    while let Some(call) = calls.join_next().await {
        if let Some(id) = call.expect("task") {
            accepted.push(id);
        }
    }
    accepted
}

pub async fn get(client: &TransactionServiceClient<Channel>, id: &str) -> pb::Transaction {
    client
        .clone()
        .get_transaction(pb::GetTransactionRequest {
            transaction_id: id.to_owned(),
        })
        .await
        .expect("get")
        .into_inner()
}

/// Entries the test's group has delivered and not acknowledged.
pub async fn pending(setup: &Setup, redis_url: &str) -> u64 {
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(redis_url).expect("url"),
        None,
        None,
        None,
    );
    fred::prelude::ClientLike::init(&client)
        .await
        .expect("redis");
    setup.pending_count(&client).await
}

/// A setup whose timings make faults play out in seconds: short delay, lease, outbox.
pub async fn quick_setup() -> Setup {
    let mut setup = Setup::new("2s").await;
    setup
        .set("LEASE_MARGIN", "2s")
        .set("RECONCILE_INTERVAL", "500ms")
        .set("REPUBLISH_AFTER", "3s")
        .set("RETRY_BASE_DELAY", "100ms")
        .set("SHUTDOWN_GRACE", "10s");
    setup
}
