//! A running stack for one test: processor and gateway in-process, and an HTTP client.
#![allow(clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use test_support::{RunningProcessor, Setup};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use test_support::{count_by_status, unique_id};

/// The token every stack's client sends (`API_TOKENS` of the test gateways).
pub const API_TOKEN: &str = "test-api-token-0123456789abcdef0123";

pub struct Stack {
    pub setup: Setup,
    pub processor: RunningProcessor,
    pub gateway_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The gateway's open API connections, as its `MAX_CONNECTIONS` cap counts them.
    pub connections: ingest_gateway::server::OpenConnections,
    gateway_shutdown: CancellationToken,
    gateway: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
}

impl Stack {
    /// Processor (with `delay`) and gateway, both started and listening.
    pub async fn start(delay: &'static str) -> Self {
        Self::start_with(delay, &[]).await
    }

    /// As [`Stack::start`], with gateway settings added to (or replacing) the defaults.
    pub async fn start_with(delay: &'static str, gateway_settings: &[(&str, &str)]) -> Self {
        Self::start_with_setup(Setup::new(delay).await, gateway_settings).await
    }

    /// As [`Stack::start_with`], with the processor configured by `setup`.
    pub async fn start_with_setup(setup: Setup, gateway_settings: &[(&str, &str)]) -> Self {
        // The gateway's metrics recorder first: metrics are process-wide, and tests read
        // the gateway's /metrics.
        ingest_gateway::metrics::handle();
        let processor = start_processor(&setup).await;
        let gateway = start_gateway_with(&processor.url(), gateway_settings).await;
        Self {
            setup,
            processor,
            gateway_addr: gateway.addr,
            metrics_addr: gateway.metrics_addr,
            connections: gateway.connections,
            gateway_shutdown: gateway.shutdown,
            gateway: gateway.task,
            http: authorized_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway_addr)
    }

    pub async fn post_webhook(&self, body: &Value) -> Response {
        self.post_raw(&body.to_string(), "application/json").await
    }

    pub async fn post_raw(&self, body: &str, content_type: &str) -> Response {
        self.http
            .post(self.url("/v1/webhooks/transactions"))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn get_transaction(&self, id: &str) -> Response {
        self.http
            .get(self.url(&format!("/v1/transactions/{id}")))
            .send()
            .await
            .expect("the gateway answers")
    }

    /// The transaction's JSON once it has left PROCESSING, or the last one seen.
    pub async fn wait_until_finished(&self, id: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let last: Value = self
                .get_transaction(id)
                .await
                .json()
                .await
                .expect("JSON body");
            if last["status"] != "PROCESSING" || tokio::time::Instant::now() >= deadline {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.gateway_shutdown.cancel();
        self.gateway
            .await
            .expect("gateway task")
            .expect("gateway stops cleanly");
        self.processor.stop().await;
    }
}

/// A client that sends `Authorization: Bearer API_TOKEN` with every request, as a
/// service allowed to read would.
pub fn authorized_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {API_TOKEN}"))
            .expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// A gateway running in this process.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub connections: ingest_gateway::server::OpenConnections,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// The real processor `setup` describes, in this process on ephemeral ports.
pub async fn start_processor(setup: &Setup) -> RunningProcessor {
    let config =
        processor::Config::from_lookup(service_support::settings::from_pairs(&setup.environment()))
            .expect("valid test configuration");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let application = processor::build_with_listeners(config, listener, metrics_listener)
        .await
        .expect("processor starts");
    let addr = application.grpc_addr().expect("bound address");
    let metrics_addr = application.metrics_addr().expect("bound address");
    RunningProcessor::spawn(addr, metrics_addr, |shutdown| {
        application.run_until_stopped(shutdown)
    })
}

/// The gateway binary cargo built beside this test (as assert_cmd's `cargo_bin` finds
/// it: `CARGO_BIN_EXE_*` names only a test's own package's binaries). `cargo test
/// --workspace` builds it, for the gateway's own `tests/startup.rs`.
pub fn gateway_binary() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("this test's path");
    let profile = test
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile.join("ingest-gateway");
    assert!(
        binary.exists(),
        "{} is not built: run cargo build -p ingest-gateway (cargo test --workspace builds it)",
        binary.display()
    );
    binary
}

/// A gateway alone (its processor calls go to `processor_url`), with `settings` added to
/// (or replacing) the test defaults. The defaults accept unsigned webhooks, stated
/// explicitly as a deployment must, and require `API_TOKEN` for reads.
pub async fn start_gateway_with(processor_url: &str, settings: &[(&str, &str)]) -> RunningGateway {
    let defaults = [
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("PROCESSOR_URL", processor_url),
        // Generous: debug builds on a loaded 2-core machine.
        ("PROCESSOR_TIMEOUT", "10s"),
        ("MAX_BODY_BYTES", "4096"),
        ("ALLOW_UNSIGNED_WEBHOOKS", "true"),
        ("API_TOKENS", API_TOKEN),
    ];
    let config = ingest_gateway::Config::from_lookup(|name| {
        settings
            .iter()
            .chain(defaults.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("valid gateway configuration");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let application = ingest_gateway::build_with_listeners(config, listener, metrics_listener)
        .expect("gateway builds");
    let addr = application.local_addr().expect("bound address");
    let metrics_addr = application.metrics_addr().expect("bound address");
    let connections = application.open_connections();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    RunningGateway {
        addr,
        metrics_addr,
        connections,
        shutdown,
        task,
    }
}

/// The seed README's example webhook, with a fresh id.
pub fn seed_webhook(id: &str) -> Value {
    json!({
        "transaction_id": id,
        "source_account": "acc_user_789",
        "destination_account": "acc_merchant_456",
        "amount": 1500,
        "currency": "INR"
    })
}

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn expect_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16());
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem without {member}: {body}");
    }
    body
}

/// The `field` of each entry in a problem's `errors`.
pub fn problem_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
