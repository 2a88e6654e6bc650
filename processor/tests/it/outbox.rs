//! The outbox: a committed transaction whose entry never reached the stream is published
//! and processed, also behind a backlog; transactions waiting unread in the stream are not
//! published again.

use std::{collections::HashMap, time::Duration};

use fred::{prelude::StreamsInterface, types::Value};
use sea_orm::ConnectionTrait;

use crate::helpers::{
    RunningProcessor, Setup, StartProcessor, count_by_status, eventually, metric, request,
    unique_id,
};

/// A processor whose outbox looks every 200 ms and republishes after 1 s.
async fn quick_outbox(delay: &'static str) -> Setup {
    let mut setup = Setup::new(delay).await;
    setup
        .set("REPUBLISH_AFTER", "1s")
        .set("RECONCILE_INTERVAL", "200ms");
    setup
}

/// A row committed two seconds ago (`REPUBLISH_AFTER` is 1 s) and never published: as if
/// its processor had died between the commit and the XADD.
async fn commit_unpublished(db: &sea_orm::DatabaseConnection, prefix: &str) {
    let id = unique_id(prefix);
    db.execute_unprepared(&format!(
        "INSERT INTO transactions (transaction_id, source_account, destination_account, amount, currency, republish_at)
         VALUES ('{id}', 'acc_a', 'acc_b', 10.00, 'INR', now() - interval '1 second')"
    ))
    .await
    .expect("insert");
}

#[tokio::test]
async fn a_committed_transaction_never_published_is_published_and_processed() {
    let setup = quick_outbox("100ms").await;
    let processor = setup.start().await;
    let published = "payments_outbox_published_total";
    let published_before = metric(processor.metrics_addr, published).await;
    let db = setup.database().await;
    commit_unpublished(&db, "unpublished").await;

    let processed = eventually(Duration::from_secs(15), || async {
        count_by_status(&db, "PROCESSED").await == 1
    })
    .await;
    assert!(processed, "the outbox never published the committed row");
    assert_eq!(setup.entries_ever_added().await, 1, "published once");
    assert!(metric(processor.metrics_addr, published).await >= published_before + 1.0);
    processor.stop().await;
}

/// Waits until the processor has made its consumer group: its making at start re-drives
/// what was committed before, and these tests are about the rounds after it.
async fn wait_for_the_group(setup: &Setup) {
    let redis = setup.redis().await;
    let group_made = eventually(Duration::from_secs(10), || async {
        let groups: Result<Vec<HashMap<String, Value>>, _> =
            redis.xinfo_groups(setup.stream_key()).await;
        groups.is_ok_and(|groups| !groups.is_empty())
    })
    .await;
    assert!(group_made, "the consumer group was never made");
}

/// Ingests `count` new transactions, one call each.
async fn ingest_one_by_one(processor: &RunningProcessor, prefix: &str, count: usize) {
    let mut client = processor.client().await;
    for n in 0..count {
        client
            .ingest_transaction(request(&unique_id(&format!("{prefix}_{n}")), "3"))
            .await
            .expect("ingest accepted");
    }
}

/// Entries of the test's stream the group has not been delivered yet.
async fn unread_entries(setup: &Setup) -> i64 {
    let groups: Vec<HashMap<String, Value>> = setup
        .redis()
        .await
        .xinfo_groups(setup.stream_key())
        .await
        .expect("XINFO GROUPS");
    groups
        .iter()
        .find(|group| {
            group.get("name").and_then(Value::as_string).as_deref() == Some(setup.consumer_group())
        })
        .and_then(|group| group.get("lag"))
        .and_then(Value::as_i64)
        .expect("the group's lag")
}

#[tokio::test]
async fn a_stranded_transaction_is_published_while_a_backlog_lasts_and_nothing_waiting_is_copied() {
    let mut setup = quick_outbox("400ms").await;
    // Two at a time, 400 ms each: 60 transactions are a backlog of about 12 s.
    setup.set("MAX_IN_FLIGHT", "2");
    let processor = setup.start().await;
    wait_for_the_group(&setup).await;
    ingest_one_by_one(&processor, "queued", 60).await;
    // The group has read past the moment it was committed, so no entry for it is waiting.
    let db = setup.database().await;
    commit_unpublished(&db, "stranded").await;

    let published = eventually(Duration::from_secs(5), || async {
        setup.entries_ever_added().await == 61
    })
    .await;
    assert!(
        published,
        "the stranded row was not published behind the backlog"
    );
    assert!(
        unread_entries(&setup).await > 0,
        "published only once the backlog was read: not what this test is about"
    );

    let all_processed = eventually(Duration::from_secs(40), || async {
        count_by_status(&db, "PROCESSED").await == 61
    })
    .await;
    assert!(
        all_processed,
        "the backlog and the stranded row were processed"
    );
    assert_eq!(
        setup.entries_ever_added().await,
        61,
        "one entry per transaction: none waiting in the queue was copied"
    );
    processor.stop().await;
}

#[tokio::test]
async fn transactions_waiting_unread_in_the_stream_are_not_published_again() {
    let mut setup = quick_outbox("60s").await;
    // The consumer holds 5 in their delay and leaves the rest unread in the stream.
    setup.set("MAX_IN_FLIGHT", "5");
    let processor = setup.start().await;
    wait_for_the_group(&setup).await;
    ingest_one_by_one(&processor, "backlog", 20).await;

    // Several outbox rounds past REPUBLISH_AFTER: absence is the claim, so the test waits.
    tokio::time::sleep(Duration::from_secs(4)).await;

    assert!(
        unread_entries(&setup).await > 0,
        "the stream must still hold unread entries"
    );
    assert_eq!(
        setup.entries_ever_added().await,
        20,
        "one entry per transaction, none republished while unread"
    );
    let db = setup.database().await;
    assert_eq!(count_by_status(&db, "PROCESSING").await, 20);
    processor.stop().await;
}
