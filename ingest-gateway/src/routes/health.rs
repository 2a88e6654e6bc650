//! `GET /`: liveness, as the seed defines it. It touches no dependency.

use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, conversions::format_time};

#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `HEALTHY` when the gateway answers.
    #[schema(example = "HEALTHY")]
    status: &'static str,
    /// RFC 3339, UTC, with `Z`.
    #[schema(example = "2025-10-31T10:30:00Z")]
    current_time: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Liveness: the gateway answers (it does not check the processor).
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "HEALTHY",
        current_time: format_time(Utc::now()),
    })
}
