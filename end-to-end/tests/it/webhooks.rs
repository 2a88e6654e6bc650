//! The webhook's life as the seed describes it, through both binaries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Stack, count_by_status, expect_problem, problem_fields, seed_webhook, unique_id,
};

#[tokio::test]
async fn a_webhook_is_accepted_at_once_then_processed_after_the_delay() {
    let stack = Stack::start("1s").await;
    let id = unique_id("txn");

    let response = stack.post_webhook(&seed_webhook(&id)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.bytes().await.expect("body").len(),
        0,
        "202 has an empty body"
    );

    let pending: Value = stack.get_transaction(&id).await.json().await.expect("JSON");
    assert_eq!(pending["status"], "PROCESSING");
    assert_eq!(pending["processed_at"], Value::Null);

    let done = stack
        .wait_until_finished(&id, Duration::from_secs(15))
        .await;
    assert_eq!(done["status"], "PROCESSED");
    assert_eq!(done["transaction_id"], id.as_str());
    assert_eq!(done["source_account"], "acc_user_789");
    assert_eq!(done["destination_account"], "acc_merchant_456");
    assert_eq!(done["amount"], json!(1500));
    assert_eq!(done["currency"], "INR");
    let created: DateTime<Utc> = done["created_at"]
        .as_str()
        .expect("created_at")
        .parse()
        .expect("RFC 3339");
    let processed: DateTime<Utc> = done["processed_at"]
        .as_str()
        .expect("processed_at")
        .parse()
        .expect("RFC 3339");
    // Timestamps are to the second; the delay is 1 s.
    assert!(
        processed >= created,
        "processed {processed} before created {created}"
    );
    assert!(
        done["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        done.as_object().map(|o| o.len()),
        Some(8),
        "exactly the seed's fields: {done}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_duplicates_make_one_row_processed_once() {
    let stack = Stack::start("500ms").await;
    let id = unique_id("dup");
    let body = seed_webhook(&id);

    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let http = stack.http.clone();
        let url = stack.url("/v1/webhooks/transactions");
        let body = body.clone();
        posts.spawn(async move { http.post(url).json(&body).send().await.map(|r| r.status()) });
    }
    while let Some(post) = posts.join_next().await {
        assert_eq!(post.expect("task").expect("answer"), StatusCode::ACCEPTED);
    }

    let done = stack
        .wait_until_finished(&id, Duration::from_secs(15))
        .await;
    assert_eq!(done["status"], "PROCESSED");
    let db = stack.setup.database().await;
    assert_eq!(count_by_status(&db, "PROCESSED").await, 1, "one row");
    assert_eq!(count_by_status(&db, "PROCESSING").await, 0);
    assert_eq!(
        stack.setup.entries_ever_added().await,
        1,
        "scheduled for processing once"
    );
    stack.stop().await;
}

#[tokio::test]
async fn same_id_with_a_different_amount_is_a_conflict() {
    let stack = Stack::start("30s").await;
    let id = unique_id("conflict");
    assert_eq!(
        stack.post_webhook(&seed_webhook(&id)).await.status(),
        StatusCode::ACCEPTED
    );

    let mut changed = seed_webhook(&id);
    changed["amount"] = json!(1600);
    let problem = expect_problem(stack.post_webhook(&changed).await, StatusCode::CONFLICT).await;
    assert_eq!(problem_fields(&problem), vec!["amount"]);

    let stored: Value = stack.get_transaction(&id).await.json().await.expect("JSON");
    assert_eq!(stored["amount"], json!(1500), "the first payload stands");
    stack.stop().await;
}

#[tokio::test]
async fn a_repeat_with_extra_fields_and_an_equal_amount_is_the_same_webhook() {
    let stack = Stack::start("30s").await;
    let id = unique_id("repeat");
    assert_eq!(
        stack.post_webhook(&seed_webhook(&id)).await.status(),
        StatusCode::ACCEPTED
    );
    let repeat = format!(
        r#"{{"transaction_id":"{id}","source_account":"acc_user_789","destination_account":"acc_merchant_456","amount":1500.00,"currency":"INR","event":"payment.captured"}}"#
    );
    assert_eq!(
        stack.post_raw(&repeat, "application/json").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(stack.setup.entries_ever_added().await, 1);
    stack.stop().await;
}
