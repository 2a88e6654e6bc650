//! One call per transaction: through deploys (SIGTERM), a call outlasting the lease, a
//! pause (SIGSTOP) and a crash (kill -9). Where a call is cut, the repeat carries the
//! same key, is counted, and the row still ends PROCESSED once.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::{
    downstream::{Answer, Downstream},
    helpers::{
        ProcessorProcess, assert_each_accepted_finished_exactly_once, ingest_many, quick_setup,
        settle,
    },
};
use test_support::{Setup, eventually};

const REPEATED: &str = "payments_external_calls_repeated_total";

/// The outcomes in `processing_attempts`, each with how many rows have it.
async fn attempts_by_outcome(db: &DatabaseConnection) -> Vec<(String, i64)> {
    db.query_all_raw(Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT outcome, count(*) AS n FROM processing_attempts GROUP BY outcome ORDER BY outcome",
    ))
    .await
    .expect("attempts")
    .iter()
    .map(|row| {
        (
            row.try_get::<String>("", "outcome").expect("outcome"),
            row.try_get::<i64>("", "n").expect("count"),
        )
    })
    .collect()
}

/// Waits until the downstream has been called `count` times in all.
async fn calls_under_way(downstream: &Downstream, count: usize) {
    let reached = eventually(Duration::from_secs(20), || async {
        downstream.total() == count
    })
    .await;
    assert!(reached, "{count} calls under way: {}", downstream.total());
}

/// Without a cut: each transaction ends PROCESSED once after one call under its key, every
/// attempt SUCCEEDED, and none of `replicas` counted a repeat.
async fn assert_each_called_once(
    setup: &Setup,
    downstream: &Downstream,
    accepted: &[String],
    replicas: &[&ProcessorProcess],
    within: Duration,
) {
    let db = setup.database().await;
    assert!(settle(&db, within).await);
    assert_each_accepted_finished_exactly_once(&db, accepted).await;
    downstream.assert_each_called(accepted, 1);
    assert_eq!(
        attempts_by_outcome(&db).await,
        outcomes(&[("SUCCEEDED", accepted.len() as i64)])
    );
    for replica in replicas {
        assert_eq!(replica.counter(REPEATED).await, 0.0);
    }
}

/// After every call was cut once: each transaction ends PROCESSED once, after the cut call
/// and its repeat under its own key, the repeats counted by `repeater`.
async fn assert_each_repeated_once(
    setup: &Setup,
    downstream: &Downstream,
    accepted: &[String],
    repeater: &ProcessorProcess,
) {
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        repeater.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, accepted).await;
    downstream.assert_each_called(accepted, 2);
    let cut = accepted.len() as i64;
    assert_eq!(repeater.counter(REPEATED).await, cut as f64);
    assert_eq!(
        attempts_by_outcome(&db).await,
        outcomes(&[("INTERRUPTED", cut), ("SUCCEEDED", cut)])
    );
}

fn outcomes(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(o, n)| ((*o).to_owned(), *n)).collect()
}

/// A quick setup calling `downstream`.
async fn calling(downstream: &Downstream) -> Setup {
    let mut setup = quick_setup().await;
    setup
        .set("EXTERNAL_CALL_URL", downstream.url())
        .set("EXTERNAL_CALL_TIMEOUT", "20s");
    setup
}

#[tokio::test]
async fn a_rolling_restart_of_three_replicas_under_load_calls_each_transaction_once() {
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(5))]).await;
    let mut setup = Setup::new("30s").await;
    setup
        .set("EXTERNAL_CALL_URL", downstream.url())
        .set("LOG_FORMAT", "json");
    // Everything else as deployed: the default grace, timeout, lease and outbox.
    let defaults = ["SHUTDOWN_GRACE"];
    let mut replicas = Vec::new();
    for name in ["replica-0", "replica-1", "replica-2"] {
        replicas.push(ProcessorProcess::start_with_defaults(&setup, name, &defaults).await);
    }
    let mut accepted = Vec::new();
    for round in 0..3 {
        // Load through a replica that stays up, then a deploy step: the oldest goes.
        let client = replicas[2].client().await;
        accepted.extend(ingest_many(&client, "rolling", 40).await);
        let in_flight = eventually(Duration::from_secs(20), || async {
            downstream.total() >= accepted.len()
        })
        .await;
        assert!(in_flight, "calls under way before the stop");
        let stopping = replicas.remove(0);
        let log = stopping.log.clone();
        let status = stopping.terminate().await;
        assert!(status.success(), "exit status {status}");
        let log = std::fs::read_to_string(log).expect("log");
        let had_in_flight = log
            .lines()
            .filter(|line| line.contains("consumer stopping"))
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|event| event["in_flight"].as_u64())
            .any(|count| count > 0);
        assert!(had_in_flight, "the stop came with calls under way: {log}");
        let name = format!("replica-{}-new", round);
        replicas.push(ProcessorProcess::start_with_defaults(&setup, &name, &defaults).await);
    }
    assert_eq!(accepted.len(), 120, "every ingest accepted");
    let replicas: Vec<&ProcessorProcess> = replicas.iter().collect();
    assert_each_called_once(
        &setup,
        &downstream,
        &accepted,
        &replicas,
        Duration::from_secs(90),
    )
    .await;
}

#[tokio::test]
async fn calls_outlasting_the_lease_are_not_repeated_while_their_holder_renews() {
    // 5 s calls against a 2 s lease, a second replica watching for lapsed leases.
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(5))]).await;
    let setup = calling(&downstream).await;
    let first = ProcessorProcess::start(&setup, "renewing-a").await;
    let accepted = ingest_many(&first.client().await, "renewed", 30).await;
    let second = ProcessorProcess::start(&setup, "renewing-b").await;
    assert_each_called_once(
        &setup,
        &downstream,
        &accepted,
        &[&first, &second],
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test]
async fn a_processor_paused_past_its_lease_is_repeated_with_the_same_key_and_records_nothing() {
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(3))]).await;
    let setup = calling(&downstream).await;
    let paused = ProcessorProcess::start(&setup, "paused").await;
    let accepted = ingest_many(&paused.client().await, "paused", 10).await;
    calls_under_way(&downstream, 10).await;
    paused.pause();

    // Its lease (2 s) lapses; another replica takes the work over and calls again.
    let taker = ProcessorProcess::start(&setup, "taker").await;
    let db = setup.database().await;
    let finished = settle(&db, Duration::from_secs(60)).await;
    paused.resume();
    assert!(finished, "log: {}", taker.log_text());
    downstream.assert_each_called(&accepted, 2);
    assert_eq!(taker.counter(REPEATED).await, 10.0);

    // Resumed, the first one finds its leases taken and records nothing; no third call.
    assert!(
        eventually(Duration::from_secs(20), || async {
            paused.log_text().matches("nothing recorded").count() >= 10
        })
        .await,
        "log: {}",
        paused.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    downstream.assert_each_called(&accepted, 2);
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
    assert_eq!(
        attempts_by_outcome(&db).await,
        outcomes(&[("INTERRUPTED", 10), ("SUCCEEDED", 10)])
    );
}

#[tokio::test]
async fn a_processor_killed_mid_call_is_repeated_with_the_same_key_and_processed_once() {
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(3))]).await;
    let setup = calling(&downstream).await;
    let killed = ProcessorProcess::start(&setup, "killed").await;
    let accepted = ingest_many(&killed.client().await, "killed", 20).await;
    calls_under_way(&downstream, 20).await;
    killed.kill_9();

    let survivor = ProcessorProcess::start(&setup, "survivor").await;
    assert_each_repeated_once(&setup, &downstream, &accepted, &survivor).await;
}

/// The rows of `consumers`: the names live processes hold.
async fn registered_names(db: &DatabaseConnection) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT name FROM consumers ORDER BY name",
    ))
    .await
    .expect("consumers")
    .iter()
    .map(|row| row.try_get::<String>("", "name").expect("name"))
    .collect()
}

#[tokio::test]
async fn two_processors_given_one_consumer_name_hold_two_and_one_stopping_repeats_nothing() {
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(3))]).await;
    let setup = calling(&downstream).await;
    let first = ProcessorProcess::start(&setup, "twin").await;
    let second = ProcessorProcess::start(&setup, "twin").await;
    let db = setup.database().await;
    // The port opens before the name is registered.
    let both_registered = eventually(Duration::from_secs(20), || async {
        registered_names(&db).await.len() == 2
    })
    .await;
    let names = registered_names(&db).await;
    assert!(
        both_registered,
        "{names:?}; first: {}\nsecond: {}",
        first.log_text(),
        second.log_text()
    );
    assert_eq!(names[0], "twin");
    assert!(
        names[1].starts_with("twin-") && names[1].len() == "twin-".len() + 8,
        "the second one holds the name with a unique suffix: {names:?}"
    );
    assert!(second.log_text().contains("using a unique one"));

    let mut accepted = ingest_many(&first.client().await, "twins", 15).await;
    accepted.extend(ingest_many(&second.client().await, "twins", 15).await);
    calls_under_way(&downstream, 30).await;
    // Both hold calls; the first stops (a deploy) and gives up its name and its leases.
    let status = first.terminate().await;
    assert!(status.success(), "exit status {status}");
    assert_each_called_once(
        &setup,
        &downstream,
        &accepted,
        &[&second],
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test]
async fn a_processor_resumed_after_its_name_was_taken_records_nothing_and_stops() {
    let downstream = Downstream::start(vec![Answer::Slow(Duration::from_secs(3))]).await;
    let setup = calling(&downstream).await;
    let mut paused = ProcessorProcess::start(&setup, "solo").await;
    let accepted = ingest_many(&paused.client().await, "taken", 10).await;
    calls_under_way(&downstream, 10).await;
    paused.pause();
    // Past its 2 s registration, a process under the same name (a restart, as the
    // orchestrator sees it) takes the name, its pending entries and its leases.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taker = ProcessorProcess::start(&setup, "solo").await;
    assert!(
        !taker.log_text().contains("using a unique one"),
        "a lapsed name is taken as it is"
    );
    calls_under_way(&downstream, 20).await;

    // Resumed while the taker's calls are under way: the old process's own calls have
    // answered, but it writes nothing as the name's new holder and gives up none of its
    // leases; it finds the name taken and stops.
    paused.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while paused.is_running() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!paused.is_running(), "log: {}", paused.log_text());
    assert!(
        paused
            .log_text()
            .contains("another process has taken this consumer name"),
        "log: {}",
        paused.log_text()
    );

    assert_each_repeated_once(&setup, &downstream, &accepted, &taker).await;
    let db = setup.database().await;
    assert_eq!(registered_names(&db).await, vec!["solo".to_owned()]);
}
