//! Audit events: parsing a create-event request into its typed form (reporting every shape
//! problem at once), and the record that is stored and hashed.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::canonical::{to_canonical_bytes, CanonicalError};
use crate::timestamp::{format_millis, parse_instant, UnixMillis};
use crate::FieldError;

/// An actor or a target: both are `{id, type, name?, metadata?}` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventContext {
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The `event` object of `POST /audit_logs/events`, after shape checks.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub action: String,
    pub occurred_at: UnixMillis,
    /// The schema version the emitter names; 1 when omitted, `null` or `0`.
    pub version: i64,
    pub actor: Entity,
    pub targets: Vec<Entity>,
    pub context: EventContext,
    pub metadata: Option<Map<String, Value>>,
    /// Loaded from another system's export (`stele import-events`) rather than received
    /// live; recorded in the stored form so the mark is covered by the chain.
    pub imported: bool,
    /// The quarantine entry this event was accepted from, recorded in the stored form so
    /// the event keeps its link to the refusal it came through.
    pub quarantine_id: Option<String>,
}

/// A whole create-event request body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateEventRequest {
    pub organization_id: String,
    pub event: EventInput,
}

/// The stored form of an event. Its RFC 8785 encoding is what the chain hashes and what
/// the store keeps byte for byte; field names match the wire so it reads like the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord<'a> {
    pub id: &'a str,
    pub organization_id: &'a str,
    pub sequence: i64,
    pub version: i64,
    pub action: &'a str,
    pub occurred_at: String,
    pub received_at: String,
    pub actor: &'a Entity,
    pub targets: &'a [Entity],
    pub context: &'a EventContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a Map<String, Value>>,
    /// Present (`true`) only on imported events, so live events keep their stored form.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    /// Present only on events accepted from quarantine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<&'a str>,
}

impl EventInput {
    /// Canonical bytes of this event as stored under `id` at `sequence`.
    pub fn canonical_record(
        &self,
        id: &str,
        organization_id: &str,
        sequence: i64,
        received_at: UnixMillis,
    ) -> Result<Vec<u8>, CanonicalError> {
        to_canonical_bytes(&EventRecord {
            id,
            organization_id,
            sequence,
            version: self.version,
            action: &self.action,
            occurred_at: format_millis(self.occurred_at),
            received_at: format_millis(received_at),
            actor: &self.actor,
            targets: &self.targets,
            context: &self.context,
            metadata: self.metadata.as_ref(),
            imported: self.imported,
            quarantine_id: self.quarantine_id.as_deref(),
        })
    }
}

/// The longest `id`, `type` or `name` of an actor or target, in characters. These are
/// indexed for search, and one limit for both backends keeps an index entry within
/// PostgreSQL's (about 2.7 KB) at four bytes per character, so a value SQLite would take
/// is never a 500 on PostgreSQL.
pub const MAX_ENTITY_FIELD_CHARS: usize = 500;

/// Reads a request body field by field, collecting every problem instead of stopping at
/// the first, so a client fixes its payload in one round trip.
struct ShapeReader {
    errors: Vec<FieldError>,
}

impl ShapeReader {
    fn object<'v>(
        &mut self,
        parent: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        match parent.get(key) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::required(path));
                None
            }
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.errors
                    .push(FieldError::invalid_type(path, "an object"));
                None
            }
        }
    }

    fn required_string(
        &mut self,
        parent: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        match parent.get(key) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::required(path));
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.errors.push(FieldError::invalid(
                    path,
                    format!("{path} must not be empty."),
                ));
                None
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors.push(FieldError::invalid_type(path, "a string"));
                None
            }
        }
    }

    fn optional_string(
        &mut self,
        parent: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        match parent.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors.push(FieldError::invalid_type(path, "a string"));
                None
            }
        }
    }

    fn optional_object(
        &mut self,
        parent: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<Map<String, Value>> {
        match parent.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => {
                self.errors
                    .push(FieldError::invalid_type(path, "an object"));
                None
            }
        }
    }

    /// `text` if it is within [`MAX_ENTITY_FIELD_CHARS`]; otherwise records the error.
    fn bounded(&mut self, text: Option<String>, path: &str) -> Option<String> {
        let text = text?;
        if text.chars().count() > MAX_ENTITY_FIELD_CHARS {
            self.errors.push(FieldError::invalid(
                path,
                format!("{path} may be at most {MAX_ENTITY_FIELD_CHARS} characters."),
            ));
            return None;
        }
        Some(text)
    }

    fn entity(&mut self, value: Option<&Value>, path: &str) -> Option<Entity> {
        let map = match value {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::required(path));
                return None;
            }
            Some(Value::Object(map)) => map,
            Some(_) => {
                self.errors
                    .push(FieldError::invalid_type(path, "an object"));
                return None;
            }
        };
        let id = self.required_string(map, "id", &format!("{path}.id"));
        let kind = self.required_string(map, "type", &format!("{path}.type"));
        let name = self.optional_string(map, "name", &format!("{path}.name"));
        let id = self.bounded(id, &format!("{path}.id"));
        let kind = self.bounded(kind, &format!("{path}.type"));
        let name = self.bounded(name, &format!("{path}.name"));
        let metadata = self.optional_object(map, "metadata", &format!("{path}.metadata"));
        Some(Entity {
            id: id?,
            kind: kind?,
            name,
            metadata,
        })
    }

    fn version(&mut self, event: &Map<String, Value>) -> Option<i64> {
        match event.get("version") {
            None | Some(Value::Null) => Some(1),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(0) => Some(1),
                Some(version) if version > 0 => Some(version),
                _ => {
                    self.errors.push(FieldError::invalid(
                        "event.version",
                        "event.version must be a positive integer.",
                    ));
                    None
                }
            },
            Some(_) => {
                self.errors
                    .push(FieldError::invalid_type("event.version", "an integer"));
                None
            }
        }
    }

    fn occurred_at(&mut self, event: &Map<String, Value>) -> Option<UnixMillis> {
        let text = self.required_string(event, "occurred_at", "event.occurred_at")?;
        match parse_instant(&text) {
            Ok(millis) => Some(millis),
            Err(error) => {
                self.errors.push(FieldError::invalid(
                    "event.occurred_at",
                    error.message("event.occurred_at"),
                ));
                None
            }
        }
    }
}

/// Parses a `POST /audit_logs/events` body. Unknown fields are ignored.
pub fn parse_create_event(body: &Value) -> Result<CreateEventRequest, Vec<FieldError>> {
    let Some(root) = body.as_object() else {
        return Err(vec![FieldError::invalid_type("body", "a JSON object")]);
    };
    let mut reader = ShapeReader { errors: Vec::new() };
    let organization_id = reader.required_string(root, "organization_id", "organization_id");
    let event = reader.object(root, "event", "event").and_then(|event| {
        let action = reader.required_string(event, "action", "event.action");
        let occurred_at = reader.occurred_at(event);
        let version = reader.version(event);
        let actor = reader.entity(event.get("actor"), "event.actor");
        let targets = match event.get("targets") {
            None | Some(Value::Null) => {
                reader.errors.push(FieldError::required("event.targets"));
                None
            }
            Some(Value::Array(items)) => {
                let parsed: Vec<Option<Entity>> = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        reader.entity(Some(item), &format!("event.targets[{index}]"))
                    })
                    .collect();
                parsed.into_iter().collect::<Option<Vec<_>>>()
            }
            Some(_) => {
                reader
                    .errors
                    .push(FieldError::invalid_type("event.targets", "an array"));
                None
            }
        };
        let context = reader
            .object(event, "context", "event.context")
            .and_then(|context| {
                let location =
                    reader.required_string(context, "location", "event.context.location");
                let user_agent =
                    reader.optional_string(context, "user_agent", "event.context.user_agent");
                Some(EventContext {
                    location: location?,
                    user_agent,
                })
            });
        let metadata = reader.optional_object(event, "metadata", "event.metadata");
        Some(EventInput {
            action: action?,
            occurred_at: occurred_at?,
            version: version?,
            actor: actor?,
            targets: targets?,
            context: context?,
            metadata,
            imported: false,
            quarantine_id: None,
        })
    });
    match (organization_id, event) {
        (Some(organization_id), Some(event)) if reader.errors.is_empty() => {
            Ok(CreateEventRequest {
                organization_id,
                event,
            })
        }
        _ => Err(reader.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_node_payload() -> Value {
        json!({
            "organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "event": {
                "action": "user.signed_in",
                "version": 2,
                "occurred_at": "2022-09-08T19:46:03.435Z",
                "actor": {"type": "user", "id": "user_01GBNJC3MX9ZZJW1FSTF4C5938"},
                "targets": [
                    {"type": "team", "id": "team_01GBNJD4MKHVKJGEWK42JNMBGS"},
                    {"type": "resource", "id": "resource_01GBTAX2J37BAMB2D8GYDR2CC6"}
                ],
                "context": {"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"},
                "ignored_field": true
            }
        })
    }

    #[test]
    fn parses_the_seed_payload() {
        let request = parse_create_event(&seed_node_payload()).expect("valid shape");
        assert_eq!(request.event.version, 2);
        assert_eq!(request.event.targets.len(), 2);
        assert_eq!(
            request.event.context.user_agent.as_deref(),
            Some("Chrome/104.0.0.0")
        );
    }

    #[test]
    fn omitted_null_or_zero_version_means_one() {
        for version in [None, Some(Value::Null), Some(json!(0))] {
            let mut body = seed_node_payload();
            let event = body["event"].as_object_mut().expect("object");
            match version {
                None => {
                    event.remove("version");
                }
                Some(v) => {
                    event.insert("version".into(), v);
                }
            }
            assert_eq!(parse_create_event(&body).expect("valid").event.version, 1);
        }
    }

    #[test]
    fn reports_every_missing_field() {
        let errors = parse_create_event(&json!({"event": {"actor": {"id": 5}, "targets": [{}]}}))
            .expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| (e.code, e.field.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("required", "organization_id"),
                ("required", "event.action"),
                ("required", "event.occurred_at"),
                ("invalid_type", "event.actor.id"),
                ("required", "event.actor.type"),
                ("required", "event.targets[0].id"),
                ("required", "event.targets[0].type"),
                ("required", "event.context"),
            ]
        );
    }

    #[test]
    fn canonical_record_is_stable_and_sorted() {
        let request = parse_create_event(&seed_node_payload()).expect("valid");
        let bytes = request
            .event
            .canonical_record("audit_log_event_X", "org_Y", 7, 0)
            .expect("canonical");
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with(r#"{"action":"user.signed_in","actor":{"id":"user_01GBNJC3MX9ZZJW1FSTF4C5938","type":"user"}"#));
        assert!(text.contains(r#""sequence":7"#));
        assert!(!text.contains("ignored_field"));
    }
}
