//! Webhook senders through a real gateway (in-process, on its own port) in front of the
//! processor binary, retrying a 503 the way payment providers retry, and what each webhook
//! was answered.

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::helpers::unique_id;

/// The gateway, serving until dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    _task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// A gateway in front of `processor_url`, with `settings` over the defaults.
    pub async fn start(processor_url: &str, settings: &[(&str, &str)]) -> Self {
        let defaults = [
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("PROCESSOR_URL", processor_url),
            ("ALLOW_UNSIGNED_WEBHOOKS", "true"),
            ("ALLOW_UNAUTHENTICATED_READS", "true"),
        ];
        let config = ingest_gateway::Config::from_lookup(|name| {
            settings
                .iter()
                .chain(defaults.iter())
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .expect("valid gateway configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let application =
            ingest_gateway::build_with_listener(config, listener).expect("gateway builds");
        let addr = application.local_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(application.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            shutdown,
            _task: task,
        }
    }

    pub fn webhooks_url(&self) -> String {
        format!("http://{}/v1/webhooks/transactions", self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One HTTP answer to a webhook.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// From the request's start to the whole answer read.
    pub took: Duration,
}

/// One webhook and every answer it got, in order.
#[derive(Debug)]
pub struct Delivery {
    pub id: String,
    pub answers: Vec<Answer>,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        self.answers
            .last()
            .is_some_and(|answer| answer.status == 202)
    }
}

/// How webhooks are sent.
#[derive(Clone, Copy)]
pub struct Senders {
    /// Concurrent senders.
    pub concurrency: usize,
    /// Each sender sends new webhooks, one after the other, for this long.
    pub sending_for: Duration,
    /// A webhook answered 503 is sent again (same id) after this pause...
    pub retry_pause: Duration,
    /// ... until it is accepted or this long has passed since its first try.
    pub give_up_after: Duration,
}

/// Sends the webhooks (ids `prefix_…`) and returns each one's answers.
pub async fn send(url: &str, prefix: &str, senders: Senders) -> Vec<Delivery> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders.concurrency {
        let (http, url, prefix) = (http.clone(), url.to_owned(), prefix.to_owned());
        tasks.spawn(async move {
            let mut deliveries = Vec::new();
            while started.elapsed() < senders.sending_for {
                deliveries.push(deliver(&http, &url, unique_id(&prefix), senders).await);
            }
            deliveries
        });
    }
    let mut deliveries = Vec::new();
    while let Some(sent) = tasks.join_next().await {
        deliveries.extend(sent.expect("sender task"));
    }
    deliveries
}

async fn deliver(http: &reqwest::Client, url: &str, id: String, senders: Senders) -> Delivery {
    let body = format!(
        r#"{{"transaction_id":"{id}","source_account":"acc_user_789","destination_account":"acc_merchant_456","amount":1500,"currency":"INR"}}"#
    );
    let first_try = Instant::now();
    let mut answers = Vec::new();
    loop {
        let started = Instant::now();
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let _ = response.bytes().await;
        answers.push(Answer {
            status,
            retry_after,
            took: started.elapsed(),
        });
        if status != 503 || first_try.elapsed() >= senders.give_up_after {
            return Delivery { id, answers };
        }
        tokio::time::sleep(senders.retry_pause).await;
    }
}

/// SPEC's promise while a dependency is away: every answer is 202, or 503 with
/// `Retry-After`, and every webhook was accepted in the end. Returns the accepted ids.
pub fn assert_only_accepted_or_unavailable(deliveries: &[Delivery]) -> Vec<String> {
    for delivery in deliveries {
        for answer in &delivery.answers {
            let fine =
                answer.status == 202 || (answer.status == 503 && answer.retry_after.is_some());
            assert!(fine, "{} was answered {answer:?}", delivery.id);
        }
        assert!(
            delivery.accepted(),
            "{} was never accepted: {:?}",
            delivery.id,
            delivery.answers
        );
    }
    deliveries.iter().map(|d| d.id.clone()).collect()
}

/// How many answers were 503 (the fault was felt) and the slowest answer.
pub fn unavailable_count_and_slowest(deliveries: &[Delivery]) -> (usize, Duration) {
    let answers = deliveries.iter().flat_map(|d| &d.answers);
    let unavailable = answers.clone().filter(|a| a.status == 503).count();
    let slowest = answers.map(|a| a.took).max().unwrap_or_default();
    (unavailable, slowest)
}
