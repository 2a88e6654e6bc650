//! What operators see through the gateway: readiness, metrics, the list, the admin retry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use test_support::{RedisServer, Setup};

use crate::helpers::{
    RunningGateway, Stack, expect_problem, problem_fields, seed_webhook, start_gateway_with,
    unique_id,
};

#[tokio::test]
async fn readyz_stays_ready_without_redis_and_names_it_degraded() {
    let mut redis = RedisServer::start().await;
    let mut setup = Setup::new("30s").await;
    setup
        .set("REDIS_URL", redis.url())
        .set("RECONCILE_INTERVAL", "200ms");
    let stack = Stack::start_with_setup(setup, &[]).await;
    let readyz = || async {
        let answer = stack
            .http
            .get(stack.url("/readyz"))
            .send()
            .await
            .expect("answer");
        let status = answer.status();
        let body: Value = answer.json().await.expect("JSON body");
        (status, body)
    };
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["degraded"], serde_json::json!([]), "{body}");

    // Without Redis, webhooks are still accepted (committed, published later): ready,
    // with the stream named as degraded.
    redis.stop();
    let degraded = test_support::eventually(Duration::from_secs(15), || async {
        readyz().await
            == (
                StatusCode::OK,
                serde_json::json!({"status": "READY", "degraded": ["redis"]}),
            )
    })
    .await;
    assert!(
        degraded,
        "readyz did not name redis as degraded: {:?}",
        readyz().await
    );
    let accepted = stack
        .post_webhook(&seed_webhook(&unique_id("no_redis")))
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    redis.restart().await;
    let back = test_support::eventually(Duration::from_secs(20), || async {
        readyz().await.1["degraded"] == serde_json::json!([])
    })
    .await;
    assert!(back, "redis stayed degraded after it came back");
    stack.stop().await;
}

#[tokio::test]
async fn readyz_names_postgres_when_it_stops_and_recovers_when_it_returns() {
    use test_support::PostgresCluster;

    let cluster = PostgresCluster::start().await;
    cluster.create_database("webhooks").await;
    let mut setup = Setup::new("30s").await;
    setup
        .set("DATABASE_URL", cluster.url("webhooks"))
        .set("RECONCILE_INTERVAL", "200ms");
    let stack = Stack::start_with_setup(setup, &[]).await;
    let readyz = || async {
        stack
            .http
            .get(stack.url("/readyz"))
            .send()
            .await
            .expect("answer")
    };
    assert_eq!(readyz().await.status(), StatusCode::OK);

    cluster.stop_server();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut down = Value::Null;
    while tokio::time::Instant::now() < deadline {
        let answer = readyz().await;
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
            down = answer.json().await.expect("problem");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(problem_fields(&down), vec!["postgres"], "{down}");

    cluster.start_server();
    let back = test_support::eventually(Duration::from_secs(30), || async {
        readyz().await.status() == StatusCode::OK
    })
    .await;
    assert!(back, "readyz came back to 200 once PostgreSQL returned");
    stack.stop().await;
}

#[tokio::test]
async fn an_unreachable_processor_is_503_with_retry_after_never_a_hang() {
    let port = test_support::free_port();
    let RunningGateway {
        addr,
        shutdown,
        task,
        ..
    } = start_gateway_with(
        &format!("http://127.0.0.1:{port}"),
        &[("PROCESSOR_TIMEOUT", "450ms")],
    )
    .await;
    let http = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    let webhook = http
        .post(format!("http://{addr}/v1/webhooks/transactions"))
        .json(&seed_webhook(&unique_id("down")))
        .send()
        .await
        .expect("answer");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        webhook
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    expect_problem(webhook, StatusCode::SERVICE_UNAVAILABLE).await;
    let readyz = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("answer");
    let problem = expect_problem(readyz, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem_fields(&problem), vec!["processor"]);
    shutdown.cancel();
    task.await.expect("task").expect("clean stop");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_on_their_own_port() {
    let stack = Stack::start("30s").await;
    let accepted = r#"gateway_http_requests_total{method="POST",route="/v1/webhooks/transactions",status="202"}"#;
    let accepted_before = test_support::metric(stack.metrics_addr, accepted).await;
    let id = unique_id("metrics");
    assert_eq!(
        stack.post_webhook(&seed_webhook(&id)).await.status(),
        StatusCode::ACCEPTED
    );
    // The process's gateways share one registry: the count moved by at least this one.
    assert!(test_support::metric(stack.metrics_addr, accepted).await >= accepted_before + 1.0);
    assert_eq!(stack.get_transaction(&id).await.status(), StatusCode::OK);
    let text = stack
        .http
        .get(format!("http://{}/metrics", stack.metrics_addr))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    // The public port serves no metrics.
    expect_problem(
        stack
            .http
            .get(stack.url("/metrics"))
            .send()
            .await
            .expect("answer"),
        StatusCode::NOT_FOUND,
    )
    .await;
    for series in [
        r#"route="/v1/webhooks/transactions",status="202""#,
        r#"route="/v1/transactions/{transaction_id}",status="200""#,
        "gateway_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_list_pages_newest_first_and_names_bad_parameters() {
    let stack = Stack::start("30s").await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = unique_id("list");
        assert_eq!(
            stack.post_webhook(&seed_webhook(&id)).await.status(),
            StatusCode::ACCEPTED
        );
        ids.push(id);
    }
    let mut seen = Vec::new();
    let mut url = stack.url("/v1/transactions?status=PROCESSING&page_size=4");
    loop {
        let page: Value = stack
            .http
            .get(&url)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        for transaction in page["transactions"].as_array().expect("a list") {
            seen.push(
                transaction["transaction_id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        match page["next_page_token"].as_str() {
            Some(token) => {
                url = stack.url(&format!(
                    "/v1/transactions?status=PROCESSING&page_size=4&page_token={token}"
                ))
            }
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);

    // As the document says: page_size 1 to 500 (0 is not "absent").
    let bad = stack
        .http
        .get(stack.url("/v1/transactions?status=DONE&created_after=yesterday&page_size=0"))
        .send()
        .await
        .expect("answer");
    let problem = expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut fields = problem_fields(&problem);
    fields.sort();
    assert_eq!(fields, vec!["created_after", "page_size", "status"]);
    stack.stop().await;
}

#[tokio::test]
async fn the_admin_retry_needs_the_token_and_a_failed_transaction() {
    const TOKEN: &str = "test-admin-token-0123456789";
    let mut setup = Setup::new("100ms").await;
    setup
        .set("SIMULATED_FAILURE_ID_PREFIX", "fail_")
        .set("MAX_ATTEMPTS", "1");
    let stack = Stack::start_with_setup(setup, &[("ADMIN_TOKEN", TOKEN)]).await;
    let failing = unique_id("fail");
    let fine = unique_id("fine");
    for id in [&failing, &fine] {
        assert_eq!(
            stack.post_webhook(&seed_webhook(id)).await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        stack
            .wait_until_finished(&failing, Duration::from_secs(10))
            .await["status"],
        "FAILED"
    );
    assert_eq!(
        stack
            .wait_until_finished(&fine, Duration::from_secs(10))
            .await["status"],
        "PROCESSED"
    );

    let retry = |id: &str, token: Option<&str>| {
        let mut request = stack
            .http
            .post(stack.url(&format!("/v1/transactions/{id}/retry")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    expect_problem(
        retry(&failing, None).await.expect("answer"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_problem(
        retry(&failing, Some("wrong-token-0123456789"))
            .await
            .expect("answer"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_problem(
        retry(&fine, Some(TOKEN)).await.expect("answer"),
        StatusCode::CONFLICT,
    )
    .await;

    let accepted = retry(&failing, Some(TOKEN)).await.expect("answer");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let body: Value = accepted.json().await.expect("JSON");
    assert_eq!(body["status"], "PROCESSING");
    stack.stop().await;
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let stack = Stack::start("30s").await;
    let answer = stack
        .http
        .post(stack.url(&format!("/v1/transactions/{}/retry", unique_id("x"))))
        .bearer_auth("anything-at-all-0123456789")
        .send()
        .await
        .expect("answer");
    expect_problem(answer, StatusCode::FORBIDDEN).await;
    stack.stop().await;
}
