//! The consumer group: delays run concurrently, redeliveries change nothing, and a
//! restarted consumer finishes what it had read.

use std::time::Duration;

use fred::prelude::StreamsInterface;
use payments_proto::v1::{
    self as pb, GetTransactionRequest, transaction_service_client::TransactionServiceClient,
};
use sea_orm::ConnectionTrait;

use crate::helpers::{
    Setup, StartProcessor, assert_each_accepted_finished_exactly_once, count_by_status, eventually,
    request, unique_id,
};

#[tokio::test]
async fn one_thousand_transactions_wait_their_delay_concurrently() {
    let setup = Setup::new("2s").await;
    let processor = setup.start().await;
    let channel = processor.channel().await;

    let started = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..1_000 {
        let mut client = TransactionServiceClient::new(channel.clone());
        let request = request(&format!("bulk_{n}_{}", unique_id("t")), "99.99");
        calls.spawn(async move { client.ingest_transaction(request).await.map(|_| ()) });
    }
    while let Some(call) = calls.join_next().await {
        call.expect("task").expect("ingest accepted");
    }

    let db = setup.database().await;
    // One at a time this would take 2,000 s; concurrently it takes the delay plus overhead.
    let all_done = eventually(Duration::from_secs(60), || async {
        count_by_status(&db, "PROCESSED").await == 1_000
    })
    .await;
    assert!(
        all_done,
        "only {} of 1000 processed",
        count_by_status(&db, "PROCESSED").await
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    processor.stop().await;
}

#[tokio::test]
async fn a_redelivered_entry_changes_nothing() {
    let setup = Setup::new("100ms").await;
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let id = unique_id("redeliver");
    client
        .ingest_transaction(request(&id, "5"))
        .await
        .expect("ingest");

    let get = |mut client: TransactionServiceClient<_>, id: String| async move {
        client
            .get_transaction(GetTransactionRequest { transaction_id: id })
            .await
            .expect("get")
            .into_inner()
    };
    let db = setup.database().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count_by_status(&db, "PROCESSED").await == 1
        })
        .await
    );
    let first = get(client.clone(), id.clone()).await;

    // The same id delivered again, as after a crash between UPDATE and XACK.
    let redis = setup.redis().await;
    let _: String = redis
        .xadd(
            setup.stream_key(),
            false,
            None,
            "*",
            vec![("transaction_id", id.as_str())],
        )
        .await
        .expect("XADD");
    // Once acknowledged, the redelivered entry is gone from the group's pending list.
    let acked = eventually(Duration::from_secs(10), || async {
        let length: u64 = redis.xlen(setup.stream_key()).await.expect("XLEN");
        setup.pending_count(&redis).await == 0 && length == 0
    })
    .await;
    assert!(acked, "the redelivered entry was acknowledged and deleted");

    let second = get(client, id).await;
    assert_eq!(second.status(), pb::TransactionStatus::Processed);
    assert_eq!(
        second.processed_at, first.processed_at,
        "processed once, not again"
    );
    assert_eq!(second.attempts, 1);
    processor.stop().await;
}

#[tokio::test]
async fn a_restarted_consumer_finishes_its_own_pending_entries() {
    let mut setup = Setup::new("1s").await;
    setup.set("SHUTDOWN_GRACE", "0s");
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let ids: Vec<String> = (0..20).map(|_| unique_id("restart")).collect();
    for id in &ids {
        client
            .ingest_transaction(request(id, "7"))
            .await
            .expect("ingest");
    }
    // Stop mid-delay with no grace: the entries were read but never acknowledged.
    let redis = setup.redis().await;
    let read_by_consumer = eventually(Duration::from_secs(10), || async {
        setup.pending_count(&redis).await == 20
    })
    .await;
    assert!(read_by_consumer);
    processor.stop().await;
    let db = setup.database().await;
    assert_eq!(
        count_by_status(&db, "PROCESSING").await,
        20,
        "nothing finished before the stop"
    );

    // Same consumer name, as a restarted container: it drains its own pending entries.
    let restarted = setup.start().await;
    let finished = eventually(Duration::from_secs(15), || async {
        count_by_status(&db, "PROCESSED").await == 20
    })
    .await;
    assert!(
        finished,
        "the restarted consumer processed what it had read"
    );
    restarted.stop().await;
}

#[tokio::test]
async fn a_read_that_finds_nothing_is_empty_not_an_error() {
    use processor::stream::{StreamNames, consumer};

    let setup = Setup::new("1s").await;
    let redis = setup.redis().await;
    let names = StreamNames {
        key: setup.stream_key().to_owned(),
        group: setup.consumer_group().to_owned(),
        consumer: setup.consumer_name().to_owned(),
    };
    consumer::ensure_group(&redis, &names)
        .await
        .expect("group created");
    // Idempotent: a second replica creating the same group is fine.
    consumer::ensure_group(&redis, &names)
        .await
        .expect("BUSYGROUP is success");

    let blocking = consumer::read_entries(&redis, &names, ">", 10, Some(100)).await;
    assert_eq!(
        blocking.expect("a timed-out blocking read is not an error"),
        vec![]
    );
    let own_pending = consumer::read_entries(&redis, &names, "0", 10, None).await;
    assert_eq!(
        own_pending.expect("reading no pending entries is not an error"),
        vec![]
    );
}

#[tokio::test]
async fn the_in_flight_bound_slows_reading_and_drops_nothing() {
    let mut setup = Setup::new("500ms").await;
    setup.set("MAX_IN_FLIGHT", "20");
    let processor = setup.start().await;
    let channel = processor.channel().await;
    // From the first ingest: processing starts while the others are still arriving.
    let started = tokio::time::Instant::now();
    let mut accepted = Vec::new();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..200 {
        let mut client = TransactionServiceClient::new(channel.clone());
        let id = format!("bound_{n}_{}", unique_id("t"));
        accepted.push(id.clone());
        calls.spawn(async move {
            client
                .ingest_transaction(request(&id, "1"))
                .await
                .map(|_| ())
        });
    }
    while let Some(call) = calls.join_next().await {
        call.expect("task").expect("ingest accepted");
    }

    // Claimed and unfinished rows are the ones waiting out their delay: never above 20.
    let db = setup.database().await;
    let mut most_held = 0;
    while count_by_status(&db, "PROCESSED").await < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all processed within 60 s"
        );
        let held = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS held FROM transactions WHERE status = 'PROCESSING' AND lease_owner IS NOT NULL",
            ))
            .await
            .expect("count held")
            .and_then(|row| row.try_get::<i64>("", "held").ok())
            .unwrap_or_default();
        most_held = most_held.max(held);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most_held <= 20,
        "{most_held} transactions held at once, bound 20"
    );
    assert!(
        most_held >= 10,
        "the bound was never reached ({most_held} held at most)"
    );
    // 200 through 20 slots of 500 ms each: at least ten rounds.
    assert!(started.elapsed() >= Duration::from_millis(4_000));
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    processor.stop().await;
}
