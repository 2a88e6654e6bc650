//! The lean per-request-commit path, as a benchmark baseline (issue 19): what one commit
//! per webhook costs with nothing between the request and its INSERT. axum, `POOL_SIZE`
//! (default 16) tokio-postgres connections, each with the INSERT prepared once at start and
//! reused; per webhook one single-row `INSERT … ON CONFLICT (transaction_id) DO NOTHING` in
//! its own commit (autocommit) on the project's table (its migrations run at start), with
//! the columns the processor writes (status `PROCESSING`, no attempts, `republish_at` at
//! the processor's default `REPUBLISH_AFTER`, 30 s), then one XADD of the transaction id,
//! then 202. A repeated id answers 200 and is not published again (as the processor and
//! `naive-path` do); a failed INSERT or XADD answers 503.
//!
//! `SHARING=exclusive` (the default): a request holds a connection alone, from a small
//! pool of our own (a semaphore over the free connections), as a pooled service does.
//! `SHARING=pipelined`: requests take the connections round-robin and share them,
//! tokio-postgres pipelining their statements (each still its own commit).
//!
//! No gRPC, no validation beyond the JSON shape, no signatures (not read), no metrics.
//! mimalloc is the allocator, as in the stack's binaries.
//!
//!   DATABASE_URL=… REDIS_URL=… STREAM_KEY=… HTTP_ADDR=127.0.0.1:8102 [POOL_SIZE=16] lean-path

use std::{
    env,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::{Context, bail};
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use fred::prelude::{Builder, ClientLike, Config, StreamsInterface};
use migration::MigratorTrait;
use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls, Statement};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The processor's columns (processor/src/db/repository.rs, `insert_many_if_absent`) for
/// one row; the amount as text, which NUMERIC parses exactly.
const INSERT: &str = "INSERT INTO transactions
        (transaction_id, source_account, destination_account, amount, currency,
         status, attempts, republish_at)
     VALUES ($1, $2, $3, $4::text::numeric, $5, 'PROCESSING', 0, now() + interval '30 seconds')
     ON CONFLICT (transaction_id) DO NOTHING";

struct Connection {
    client: Client,
    insert: Statement,
}

#[derive(Clone, Copy, PartialEq)]
enum Sharing {
    Exclusive,
    Pipelined,
}

struct Lean {
    connections: Vec<Connection>,
    sharing: Sharing,
    /// Exclusive: one permit per free connection, and the free connections' indices.
    permits: Semaphore,
    free: Mutex<Vec<usize>>,
    /// Pipelined: the next connection to use.
    next: AtomicUsize,
    redis: fred::prelude::Client,
    stream_key: String,
}

/// A connection held by one request; back in the free list when dropped.
struct Checkout<'a> {
    lean: &'a Lean,
    index: usize,
    _permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if self.lean.sharing == Sharing::Exclusive {
            self.lean
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.index);
        }
    }
}

impl Lean {
    async fn connection(&self) -> Option<Checkout<'_>> {
        match self.sharing {
            Sharing::Pipelined => Some(Checkout {
                lean: self,
                index: self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len(),
                _permit: None,
            }),
            Sharing::Exclusive => {
                let permit = self.permits.acquire().await.ok()?;
                let index = self
                    .free
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()?;
                Some(Checkout {
                    lean: self,
                    index,
                    _permit: Some(permit),
                })
            }
        }
    }
}

#[derive(Deserialize)]
struct Webhook {
    transaction_id: String,
    source_account: String,
    destination_account: String,
    amount: serde_json::Number,
    currency: String,
}

fn setting(name: &str, default: &str) -> String {
    env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool_size: usize = setting("POOL_SIZE", "16")
        .parse()
        .context("POOL_SIZE must be a whole number")?;
    if pool_size == 0 {
        bail!("POOL_SIZE must be at least 1");
    }
    let sharing = match setting("SHARING", "exclusive").as_str() {
        "exclusive" => Sharing::Exclusive,
        "pipelined" => Sharing::Pipelined,
        other => bail!("SHARING must be exclusive or pipelined, not {other}"),
    };
    let url = setting(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/lean_path",
    );

    let migrations = sea_orm::Database::connect(url.as_str()).await?;
    migration::Migrator::up(&migrations, None).await?;
    migrations.close().await?;

    let mut connections = Vec::with_capacity(pool_size);
    for _ in 0..pool_size {
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .context("cannot connect to DATABASE_URL")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("lean-path: a PostgreSQL connection ended: {error}");
            }
        });
        let insert = client.prepare(INSERT).await?;
        connections.push(Connection { client, insert });
    }

    let redis = Builder::from_config(Config::from_url(&setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379",
    ))?)
    .build()?;
    redis.init().await?;

    let lean = Arc::new(Lean {
        permits: Semaphore::new(pool_size),
        free: Mutex::new((0..pool_size).collect()),
        next: AtomicUsize::new(0),
        connections,
        sharing,
        redis,
        stream_key: setting("STREAM_KEY", "lean_path"),
    });
    let app = Router::new()
        .route("/", axum::routing::get(|| async { "lean path" }))
        .route("/v1/webhooks/transactions", post(ingest))
        .with_state(lean);
    let listener = tokio::net::TcpListener::bind(setting("HTTP_ADDR", "127.0.0.1:8102")).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(State(lean): State<Arc<Lean>>, Json(webhook): Json<Webhook>) -> StatusCode {
    let amount = webhook.amount.to_string();
    let inserted = {
        let Some(checkout) = lean.connection().await else {
            return StatusCode::SERVICE_UNAVAILABLE;
        };
        let Some(connection) = lean.connections.get(checkout.index) else {
            return StatusCode::SERVICE_UNAVAILABLE;
        };
        connection
            .client
            .execute(
                &connection.insert,
                &[
                    &webhook.transaction_id,
                    &webhook.source_account,
                    &webhook.destination_account,
                    &amount,
                    &webhook.currency,
                ],
            )
            .await
    };
    match inserted {
        Ok(1) => {
            let published: Result<String, _> = lean
                .redis
                .xadd(
                    &lean.stream_key,
                    false,
                    None,
                    "*",
                    vec![("transaction_id", webhook.transaction_id.as_str())],
                )
                .await;
            match published {
                Ok(_) => StatusCode::ACCEPTED,
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
