//! HTTP responses shared by the API and the dashboard, so neither borrows from the other.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

/// A proof bundle (proven JSONL) as a download named after its event.
pub fn proof_bundle_download(event_id: &str, bundle: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bundle));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{event_id}.proof.jsonl\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
