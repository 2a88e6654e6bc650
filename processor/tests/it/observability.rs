//! What operators and internal services see: list, watch, metrics, dependency health.

use std::{collections::HashSet, time::Duration};

use payments_proto::v1::{self as pb, ListTransactionsRequest, WatchTransactionRequest};
use tonic::Code;

use crate::helpers::{
    Setup, StartProcessor, count_by_status, eventually, metric, request, unique_id,
};

#[tokio::test]
async fn list_pages_through_250_transactions_newest_first_without_gap_or_repeat() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let mut ingested = Vec::new();
    for n in 0..250 {
        let id = format!("list_{n:03}_{}", unique_id("t"));
        client
            .ingest_transaction(request(&id, "1"))
            .await
            .expect("ingest");
        ingested.push(id);
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_transactions(ListTransactionsRequest {
                page_size: 40,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        assert!(page.transactions.len() <= 40);
        seen.extend(page.transactions.into_iter().map(|t| t.transaction_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 7, "250 in pages of 40");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 250, "no repeat");
    assert_eq!(seen.len(), 250, "no gap");
    // Newest first: the reverse of the order of ingestion.
    ingested.reverse();
    assert_eq!(seen, ingested);
    processor.stop().await;
}

#[tokio::test]
async fn list_filters_by_status_and_rejects_bad_arguments() {
    let setup = Setup::new("200ms").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let done = unique_id("done");
    client
        .ingest_transaction(request(&done, "1"))
        .await
        .expect("ingest");
    let db = setup.database().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count_by_status(&db, "PROCESSED").await == 1
        })
        .await
    );
    let waiting = unique_id("waiting");
    client
        .ingest_transaction(request(&waiting, "1"))
        .await
        .expect("ingest");

    for status in [
        pb::TransactionStatus::Processed,
        pb::TransactionStatus::Processing,
    ] {
        let page = client
            .list_transactions(ListTransactionsRequest {
                status: status.into(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(
            page.transactions.iter().all(|t| t.status() == status),
            "{status:?}"
        );
        if status == pb::TransactionStatus::Processed {
            assert!(page.transactions.iter().any(|t| t.transaction_id == done));
        }
    }
    let everything = client
        .list_transactions(ListTransactionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(everything.transactions.len(), 2);

    for bad in [
        ListTransactionsRequest {
            page_size: 501,
            ..Default::default()
        },
        ListTransactionsRequest {
            page_token: "not-a-token".to_owned(),
            ..Default::default()
        },
    ] {
        let status = client.list_transactions(bad).await.expect_err("rejected");
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    processor.stop().await;
}

#[tokio::test]
async fn watch_streams_processing_then_processed_and_ends() {
    let setup = Setup::new("500ms").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let id = unique_id("watch");
    client
        .ingest_transaction(request(&id, "3"))
        .await
        .expect("ingest");

    let mut stream = client
        .watch_transaction(WatchTransactionRequest {
            transaction_id: id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut statuses = Vec::new();
    while let Some(update) = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("the stream ends by itself")
        .expect("no error")
    {
        statuses.push(update.status());
    }
    assert_eq!(statuses.first(), Some(&pb::TransactionStatus::Processing));
    assert_eq!(statuses.last(), Some(&pb::TransactionStatus::Processed));

    let unknown = client
        .watch_transaction(WatchTransactionRequest {
            transaction_id: unique_id("none"),
        })
        .await
        .expect_err("unknown id");
    assert_eq!(unknown.code(), Code::NotFound);
    processor.stop().await;
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let setup = Setup::new("100ms").await;
    let processor = setup.start().await;
    let url = format!("http://{}/metrics", processor.metrics_addr);
    let created = r#"payments_ingest_total{outcome="created"}"#;
    let finished = r#"payments_transactions_finished_total{status="PROCESSED"}"#;
    let before_created = metric(processor.metrics_addr, created).await;
    let before_finished = metric(processor.metrics_addr, finished).await;

    let mut client = processor.client().await;
    for _ in 0..3 {
        client
            .ingest_transaction(request(&unique_id("metrics"), "2"))
            .await
            .expect("ingest");
    }
    let db = setup.database().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count_by_status(&db, "PROCESSED").await == 3
        })
        .await
    );

    // Other tests in this process share the registry, so counters only ever grow.
    assert!(metric(processor.metrics_addr, created).await >= before_created + 3.0);
    assert!(metric(processor.metrics_addr, finished).await >= before_finished + 3.0);
    let text = reqwest::get(&url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "payments_grpc_requests_total{",
        "payments_created_to_finished_seconds_bucket",
        "payments_dependency_up{",
        "payments_stream_pending",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    processor.stop().await;
}

#[tokio::test]
async fn health_names_each_dependency() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let mut health = HealthClient::new(processor.channel().await);
    for service in [
        "payments.v1.dependency.postgres",
        "payments.v1.dependency.redis",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service}");
    }
    processor.stop().await;
}

#[tokio::test]
async fn ingest_outcomes_attempts_and_final_statuses_are_counted() {
    let mut setup = Setup::new("100ms").await;
    setup
        .set("MAX_ATTEMPTS", "2")
        .set("RETRY_BASE_DELAY", "50ms")
        .set("SIMULATED_FAILURE_ID_PREFIX", "fail_");
    let processor = setup.start().await;
    let at = processor.metrics_addr;
    let series = [
        r#"payments_ingest_total{outcome="created"}"#,
        r#"payments_ingest_total{outcome="duplicate"}"#,
        r#"payments_ingest_total{outcome="conflict"}"#,
        r#"payments_ingest_total{outcome="rejected"}"#,
        r#"payments_grpc_requests_total{method="IngestTransaction",code="Ok"}"#,
        r#"payments_processing_attempts_total{outcome="succeeded"}"#,
        r#"payments_processing_attempts_total{outcome="failed"}"#,
        r#"payments_transactions_finished_total{status="PROCESSED"}"#,
        r#"payments_transactions_finished_total{status="FAILED"}"#,
    ];
    let mut before = Vec::new();
    for line in series {
        before.push(metric(at, line).await);
    }

    let mut client = processor.client().await;
    let (good, failing) = (unique_id("counted"), unique_id("fail"));
    for (id, amount) in [(&good, "5"), (&good, "5"), (&failing, "5")] {
        client
            .ingest_transaction(request(id, amount))
            .await
            .expect("accepted");
    }
    let conflict = client.ingest_transaction(request(&good, "6")).await;
    assert_eq!(conflict.expect_err("conflict").code(), Code::AlreadyExists);
    let rejected = client.ingest_transaction(request(&good, "-1")).await;
    assert_eq!(rejected.expect_err("invalid").code(), Code::InvalidArgument);
    let db = setup.database().await;
    assert!(test_support::settle(&db, Duration::from_secs(20)).await);

    // created 2, duplicate 1, conflict 1, rejected 1, 3 calls answered OK, one attempt
    // succeeded and two failed, one PROCESSED and one FAILED. Other tests of this process
    // share the registry, so each moved at least that much.
    let moved = [2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 2.0, 1.0, 1.0];
    for ((line, before), by) in series.iter().zip(before).zip(moved) {
        let after = metric(at, line).await;
        assert!(
            after >= before + by,
            "{line}: {before} -> {after}, expected +{by}"
        );
    }
    processor.stop().await;
}
