//! `GET /metrics`: the Prometheus text exposition (see `crate::metrics`), for API keys on
//! the main address; `--metrics-listen` serves the same without authentication.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::extract::ApiCaller;
use crate::state::AppState;

/// Prometheus's text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `metrics` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: ingest, request, search, export, group-commit and \
                   checkpoint metrics and the database pool. Also served without authentication \
                   on `--metrics-listen` when that is set.",
    responses((status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4",
               body = String),
              (status = 401, description = "Missing or unknown API key (unauthorized)"),
              (status = 403, description = "The key lacks the `admin` scope (forbidden)")))]
pub async fn metrics(State(state): State<AppState>, _caller: ApiCaller) -> Response {
    // The `admin` scope is checked by the access layer (api/access.rs, ROUTE_ACCESS).
    exposition(&state).await
}

async fn exposition(state: &AppState) -> Response {
    let body = state.metrics.render().await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The router of `--metrics-listen`: `/metrics` only, without authentication.
pub fn unauthenticated_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { exposition(&state).await }),
        )
        .with_state(state)
}
