//! Per-API-key rate limits on every API route: a request authenticated with a key that has
//! used up its requests for the minute gets WorkOS's 429 `rate_limit_exceeded` with
//! `Retry-After`. Requests without a valid key pass through untouched, so public routes
//! stay public and protected ones answer 401 from their own extractor.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::extract::authenticate;
use crate::services::rate_limits::Admission;
use crate::state::AppState;

pub async fn rate_limit_layer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.rate_limits.is_enabled() || !request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(caller) = authenticate(&parts, &state).await {
        let key_id: String = caller.0.id.clone().into();
        if let Admission::Limited { retry_after_secs } =
            state.rate_limits.admit_api_key(&key_id).await
        {
            return ApiError::RateLimited { retry_after_secs }.into_response();
        }
        // Handlers and the idempotency layer find the caller here instead of looking it up again.
        parts.extensions.insert(caller);
    }
    next.run(Request::from_parts(parts, body)).await
}
