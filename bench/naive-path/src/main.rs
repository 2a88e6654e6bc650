//! The naive ingest path, as a benchmark baseline: each webhook is one single-row
//! `INSERT … ON CONFLICT DO NOTHING` in its own commit, then one XADD, then 202. No gRPC,
//! no batching, no validation beyond the JSON shape. It writes the same table (the
//! project's migrations) and answers the same route as the gateway, so `bench/ingest.sh`
//! runs against it unchanged.
//!
//!   DATABASE_URL=… REDIS_URL=… HTTP_ADDR=127.0.0.1:8100 naive-path

use std::env;

use anyhow::Context;
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use fred::prelude::{Builder, ClientLike, Config, StreamsInterface};
use migration::MigratorTrait;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use serde::Deserialize;

#[derive(Clone)]
struct Naive {
    db: DatabaseConnection,
    redis: fred::prelude::Client,
    stream_key: String,
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
    env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool_size: u32 = setting("POOL_SIZE", "64")
        .parse()
        .context("POOL_SIZE must be a whole number")?;
    let mut options = ConnectOptions::new(setting(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/naive_path",
    ));
    options.max_connections(pool_size).sqlx_logging(false);
    let db = Database::connect(options).await?;
    migration::Migrator::up(&db, None).await?;

    let redis = Builder::from_config(Config::from_url(&setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379",
    ))?)
    .build()?;
    redis.init().await?;

    let state = Naive {
        db,
        redis,
        stream_key: setting("STREAM_KEY", "naive_path"),
    };
    let app = Router::new()
        .route("/", axum::routing::get(|| async { "naive path" }))
        .route("/v1/webhooks/transactions", post(ingest))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(setting("HTTP_ADDR", "127.0.0.1:8100")).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(State(naive): State<Naive>, Json(webhook): Json<Webhook>) -> StatusCode {
    let inserted = naive
        .db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO transactions (transaction_id, source_account, destination_account, amount, currency)
             VALUES ($1, $2, $3, $4::numeric, $5) ON CONFLICT (transaction_id) DO NOTHING",
            [
                webhook.transaction_id.clone().into(),
                webhook.source_account.into(),
                webhook.destination_account.into(),
                webhook.amount.to_string().into(),
                webhook.currency.into(),
            ],
        ))
        .await;
    match inserted {
        Ok(result) if result.rows_affected() == 1 => {
            let published: Result<String, _> = naive
                .redis
                .xadd(
                    &naive.stream_key,
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
