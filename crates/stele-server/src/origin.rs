//! Where a request came from (request id, peer address, user agent), for the activity
//! log; shared by the API and the dashboard.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::services::activity::{ActivityContext, Actor};

/// The request id, peer address and user agent of a request.
pub fn request_origin(parts: &Parts) -> (Option<String>, Option<String>, Option<String>) {
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    (
        header_text("x-request-id"),
        address,
        header_text("user-agent"),
    )
}

/// The request id, peer address and user agent of a request, for recording an action by
/// an actor that is not an API key (a download link, a dashboard user).
pub struct RequestOrigin {
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestOrigin {
    pub fn from_parts(parts: &Parts) -> Self {
        let (request_id, address, user_agent) = request_origin(parts);
        RequestOrigin {
            request_id,
            address,
            user_agent,
        }
    }

    pub fn context(&self, actor: Actor) -> ActivityContext {
        ActivityContext::new(actor).with_request(
            self.request_id.clone(),
            self.address.clone(),
            self.user_agent.clone(),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (request_id, address, user_agent) = request_origin(parts);
        Ok(RequestOrigin {
            request_id,
            address,
            user_agent,
        })
    }
}
