//! The HTTP API: each resource module exposes its `routes()`, merged here with the
//! idempotency layer and the OpenAPI document generated from the handlers (every route is
//! registered through `routes!`, so the document cannot drift from them).

pub mod access;
pub mod actions;
pub mod activity;
pub mod error;
pub mod events;
pub mod exports;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod log_streams;
pub mod metrics;
pub mod openapi;
pub mod organizations;
pub mod portal;
pub mod quarantine;
pub mod rate_limit;
pub mod retention;
pub mod transparency;
pub mod wire;

use axum::routing::get;
use axum::{middleware, Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Stele", description = "Self-hosted audit logs, wire-compatible with the WorkOS Audit Logs API."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every API route with the OpenAPI document describing them.
fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(organizations::routes())
        .merge(actions::routes())
        .merge(events::routes())
        .merge(exports::routes())
        .merge(portal::routes())
        .merge(quarantine::routes())
        .merge(retention::routes())
        .merge(log_streams::routes())
        .merge(transparency::routes())
        .merge(activity::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .split_for_parts();
    let mut document = document;
    access::document_access(&mut document);
    (router, document)
}

/// The OpenAPI 3.1 document (also served at `/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// The API routes behind the idempotency layer, and `/openapi.json`.
pub fn router(state: &AppState) -> Router<AppState> {
    let (api, document) = api_routes();
    let document = Json(openapi::conform(
        serde_json::to_value(&document).unwrap_or_default(),
    ));
    // Route layers run outermost last: access (key, scope, organization), then the rate
    // limit, then idempotency, so a key outside its grants never gets a replay and a
    // limited request is refused before any work.
    api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        idempotency::idempotency_layer,
    ))
    // Inside the access layer: only a known key's requests are counted.
    .route_layer(middleware::from_fn_with_state(
        state.clone(),
        rate_limit::rate_limit_layer,
    ))
    .route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::access_layer,
    ))
    .route(
        "/openapi.json",
        get(move || async move { document.clone() }),
    )
}
