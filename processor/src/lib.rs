//! The processor: gRPC `TransactionService` over PostgreSQL, and the consumer group that
//! processes what was stored. `main.rs` only reads the configuration and calls [`build`].

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod external;
pub mod grpc;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod processing;
pub mod retention;
pub mod startup;
pub mod stream;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use external::ExternalCall;
use ingest::Ingestor;
use outbox::Outbox;
use processing::Processing;
use stream::{consumer::Consumer, publisher::Publisher, settle::Settlement, shards::Shards};

/// Longest a non-blocking Redis command may take before it counts as failed.
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A processor that is connected and listening, ready to run.
pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    health: tonic_health::server::HealthReporter,
    monitor: monitor::Monitor,
    service: grpc::transaction_service::TransactionServiceImpl,
    /// One per shard of the stream.
    consumers: Vec<Consumer>,
    outbox: Outbox,
    retention: retention::Retention,
    /// The gRPC transport, TLS included.
    server: tonic::transport::Server,
}

/// Waits for PostgreSQL (see `startup`), then binds `config.grpc_addr`: the port opens
/// only once the processor can serve. Redis need not answer yet.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    // Installs the recorder before anything records.
    metrics::handle();
    // Before waiting on PostgreSQL: a bad certificate file is reported at once.
    let server = grpc::server(&config)?;
    let renewal = db::Renewal::default();
    let db = startup::wait_for_postgres(&config, &renewal).await?;
    let listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on GRPC_ADDR={}", config.grpc_addr))?;
    let metrics_listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR={}", config.metrics_addr))?;
    assemble(config, server, db, renewal, listener, metrics_listener).await
}

/// As [`build`], on listeners the caller bound (tests bind port 0): gRPC, then metrics.
pub async fn build_with_listeners(
    config: Config,
    listener: TcpListener,
    metrics_listener: TcpListener,
) -> anyhow::Result<Application> {
    metrics::handle();
    let server = grpc::server(&config)?;
    let renewal = db::Renewal::default();
    let db = startup::wait_for_postgres(&config, &renewal).await?;
    assemble(config, server, db, renewal, listener, metrics_listener).await
}

/// Everything else, on a database that answers.
async fn assemble(
    config: Config,
    server: tonic::transport::Server,
    db: DatabaseConnection,
    renewal: db::Renewal,
    listener: TcpListener,
    metrics_listener: TcpListener,
) -> anyhow::Result<Application> {
    // Lazy: the reads' server (a replica, perhaps) need not answer for the processor to
    // start; until it does, reads are UNAVAILABLE.
    let reads = db::connect_reads(
        config.database_read_url.expose(),
        config.database_read_max_connections,
        config.read_statement_timeout,
    )
    .await
    .context("DATABASE_READ_URL is not a usable PostgreSQL address")?;
    // Neither client needs Redis to answer yet: each keeps connecting in the background.
    let redis = stream::connect(
        config.redis_url.expose(),
        &config.redis_tls,
        REDIS_COMMAND_TIMEOUT,
    )
    .context("REDIS_URL is not a usable Redis address")?;
    let stream = &config.stream;
    let shards = Shards::new(&stream.key, &stream.dead_letter_key, stream.shards);
    let mut names = shards.names(&stream.group, &stream.consumer_name);
    let publisher = Publisher::new(redis.clone(), shards.clone());
    let stream_lost = Arc::new(stream::lost::StreamLost::default());
    let external = ExternalCall::from_settings(&config.external)
        .context("cannot make the HTTP client for EXTERNAL_CALL_URL")?;
    // An entry idle past a whole lease belongs to a consumer that stopped renewing it.
    let claim_min_idle = config.lease_margin;
    // One consumer per shard, each with its share of MAX_IN_FLIGHT.
    let max_in_flight = config
        .batching
        .max_in_flight
        .div_ceil(names.len().max(1))
        .max(1);
    let shard_count = names.len();
    let mut consumers = Vec::with_capacity(shard_count);
    for (index, shard) in (0..).zip(names.iter_mut()) {
        // Each shard's consumer holds its own name (and leases) while it lives: another
        // live process's is refused.
        let owner = match shard_count {
            1 => stream.consumer_name.clone(),
            _ => format!("{}-shard{index}", stream.consumer_name),
        };
        let registration = db::consumers::register(&db, &owner, config.lease_margin)
            .await
            .context("cannot register the consumer name in PostgreSQL")?;
        shard.consumer.clone_from(&registration.name);
        consumers.push(Consumer {
            // XREADGROUP BLOCK holds its connection, so each reader has its own client.
            reader: stream::connect(
                config.redis_url.expose(),
                &config.redis_tls,
                REDIS_COMMAND_TIMEOUT * 3,
            )
            .context("REDIS_URL is not a usable Redis address")?,
            batch_size: config.batching.read_batch_size,
            max_in_flight,
            claim_min_idle,
            claim_interval: config.reconcile_interval,
            stream_lost: stream_lost.clone(),
            processing: Processing {
                db: db.clone(),
                settlement: Settlement::new(
                    redis.clone(),
                    shard.clone(),
                    shards.dead_letter_key(index),
                ),
                registration,
                lease: config.lease_margin,
                external: external.clone(),
                retry: config.retry.clone(),
                shutdown_grace: config.shutdown_grace,
            },
        });
    }
    let health = tonic_health::server::HealthReporter::new();
    let monitor = monitor::Monitor {
        db: db.clone(),
        redis: redis.clone(),
        names: names.clone(),
        health: health.clone(),
        interval: Duration::from_secs(2).min(config.reconcile_interval),
        redis_returned: stream_lost.clone(),
        redis_was_up: true.into(),
        redis_answered: false.into(),
    };
    // Not SERVING until the first look at the dependencies says so.
    for name in ["", payments_proto::health::SERVICE] {
        health
            .set_service_status(name, tonic_health::ServingStatus::NotServing)
            .await;
    }
    let outbox = Outbox {
        db: db.clone(),
        publisher: publisher.clone(),
        redis: redis.clone(),
        names: names.clone(),
        republish_after: config.republish_after,
        interval: config.reconcile_interval,
        stream_lost: stream_lost.clone(),
    };
    let retention = retention::Retention {
        db: db.clone(),
        redis: redis.clone(),
        shards: (0..)
            .zip(&names)
            .map(|(index, shard)| (shard.clone(), shards.dead_letter_key(index)))
            .collect(),
        keep: config.retention,
        // The same rule as claiming: past a whole lease, a consumer has stopped.
        consumer_idle_limit: claim_min_idle,
        interval: config.reconcile_interval,
    };
    let ingestor = Ingestor::start(
        db,
        renewal,
        publisher,
        ingest::BatchSettings {
            max_batch: config.batching.ingest_batch_size,
            writers: config.batching.ingest_writers,
            republish_after: config.republish_after,
        },
    );
    Ok(Application {
        listener,
        metrics_listener,
        health,
        monitor,
        service: grpc::transaction_service::TransactionServiceImpl::new(
            ingestor,
            reads,
            config.watch_poll_interval,
        ),
        consumers,
        outbox,
        retention,
        server,
    })
}

impl Application {
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// Serves gRPC and runs the consumer until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Before anything is served: what this process ingests from now on, it publishes.
        let started_at = chrono::Utc::now();
        let mut consumers = tokio::task::JoinSet::new();
        for consumer in self.consumers {
            consumers.spawn(consumer.run(started_at, shutdown.clone()));
        }
        let outbox = tokio::spawn(self.outbox.run(shutdown.clone()));
        let retention = tokio::spawn(self.retention.run(shutdown.clone()));
        self.monitor.observe().await;
        let monitor = tokio::spawn(self.monitor.run(shutdown.clone()));
        let metrics = tokio::spawn(service_support::metrics::serve(
            self.metrics_listener,
            shutdown.clone(),
        ));
        let served = grpc::serve(
            self.server,
            self.listener,
            self.service,
            self.health,
            shutdown.clone(),
        )
        .await;
        // Whatever ended first, stop the other too.
        shutdown.cancel();
        while let Some(finished) = consumers.join_next().await {
            finished.context("consumer task panicked")?;
        }
        outbox.await.context("outbox task panicked")?;
        retention.await.context("retention task panicked")?;
        monitor.await.context("monitor task panicked")?;
        metrics
            .await
            .context("metrics task panicked")?
            .context("metrics server failed")?;
        served?;
        Ok(())
    }
}
