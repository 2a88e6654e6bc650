//! Ingest guarantees: duplicates make one row, and a caller that hangs up loses nothing.

use std::time::Duration;

use payments_proto::v1::transaction_service_client::TransactionServiceClient;

use crate::helpers::{
    Setup, StartProcessor, count_by_status, eventually, metric, request, unique_id,
};

#[tokio::test]
async fn concurrent_duplicates_make_one_row_and_one_publication() {
    let setup = Setup::new("500ms").await;
    let processor = setup.start().await;
    let channel = processor.channel().await;
    let id = unique_id("dup");

    let calls = (0..50).map(|_| {
        let mut client = TransactionServiceClient::new(channel.clone());
        let request = request(&id, "1500");
        tokio::spawn(async move { client.ingest_transaction(request).await })
    });
    let mut created = 0;
    for call in calls {
        let response = call
            .await
            .expect("task")
            .expect("every duplicate is accepted");
        created += usize::from(response.into_inner().created);
    }
    assert_eq!(created, 1, "exactly one call creates the transaction");
    assert_eq!(setup.entries_ever_added().await, 1);

    let db = setup.database().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            count_by_status(&db, "PROCESSED").await == 1
        })
        .await
    );
    assert_eq!(count_by_status(&db, "PROCESSING").await, 0);
    processor.stop().await;
}

#[tokio::test]
async fn callers_that_hang_up_lose_no_committed_transaction() {
    let setup = Setup::new("200ms").await;
    let processor = setup.start().await;
    let channel = processor.channel().await;

    // Each caller gives up after a short, varied wait: some before the commit, some between
    // the commit and the publish, some after.
    let calls: Vec<_> = (0..200u64)
        .map(|n| {
            let mut client = TransactionServiceClient::new(channel.clone());
            let request = request(&unique_id("hangup"), "10");
            tokio::spawn(async move {
                let patience = Duration::from_micros(500 + n * 5_000);
                tokio::time::timeout(patience, client.ingest_transaction(request))
                    .await
                    .is_ok_and(|answer| answer.is_ok())
            })
        })
        .collect();
    let mut answered = 0;
    for call in calls {
        answered += i64::from(call.await.expect("task"));
    }

    let db = setup.database().await;
    // Whatever was committed must be published and processed: nothing stays PROCESSING.
    let settled = eventually(Duration::from_secs(20), || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        count_by_status(&db, "PROCESSING").await == 0
    })
    .await;
    let processed = count_by_status(&db, "PROCESSED").await;
    assert!(
        settled,
        "{} committed rows were never processed",
        count_by_status(&db, "PROCESSING").await
    );
    assert!(
        processed > answered,
        "some callers must hang up after their row is committed ({processed} rows, {answered} answers)"
    );
    assert_eq!(
        setup.entries_ever_added().await,
        processed,
        "one publication per committed row"
    );
    processor.stop().await;
}

#[tokio::test]
async fn concurrent_different_payloads_for_one_id_make_one_row_and_conflicts() {
    let setup = Setup::new("30s").await;
    let processor = setup.start().await;
    let channel = processor.channel().await;
    let id = unique_id("race");

    let calls: Vec<_> = (0..40)
        .map(|n| {
            let mut client = TransactionServiceClient::new(channel.clone());
            let amount = if n % 2 == 0 { "100" } else { "200" };
            let request = request(&id, amount);
            tokio::spawn(async move { (amount, client.ingest_transaction(request).await) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.expect("task"));
    }
    let winners: Vec<&str> = outcomes
        .iter()
        .filter(|(_, answer)| answer.as_ref().is_ok_and(|r| r.get_ref().created))
        .map(|(amount, _)| *amount)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one call creates the row");
    for (amount, answer) in &outcomes {
        match answer {
            Ok(_) => assert_eq!(*amount, winners[0], "only the stored payload is accepted"),
            Err(status) => {
                assert_eq!(*amount, if winners[0] == "100" { "200" } else { "100" });
                assert_eq!(status.code(), tonic::Code::AlreadyExists);
            }
        }
    }
    let db = setup.database().await;
    assert_eq!(count_by_status(&db, "PROCESSING").await, 1);
    assert_eq!(setup.entries_ever_added().await, 1);
    processor.stop().await;
}

#[tokio::test]
async fn past_the_call_limit_the_processor_refuses_at_once_and_stores_nothing() {
    let mut setup = Setup::new("30s").await;
    setup.set("MAX_CONCURRENT_CALLS", "1");
    let processor = setup.start().await;
    let channel = processor.channel().await;

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let mut client = TransactionServiceClient::new(channel.clone());
            let id = unique_id("guard");
            let request = request(&id, "5");
            tokio::spawn(async move { (id, client.ingest_transaction(request).await) })
        })
        .collect();
    let mut accepted = 0;
    let mut refused = Vec::new();
    for call in calls {
        let (id, answer) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("answered, never queued without end")
            .expect("task");
        match answer {
            Ok(_) => accepted += 1,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                refused.push(id);
            }
        }
    }
    assert!(accepted >= 1, "the limit lets calls through");
    assert!(
        !refused.is_empty(),
        "50 calls at once on a limit of 1 must shed some"
    );
    let db = setup.database().await;
    assert_eq!(
        count_by_status(&db, "PROCESSING").await,
        accepted,
        "refused calls store nothing"
    );
    processor.stop().await;
}

#[tokio::test]
async fn under_a_table_lock_callers_get_unavailable_before_their_deadline_and_queued_work_is_shed()
{
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let mut setup = Setup::new("200ms").await;
    setup.set("INGEST_WRITERS", "1");
    let processor = setup.start().await;
    let channel = processor.channel().await;
    let db = setup.database().await;
    let lock = db.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the table");

    let ingest = |id: String| {
        let mut client = TransactionServiceClient::new(channel.clone());
        tokio::spawn(async move {
            let mut call = tonic::Request::new(request(&id, "10"));
            call.set_timeout(Duration::from_secs(3));
            let started = tokio::time::Instant::now();
            let answer = client.ingest_transaction(call).await;
            (answer.map(|_| ()), started.elapsed())
        })
    };
    let unavailable = r#"payments_ingest_total{outcome="unavailable"}"#;
    let unavailable_before = metric(processor.metrics_addr, unavailable).await;
    // The first is taken by the only writer, which waits on the lock; the second waits in
    // the queue behind it.
    let (in_flight, queued) = (unique_id("locked"), unique_id("queued"));
    let first = ingest(in_flight.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = ingest(queued.clone());
    for call in [first, second] {
        let (answer, took) = call.await.expect("task");
        let status = answer.expect_err("nothing can be stored under the lock");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            took < Duration::from_secs(3),
            "answered before the deadline, not at it: {took:?}"
        );
    }

    assert!(metric(processor.metrics_addr, unavailable).await >= unavailable_before + 2.0);

    lock.rollback().await.expect("release the lock");
    // The write in flight completes (its row may have been committed by then); the one
    // still queued when its caller left is never written.
    assert!(
        eventually(Duration::from_secs(10), || async {
            count_by_status(&db, "PROCESSING").await + count_by_status(&db, "PROCESSED").await == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = sea_orm::ConnectionTrait::query_all_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT transaction_id FROM transactions",
        ),
    )
    .await
    .expect("rows");
    let ids: Vec<String> = stored
        .iter()
        .filter_map(|row| row.try_get::<String>("", "transaction_id").ok())
        .collect();
    assert_eq!(ids, vec![in_flight], "the shed one left no row");
    processor.stop().await;
}
