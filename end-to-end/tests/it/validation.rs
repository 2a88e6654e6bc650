//! Each kind of bad webhook gets its own status, names the field, and writes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Stack, expect_problem, problem_fields, seed_webhook, unique_id};

#[tokio::test]
async fn each_invalid_field_is_422_naming_it_and_stores_nothing() {
    let stack = Stack::start("30s").await;
    let cases = [
        ("missing field", "source_account", json!(null)),
        ("wrong type", "amount", json!("1500")),
        ("wrong type", "transaction_id", json!(12345)),
        ("empty id", "transaction_id", json!("")),
        ("zero amount", "amount", json!(0)),
        ("negative amount", "amount", json!(-10)),
        ("too many decimals", "amount", json!(10.001)),
        ("lowercase currency", "currency", json!("inr")),
        ("unknown currency", "currency", json!("ABC")),
    ];
    for (case, field, value) in cases {
        let id = unique_id("invalid");
        let mut body = seed_webhook(&id);
        if value.is_null() {
            body.as_object_mut().map(|o| o.remove(field));
        } else {
            body[field] = value.clone();
        }
        let problem = expect_problem(
            stack.post_webhook(&body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem_fields(&problem), vec![field], "{case}: {problem}");
        assert_eq!(
            stack.get_transaction(&id).await.status(),
            StatusCode::NOT_FOUND,
            "{case} stored a row"
        );
    }
    let db = stack.setup.database().await;
    let rows = crate::helpers::count_by_status(&db, "PROCESSING").await;
    assert_eq!(rows, 0, "no invalid webhook wrote a row");
    assert_eq!(stack.setup.entries_ever_added().await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let stack = Stack::start("30s").await;
    for body in ["{\"transaction_id\": ", "not json", ""] {
        let problem = expect_problem(
            stack.post_raw(body, "application/json").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("JSON")),
            "{problem}"
        );
        assert_eq!(problem_fields(&problem), vec!["body"]);
    }
    stack.stop().await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let stack = Stack::start("30s").await;
    let body = seed_webhook(&unique_id("ct")).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let problem = expect_problem(
            stack.post_raw(&body, content_type).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
        assert_eq!(problem_fields(&problem), vec!["content-type"]);
    }
    let no_header = stack
        .http
        .post(stack.url("/v1/webhooks/transactions"))
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    expect_problem(no_header, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(
        stack
            .post_raw(&body, "application/json; charset=utf-8")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    stack.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let stack = Stack::start("30s").await;
    let mut body = seed_webhook(&unique_id("big"));
    body["padding"] = json!("x".repeat(8 * 1024));
    let problem = expect_problem(
        stack.post_webhook(&body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("4096"))
    );
    assert_eq!(problem_fields(&problem), vec!["body"]);
    stack.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_422() {
    let stack = Stack::start("30s").await;
    let problem = expect_problem(
        stack.post_raw("[1,2,3]", "application/json").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem_fields(&problem), vec!["body"]);
    stack.stop().await;
}

#[tokio::test]
async fn several_bad_fields_are_all_named_and_unknown_fields_are_tolerated() {
    let stack = Stack::start("30s").await;
    let body = r#"{"transaction_id":7,"amount":"12","currency":["INR"],"source_account":"a","meta":{"x":1}}"#;
    let problem = expect_problem(
        stack.post_raw(body, "application/json").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        problem_fields(&problem),
        vec![
            "transaction_id",
            "destination_account",
            "currency",
            "amount"
        ]
    );
    let mut extra = seed_webhook(&unique_id("extra"));
    extra["event"] = json!("payment.captured");
    extra["nested"] = json!({"deep": [1, 2, {"x": null}]});
    assert_eq!(
        stack.post_webhook(&extra).await.status(),
        StatusCode::ACCEPTED
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_exponent_amount_is_stored_exactly_or_refused_never_rounded() {
    let stack = Stack::start("30s").await;
    let webhook = |id: &str, amount: &str| {
        format!(
            r#"{{"transaction_id":"{id}","source_account":"acc_a","destination_account":"acc_b","amount":{amount},"currency":"INR"}}"#
        )
    };
    // Each of these is a number a 96-bit decimal would round to 1500.
    for amount in [
        "1500.000000000000000000000000001e0",
        "1500.000000000000000000000000001",
        "15000000000000000000000000000001e-28",
    ] {
        let id = unique_id("rounded");
        let problem = expect_problem(
            stack
                .post_raw(&webhook(&id, amount), "application/json")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            problem_fields(&problem),
            vec!["amount"],
            "{amount}: {problem}"
        );
        assert_eq!(
            stack.get_transaction(&id).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    for (amount, stored) in [("15e2", json!(1500)), ("150050e-2", json!(1500.5))] {
        let id = unique_id("exponent");
        let response = stack
            .post_raw(&webhook(&id, amount), "application/json")
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{amount}");
        let status: serde_json::Value = stack.get_transaction(&id).await.json().await.unwrap();
        assert_eq!(status["amount"], stored, "{amount}: {status}");
    }
    stack.stop().await;
}
