//! A failing external call: retried with backoff, then FAILED and dead-lettered, then
//! re-driven to PROCESSED.

use std::time::Duration;

use fred::prelude::StreamsInterface;
use payments_proto::v1::{self as pb, RetryTransactionRequest};
use tonic::Code;

use crate::helpers::{
    ProcessorProcess, assert_each_accepted_finished_exactly_once, get, quick_setup, request,
    settle, unique_id,
};

#[tokio::test]
async fn failing_ids_are_retried_then_failed_dead_lettered_and_redriven() {
    let mut setup = quick_setup().await;
    setup
        .set("PROCESSING_DELAY", "200ms")
        .set("MAX_ATTEMPTS", "3")
        .set("SIMULATED_FAILURE_ID_PREFIX", "fail_");
    let failing = ProcessorProcess::start(&setup, "failing").await;
    let client = failing.client().await;
    let bad = unique_id("fail");
    let good = unique_id("good");
    for id in [&bad, &good] {
        client
            .clone()
            .ingest_transaction(request(id, "10"))
            .await
            .expect("accepted");
    }
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        failing.log_text()
    );

    let failed = get(&client, &bad).await;
    assert_eq!(failed.status(), pb::TransactionStatus::Failed);
    assert_eq!(failed.attempts, 3);
    assert!(
        failed.last_error.contains("simulated failure"),
        "{}",
        failed.last_error
    );
    assert!(failed.processed_at.is_some());
    assert_eq!(
        get(&client, &good).await.status(),
        pb::TransactionStatus::Processed
    );

    // The dead-letter stream names it, with its attempts and error.
    let redis = setup.redis().await;
    let dead_letter_key = crate::helpers::StartProcessor::config(&setup)
        .stream
        .dead_letter_key;
    let letters: Vec<(String, std::collections::HashMap<String, String>)> = redis
        .xrange_values(&dead_letter_key, "-", "+", None)
        .await
        .expect("XRANGE");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].1.get("transaction_id"), Some(&bad));
    assert_eq!(letters[0].1.get("attempts").map(String::as_str), Some("3"));

    // Only FAILED can be re-driven.
    let refused = client
        .clone()
        .retry_transaction(RetryTransactionRequest {
            transaction_id: good.clone(),
        })
        .await
        .expect_err("a PROCESSED transaction cannot be retried");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // The external service recovers; the operator re-drives the FAILED one.
    drop(failing);
    let mut recovered = setup.clone();
    recovered.unset("SIMULATED_FAILURE_ID_PREFIX");
    let processor = ProcessorProcess::start(&recovered, "recovered").await;
    let client = processor.client().await;
    let redriven = client
        .clone()
        .retry_transaction(RetryTransactionRequest {
            transaction_id: bad.clone(),
        })
        .await
        .expect("re-drive")
        .into_inner();
    assert_eq!(redriven.status(), pb::TransactionStatus::Processing);
    assert!(settle(&db, Duration::from_secs(30)).await);
    let done = get(&client, &bad).await;
    assert_eq!(done.status(), pb::TransactionStatus::Processed);
    assert_eq!(done.attempts, 1, "attempts start over when re-driven");
    assert_each_accepted_finished_exactly_once(&db, &[bad, good]).await;
}
