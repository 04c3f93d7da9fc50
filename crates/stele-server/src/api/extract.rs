//! Request extractors: JSON bodies that fail in the API's own error shape, the
//! authenticated caller, idempotency context, and list parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stele_core::model::ApiKey;
use stele_core::pagination::{Cursor, Page, PageRequest, SortOrder, DEFAULT_LIMIT, MAX_LIMIT};
use stele_core::FieldError;

use crate::api::error::ApiError;
use crate::api::wire::{List, ListMetadata};
use crate::origin::request_origin;
use crate::services::activity::ActivityContext;
use crate::state::AppState;

/// A request body parsed as JSON. Malformed JSON is a 422 and an oversized body a 413,
/// both with JSON bodies, instead of axum's plain-text rejections.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        ExactJsonBody::from_request(request, state)
            .await
            .map(|body| JsonBody(body.value))
    }
}

/// A request body parsed as [`JsonBody`] is, with the bytes it was parsed from (what the
/// quarantine keeps of a refused event).
pub struct ExactJsonBody {
    pub value: Value,
    pub bytes: Bytes,
}

impl FromRequest<AppState> for ExactJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        // Read with this route's limit (the batch route's is larger than the others').
        let limit = state.config.body_limit_for(request.uri().path());
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|error| {
                let error = error.into_inner();
                if crate::api::error::is_body_timeout(error.as_ref()) {
                    ApiError::BodyTimeout
                } else if error.is::<http_body_util::LengthLimitError>() {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::validation(vec![FieldError::invalid(
                        "body",
                        "The request body could not be read.",
                    )])
                }
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::validation(vec![FieldError {
                code: "invalid_json",
                field: "body".into(),
                message: format!("The request body is not valid JSON: {error}."),
            }])
        })?;
        // PostgreSQL text cannot hold U+0000, so the same request would be stored on SQLite
        // and fail on PostgreSQL (taking a whole append batch with it); no audit field
        // needs it, so both backends refuse it here, naming where it is.
        if let Some(field) = nul_character_at(&value) {
            return Err(ApiError::validation(vec![FieldError::invalid(
                field.clone(),
                format!("{field} must not contain the NUL character (\\u0000)."),
            )]));
        }
        Ok(ExactJsonBody { value, bytes })
    }
}

/// The dotted path of the first object key or string in `value` holding U+0000 ("body"
/// for the top level; a key holding it is reported at the path of its object).
///
/// Every request body goes through this, so the walk allocates nothing: only a body that
/// does hold a NUL gets its path spelled out, from the steps collected on the way back up.
pub fn nul_character_at(value: &Value) -> Option<String> {
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn find<'a>(value: &'a Value, steps: &mut Vec<Step<'a>>) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
                let found = find(item, steps);
                if found {
                    steps.push(Step::Index(index));
                }
                found
            }),
            Value::Object(members) => members.iter().any(|(key, member)| {
                if key.contains('\0') {
                    return true;
                }
                let found = find(member, steps);
                if found {
                    steps.push(Step::Key(key));
                }
                found
            }),
            _ => false,
        }
    }
    let mut steps = Vec::new();
    if !find(value, &mut steps) {
        return None;
    }
    let mut path = String::new();
    for step in steps.iter().rev() {
        match step {
            Step::Key(key) if path.is_empty() => path.push_str(key),
            Step::Key(key) => {
                path.push('.');
                path.push_str(key);
            }
            Step::Index(index) => path.push_str(&format!("[{index}]")),
        }
    }
    Some(if path.is_empty() {
        "body".to_owned()
    } else {
        path
    })
}

/// Deserialises a JSON value into a typed request, naming the offending field on error.
pub fn typed_body<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let field_error = if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            let field = if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            FieldError::required(field)
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            FieldError {
                code: "invalid",
                message: format!("{field}: {inner}."),
                field,
            }
        };
        ApiError::validation(vec![field_error])
    })
}

/// The API key a request was authenticated with.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub ApiKey);

/// Authenticates from the `Authorization: Bearer` header.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<ApiCaller, ApiError> {
    if let Some(caller) = parts.extensions.get::<ApiCaller>() {
        return Ok(caller.clone());
    }
    let secret = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    state
        .api_keys
        .authenticate(secret)
        .await?
        .map(ApiCaller)
        .ok_or(ApiError::Unauthorized)
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await
    }
}

/// `limit`, `before`, `after`, `order` of a list request, plus any other query pairs.
pub struct ListQuery {
    pub limit: u32,
    pub order: SortOrder,
    pub cursor: Option<Cursor<String>>,
    /// `order=normal`: descending, with WorkOS's reversed cursor meaning (`before` fetches
    /// older items and `after` newer ones), so both the request's cursor and the response's
    /// `list_metadata` swap `before` and `after`.
    pub cursors_reversed: bool,
    pub rest: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let mut query = ListQuery {
            limit: DEFAULT_LIMIT,
            order: SortOrder::Desc,
            cursor: None,
            cursors_reversed: false,
            rest: Vec::new(),
        };
        let (mut before, mut after) = (None, None);
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => match value.parse::<u32>() {
                    Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => query.limit = limit,
                    _ => errors.push(FieldError::invalid(
                        "limit",
                        format!("limit must be an integer from 1 to {MAX_LIMIT}."),
                    )),
                },
                "order" => match value.as_str() {
                    "asc" => query.order = SortOrder::Asc,
                    "desc" => query.order = SortOrder::Desc,
                    "normal" => {
                        query.order = SortOrder::Desc;
                        query.cursors_reversed = true;
                    }
                    _ => errors.push(FieldError::invalid(
                        "order",
                        "order must be 'asc', 'desc' or 'normal'.",
                    )),
                },
                "before" if !value.is_empty() => before = Some(value),
                "after" if !value.is_empty() => after = Some(value),
                "before" | "after" => {}
                _ => query.rest.push((name, value)),
            }
        }
        if query.cursors_reversed {
            std::mem::swap(&mut before, &mut after);
        }
        query.cursor = match (before, after) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::invalid(
                    "before",
                    "Use either before or after, not both.",
                ));
                None
            }
            (Some(key), None) => Some(Cursor::Before(key)),
            (None, Some(key)) => Some(Cursor::After(key)),
            (None, None) => None,
        };
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ApiError::validation(errors))
        }
    }

    /// The `list_metadata` of a page, in the cursor meaning this request asked for.
    pub fn list_metadata(&self, before: Option<String>, after: Option<String>) -> ListMetadata {
        if self.cursors_reversed {
            ListMetadata {
                before: after,
                after: before,
            }
        } else {
            ListMetadata { before, after }
        }
    }

    /// A page as a list response, in the cursor meaning this request asked for.
    pub fn list<S, T>(&self, page: Page<S>, render: impl FnMut(S) -> T) -> List<T> {
        let mut list = List::from_page(page, render);
        list.list_metadata =
            self.list_metadata(list.list_metadata.before, list.list_metadata.after);
        list
    }

    /// The page request with cursors as strings (for string-keyed lists).
    pub fn page(&self) -> PageRequest<String> {
        PageRequest {
            limit: self.limit,
            order: self.order,
            cursor: self.cursor.clone(),
        }
    }

    /// The page request for lists keyed by integers; a cursor that is not one is a 422.
    pub fn numeric_page(&self) -> Result<PageRequest<i64>, ApiError> {
        let page = self.keyed_page::<i64>()?;
        // Sequence numbers start at 1: no list ever hands out a negative cursor.
        if let Some(Cursor::Before(n) | Cursor::After(n)) = page.cursor {
            if n < 0 {
                let field = match page.cursor {
                    Some(Cursor::Before(_)) => "before",
                    _ => "after",
                };
                return Err(ApiError::validation(vec![FieldError::invalid(
                    field,
                    format!("{field} is not a cursor from this list."),
                )]));
            }
        }
        Ok(page)
    }

    /// The page request for lists keyed by `K`; a cursor that does not parse as one is a
    /// 422.
    pub fn keyed_page<K: std::str::FromStr>(&self) -> Result<PageRequest<K>, ApiError> {
        let parse = |field: &str, text: &str| {
            text.parse::<K>().map_err(|_| {
                ApiError::validation(vec![FieldError::invalid(
                    field,
                    format!("{field} is not a cursor from this list."),
                )])
            })
        };
        let cursor = match &self.cursor {
            None => None,
            Some(Cursor::Before(text)) => Some(Cursor::Before(parse("before", text)?)),
            Some(Cursor::After(text)) => Some(Cursor::After(parse("after", text)?)),
        };
        Ok(PageRequest {
            limit: self.limit,
            order: self.order,
            cursor,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.rest
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Who is calling and from where, for the activity log: the API key (authenticated by the
/// access layer), the request id, the peer address and the user agent.
pub struct Activity(pub ActivityContext);

impl FromRequestParts<AppState> for Activity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        let (request_id, address, user_agent) = request_origin(parts);
        Ok(Activity(
            ActivityContext::api_key(&caller.0).with_request(request_id, address, user_agent),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::nul_character_at;
    use serde_json::json;

    #[test]
    fn a_nul_is_named_by_the_path_of_the_string_or_of_the_object_whose_key_holds_it() {
        assert_eq!(nul_character_at(&json!({"a": [1, {"b": "ok"}]})), None);
        assert_eq!(nul_character_at(&json!("x\u{0}")).as_deref(), Some("body"));
        assert_eq!(
            nul_character_at(&json!({"a": [1, {"b": "x\u{0}"}]})).as_deref(),
            Some("a[1].b")
        );
        assert_eq!(
            nul_character_at(&json!([{"k": ["ok", "\u{0}"]}])).as_deref(),
            Some("[0].k[1]")
        );
        // A key holding it: the path of its object ("body" at the top).
        assert_eq!(
            nul_character_at(&json!({"a": {"b\u{0}": 1}})).as_deref(),
            Some("a")
        );
        assert_eq!(
            nul_character_at(&json!({"b\u{0}": 1})).as_deref(),
            Some("body")
        );
    }
}
