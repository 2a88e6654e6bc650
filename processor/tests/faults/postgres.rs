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
