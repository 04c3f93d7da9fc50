//! The error codes the API answers with: the one table from each code to its wire string,
//! its HTTP status and, where it has one, its fixed message. Services name a code when a
//! rule refuses a request; the API turns it into a response (see `api::error`).

use axum::http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationFailed,
    InvalidAuditLogEvent,
    NotFound,
    Gone,
    Unauthorized,
    /// The API key lacks the scope or organization a route needs (403).
    Forbidden,
    PayloadTooLarge,
    MethodNotAllowed,
    IdempotencyKeyReused,
    ExternalIdAlreadyUsed,
    OrganizationIdTaken,
    UsernameTaken,
    InvalidAuditLogExportRangeDate,
    InvalidDownloadLink,
    EventNotInCheckpoint,
    /// `generate_link` named an Admin Portal intent this deployment does not serve.
    PortalIntentNotServed,
    /// A log stream destination on a loopback, private or link-local address, or over
    /// plain http://, without `--allow-private-stream-destinations`.
    DestinationNotAllowed,
    /// A stream with secrets, and no stream secrets key to encrypt them with.
    StreamSecretsKeyNotConfigured,
    LogStreamLimitReached,
    /// The API key used up its requests for this minute (429, with `Retry-After`).
    RateLimitExceeded,
    /// The request body did not arrive within the body timeout (408).
    RequestTimeout,
    /// A body in a content type the route does not read (415).
    UnsupportedMediaType,
    /// Any other malformed request a layer refused (400).
    InvalidRequest,
    /// A failure inside the server or its database (500).
    Internal,
    /// The store is shutting down; the same code as [`ErrorCode::Internal`], answered
    /// with 503 so clients retry elsewhere.
    Unavailable,
}

impl ErrorCode {
    /// `(wire code, HTTP status)`.
    fn entry(self) -> (&'static str, StatusCode) {
        match self {
            ErrorCode::ValidationFailed => ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY),
            ErrorCode::InvalidAuditLogEvent => ("invalid_audit_log_event", StatusCode::BAD_REQUEST),
            ErrorCode::NotFound => ("not_found", StatusCode::NOT_FOUND),
            ErrorCode::Gone => ("gone", StatusCode::GONE),
            ErrorCode::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            ErrorCode::Forbidden => ("forbidden", StatusCode::FORBIDDEN),
            ErrorCode::PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ErrorCode::IdempotencyKeyReused => ("idempotency_key_reused", StatusCode::BAD_REQUEST),
            ErrorCode::ExternalIdAlreadyUsed => {
                ("external_id_already_used", StatusCode::BAD_REQUEST)
            }
            ErrorCode::OrganizationIdTaken => ("organization_id_taken", StatusCode::BAD_REQUEST),
            ErrorCode::UsernameTaken => ("username_taken", StatusCode::BAD_REQUEST),
            ErrorCode::InvalidAuditLogExportRangeDate => (
                "invalid_audit_log_export_range_date",
                StatusCode::BAD_REQUEST,
            ),
            ErrorCode::InvalidDownloadLink => ("invalid_download_link", StatusCode::FORBIDDEN),
            ErrorCode::EventNotInCheckpoint => ("event_not_in_checkpoint", StatusCode::BAD_REQUEST),
            ErrorCode::PortalIntentNotServed => {
                ("portal_intent_not_served", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ErrorCode::DestinationNotAllowed => {
                ("destination_not_allowed", StatusCode::BAD_REQUEST)
            }
            ErrorCode::StreamSecretsKeyNotConfigured => {
                ("stream_secrets_key_not_configured", StatusCode::BAD_REQUEST)
            }
            ErrorCode::LogStreamLimitReached => {
                ("log_stream_limit_reached", StatusCode::BAD_REQUEST)
            }
            ErrorCode::RateLimitExceeded => ("rate_limit_exceeded", StatusCode::TOO_MANY_REQUESTS),
            ErrorCode::RequestTimeout => ("request_timeout", StatusCode::REQUEST_TIMEOUT),
            ErrorCode::UnsupportedMediaType => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            ErrorCode::InvalidRequest => ("invalid_request", StatusCode::BAD_REQUEST),
            ErrorCode::Internal => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::Unavailable => ("internal_error", StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    /// The `code` of the response body.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    pub fn status(self) -> StatusCode {
        self.entry().1
    }

    /// The message of codes whose message never varies.
    pub fn fixed_message(self) -> Option<&'static str> {
        match self {
            ErrorCode::ValidationFailed => Some("Validation failed."),
            ErrorCode::InvalidAuditLogEvent => Some("Invalid Audit Log event."),
            ErrorCode::Unauthorized => {
                Some("Unauthorized: send a valid API key as 'Authorization: Bearer sk_...'.")
            }
            ErrorCode::IdempotencyKeyReused => Some(
                "This Idempotency-Key was already used with a different request; use a new key for a new request.",
            ),
            ErrorCode::RateLimitExceeded => Some("Too many requests."),
            ErrorCode::RequestTimeout => {
                Some("The request body did not arrive in time; send it again.")
            }
            ErrorCode::Internal | ErrorCode::Unavailable => {
                Some("Internal server error; quote the X-Request-ID header when reporting it.")
            }
            _ => None,
        }
    }

    /// Whether the body carries `errors`: validation failures list them, and every 400 has
    /// the (possibly empty) list so the Node SDK raises its typed BadRequestException
    /// rather than a generic one.
    ///
    /// A refused portal intent has no list: the Node SDK's UnprocessableEntityException
    /// replaces the message with the list's codes whenever one is present, and the message
    /// is what names the intents served.
    pub fn lists_errors(self) -> bool {
        self != ErrorCode::PortalIntentNotServed
            && matches!(
                self.status(),
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            )
    }
}
