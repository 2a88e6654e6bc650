//! A real downstream HTTP service for the external call: it counts the calls per
//! `Idempotency-Key` and answers each as a test scripts it (slowly, 500, 429 with
//! `Retry-After`, 400, or never).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};

/// How the downstream answers one call.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// A status with a body, as a refusal explains itself.
    StatusWithBody(u16, &'static str),
    /// 429 with `Retry-After: <seconds>`.
    TooManyRequests {
        retry_after_seconds: u64,
    },
    /// 200 after this long.
    Slow(Duration),
    /// Holds the connection and never answers.
    Never,
}

/// One call as the downstream saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub arrived: Instant,
    pub request_id: Option<String>,
    /// As sent, so a test sees the amount's exact digits.
    pub raw_body: String,
    pub body: serde_json::Value,
}

struct Shared {
    /// The answer to each key's n-th call; the last one answers every later call.
    script: Vec<Answer>,
    calls: Mutex<HashMap<String, Vec<Call>>>,
}

pub struct Downstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Downstream {
    pub async fn start(script: Vec<Answer>) -> Self {
        assert!(!script.is_empty(), "a downstream needs at least one answer");
        let shared = Arc::new(Shared {
            script,
            calls: Mutex::new(HashMap::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("bound address");
        let router = Router::new()
            .route("/calls", post(answer))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("downstream serves");
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// What `EXTERNAL_CALL_URL` is set to.
    pub fn url(&self) -> String {
        format!("http://{}/calls", self.addr)
    }

    /// The calls that carried `key`, in arrival order.
    pub fn calls(&self, key: &str) -> Vec<Call> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Every call so far, whatever its key.
    pub fn total(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Calls per idempotency key.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.lock()
            .iter()
            .map(|(key, calls)| (key.clone(), calls.len()))
            .collect()
    }

    /// Every accepted transaction was called exactly `times` times, and nothing else was.
    pub fn assert_each_called(&self, accepted: &[String], times: usize) {
        let counts = self.counts();
        for id in accepted {
            assert_eq!(
                counts.get(id).copied().unwrap_or_default(),
                times,
                "{id} was called {:?} times, expected {times}",
                counts.get(id)
            );
        }
        assert_eq!(
            counts.len(),
            accepted.len(),
            "calls for keys never accepted"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Call>>> {
        self.shared.calls.lock().expect("calls lock")
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let Some(key) = header("idempotency-key") else {
        return (StatusCode::BAD_REQUEST, "no Idempotency-Key").into_response();
    };
    let call = Call {
        arrived: Instant::now(),
        request_id: header("x-request-id"),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        raw_body: body,
    };
    let answer = {
        let mut calls = shared.calls.lock().expect("calls lock");
        let calls = calls.entry(key).or_default();
        calls.push(call);
        let index = (calls.len() - 1).min(shared.script.len() - 1);
        shared.script[index]
    };
    let status = |code: u16| StatusCode::from_u16(code).expect("a status code");
    match answer {
        Answer::Status(code) => status(code).into_response(),
        Answer::StatusWithBody(code, body) => (status(code), body).into_response(),
        Answer::TooManyRequests {
            retry_after_seconds,
        } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_seconds.to_string())],
        )
            .into_response(),
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
        Answer::Never => std::future::pending().await,
    }
}
