//! What should never happen is loud: a stream entry naming a transaction PostgreSQL does
//! not have (a row lost in an asynchronous failover, a stray XADD) is an error line and a
//! counter, and is acknowledged rather than retried for ever.

use std::time::Duration;

use fred::prelude::StreamsInterface;

use crate::helpers::{
    ProcessorProcess, assert_each_accepted_finished_exactly_once, ingest_many, metric, quick_setup,
    settle, unique_id,
};

#[tokio::test]
async fn an_entry_without_a_row_is_an_error_line_and_a_counter_and_is_acknowledged() {
    let setup = quick_setup().await;
    let processor = ProcessorProcess::start(&setup, "orphans").await;
    let accepted = ingest_many(&processor.client().await, "alongside", 5).await;
    let orphan = unique_id("orphan");
    let redis = setup.redis().await;
    let _: String = redis
        .xadd(
            setup.stream_key(),
            false,
            None,
            "*",
            ("transaction_id", orphan.as_str()),
        )
        .await
        .expect("XADD");

    let counted = test_support::eventually(Duration::from_secs(15), || async {
        metric(processor.metrics_addr(), "payments_orphan_entries_total").await == 1.0
    })
    .await;
    assert!(counted, "log: {}", processor.log_text());
    let log = processor.log_text();
    assert!(
        log.lines().any(|line| line.contains(&orphan)
            && line.contains("ERROR")
            && line.contains("PostgreSQL does not have")),
        "an error line names it: {log}"
    );
    let db = setup.database().await;
    assert!(settle(&db, Duration::from_secs(30)).await);
    // Acknowledged: nothing is left pending for it, and no row appeared.
    let redis_url = setup
        .environment()
        .into_iter()
        .find_map(|(name, url)| (name == "REDIS_URL").then_some(url))
        .expect("REDIS_URL");
    assert!(
        test_support::eventually(Duration::from_secs(10), || async {
            crate::helpers::pending(&setup, &redis_url).await == 0
        })
        .await
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
