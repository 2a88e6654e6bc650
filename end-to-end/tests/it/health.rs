use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{Stack, expect_problem};

#[tokio::test]
async fn root_reports_healthy_with_the_current_utc_time() {
    let stack = Stack::start("30s").await;
    let response = stack.http.get(stack.url("/")).send().await.expect("answer");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "HEALTHY");
    let time = body["current_time"]
        .as_str()
        .expect("current_time is a string");
    assert!(time.ends_with('Z'), "{time} is not UTC with Z");
    let parsed: DateTime<Utc> = time.parse().expect("RFC 3339");
    assert!((Utc::now() - parsed).num_seconds().abs() < 5);
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "exactly the seed's fields"
    );
    stack.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problem_json() {
    let stack = Stack::start("30s").await;
    let missing = stack
        .http
        .get(stack.url("/v2/nothing"))
        .send()
        .await
        .expect("answer");
    expect_problem(missing, reqwest::StatusCode::NOT_FOUND).await;
    let wrong_method = stack
        .http
        .delete(stack.url("/v1/webhooks/transactions"))
        .send()
        .await
        .expect("answer");
    expect_problem(wrong_method, reqwest::StatusCode::METHOD_NOT_ALLOWED).await;
    stack.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let stack = Stack::start("30s").await;
    let own = stack
        .http
        .get(stack.url("/"))
        .header("x-request-id", "req-test-123")
        .send()
        .await
        .expect("answer");
    assert_eq!(
        own.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-test-123")
    );
    let made = stack.http.get(stack.url("/")).send().await.expect("answer");
    assert!(
        made.headers()
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );
    stack.stop().await;
}

#[tokio::test]
async fn problem_bodies_carry_the_request_id() {
    let stack = Stack::start("30s").await;
    let response = stack
        .http
        .get(stack.url("/v2/nothing"))
        .header("x-request-id", "req-problem-42")
        .send()
        .await
        .expect("answer");
    let problem = expect_problem(response, reqwest::StatusCode::NOT_FOUND).await;
    assert_eq!(problem["request_id"], "req-problem-42");
    let made = stack.post_raw("{", "application/json").await;
    let header = made
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let problem = expect_problem(made, reqwest::StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["request_id"].as_str(), header.as_deref());
    // Whoever makes the problem (the method fallback, the body extractor, the handler's
    // validation), its body names the request's own id.
    let answers = [
        (
            stack
                .http
                .delete(stack.url("/v1/webhooks/transactions"))
                .send()
                .await
                .expect("answer"),
            reqwest::StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            stack.post_raw("{}", "text/plain").await,
            reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            stack.post_raw("{}", "application/json").await,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (response, status) in answers {
        let header = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert!(header.is_some(), "{status}: no x-request-id");
        let problem = expect_problem(response, status).await;
        assert_eq!(
            problem["request_id"].as_str(),
            header.as_deref(),
            "{problem}"
        );
    }
    stack.stop().await;
}
