//! Every route of the REST API, merged in one place with the layers that wrap them, and the
//! OpenAPI document generated from the same routes (so it cannot drift from them).

mod admin;
mod admission;
mod health;
mod readiness;
mod transactions;
mod webhooks;

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, header},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use payments_proto::request_id::KEY as REQUEST_ID_KEY;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    AppState,
    error::{ApiError, FieldError, Problem},
};

/// The document's frame; the paths come from the routers below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "payment-webhooks ingest gateway",
        description = "Receives payment webhooks (202 once durably stored) and serves transaction status. Every error is application/problem+json."
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerSchemes)
)]
struct ApiDoc;

/// The two bearer schemes the routes name in their `security`: `api_token` (one of
/// `API_TOKENS`, for reads) and `admin_token` (`ADMIN_TOKEN`).
struct BearerSchemes;

impl utoipa::Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("api_token", "One of API_TOKENS"),
            ("admin_token", "ADMIN_TOKEN"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// What bounds the API routes' work (see `admission.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Webhooks handled at once (`MAX_CONCURRENT_REQUESTS`); more are shed with 503.
    pub max_concurrent_webhooks: usize,
    /// Reads (status, list, admin) handled at once (`MAX_CONCURRENT_READS`).
    pub max_concurrent_reads: usize,
    /// The most a permitted request may take (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// The most a request's body may take to arrive (`BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
}

fn documented_routes(
    state: &AppState,
    limits: &Limits,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Admission (body read, then a permit of the route's class, then the deadline) wraps
    // the routes that call the processor, not `GET /` (a health check shed under load would
    // get a busy replica killed) nor the document. Reads check their token first, outside
    // admission, so an anonymous caller reads no body and spends no permit; the admin
    // routes check ADMIN_TOKEN themselves, and the webhook is authenticated by its
    // signature.
    let class = |permits| {
        middleware::from_fn_with_state(
            admission::Admission::new(
                permits,
                limits.body_read_timeout,
                state.max_body_bytes,
                limits.request_timeout,
            ),
            admission::admit,
        )
    };
    let reads = class(limits.max_concurrent_reads);
    let webhooks = webhooks::router().layer(class(limits.max_concurrent_webhooks));
    let transactions =
        transactions::router()
            .layer(reads.clone())
            .layer(middleware::from_fn_with_state(
                state.clone(),
                crate::auth::require_read_token,
            ));
    let admin = admin::router().layer(reads);
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(webhooks)
        .merge(transactions)
        .merge(admin)
        .split_for_parts()
}

pub fn router(state: AppState, limits: Limits) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_KEY);
    let max_body_bytes = state.max_body_bytes;
    let (routes, document) = documented_routes(&state, &limits);
    let document = document.to_json().unwrap_or_default();
    routes
        .route(
            "/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], document)
            }),
        )
        // Operational routes, outside the API document and the shedding: a probe or a
        // scrape that is shed under load would hide the very overload it should show.
        .merge(readiness::router())
        // Inside the routing, so each request is counted under its matched route.
        .route_layer(middleware::from_fn(crate::metrics::record))
        .fallback(|| async { ApiError::NotFound("no such resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Outermost first: the request id is set before anything else, so the problem
        // bodies, the trace span and the response all carry it.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(middleware::from_fn(request_id_in_problems))
                // `on_failure(())`: no line per 5xx from the trace layer. Causes worth a line
                // are logged once by `ApiError` (internal errors, unreachable processor);
                // a shed request is expected under overload, and logging each one would
                // spend the CPU that shedding is meant to save.
                .layer(TraceLayer::new_for_http().on_failure(()).make_span_with(
                    |request: &axum::http::Request<_>| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID_KEY)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!("http", method = %request.method(), uri = %request.uri(), request_id)
                    },
                ))
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
}

/// Makes the request id the one every problem+json body carries, wherever it is made
/// (handler, extractor, fallback or layer: all inside this layer), so a caller can quote
/// it. `ApiError` writes it into the body as it makes the answer; no body is re-read.
async fn request_id_in_problems(request: Request, next: Next) -> Response {
    let id = request.headers().get(REQUEST_ID_KEY).cloned();
    crate::error::with_request_id(id, next.run(request)).await
}

/// The request id that `SetRequestIdLayer` guaranteed, for passing on to the processor.
fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_KEY)
        .and_then(|value| value.to_str().ok())
}
