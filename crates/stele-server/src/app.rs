//! The composition root: builds the services from a store and the configuration, mounts
//! the API and the dashboard behind the middleware they share, and runs the background
//! workers beside the server. Nothing else wires these parts together.

use std::any::Any;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::MatchedPath;
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{middleware, Router};
use stele_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::api::error::ErrorCodeTag;
use crate::config::ServeConfig;
use crate::connections::{self, ConnectionLimits};
use crate::metrics::Metrics;
use crate::services::activity::{actions, ActivityContext, ActivityLog, ActivityTarget};
use crate::services::api_keys::ApiKeyService;
use crate::services::bootstrap::BootstrapService;
use crate::services::events::EventService;
use crate::services::exports::{ExportService, LinkKeySource, UrlSigner};
use crate::services::idempotency::IdempotencyService;
use crate::services::jobs::JobService;
use crate::services::log_streams::outbound::DestinationPolicy;
use crate::services::log_streams::sealing::StreamSecretsKey;
use crate::services::log_streams::{DeliveryOptions, LogStreamService};
use crate::services::organizations::OrganizationService;
use crate::services::portal::PortalService;
use crate::services::quarantine::QuarantineService;
use crate::services::rate_limits::RateLimiter;
use crate::services::retention::RetentionService;
use crate::services::schemas::SchemaService;
use crate::services::sessions::SessionService;
use crate::services::transparency::{default_key_file, CheckpointSigner, TransparencyService};
use crate::services::users::UserService;
use crate::state::{AppState, Services};
use crate::{api, dashboard, portal, workers};

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
    let link_key_source = match &config.link_signing_key_file {
        Some(path) => LinkKeySource::File {
            path: path.clone(),
            may_generate: config.link_key_may_generate,
        },
        None => LinkKeySource::Database,
    };
    let api_keys = ApiKeyService::new(Arc::clone(&store));
    let stream_key = match (&config.stream_secrets_key_file, &config.stream_secrets_key) {
        (Some(path), _) => Some(StreamSecretsKey::from_file(path).map_err(anyhow::Error::msg)?),
        (None, Some(text)) => Some(StreamSecretsKey::parse(text).map_err(anyhow::Error::msg)?),
        (None, None) => None,
    };
    let log_streams = LogStreamService::new(
        Arc::clone(&store),
        stream_key,
        DestinationPolicy {
            allow_private: config.allow_private_stream_destinations,
        },
        DeliveryOptions {
            batch_wait: Duration::from_millis(config.log_stream_batch_wait_ms),
            lease: Duration::from_secs(config.log_stream_lease_secs),
            retry_base: Duration::from_millis(config.log_stream_retry_base_ms),
            retry_cap: Duration::from_secs(config.log_stream_retry_max_secs),
        },
    );
    let users = UserService::new(Arc::clone(&store));
    let events = EventService::new(Arc::clone(&store))
        .auto_creating_organizations(config.auto_create_organizations);
    let quarantine = QuarantineService::new(
        Arc::clone(&store),
        events.clone(),
        config.quarantine_retention_days,
    );
    Ok(AppState::new(Services {
        activity: ActivityLog::new(Arc::clone(&store)),
        bootstrap: BootstrapService::new(Arc::clone(&store), api_keys.clone()),
        events,
        quarantine,
        exports: ExportService::new(
            Arc::clone(&store),
            Arc::new(UrlSigner::new(Arc::clone(&store), link_key_source)),
            transparency.clone(),
        ),
        idempotency: IdempotencyService::new(Arc::clone(&store)),
        jobs: JobService::new(Arc::clone(&store)),
        metrics: Metrics::new(Arc::clone(&store)),
        log_streams,
        organizations: OrganizationService::new(Arc::clone(&store)),
        portal: PortalService::new(Arc::clone(&store), config.portal_session_ttl_minutes),
        rate_limits: RateLimiter::new(Arc::clone(&store), config.rate_limit_per_minute),
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

/// Turns any error response that is not already JSON (or a dashboard HTML page) into the
/// API's JSON shape: axum's own rejections (a repeated query parameter, a path that does
/// not decode, a form with the wrong content type) and the body limit answer in plain
/// text, and every error must be `{"message","code"}`.
async fn json_errors(request: axum::extract::Request, next: middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let mut converted = ApiError::Plain { status, text }.into_response();
    for name in [axum::http::header::RETRY_AFTER, axum::http::header::ALLOW] {
        if let Some(value) = parts.headers.get(&name) {
            converted.headers_mut().insert(name, value.clone());
        }
    }
    converted
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

/// The route template that served a request, carried on its response to [`track_http`].
#[derive(Clone)]
struct RouteTemplate(Arc<str>);

/// Copies the matched route template (`/organizations/{id}`, never the raw path) onto the
/// response: runs after routing, where the template is known.
async fn tag_route(request: axum::extract::Request, next: middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| RouteTemplate(Arc::from(path.as_str())));
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Records every answered request in the metrics, by route template (`unmatched` for paths
/// no route serves, so scanners cannot grow the label set).
async fn track_http(request: axum::extract::Request, next: middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = response.extensions().get::<RouteTemplate>().cloned();
    crate::metrics::record_request(
        &method,
        route.as_ref().map_or("unmatched", |route| &route.0),
        response.status().as_u16(),
        started.elapsed(),
        response.extensions().get::<ErrorCodeTag>().map(|tag| tag.0),
    );
    response
}

/// The whole HTTP surface: the API, the dashboard, and the middleware both go through.
pub fn router(state: AppState) -> Router {
    let request_log = state.config.request_log;
    let body_timeout = Duration::from_secs(state.config.http_body_timeout_secs);
    let router = api::router(&state)
        // A browser pointed at the server lands on the dashboard.
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .merge(dashboard::router(&state))
        .merge(portal::router(&state))
        .route_layer(middleware::from_fn(tag_route))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(reject_nul_in_uri))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(track_http))
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
    serve_with_metrics(state, listener, None, shutdown).await
}

/// [`serve`], and `GET /metrics` without authentication on `metrics_listener` when given
/// (`--metrics-listen`), until the API server stops.
pub async fn serve_with_metrics(
    state: AppState,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
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
    match state.transparency.register_signing_key().await {
        Ok(false) => {}
        Ok(true) => {
            let recorded = state
                .activity
                .record(
                    &ActivityContext::system(),
                    actions::SIGNING_KEY_ADDED,
                    vec![ActivityTarget::new(
                        "signing_key",
                        &state.transparency.signing_key_id(),
                    )],
                )
                .await;
            if let Err(error) = recorded {
                return Err(std::io::Error::other(format!(
                    "recording the new checkpoint signing key in the activity log: {error}"
                )));
            }
        }
        Err(error) => {
            return Err(std::io::Error::other(format!(
                "recording the checkpoint signing key: {error}"
            )))
        }
    }
    if let Err(error) = state.exports.load_link_key().await {
        let _ = stop_workers.send(true);
        return Err(std::io::Error::other(format!(
            "loading the export link signing key: {error}"
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
    let streams = tokio::spawn(workers::log_streams::run(
        state.log_streams.clone(),
        Duration::from_millis(config.log_stream_poll_interval_ms),
        stop_workers.subscribe(),
    ));
    let metrics_server = metrics_listener.map(|metrics_listener| {
        let mut stopped = stop_workers.subscribe();
        tokio::spawn(
            axum::serve(
                metrics_listener,
                api::metrics::unauthenticated_router(state.clone()),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .into_future(),
        )
    });
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_secs(config.http_idle_timeout_secs),
        header_read_timeout: Duration::from_secs(config.http_header_read_timeout_secs),
        max_connections: config.max_connections as usize,
    };
    let served = connections::serve(listener, router(state.clone()), limits, shutdown).await;
    let _ = stop_workers.send(true);
    let _ = cleanup.await;
    let _ = retention.await;
    let _ = checkpoints.await;
    if let Some(metrics_server) = metrics_server {
        if let Ok(Err(error)) = metrics_server.await {
            tracing::warn!(%error, "the metrics listener failed");
        }
    }
    let _ = streams.await;
    let _ = quarantine_expiry.await;
    served
}
