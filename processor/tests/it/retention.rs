//! Retention: finished transactions older than `RETENTION` go, with their attempts; nothing
//! else does. The dead-letter stream is trimmed to the same horizon, and consumers that
//! left the group with nothing pending are removed from it, never a live one.

use std::{collections::BTreeSet, time::Duration};

use fred::prelude::{Client, StreamsInterface};
use processor::retention::Retention;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Setup, StartProcessor, eventually, metric, request, unique_id};

/// Old rows of each final status: more than one delete batch, so batches are exercised.
const OLD_FINISHED: i64 = 1_300;

/// Adds `count` rows of `status` created `created_ago` and finished `finished_ago` (NULL:
/// still PROCESSING), ids `{prefix}_{n}`, each finished one with one attempt record.
async fn add_rows(
    db: &DatabaseConnection,
    prefix: &str,
    count: i64,
    status: &str,
    created_ago: &str,
    finished_ago: Option<&str>,
) {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH added AS (
             INSERT INTO transactions (transaction_id, source_account, destination_account,
                                       amount, currency, status, attempts, created_at,
                                       updated_at, processed_at, republish_at)
             SELECT $1 || '_' || i, 'acc_a', 'acc_b', 10, 'INR', $3, 1,
                    now() - $4::interval, now(), now() - $5::interval,
                    now() + interval '1 day'
               FROM generate_series(1, $2) AS i
          RETURNING transaction_id, status, created_at)
         INSERT INTO processing_attempts (transaction_id, attempt, consumer, started_at, outcome)
         SELECT transaction_id, 1, 'consumer-of-the-past', created_at,
                CASE WHEN status = 'FAILED' THEN 'FAILED' ELSE 'SUCCEEDED' END
           FROM added WHERE status <> 'PROCESSING'",
        [
            prefix.into(),
            count.into(),
            status.into(),
            created_ago.into(),
            finished_ago.into(),
        ],
    ))
    .await
    .expect("add rows");
}

async fn ids(db: &DatabaseConnection, table: &str) -> BTreeSet<String> {
    db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT DISTINCT transaction_id FROM {table}"),
    ))
    .await
    .expect("ids")
    .iter()
    .map(|row| row.try_get::<String>("", "transaction_id").expect("id"))
    .collect()
}

fn named(prefix: &str, count: i64) -> BTreeSet<String> {
    (1..=count).map(|n| format!("{prefix}_{n}")).collect()
}

#[tokio::test]
async fn retention_deletes_exactly_the_finished_rows_older_than_the_horizon() {
    let mut setup = Setup::new("200ms").await;
    setup
        .set("RETENTION", "1h")
        .set("RECONCILE_INTERVAL", "200ms");
    // The rows go in before the processor (and its retention) runs.
    migration::apply_pending(setup.database_url())
        .await
        .expect("migrate");
    let db = setup.database().await;

    add_rows(
        &db,
        "old_processed",
        OLD_FINISHED,
        "PROCESSED",
        "2 hours",
        Some("2 hours"),
    )
    .await;
    add_rows(
        &db,
        "old_failed",
        OLD_FINISHED,
        "FAILED",
        "3 hours",
        Some("2 hours"),
    )
    .await;
    // Kept: unfinished whatever their age, finished within the hour, and a row created
    // long ago but finished recently (re-driven): its hour starts when it finished.
    add_rows(&db, "ancient_processing", 5, "PROCESSING", "30 days", None).await;
    add_rows(
        &db,
        "recent_processed",
        5,
        "PROCESSED",
        "10 minutes",
        Some("9 minutes"),
    )
    .await;
    add_rows(
        &db,
        "recent_failed",
        5,
        "FAILED",
        "50 minutes",
        Some("50 minutes"),
    )
    .await;
    add_rows(&db, "redriven", 5, "PROCESSED", "2 days", Some("5 minutes")).await;
    let kept: BTreeSet<String> = [
        "ancient_processing",
        "recent_processed",
        "recent_failed",
        "redriven",
    ]
    .into_iter()
    .flat_map(|prefix| named(prefix, 5))
    .collect();
    let kept_with_attempts: BTreeSet<String> = ["recent_processed", "recent_failed", "redriven"]
        .into_iter()
        .flat_map(|prefix| named(prefix, 5))
        .collect();

    let processor = setup.start().await;
    let removed_line = r#"payments_retention_removed_total{kind="transactions"}"#;
    // Ingest goes on meanwhile, and what it stores is recent: it stays too.
    let mut client = processor.client().await;
    let fresh = unique_id("fresh");
    client
        .ingest_transaction(request(&fresh, "7"))
        .await
        .expect("ingest during retention");

    let mut expected = kept.clone();
    expected.insert(fresh.clone());
    assert!(
        eventually(Duration::from_secs(60), || async {
            ids(&db, "transactions").await == expected
        })
        .await,
        "exactly the old finished rows are deleted; left: {} rows",
        ids(&db, "transactions").await.len()
    );
    let mut attempts_expected = kept_with_attempts;
    // The fresh one is processed meanwhile (200 ms), and its attempt stays with it.
    attempts_expected.insert(fresh.clone());
    assert!(
        eventually(Duration::from_secs(20), || async {
            ids(&db, "processing_attempts").await == attempts_expected
        })
        .await,
        "the deleted rows' attempts are deleted with them, and no other"
    );
    // The recorder is the process's, and its first round may run before any baseline could
    // be read; no other test of this binary deletes rows, so the total is this test's.
    let removed = metric(processor.metrics_addr, removed_line).await;
    assert!(
        removed >= (2 * OLD_FINISHED) as f64,
        "the metric counts the rows removed: {removed}"
    );
    processor.stop().await;
}

/// A consumer in the group, as if it had just read (XREADGROUP with nothing to read makes
/// none).
async fn add_consumer(redis: &Client, setup: &Setup, consumer: &str) {
    let _: i64 = redis
        .xgroup_createconsumer(setup.stream_key(), setup.consumer_group(), consumer)
        .await
        .expect("XGROUP CREATECONSUMER");
}

/// `consumer` reads the one waiting entry, which stays pending.
async fn read_one(redis: &Client, setup: &Setup, consumer: &str) {
    let _: fred::types::Value = redis
        .xreadgroup(
            setup.consumer_group(),
            consumer,
            Some(1),
            None,
            false,
            setup.stream_key(),
            ">",
        )
        .await
        .expect("XREADGROUP");
}

async fn consumers(redis: &Client, setup: &Setup) -> BTreeSet<String> {
    let infos: Vec<std::collections::HashMap<String, fred::types::Value>> = redis
        .xinfo_consumers(setup.stream_key(), setup.consumer_group())
        .await
        .expect("XINFO CONSUMERS");
    infos
        .iter()
        .filter_map(|info| info.get("name").and_then(|name| name.as_string()))
        .collect()
}

#[tokio::test]
async fn dead_letters_are_trimmed_to_the_horizon_and_only_departed_idle_consumers_go() {
    let setup = Setup::new("100ms").await;
    let redis = setup.redis().await;
    let dead_letter_key = format!("{}:dead-letter", setup.stream_key());
    let hour_ms = 3_600_000_i64;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for (id, transaction_id) in [
        (format!("{}-0", now_ms - 3 * hour_ms), "failed_3h_ago"),
        (format!("{}-0", now_ms - 2 * hour_ms), "failed_2h_ago"),
        (format!("{}-0", now_ms - hour_ms / 2), "failed_30m_ago"),
    ] {
        let _: String = redis
            .xadd(
                &dead_letter_key,
                false,
                None,
                id,
                ("transaction_id", transaction_id),
            )
            .await
            .expect("XADD dead letter");
    }
    let _: String = redis
        .xadd(
            &dead_letter_key,
            false,
            None,
            "*",
            ("transaction_id", "failed_now"),
        )
        .await
        .expect("XADD dead letter");

    let _: () = redis
        .xgroup_create(setup.stream_key(), setup.consumer_group(), "0", true)
        .await
        .expect("XGROUP CREATE");
    // Left with nothing pending; crashed with an entry pending; this replica itself.
    add_consumer(&redis, &setup, "departed").await;
    let _: String = redis
        .xadd(
            setup.stream_key(),
            false,
            None,
            "*",
            ("transaction_id", "t1"),
        )
        .await
        .expect("XADD");
    read_one(&redis, &setup, "crashed").await;
    add_consumer(&redis, &setup, setup.consumer_name()).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Idle with nothing pending too, but it has just read: live.
    add_consumer(&redis, &setup, "live").await;

    let retention = Retention {
        db: setup.database().await,
        redis: redis.clone(),
        shards: vec![(
            processor::stream::StreamNames {
                key: setup.stream_key().to_owned(),
                group: setup.consumer_group().to_owned(),
                consumer: setup.consumer_name().to_owned(),
            },
            dead_letter_key.clone(),
        )],
        keep: Some(Duration::from_secs(3_600)),
        consumer_idle_limit: Duration::from_secs(1),
        interval: Duration::from_secs(1),
    };
    retention.round(&CancellationToken::new()).await;

    let left: Vec<(String, std::collections::HashMap<String, String>)> = redis
        .xrange(&dead_letter_key, "-", "+", None)
        .await
        .expect("XRANGE");
    let left: Vec<String> = left
        .into_iter()
        .filter_map(|(_, fields)| fields.get("transaction_id").cloned())
        .collect();
    assert_eq!(left, ["failed_30m_ago", "failed_now"]);

    let expected: BTreeSet<String> = ["crashed", "live", setup.consumer_name()]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(consumers(&redis, &setup).await, expected);
    assert_eq!(
        setup.pending_count(&redis).await,
        1,
        "the crashed one's entry is still pending"
    );
}
