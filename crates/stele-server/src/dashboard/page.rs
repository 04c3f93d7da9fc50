//! What every dashboard page shares: the layout data, rendering, HTML error pages, form
//! bodies and how times are shown.

use askama::Template;
use axum::extract::{Form, FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use stele_core::timestamp::format_millis;

use crate::services::ServiceError;

/// Data the layout needs: who is signed in (for the header and the logout form) and which
/// section of the navigation is current.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub username: Option<String>,
    pub csrf_token: String,
    pub section: &'static str,
}

impl Layout {
    pub fn anonymous() -> Self {
        Layout::default()
    }
}

/// Renders a page with status 200.
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    render_with_status(StatusCode::OK, page)
}

pub fn render_with_status(status: StatusCode, page: &impl Template) -> Result<Response, PageError> {
    let html = page
        .render()
        .map_err(|error| PageError::Internal(format!("template failed: {error}")))?;
    Ok((status, Html(html)).into_response())
}

/// Marks a response as never to be cached (pages that show secrets or per-session tokens).
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    title: &'a str,
    message: &'a str,
}

/// A dashboard request that ends in an error page rather than the API's JSON.
#[derive(Debug)]
pub enum PageError {
    NotFound(String),
    BadRequest(String),
    /// A state-changing form arrived without a valid CSRF token.
    Forbidden(String),
    Internal(String),
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidRequest(errors) => PageError::BadRequest(
                errors
                    .into_iter()
                    .map(|error| error.message)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ServiceError::InvalidEvent(violations)
            | ServiceError::RefusedEvent { violations, .. } => PageError::BadRequest(
                violations
                    .into_iter()
                    .map(|violation| violation.message)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            error @ (ServiceError::OrganizationNotFound(_)
            | ServiceError::ActionNotFound(_)
            | ServiceError::NotFound { .. }
            | ServiceError::Gone(_)) => PageError::NotFound(error.to_string()),
            ServiceError::Rejected { message, .. } => PageError::BadRequest(message),
            ServiceError::Forbidden { message, .. } => PageError::Forbidden(message),
            error @ (ServiceError::Store(_)
            | ServiceError::Internal(_)
            | ServiceError::Corrupt { .. }) => PageError::Internal(error.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            PageError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "Request not accepted", message)
            }
            PageError::Forbidden(message) => (StatusCode::FORBIDDEN, "Request refused", message),
            PageError::Internal(internal) => {
                tracing::error!(error = %internal, "dashboard request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete this request; the server log has the details."
                        .to_owned(),
                )
            }
        };
        let content = ErrorPageContent {
            status,
            title,
            message,
        };
        let mut response = content.render(Layout::anonymous());
        // Handlers that fail may not know who is signed in; the dashboard router renders
        // the page again with the navigation when the request has a session.
        response.extensions_mut().insert(content);
        response
    }
}

/// What an error page says, kept on its response so it can be rendered again with the
/// signed-in layout.
#[derive(Debug, Clone)]
pub struct ErrorPageContent {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl ErrorPageContent {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn title(&self) -> &'static str {
        self.title
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn render(&self, layout: Layout) -> Response {
        let page = ErrorPage {
            layout,
            title: self.title,
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message.clone()).into_response(),
        }
    }
}

/// An `application/x-www-form-urlencoded` body as ordered pairs, so repeated fields (one
/// per target type) keep their order. A body that is not a form is a 400 page.
pub struct FormData(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|rejection| {
                PageError::BadRequest(format!("The form could not be read: {rejection}"))
            })?;
        // As for JSON bodies: U+0000 cannot be stored on PostgreSQL and no field needs it.
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(PageError::BadRequest(format!(
                "The form field {name:?} contains the NUL character, which no field accepts."
            )));
        }
        Ok(FormData(pairs))
    }
}

impl FormData {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `2022-09-08 19:46:03 UTC`: what people read in tables (the API keeps RFC 3339).
pub fn display_time(millis: i64) -> String {
    let text = format_millis(millis);
    format!("{} {} UTC", &text[..10], &text[11..19])
}

/// `1000` as `1,000`.
pub fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Percent-encodes one path segment (action names may hold any printable character).
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_time_is_readable_utc() {
        assert_eq!(display_time(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn path_segments_escape_slashes_and_spaces() {
        assert_eq!(path_segment("user.signed_in"), "user.signed_in");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
