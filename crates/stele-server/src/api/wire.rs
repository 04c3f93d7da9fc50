//! Shapes shared by every resource on the wire: the list envelope and response helpers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stele_core::pagination::Page;
use utoipa::ToSchema;

use crate::services::ServiceError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ListMetadata {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// `{"object":"list","data":[...],"list_metadata":{"before","after"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<T>,
    pub list_metadata: ListMetadata,
}

impl<T> List<T> {
    pub fn from_page<S>(page: Page<S>, render: impl FnMut(S) -> T) -> Self {
        let page = page.map(render);
        List {
            object: "list",
            data: page.data,
            list_metadata: ListMetadata {
                before: page.before,
                after: page.after,
            },
        }
    }
}

/// Serialises a response body once, so the same bytes can be sent and recorded for replay.
pub fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec(value)
        .map_err(|error| ServiceError::Internal(format!("encoding a response body: {error}")))
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
