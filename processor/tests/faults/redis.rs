//! Redis unavailable, restarted empty, or flushed: PostgreSQL re-drives the work.

use std::time::Duration;

use crate::helpers::{
    ProcessorProcess, RedisServer, assert_each_accepted_finished_exactly_once, count_by_status,
    ingest_many, quick_setup, settle,
};

#[tokio::test]
async fn ingest_is_accepted_while_redis_is_down_and_processed_once_it_returns() {
    let mut redis = RedisServer::start().await;
    let mut setup = quick_setup().await;
    setup.set("REDIS_URL", redis.url());
    let processor = ProcessorProcess::start(&setup, "redis-down").await;
    let client = processor.client().await;
    let mut accepted = ingest_many(&client, "before", 20).await;

    redis.stop();
    let during = ingest_many(&client, "during", 20).await;
    assert_eq!(
        during.len(),
        20,
        "committed rows are accepted without Redis"
    );
    accepted.extend(during);

    // Back, and empty: the group is recreated and PostgreSQL re-drives what is unfinished.
    redis.restart().await;
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    assert_eq!(
        count_by_status(&db, "PROCESSED").await,
        accepted.len() as i64
    );
}

#[tokio::test]
async fn a_flushed_redis_mid_processing_loses_nothing_and_repeats_nothing() {
    let redis = RedisServer::start().await;
    let mut setup = quick_setup().await;
    setup.set("REDIS_URL", redis.url());
    let processor = ProcessorProcess::start(&setup, "flushed").await;
    let client = processor.client().await;
    let mut accepted = ingest_many(&client, "flush", 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.flush_all().await;
    accepted.extend(ingest_many(&client, "after", 50).await);
    assert_eq!(accepted.len(), 250);

    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    assert_eq!(count_by_status(&db, "PROCESSED").await, 250);
}
