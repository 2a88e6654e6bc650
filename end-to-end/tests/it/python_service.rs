//! A client of the Python service, after its database was adopted: it reads the old
//! transactions with the same fields, status values and amounts (as floats), and its
//! repeats of old webhooks are duplicates (202), or conflicts (409) when they differ.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{
    Setup,
    python_service::{self, OldRow},
    successful_attempts,
};

use crate::helpers::{Stack, expect_problem, problem_fields, unique_id};

/// The fields of the old service's status answer, as its README shows them.
const OLD_FIELDS: [&str; 8] = [
    "transaction_id",
    "source_account",
    "destination_account",
    "amount",
    "currency",
    "status",
    "created_at",
    "processed_at",
];

fn webhook(id: &str, amount: Value, currency: &str) -> Value {
    json!({
        "transaction_id": id,
        "source_account": python_service::SOURCE_ACCOUNT,
        "destination_account": python_service::DESTINATION_ACCOUNT,
        "amount": amount,
        "currency": currency,
    })
}

#[tokio::test]
async fn an_old_client_keeps_working_on_the_adopted_database() {
    let setup = Setup::new("300ms").await;
    let created = Utc.timestamp_opt(1_761_906_600, 0).single().expect("time");
    let rows = [
        OldRow::new("py_done", 1500.0, "INR", "PROCESSED", created),
        OldRow::new("py_failed", 99.99, "INR", "FAILED", created),
        OldRow::new("py_noise", 0.1 + 0.2, "INR", "PROCESSING", created),
        OldRow::new("py_yen", 1500.0, "JPY", "PROCESSING", created),
    ];
    python_service::create(setup.database_url(), &rows).await;
    let stack = Stack::start_with_setup(setup, &[]).await;

    // The old answers' fields and values, read the way an old client reads them.
    for (row, raw_amount, float_amount) in [
        (&rows[0], "1500.00", 1500.0),
        (&rows[1], "99.99", 99.99),
        (&rows[2], "0.30", 0.3),
        (&rows[3], "1500", 1500.0),
    ] {
        let response = stack.get_transaction(&row.transaction_id).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("body");
        assert!(text.contains(&format!("\"amount\":{raw_amount}")), "{text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        let fields: Vec<&str> = body
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        for field in OLD_FIELDS {
            assert!(fields.contains(&field), "{field} missing: {text}");
        }
        assert_eq!(body["amount"].as_f64(), Some(float_amount), "{text}");
        assert_eq!(body["transaction_id"], row.transaction_id.as_str());
        assert_eq!(body["currency"], row.currency);
        assert_eq!(body["created_at"], "2025-10-31T10:30:00Z");
        assert!(
            ["PROCESSING", "PROCESSED", "FAILED"].contains(&body["status"].as_str().unwrap_or("")),
            "{text}"
        );
    }
    let done: Value = stack
        .get_transaction("py_done")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(done["status"], "PROCESSED");
    assert_eq!(done["processed_at"], "2025-10-31T10:30:30Z");

    // The sender repeats old webhooks: the same payload is a duplicate, in any spelling
    // of the same number; another payload is a conflict naming what differs.
    for amount in [json!(1500), json!(1500.0), json!(1500.00)] {
        let response = stack
            .post_webhook(&webhook("py_done", amount.clone(), "INR"))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "amount {amount}");
    }
    let response = stack
        .post_webhook(&webhook("py_noise", json!(0.3), "INR"))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let conflict = expect_problem(
        stack
            .post_webhook(&webhook("py_done", json!(1501), "INR"))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(problem_fields(&conflict), vec!["amount"]);
    let conflict = expect_problem(
        stack
            .post_webhook(&webhook("py_yen", json!(1500), "INR"))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(problem_fields(&conflict), vec!["currency"]);

    // The old PROCESSING ones are processed once; the finished ones are left as they were.
    for id in ["py_noise", "py_yen"] {
        let finished = stack.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_eq!(finished["status"], "PROCESSED", "{finished}");
        assert!(finished["processed_at"].is_string(), "{finished}");
    }
    let new_id = unique_id("after_cutover");
    let response = stack
        .post_webhook(&webhook(&new_id, json!(250.5), "INR"))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let finished = stack
        .wait_until_finished(&new_id, Duration::from_secs(60))
        .await;
    assert_eq!(finished["status"], "PROCESSED", "{finished}");

    let db = stack.setup.database().await;
    for (id, times) in [
        ("py_noise", 1),
        ("py_yen", 1),
        ("py_done", 0),
        ("py_failed", 0),
        (new_id.as_str(), 1),
    ] {
        assert_eq!(successful_attempts(&db, id).await, times, "{id}");
    }
    let failed: Value = stack
        .get_transaction("py_failed")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(failed["status"], "FAILED");
    let done_again: Value = stack
        .get_transaction("py_done")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        done_again, done,
        "a duplicate changed a finished transaction"
    );
    stack.stop().await;
}
