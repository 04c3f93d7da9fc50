//! Rules the generated OpenAPI document states once for every operation, so that it
//! matches what the server answers (schemathesis checks it, see `ci/schemathesis.sh`):
//! every error is the JSON `Error` object; every operation can answer 422 (a query string
//! or path that does not decode, a malformed `Idempotency-Key`); every operation that
//! needs an API key can answer 401 and, past the key's rate limit, 429 with
//! `Retry-After`; every operation that takes a body can answer 413; and the list and
//! filter parameters shared by many routes carry the bounds the server enforces.

use serde_json::{json, Map, Value};
use stele_core::pagination::MAX_LIMIT;

use crate::services::quarantine::{
    QUARANTINE_BODY_TOO_LARGE, QUARANTINE_FULL, QUARANTINE_ORGANIZATION_UNKNOWN,
};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `document` (the generated OpenAPI JSON) with the shared rules applied.
pub fn conform(mut document: Value) -> Value {
    if let Some(schemas) = document
        .pointer_mut("/components")
        .and_then(Value::as_object_mut)
        .map(|components| components.entry("schemas").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        schemas.insert("Error".into(), error_schema());
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return document;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            // `security: [{}]` marks a public operation; without `security` the document's
            // (bearer) applies.
            let public = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|requirements| {
                    requirements
                        .iter()
                        .any(|requirement| requirement.as_object().is_some_and(Map::is_empty))
                });
            let takes_body = operation.contains_key("requestBody");
            let responses = operation.entry("responses").or_insert_with(|| json!({}));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            add(
                responses,
                "422",
                "Malformed request: the body, a query parameter, a path segment or a header",
                None,
            );
            if path != "/healthz" {
                add(responses, "404", "Unknown resource", None);
            }
            // Every body is read under a size limit (the access layer reads it to find the
            // organization, the handler to parse it).
            if takes_body {
                add(
                    responses,
                    "413",
                    "The body exceeds the route's size limit (payload_too_large)",
                    None,
                );
            }
            if !public {
                add(responses, "401", "Missing or unknown API key", None);
                add(
                    responses,
                    "429",
                    "The API key's requests for this minute are used up (rate_limit_exceeded)",
                    Some(json!({"Retry-After": {
                        "description": "Seconds until the key may call again",
                        "schema": {"type": "integer", "minimum": 1}
                    }})),
                );
            }
            for status in ["400", "403", "404", "410", "413"] {
                if responses.contains_key(status) {
                    add(responses, status, "", None);
                }
            }
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters {
                    bound_parameter(parameter);
                }
            }
        }
    }
    document
}

/// Documents `status` with the `Error` body (keeping an existing description), and its
/// `headers` when given.
fn add(
    responses: &mut Map<String, Value>,
    status: &str,
    description: &str,
    headers: Option<Value>,
) {
    let response = responses
        .entry(status.to_owned())
        .or_insert_with(|| json!({"description": description}));
    if let Some(response) = response.as_object_mut() {
        response.insert(
            "content".into(),
            json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
        );
        if let Some(headers) = headers {
            response.insert("headers".into(), headers);
        }
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["message", "code"],
        "properties": {
            "message": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": {}},
            "quarantine_id": {
                "type": ["string", "null"],
                "description": "Only on an event its schema refuses (invalid_audit_log_event from create-event, a batch item or an accept): the quarantined copy kept of it, or null when it could not be kept (then `quarantine_error` says why)"
            },
            "quarantine_error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [QUARANTINE_FULL, QUARANTINE_BODY_TOO_LARGE, QUARANTINE_ORGANIZATION_UNKNOWN]
                    },
                    "message": {"type": "string"}
                },
                "description": "Only when `quarantine_id` is null: why the refused event was not kept"
            }
        }
    })
}

/// The bounds of parameters shared by many routes, as the server checks them.
fn bound_parameter(parameter: &mut Value) {
    let Some(name) = parameter.get("name").and_then(Value::as_str) else {
        return;
    };
    let schema = match name {
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
        "order" => json!({"type": "string", "enum": ["asc", "desc", "normal"]}),
        "range_start" | "range_end" => json!({"type": "string", "format": "date-time"}),
        "action" if parameter.get("in").and_then(Value::as_str) == Some("path") => json!({
            "type": "string",
            "maxLength": stele_core::action_name::MAX_ACTION_NAME_LEN,
            "pattern": "^[a-z0-9_-]+(\\.[a-z0-9_-]+)+$"
        }),
        _ => return,
    };
    if let Some(parameter) = parameter.as_object_mut() {
        parameter.insert("schema".into(), schema);
    }
}
