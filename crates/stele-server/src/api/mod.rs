//! The HTTP API: routes, middleware and the OpenAPI document generated from the handlers
//! (every route is registered through `routes!`, so the document cannot drift from them).

pub mod actions;
pub mod error;
pub mod events;
pub mod exports;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod organizations;
pub mod retention;
pub mod transparency;
pub mod wire;

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
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
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            organizations::create_organization,
            organizations::list_organizations
        ))
        .routes(routes!(
            organizations::get_organization,
            organizations::update_organization,
            organizations::delete_organization
        ))
        .routes(routes!(organizations::get_organization_by_external_id))
        .routes(routes!(actions::list_actions))
        .routes(routes!(actions::create_schema, actions::list_schemas))
        .routes(routes!(events::create_event, events::search_events))
        .routes(routes!(exports::create_export))
        .routes(routes!(exports::get_export))
        .routes(routes!(exports::download_export))
        .routes(routes!(retention::get_retention, retention::set_retention))
        .routes(routes!(retention::get_configuration))
        .routes(routes!(actions::check_schema))
        .routes(routes!(events::validate_event))
        .routes(routes!(transparency::list_signing_keys))
        .routes(routes!(transparency::get_checkpoint))
        .routes(routes!(transparency::create_checkpoint))
        .routes(routes!(transparency::inclusion_proof))
        .routes(routes!(transparency::consistency_proof))
        .routes(routes!(transparency::proof_bundle))
        .routes(routes!(health::healthz))
        .split_for_parts()
}

/// The OpenAPI 3.1 document (also served at `/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().1
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::from(stele_store::StoreError::Internal("handler panicked".into())).into_response()
}

/// Refuses a URI that encodes U+0000 (`%00`) in its path or query: no id, filter or
/// parameter can hold it, and PostgreSQL cannot even compare text with it.
async fn reject_nul_in_uri(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    let encoded = |text: &str| text.to_ascii_lowercase().contains("%00");
    if encoded(uri.path()) || uri.query().is_some_and(encoded) {
        return ApiError::validation(vec![stele_core::FieldError::invalid(
            "uri",
            "The request URI must not contain the NUL character (%00).",
        )])
        .into_response();
    }
    next.run(request).await
}

pub fn router(state: AppState) -> Router {
    let (api, document) = api_routes();
    let document = Json(document);
    let unrouted = Router::new()
        .route(
            "/openapi.json",
            get(move || async move { document.clone() }),
        )
        // A browser pointed at the server lands on the dashboard.
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .merge(crate::dashboard::router());
    api.route_layer(middleware::from_fn_with_state(state.clone(), idempotency::idempotency_layer))
        .merge(unrouted)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(reject_nul_in_uri))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
