//! Processors that die, and processors that share the work.

use fred::prelude::StreamsInterface;
use std::time::Duration;

use crate::helpers::{
    ProcessorProcess, assert_each_accepted_finished_exactly_once, count_by_status, ingest_many,
    metric, pending, quick_setup, settle,
};

#[tokio::test]
async fn a_processor_killed_mid_delay_loses_nothing() {
    let setup = quick_setup().await;
    let first = ProcessorProcess::start(&setup, "first").await;
    let accepted = ingest_many(&first.client().await, "kill9", 300).await;
    assert_eq!(accepted.len(), 300);

    // Wait until it holds them all mid-delay, then kill it without warning.
    let redis_url = test_support::redis_url();
    let all_read = test_support::eventually(Duration::from_secs(20), || async {
        pending(&setup, &redis_url).await == 300
    })
    .await;
    assert!(all_read, "the first processor read every entry");
    first.kill_9();
    let db = setup.database().await;
    assert_eq!(
        count_by_status(&db, "PROCESSED").await,
        0,
        "killed before any delay ended"
    );

    // A new replica (another name) takes the dead one's entries once their leases lapse,
    // and counts them: payments_claimed_entries_total is what tells replicas are dying.
    let second = ProcessorProcess::start(&setup, "second").await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        second.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    assert_eq!(count_by_status(&db, "PROCESSED").await, 300);
    let claimed = metric(second.metrics_addr(), "payments_claimed_entries_total").await;
    assert!(
        claimed >= 300.0,
        "every entry of the dead consumer was claimed (XAUTOCLAIM): {claimed}"
    );
}

#[tokio::test]
async fn three_processors_share_the_work_and_survive_one_killed() {
    let setup = quick_setup().await;
    let a = ProcessorProcess::start(&setup, "replica-a").await;
    let b = ProcessorProcess::start(&setup, "replica-b").await;
    let c = ProcessorProcess::start(&setup, "replica-c").await;
    let mut accepted = ingest_many(&a.client().await, "replicas", 150).await;
    accepted.extend(ingest_many(&c.client().await, "replicas", 150).await);
    assert_eq!(accepted.len(), 300);

    tokio::time::sleep(Duration::from_millis(800)).await;
    b.kill_9();

    let db = setup.database().await;
    assert!(settle(&db, Duration::from_secs(60)).await);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;

    // Each replica did part of the work.
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT DISTINCT consumer FROM processing_attempts WHERE outcome = 'SUCCEEDED'",
        ),
    )
    .await
    .expect("consumers");
    let consumers: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "consumer").ok())
        .collect();
    assert!(
        consumers.contains(&"replica-a".to_owned()) && consumers.contains(&"replica-c".to_owned()),
        "{consumers:?}"
    );
    drop((a, c));
}

#[tokio::test]
async fn sigterm_lets_in_flight_work_finish_within_the_grace_period() {
    let setup = quick_setup().await;
    let processor = ProcessorProcess::start(&setup, "graceful").await;
    let accepted = ingest_many(&processor.client().await, "sigterm", 50).await;
    let redis_url = test_support::redis_url();
    assert!(
        test_support::eventually(Duration::from_secs(10), || async {
            pending(&setup, &redis_url).await == 50
        })
        .await
    );

    let status = processor.terminate().await;
    assert!(status.success(), "exit status {status}");
    let db = setup.database().await;
    // The 2 s delays ended inside the 10 s grace: nothing is left for another replica.
    assert_eq!(count_by_status(&db, "PROCESSED").await, 50);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}

/// A live holder keeps its entries however long it holds them: it resets their idle time
/// before it reaches the lease, so another replica's XAUTOCLAIM (which takes entries idle a
/// whole lease) takes none of them, and each transaction is called once.
#[tokio::test]
async fn entries_held_for_several_leases_stay_with_their_live_holder() {
    const LEASE_MS: u64 = 3_000;
    let mut setup = quick_setup().await;
    setup
        .set("LEASE_MARGIN", format!("{LEASE_MS}ms"))
        .set("PROCESSING_DELAY", "10s");
    let holder = ProcessorProcess::start(&setup, "holder").await;
    let accepted = ingest_many(&holder.client().await, "held", 50).await;
    assert_eq!(accepted.len(), 50);
    let redis_url = test_support::redis_url();
    let all_read = test_support::eventually(Duration::from_secs(20), || async {
        pending(&setup, &redis_url).await == 50
    })
    .await;
    assert!(all_read, "the holder read every entry");
    // Its peer looks for idle entries every RECONCILE_INTERVAL (500 ms) all along.
    let peer = ProcessorProcess::start(&setup, "peer").await;

    let redis = setup.redis().await;
    let mut most_idle_ms = 0;
    let db = setup.database().await;
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(40);
    while count_by_status(&db, "PROCESSED").await < 50 {
        assert!(
            tokio::time::Instant::now() < watch_until,
            "not every transaction was processed within 40 s"
        );
        let entries: Vec<(String, String, u64, u64)> = redis
            .xpending(setup.stream_key(), setup.consumer_group(), ("-", "+", 100))
            .await
            .expect("XPENDING");
        for (entry, consumer, idle_ms, _) in &entries {
            assert_eq!(consumer, "holder", "entry {entry} left its live holder");
            most_idle_ms = most_idle_ms.max(*idle_ms);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        most_idle_ms < LEASE_MS,
        "held entries idled {most_idle_ms} ms, past the {LEASE_MS} ms lease"
    );
    assert!(settle(&db, Duration::from_secs(30)).await);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    drop(peer);
}
