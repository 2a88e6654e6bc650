//! Redis unavailable (at start too), restarted empty, or flushed: PostgreSQL re-drives
//! the work.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    helpers::{
        ProcessorProcess, RedisServer, assert_each_accepted_finished_exactly_once, count_by_status,
        ingest_many, quick_setup, settle,
    },
    senders::{self, Gateway, Senders},
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

#[tokio::test]
async fn a_processor_started_without_redis_accepts_webhooks_and_processes_them_once_it_starts() {
    let mut redis = RedisServer::start().await;
    redis.stop();
    let mut setup = quick_setup().await;
    setup.set("REDIS_URL", redis.url());
    let processor = ProcessorProcess::start(&setup, "redis-later").await;

    // Serving (PostgreSQL answers), with the stream part reported as not serving.
    let health = |service: &'static str| {
        let url = processor.url();
        async move {
            let channel = tonic::transport::Channel::from_shared(url)
                .expect("url")
                .connect()
                .await
                .expect("connect");
            HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .expect("health answers")
                .into_inner()
                .status()
        }
    };
    let reported = test_support::eventually(Duration::from_secs(10), || async {
        health("payments.v1.dependency.redis").await == ServingStatus::NotServing
            && health("").await == ServingStatus::Serving
    })
    .await;
    assert!(reported, "log: {}", processor.log_text());

    let gateway = Gateway::start(&processor.url(), &[("PROCESSOR_TIMEOUT", "2s")]).await;
    let deliveries = senders::send(
        &gateway.webhooks_url(),
        "no_redis",
        Senders {
            concurrency: 4,
            sending_for: Duration::from_secs(1),
            retry_pause: Duration::from_millis(200),
            give_up_after: Duration::from_secs(10),
        },
    )
    .await;
    let accepted = senders::assert_only_accepted_or_unavailable(&deliveries);
    let (unavailable, _) = senders::unavailable_count_and_slowest(&deliveries);
    assert_eq!(unavailable, 0, "accepted without Redis at the first try");
    let db = setup.database().await;
    assert_eq!(
        count_by_status(&db, "PROCESSING").await,
        accepted.len() as i64,
        "every 202 is a committed row, and none is processed without the stream"
    );

    // Past its 2 s lease since it started, its name is still its own: the heartbeat runs
    // while the consumer waits for Redis, so no process could take the name meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let registration_live = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT expires_at > now() AS live FROM consumers WHERE name = 'redis-later'",
        ),
    )
    .await
    .expect("consumers")
    .and_then(|row| row.try_get::<bool>("", "live").ok());
    assert_eq!(
        registration_live,
        Some(true),
        "log: {}",
        processor.log_text()
    );

    redis.restart().await;
    assert!(
        settle(&db, Duration::from_secs(30)).await,
        "log: {}",
        processor.log_text()
    );
    assert_each_accepted_finished_exactly_once(&db, &accepted).await;
}
