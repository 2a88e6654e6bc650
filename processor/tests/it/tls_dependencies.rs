//! The processor through TLS to both dependencies, as managed services require: a Redis
//! that speaks only TLS, and a PostgreSQL that accepts TCP connections over TLS only.

use std::time::Duration;

use test_support::{PostgresCluster, RedisServer, tls::TestCa};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Setup, StartProcessor, count_by_status, eventually, request, unique_id};

/// Ingests `count` transactions and waits until each is PROCESSED.
async fn ingests_and_processes(setup: &Setup, count: usize) {
    let processor = setup.start().await;
    let mut client = processor.client().await;
    for _ in 0..count {
        client
            .ingest_transaction(request(&unique_id("tls"), "10"))
            .await
            .expect("ingested");
    }
    let db = setup.database().await;
    let processed = eventually(Duration::from_secs(30), || async {
        count_by_status(&db, "PROCESSED").await == i64::try_from(count).unwrap()
    })
    .await;
    assert!(
        processed,
        "every transaction is processed through the TLS dependencies"
    );
    processor.stop().await;
}

async fn redis_health(setup: &Setup) -> i32 {
    let processor = setup.start().await;
    let mut health = HealthClient::new(processor.channel().await);
    // Past two of the monitor's 2 s looks.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = health
        .check(HealthCheckRequest {
            service: payments_proto::health::REDIS.to_owned(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    processor.stop().await;
    status
}

#[tokio::test]
async fn redis_over_tls_verified_by_its_ca_or_unverified_when_told() {
    let ca = TestCa::new("redis test CA");
    let redis = RedisServer::start_tls(&ca).await;
    assert!(redis.url().starts_with("rediss://"));

    let mut verified = Setup::new("200ms").await;
    verified
        .set("REDIS_URL", redis.url())
        .set("REDIS_TLS_CA_FILE", ca.ca_file.display().to_string());
    ingests_and_processes(&verified, 5).await;
    assert_eq!(
        verified.entries_ever_added().await,
        5,
        "published through TLS"
    );

    let mut unverified = Setup::new("200ms").await;
    unverified
        .set("REDIS_URL", redis.url())
        .set("REDIS_TLS_SKIP_VERIFY", "true");
    ingests_and_processes(&unverified, 2).await;

    // The system's roots never signed this server's certificate: no connection.
    let mut untrusted = Setup::new("200ms").await;
    untrusted.set("REDIS_URL", redis.url());
    let not_serving = tonic_health::ServingStatus::NotServing as i32;
    assert_eq!(redis_health(&untrusted).await, not_serving);
}

#[tokio::test]
async fn postgres_over_tls_with_each_sslmode() {
    let ca = TestCa::new("postgres test CA");
    let cluster = PostgresCluster::start_tls(&ca).await;
    let plaintext = format!("{}?sslmode=disable", cluster.url("postgres"));
    assert!(
        sea_orm::Database::connect(&plaintext).await.is_err(),
        "the cluster refuses connections without TLS"
    );
    let root = ca.ca_file.display().to_string();
    for (n, mode) in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-ca&sslrootcert={root}"),
        format!("sslmode=verify-full&sslrootcert={root}"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("webhooks_{n}");
        cluster.create_database(&name).await;
        let mut setup = Setup::new("200ms").await;
        // localhost: the name on the server's certificate, which verify-full checks.
        setup.set(
            "DATABASE_URL",
            format!(
                "postgres://postgres@localhost:{}/{name}?{mode}",
                cluster.port
            ),
        );
        ingests_and_processes(&setup, 2).await;
    }

    // verify-full against a CA that did not sign the server's certificate fails.
    let stranger = TestCa::new("someone else's CA");
    let wrong = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        stranger.ca_file.display()
    );
    assert!(sea_orm::Database::connect(&wrong).await.is_err());
}
