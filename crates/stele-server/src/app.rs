//! The composition root: builds the services from a store and the configuration, mounts
//! the API and the dashboard behind the middleware they share, and runs the background
//! workers beside the server. Nothing else wires these parts together.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{middleware, Router};
use stele_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::config::ServeConfig;
use crate::services::api_keys::ApiKeyService;
use crate::services::bootstrap::BootstrapService;
use crate::services::events::EventService;
use crate::services::exports::{ExportService, UrlSigner};
use crate::services::idempotency::IdempotencyService;
use crate::services::jobs::JobService;
use crate::services::organizations::OrganizationService;
use crate::services::quarantine::QuarantineService;
use crate::services::retention::RetentionService;
use crate::services::schemas::SchemaService;
use crate::services::sessions::SessionService;
use crate::services::transparency::{default_key_file, CheckpointSigner, TransparencyService};
use crate::services::users::UserService;
use crate::state::{AppState, Services};
use crate::{api, dashboard, workers};

/// Builds every service on `store`. Fails when the checkpoint signing key cannot be read
/// or created.
pub fn build_state(store: Arc<dyn Store>, config: ServeConfig) -> anyhow::Result<AppState> {
    let key_file = config
        .signing_key_file
        .clone()
        .unwrap_or_else(|| default_key_file(None));
    let signer = Arc::new(CheckpointSigner::load_or_generate(
        &key_file,
        &config.log_origin,
    )?);
    let transparency = TransparencyService::new(Arc::clone(&store), signer);
    let api_keys = ApiKeyService::new(Arc::clone(&store));
    let users = UserService::new(Arc::clone(&store));
    let events = EventService::new(Arc::clone(&store))
        .auto_creating_organizations(config.auto_create_organizations);
    let quarantine = QuarantineService::new(
        Arc::clone(&store),
        events.clone(),
        config.quarantine_retention_days,
    );
    Ok(AppState::new(Services {
        bootstrap: BootstrapService::new(Arc::clone(&store), api_keys.clone()),
        events,
        quarantine,
        exports: ExportService::new(
            Arc::clone(&store),
            Arc::new(UrlSigner::new(Arc::clone(&store))),
            transparency.clone(),
        ),
        idempotency: IdempotencyService::new(Arc::clone(&store)),
        jobs: JobService::new(Arc::clone(&store)),
        organizations: OrganizationService::new(Arc::clone(&store)),
        retention: RetentionService::new(Arc::clone(&store), transparency.clone()),
        schemas: SchemaService::new(Arc::clone(&store)),
        sessions: SessionService::new(Arc::clone(&store), users.clone(), config.session_ttl_hours),
        transparency,
        api_keys,
        users,
        config,
    }))
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
    ApiError::internal("handler panicked").into_response()
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

/// Logs one line per request at info level once the response is ready: method, path,
/// status, latency and the request id (set by the outer layer, so it matches the
/// `x-request-id` response header).
async fn log_request(request: axum::extract::Request, next: middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    tracing::info!(
        target: "stele::request",
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        request_id,
        "request"
    );
    response
}

/// The whole HTTP surface: the API, the dashboard, and the middleware both go through.
pub fn router(state: AppState) -> Router {
    let request_log = state.config.request_log;
    let router = api::router(&state)
        // A browser pointed at the server lands on the dashboard.
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .merge(dashboard::router(&state))
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
        }));
    let router = if request_log {
        router.layer(middleware::from_fn(log_request))
    } else {
        router
    };
    router.layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Serves the API on `listener` until `shutdown` completes, running the background
/// workers alongside; in-flight requests finish before it returns.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = &state.config;
    let (stop_workers, worker_shutdown) = watch::channel(false);
    let cleanup = tokio::spawn(workers::idempotency_cleanup::run(
        state.idempotency.clone(),
        state.jobs.clone(),
        Duration::from_secs(config.idempotency_cleanup_interval_secs.max(1)),
        worker_shutdown,
    ));
    let retention = tokio::spawn(workers::retention::run(
        state.retention.clone(),
        state.transparency.clone(),
        state.jobs.clone(),
        Duration::from_secs(config.retention_interval_secs.max(1)),
        stop_workers.subscribe(),
    ));
    if let Err(error) = state.transparency.register_signing_key().await {
        return Err(std::io::Error::other(format!(
            "recording the checkpoint signing key: {error}"
        )));
    }
    let checkpoints = tokio::spawn(workers::checkpoints::run(
        state.transparency.clone(),
        state.jobs.clone(),
        Duration::from_secs(config.checkpoint_interval_secs.max(1)),
        stop_workers.subscribe(),
    ));
    let quarantine_expiry = tokio::spawn(workers::quarantine_expiry::run(
        state.quarantine.clone(),
        state.jobs.clone(),
        Duration::from_secs(config.quarantine_purge_interval_secs.max(1)),
        stop_workers.subscribe(),
    ));
    let served = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_workers.send(true);
    let _ = cleanup.await;
    let _ = retention.await;
    let _ = checkpoints.await;
    let _ = quarantine_expiry.await;
    served
}
