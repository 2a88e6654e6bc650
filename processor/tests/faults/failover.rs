//! PostgreSQL connections cut under the processor while webhooks flow: backends
//! terminated again and again, the server stopped fast (57P01 to every backend, as in a
//! restart or a failover) or immediately (as in a crash). Callers see only 202, or 503
//! with `Retry-After`; every webhook accepted is stored and processed once.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use tokio_util::sync::CancellationToken;

use crate::{
    helpers::{
        PostgresCluster, ProcessorProcess, assert_each_accepted_finished_exactly_once, quick_setup,
        settle,
    },
    senders::{self, Gateway, Senders, assert_only_accepted_or_unavailable},
};

/// Senders that keep webhooks flowing for a few seconds and retry each 503.
const FLOW: Senders = Senders {
    concurrency: 8,
    sending_for: Duration::from_secs(6),
    retry_pause: Duration::from_millis(200),
    give_up_after: Duration::from_secs(30),
};

/// A deadline generous for a debug build on a loaded machine, and shorter than the
/// outages below, so that they are felt.
const GATEWAY: [(&str, &str); 1] = [("PROCESSOR_TIMEOUT", "1s")];

#[tokio::test]
async fn terminated_backends_are_answered_503_never_500_and_each_202_is_processed_once() {
    let setup = quick_setup().await;
    let processor = ProcessorProcess::start(&setup, "terminated").await;
    let gateway = Gateway::start(&processor.url(), &GATEWAY).await;
    let database = setup
        .database_url()
        .rsplit_once('/')
        .map(|(_, name)| name.to_owned())
        .expect("a database name");

    // Every 300 ms, every backend of the processor's database is terminated.
    let admin = Database::connect(test_support::admin_database_url())
        .await
        .expect("admin connection");
    let stop = CancellationToken::new();
    let terminator = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut terminated = 0_usize;
            while !stop.is_cancelled() {
                let rows = admin
                    .query_all_raw(sea_orm::Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = $1 AND pid <> pg_backend_pid()",
                        [database.clone().into()],
                    ))
                    .await
                    .expect("terminate the processor's backends");
                terminated += rows.len();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            terminated
        }
    });
    let deliveries = senders::send(&gateway.webhooks_url(), "terminated", FLOW).await;
    stop.cancel();
    let terminated = terminator.await.expect("terminator");
    assert!(terminated > 0, "no backend was terminated");

    let accepted = assert_only_accepted_or_unavailable(&deliveries);
    let db = setup.database().await;
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}

#[tokio::test]
async fn postgres_stopped_fast_during_ingest_is_only_202_and_503_with_retry_after() {
    server_stopped_during_ingest(PostgresCluster::stop_server_fast, "fast").await;
}

#[tokio::test]
async fn postgres_stopped_immediately_during_ingest_is_only_202_and_503_with_retry_after() {
    server_stopped_during_ingest(PostgresCluster::stop_server, "immediate").await;
}

/// Webhooks flow; a second in, the server stops (`stop`) for three seconds, then returns.
async fn server_stopped_during_ingest(stop: fn(&PostgresCluster), mode: &str) {
    let cluster = PostgresCluster::start().await;
    cluster.create_database("webhooks").await;
    let mut setup = quick_setup().await;
    setup.set("DATABASE_URL", cluster.url("webhooks"));
    let processor = ProcessorProcess::start(&setup, &format!("pg-stop-{mode}")).await;
    let gateway = Gateway::start(&processor.url(), &GATEWAY).await;

    let flow = tokio::spawn({
        let url = gateway.webhooks_url();
        let prefix = format!("stop_{mode}");
        async move { senders::send(&url, &prefix, FLOW).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server();
    let deliveries = flow.await.expect("senders");

    let (unavailable, _) = senders::unavailable_count_and_slowest(&deliveries);
    assert!(unavailable > 0, "the outage was felt by some webhook");
    let accepted = assert_only_accepted_or_unavailable(&deliveries);
    let db = Database::connect(cluster.url("webhooks"))
        .await
        .expect("connect");
    assert!(
        settle(&db, Duration::from_secs(60)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
