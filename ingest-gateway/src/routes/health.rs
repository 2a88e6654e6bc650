//! `GET /`: liveness, as the seed defines it. It touches no dependency.

use axum::{Json, Router, routing::get};
use chrono::Utc;
use serde::Serialize;

use crate::{AppState, conversions::format_time};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    current_time: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(health))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "HEALTHY",
        current_time: format_time(Utc::now()),
    })
}
