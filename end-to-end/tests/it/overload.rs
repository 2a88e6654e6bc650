//! Overload: past MAX_CONCURRENT_REQUESTS (webhooks) or MAX_CONCURRENT_READS (reads) the
//! gateway sheds at once with 503 problem+json and Retry-After, rather than queueing behind
//! a slow processor; the two budgets are apart.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::{io::AsyncReadExt, net::TcpListener};

use crate::helpers::{RunningGateway, expect_problem, seed_webhook, start_gateway_with, unique_id};

/// A "processor" that accepts connections and never answers: every call waits out its
/// deadline.
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            // Read and drop what the client sends, so it never blocks on a full buffer.
            held.push(tokio::spawn(async move {
                let mut sink = [0_u8; 4096];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            }));
        }
    });
    url
}

#[tokio::test]
async fn past_the_limit_requests_are_shed_at_once_with_503() {
    let processor = black_hole().await;
    let RunningGateway {
        addr,
        shutdown,
        task: gateway,
        ..
    } = start_gateway_with(
        &processor,
        &[
            ("MAX_CONCURRENT_REQUESTS", "2"),
            ("PROCESSOR_TIMEOUT", "3s"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/webhooks/transactions");

    // Two requests take the two permits and hang on the processor.
    let mut holders = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (http, url) = (http.clone(), url.clone());
        holders.spawn(async move {
            http.post(url)
                .json(&seed_webhook(&unique_id("hold")))
                .send()
                .await
                .map(|r| r.status())
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Everything beyond the limit is answered at once.
    let mut shed = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url) = (http.clone(), url.clone());
        shed.spawn(async move {
            let started = Instant::now();
            let response = http
                .post(url)
                .json(&seed_webhook(&unique_id("shed")))
                .send()
                .await
                .expect("answer");
            (started.elapsed(), response)
        });
    }
    while let Some(result) = shed.join_next().await {
        let (elapsed, response) = result.expect("task");
        assert!(
            elapsed < Duration::from_millis(1000),
            "shed after {elapsed:?}, not at once"
        );
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(problem["type"], "urn:payment-webhooks:problem:overloaded");
        assert!(problem["request_id"].is_string(), "{problem}");
        assert_eq!(problem["request_id"].as_str(), request_id.as_deref());
        assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok()));
    }

    // Health is not behind the limit.
    let health = http
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(health.status(), StatusCode::OK);

    // The held requests end at the processor's deadline, as 503 too.
    while let Some(status) = holders.join_next().await {
        assert_eq!(
            status.expect("task").expect("answer"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Permits came back: the next request reaches the (silent) processor again.
    let started = Instant::now();
    let after = http
        .post(&url)
        .json(&seed_webhook(&unique_id("after")))
        .send()
        .await
        .expect("answer");
    assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not shed: waited for the deadline"
    );

    shutdown.cancel();
    gateway.await.expect("task").expect("gateway stops");
}

#[tokio::test]
async fn reads_at_their_limit_take_no_permit_from_webhooks() {
    let processor = black_hole().await;
    let RunningGateway {
        addr,
        shutdown,
        task: gateway,
        ..
    } = start_gateway_with(
        &processor,
        &[
            ("MAX_CONCURRENT_READS", "2"),
            ("MAX_CONCURRENT_REQUESTS", "2"),
            ("PROCESSOR_TIMEOUT", "2s"),
        ],
    )
    .await;
    let http = crate::helpers::authorized_client();
    // Two reads take both read permits and hang on the processor.
    let mut holders = tokio::task::JoinSet::new();
    for index in 0..2 {
        let url = format!("http://{addr}/v1/transactions/held_{index}");
        let http = http.clone();
        holders.spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A third read is shed at once...
    let read = http
        .get(format!("http://{addr}/v1/transactions"))
        .send()
        .await
        .expect("answer");
    let problem = expect_problem(read, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "urn:payment-webhooks:problem:overloaded");
    // ...while webhooks still get permits of their own: they reach the (silent) processor
    // and wait out its deadline instead of being shed.
    let mut webhooks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (http, url) = (
            http.clone(),
            format!("http://{addr}/v1/webhooks/transactions"),
        );
        webhooks.spawn(async move {
            let response = http
                .post(url)
                .json(&seed_webhook(&unique_id("beside-reads")))
                .send()
                .await
                .expect("answer");
            let problem: serde_json::Value = response.json().await.expect("problem");
            problem["type"].as_str().map(str::to_owned)
        });
    }
    while let Some(kind) = webhooks.join_next().await {
        assert_eq!(
            kind.expect("task").as_deref(),
            Some("urn:payment-webhooks:problem:unavailable"),
            "a webhook was shed by reads"
        );
    }
    while let Some(status) = holders.join_next().await {
        assert_eq!(
            status.expect("task").expect("answer"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    shutdown.cancel();
    gateway.await.expect("task").expect("gateway stops");
}
