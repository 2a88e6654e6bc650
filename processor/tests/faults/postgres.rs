//! PostgreSQL stopped: ingest refuses quickly, never accepts without a row, and the
//! consumer resumes once it is back.

use std::time::Duration;

use tonic::Code;

use crate::helpers::{
    PostgresCluster, ProcessorProcess, assert_each_accepted_finished_exactly_once, count_by_status,
    quick_setup, request, settle, unique_id,
};

#[tokio::test]
async fn ingest_answers_unavailable_while_postgres_is_down_and_work_resumes_after() {
    let cluster = PostgresCluster::start().await;
    cluster.create_database("webhooks").await;
    let mut setup = quick_setup().await;
    setup.set("DATABASE_URL", cluster.url("webhooks"));
    let processor = ProcessorProcess::start(&setup, "pg-down").await;
    let client = processor.client().await;
    // Accepted, then caught mid-delay by the outage.
    let accepted = crate::helpers::ingest_many(&client, "before", 30).await;
    assert_eq!(accepted.len(), 30);

    cluster.stop_server();
    for _ in 0..5 {
        let mut call = tonic::Request::new(request(&unique_id("during"), "1"));
        call.set_timeout(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let status = client
            .clone()
            .ingest_transaction(call)
            .await
            .expect_err("no acceptance without PostgreSQL");
        assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{status:?}"
        );
        // Well inside the caller's 5 s deadline: a server that hung until the caller gave
        // up would fail here.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "answered promptly, not at the caller's deadline"
        );
    }

    cluster.start_server();
    let db = sea_orm::Database::connect(cluster.url("webhooks"))
        .await
        .expect("connect");
    assert!(
        settle(&db, Duration::from_secs(90)).await,
        "log: {}",
        processor.log_text()
    );
    // Only the accepted ones exist: the refused ones left no row.
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    assert_eq!(
        count_by_status(&db, "PROCESSED").await,
        accepted.len() as i64
    );
}

#[tokio::test]
async fn a_processor_started_without_postgres_waits_with_its_port_closed_then_serves() {
    let cluster = PostgresCluster::start().await;
    cluster.create_database("webhooks").await;
    cluster.stop_server();
    let mut setup = quick_setup().await;
    setup.set("DATABASE_URL", cluster.url("webhooks"));
    let mut processor = ProcessorProcess::spawn(&setup, "pg-later");

    // Without PostgreSQL: still running, trying again and saying why, and not listening.
    let says_why = test_support::eventually(Duration::from_secs(15), || async {
        let log = processor.log_text();
        log.matches("PostgreSQL at DATABASE_URL is not usable yet")
            .count()
            >= 3
            && log.contains("Connection refused")
    })
    .await;
    assert!(
        says_why,
        "the log says why it waits: {}",
        processor.log_text()
    );
    assert!(processor.is_running(), "log: {}", processor.log_text());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", processor.port))
            .await
            .is_err(),
        "the gRPC port is open before the processor can serve"
    );

    cluster.start_server();
    processor
        .wait_until_listening(Duration::from_secs(30))
        .await;
    let accepted = crate::helpers::ingest_many(&processor.client().await, "later", 20).await;
    assert_eq!(accepted.len(), 20);
    let db = sea_orm::Database::connect(cluster.url("webhooks"))
        .await
        .expect("connect");
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
