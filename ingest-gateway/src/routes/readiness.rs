//! `GET /readyz`: ready while the processor answers its gRPC health check as SERVING,
//! which it does while PostgreSQL answers: webhooks are then accepted. Redis away is a
//! degraded state, not an unready one (rows are committed and published once it is
//! back): 200 with `degraded` naming it. Otherwise 503 naming what is down.

use axum::{Json, Router, extract::State, routing::get};
use payments_proto::health;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiError, FieldError, Result},
    processor_client::ProcessorClient,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/readyz", get(readiness))
}

async fn readiness(State(state): State<AppState>) -> Result<Json<Value>> {
    let processor = &state.processor;
    match processor.serving(health::SERVICE).await {
        Ok(true) => {
            let degraded = not_serving(processor).await;
            return Ok(Json(json!({ "status": "READY", "degraded": degraded })));
        }
        Ok(false) => {}
        Err(status) => {
            return Err(ApiError::NotReady(vec![FieldError::new(
                "processor",
                format!("unreachable: {}", status.message()),
            )]));
        }
    }
    let mut down: Vec<FieldError> = not_serving(processor)
        .await
        .into_iter()
        .map(|name| FieldError::new(name, "not answering the processor"))
        .collect();
    if down.is_empty() {
        down.push(FieldError::new("processor", "not serving"));
    }
    Err(ApiError::NotReady(down))
}

/// The processor's dependencies it reports as not serving.
async fn not_serving(processor: &ProcessorClient) -> Vec<&'static str> {
    let mut down = Vec::new();
    for (name, service) in health::DEPENDENCIES {
        if !matches!(processor.serving(service).await, Ok(true)) {
            down.push(name);
        }
    }
    down
}
