//! `GET /v1/transactions/{id}`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Stack, expect_problem, seed_webhook, unique_id};

#[tokio::test]
async fn unknown_id_is_404_problem_json() {
    let stack = Stack::start("30s").await;
    let problem = expect_problem(
        stack.get_transaction(&unique_id("nope")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not found"))
    );
    stack.stop().await;
}

#[tokio::test]
async fn amounts_come_back_digit_for_digit() {
    let stack = Stack::start("30s").await;
    for amount in ["1500.50", "0.01", "99999999999999.99", "42"] {
        let id = unique_id("exact");
        let body = seed_webhook(&id)
            .to_string()
            .replace(":1500,", &format!(":{amount},"));
        assert_eq!(
            stack.post_raw(&body, "application/json").await.status(),
            StatusCode::ACCEPTED,
            "{body}"
        );
        let text = stack.get_transaction(&id).await.text().await.expect("body");
        assert!(
            text.contains(&format!("\"amount\":{amount},")),
            "{amount} not kept exactly in {text}"
        );
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(parsed["amount"].is_number());
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_id_that_cannot_exist_is_rejected_by_name() {
    let stack = Stack::start("30s").await;
    let problem = expect_problem(
        stack.get_transaction("bad%20id").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        crate::helpers::problem_fields(&problem),
        vec!["transaction_id"]
    );
    stack.stop().await;
}
