//! The real external call against a real downstream: what each answer leads to, the key
//! and body it carries, and one record per call.

use std::time::Duration;

use payments_proto::v1 as pb;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::{
    downstream::{Answer, Downstream},
    helpers::{
        ProcessorProcess, assert_each_accepted_finished_exactly_once, get, quick_setup, request,
        settle, unique_id,
    },
};

/// A processor calling `downstream`, with retries quick enough for a test.
async fn processor_calling(
    downstream: &Downstream,
    settings: &[(&'static str, &str)],
) -> (ProcessorProcess, DatabaseConnection) {
    let mut setup = quick_setup().await;
    setup
        .set("EXTERNAL_CALL_URL", downstream.url())
        .set("EXTERNAL_CALL_TIMEOUT", "2s")
        .set("MAX_ATTEMPTS", "3");
    for (name, value) in settings {
        setup.set(name, *value);
    }
    let processor = ProcessorProcess::start(&setup, &unique_id("caller")).await;
    (processor, setup.database().await)
}

async fn ingest(processor: &ProcessorProcess, count: usize) -> Vec<String> {
    let client = processor.client().await;
    let mut accepted = Vec::new();
    for _ in 0..count {
        let id = unique_id("call");
        client
            .clone()
            .ingest_transaction(request(&id, "1234.50"))
            .await
            .expect("accepted");
        accepted.push(id);
    }
    accepted
}

/// The outcomes recorded in `processing_attempts` for `id`, in order.
async fn attempt_outcomes(db: &DatabaseConnection, id: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT outcome FROM processing_attempts WHERE transaction_id = $1 ORDER BY attempt",
        [id.into()],
    ))
    .await
    .expect("attempts")
    .iter()
    .map(|row| row.try_get::<String>("", "outcome").expect("outcome"))
    .collect()
}

#[tokio::test]
async fn a_500_then_a_200_is_processed_after_two_calls_with_one_key() {
    let downstream = Downstream::start(vec![Answer::Status(500), Answer::Status(200)]).await;
    let (processor, db) = processor_calling(&downstream, &[]).await;
    let mut accepted = ingest(&processor, 4).await;
    // One more, with the request id the gateway passes along.
    let traced = unique_id("traced");
    let mut call = tonic::Request::new(request(&traced, "0.10"));
    call.metadata_mut()
        .insert("x-request-id", "req-external-1".parse().expect("metadata"));
    processor
        .client()
        .await
        .ingest_transaction(call)
        .await
        .expect("accepted");
    accepted.push(traced.clone());

    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    downstream.assert_each_called(&accepted, 2);
    for id in &accepted {
        assert_eq!(
            get(&processor.client().await, id).await.status(),
            pb::TransactionStatus::Processed
        );
        assert_eq!(attempt_outcomes(&db, id).await, ["FAILED", "SUCCEEDED"]);
    }
    // The body is the transaction, amount exact; the request id rides along.
    let calls = downstream.calls(&traced);
    assert_eq!(calls[0].request_id.as_deref(), Some("req-external-1"));
    assert_eq!(calls[1].request_id.as_deref(), Some("req-external-1"));
    let body = &calls[0].body;
    assert_eq!(body["transaction_id"], traced.as_str());
    assert!(
        calls[0].raw_body.contains(r#""amount":0.10,"#),
        "{}",
        calls[0].raw_body
    );
    assert_eq!(body["currency"], "INR");
    assert_eq!(body["source_account"], "acc_user_789");
    assert_eq!(body["destination_account"], "acc_merchant_456");
}

#[tokio::test]
async fn a_429_with_retry_after_is_called_again_no_sooner_than_it_says() {
    let downstream = Downstream::start(vec![
        Answer::TooManyRequests {
            retry_after_seconds: 2,
        },
        Answer::Status(200),
    ])
    .await;
    // Our own backoff alone would come back within 100 ms.
    let (processor, db) = processor_calling(&downstream, &[("RETRY_MAX_DELAY", "100ms")]).await;
    let accepted = ingest(&processor, 1).await;
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    downstream.assert_each_called(&accepted, 2);
    let calls = downstream.calls(&accepted[0]);
    let waited = calls[1].arrived - calls[0].arrived;
    assert!(
        waited >= Duration::from_secs(2),
        "called again after {waited:?}"
    );
}

#[tokio::test]
async fn a_400_is_failed_after_one_call_with_its_status_and_body_in_last_error() {
    let downstream = Downstream::start(vec![Answer::StatusWithBody(
        400,
        "destination account closed",
    )])
    .await;
    let (processor, db) = processor_calling(&downstream, &[("MAX_ATTEMPTS", "5")]).await;
    let accepted = ingest(&processor, 3).await;
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    for id in &accepted {
        let failed = get(&processor.client().await, id).await;
        assert_eq!(failed.status(), pb::TransactionStatus::Failed);
        assert_eq!(failed.attempts, 1);
        assert!(
            failed.last_error.contains("400") && failed.last_error.contains("account closed"),
            "{}",
            failed.last_error
        );
        assert_eq!(attempt_outcomes(&db, id).await, ["FAILED"]);
    }
    // Nothing calls a refused transaction again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    downstream.assert_each_called(&accepted, 1);
}

#[tokio::test]
async fn a_downstream_that_never_answers_is_retried_at_the_timeout_then_failed() {
    let downstream = Downstream::start(vec![Answer::Never]).await;
    let (processor, db) = processor_calling(&downstream, &[("EXTERNAL_CALL_TIMEOUT", "1s")]).await;
    let accepted = ingest(&processor, 2).await;
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    downstream.assert_each_called(&accepted, 3);
    for id in &accepted {
        let failed = get(&processor.client().await, id).await;
        assert_eq!(failed.status(), pb::TransactionStatus::Failed);
        assert_eq!(failed.attempts, 3);
        assert!(
            failed.last_error.contains("EXTERNAL_CALL_TIMEOUT"),
            "{}",
            failed.last_error
        );
        assert_eq!(
            attempt_outcomes(&db, id).await,
            ["FAILED", "FAILED", "FAILED"]
        );
        // Each call was given up at the deadline, not before.
        let calls = downstream.calls(id);
        for pair in calls.windows(2) {
            let apart = pair[1].arrived - pair[0].arrived;
            assert!(apart >= Duration::from_secs(1), "calls {apart:?} apart");
        }
    }
}
