//! The stream spread over a real Redis Cluster (`STREAM_SHARDS=3`): every shard is read
//! through the one group name, failures reach their shard's dead-letter stream, and a
//! primary killed mid-run loses nothing: once its replica takes over, every accepted
//! transaction ends PROCESSED once (the outbox re-publishes what the asynchronous failover
//! lost).

use std::{collections::HashMap, time::Duration};

use fred::prelude::{Client, KeysInterface, StreamsInterface};
use processor::stream::shards::Shards;
use test_support::Setup;

use crate::helpers::StartProcessor;

use crate::{
    helpers::{assert_each_accepted_finished_exactly_once, request, settle, unique_id},
    redis_cluster::RedisCluster,
};

const SHARDS: u32 = 3;

fn sharded_setup(setup: &mut Setup, cluster: &RedisCluster) {
    setup
        .set("REDIS_URL", cluster.url())
        .set("STREAM_SHARDS", SHARDS.to_string())
        .set("REPUBLISH_AFTER", "2s")
        .set("RECONCILE_INTERVAL", "500ms")
        .set("LEASE_MARGIN", "2s");
}

fn shards_of(setup: &Setup) -> Shards {
    Shards::new(
        setup.stream_key(),
        &format!("{}:dead-letter", setup.stream_key()),
        SHARDS,
    )
}

async fn entries_added(redis: &Client, key: &str) -> i64 {
    let exists: i64 = redis.exists(key).await.expect("EXISTS");
    if exists == 0 {
        return 0;
    }
    let info: HashMap<String, fred::types::Value> = redis
        .xinfo_stream(key, false, None)
        .await
        .expect("XINFO STREAM");
    info.get("entries-added")
        .and_then(fred::types::Value::as_i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn every_shard_is_processed_once_and_failures_reach_their_shards_dead_letters() {
    let cluster = RedisCluster::start().await;
    let mut setup = Setup::new("300ms").await;
    sharded_setup(&mut setup, &cluster);
    setup
        .set("SIMULATED_FAILURE_ID_PREFIX", "fail_")
        .set("MAX_ATTEMPTS", "2")
        .set("RETRY_BASE_DELAY", "100ms")
        .set("REPUBLISH_AFTER", "60s");
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let mut accepted = Vec::new();
    for n in 0..60 {
        let id = unique_id(if n % 10 == 0 { "fail" } else { "txn" });
        let answer = client
            .ingest_transaction(request(&id, "10"))
            .await
            .expect("ingest");
        assert!(answer.into_inner().created);
        // A repeat is a duplicate on a sharded stream too.
        let repeat = client
            .ingest_transaction(request(&id, "10"))
            .await
            .expect("repeat");
        assert!(!repeat.into_inner().created);
        accepted.push(id);
    }
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "every transaction finished"
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;

    let redis = setup.redis().await;
    let shards = shards_of(&setup);
    for index in 0..SHARDS {
        let key = shards.stream_key(index);
        let expected = accepted
            .iter()
            .filter(|id| shards.shard_of(id) == index)
            .count();
        assert!(expected > 0, "the ids spread over every shard");
        // At least: the outbox may add a copy (at start, when it makes the groups).
        let added = usize::try_from(entries_added(&redis, &key).await).unwrap_or_default();
        assert!(
            added >= expected,
            "{key} carried its {expected} transactions: {added}"
        );
        let dead: Vec<(String, HashMap<String, String>)> = redis
            .xrange(shards.dead_letter_key(index), "-", "+", None)
            .await
            .expect("XRANGE");
        let mut dead: Vec<String> = dead
            .into_iter()
            .filter_map(|(_, fields)| fields.get("transaction_id").cloned())
            .collect();
        dead.sort();
        let mut failing: Vec<String> = accepted
            .iter()
            .filter(|id| id.starts_with("fail_") && shards.shard_of(id) == index)
            .cloned()
            .collect();
        failing.sort();
        assert_eq!(
            dead, failing,
            "shard {index}'s dead letters are its failures"
        );
    }
    processor.stop().await;
}

#[tokio::test]
async fn a_primary_killed_mid_run_loses_no_transaction() {
    let mut cluster = RedisCluster::start().await;
    let mut setup = Setup::new("1s").await;
    sharded_setup(&mut setup, &cluster);
    let processor = setup.start().await;
    let mut client = processor.client().await;
    let victim = cluster.primary_of(&shards_of(&setup).stream_key(0));

    let mut accepted = Vec::new();
    for n in 0..240 {
        if n == 80 {
            // Entries written to it and not yet replicated are lost with it.
            cluster.kill(victim);
        }
        let id = unique_id("txn");
        let mut call = tonic::Request::new(request(&id, "10"));
        call.set_timeout(Duration::from_secs(5));
        // The row is committed before Redis is asked: ingest answers during the failover.
        let answer = client.ingest_transaction(call).await.expect("ingest");
        assert!(answer.into_inner().created);
        accepted.push(id);
    }
    cluster.wait_until_healthy().await;

    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(120)).await,
        "every transaction finished after the failover"
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    processor.stop().await;
}
