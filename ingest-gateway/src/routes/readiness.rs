//! `GET /readyz`: ready only when the processor answers its gRPC health check as SERVING,
//! which it does only while PostgreSQL and Redis answer. Otherwise 503 naming what is down.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiError, FieldError, Result},
    processor_client::{DEPENDENCY_HEALTH, SERVICE_HEALTH},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/readyz", get(readiness))
}

async fn readiness(State(state): State<AppState>) -> Result<Json<Value>> {
    let processor = &state.processor;
    match processor.serving(SERVICE_HEALTH).await {
        Ok(true) => return Ok(Json(json!({ "status": "READY" }))),
        Ok(false) => {}
        Err(status) => {
            return Err(ApiError::NotReady(vec![FieldError::new(
                "processor",
                format!("unreachable: {}", status.message()),
            )]));
        }
    }
    let mut down = Vec::new();
    for (name, service) in DEPENDENCY_HEALTH {
        if !matches!(processor.serving(service).await, Ok(true)) {
            down.push(FieldError::new(name, "not answering the processor"));
        }
    }
    if down.is_empty() {
        down.push(FieldError::new("processor", "not serving"));
    }
    Err(ApiError::NotReady(down))
}
