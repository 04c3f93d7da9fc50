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
/// Stores encode it in two parts ([`EventInput::prepare_record`], which repeats these
/// fields in `RecordHead` and `RecordTail`): a new field goes into the part its name sorts
/// in, and no name may sort between `received_at` and `sequence`. The property test
/// `a_prepared_record_completes_to_the_whole_records_encoding` holds the two to each other.
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
    /// Canonical bytes of this event as stored under `id` at `sequence`: the RFC 8785
    /// encoding of its [`EventRecord`].
    pub fn canonical_record(
        &self,
        id: &str,
        organization_id: &str,
        sequence: i64,
        received_at: UnixMillis,
    ) -> Result<Vec<u8>, CanonicalError> {
        self.prepare_record(id, organization_id)?
            .complete(sequence, received_at)
    }

    /// Encodes everything of this event's record that is known before it is appended, so
    /// that the appending thread, which alone can give it a sequence and a `received_at`,
    /// only joins bytes ([`PreparedRecord::complete`]).
    pub fn prepare_record(
        &self,
        id: &str,
        organization_id: &str,
    ) -> Result<PreparedRecord, CanonicalError> {
        let mut head = to_canonical_bytes(&RecordHead {
            id,
            organization_id,
            action: &self.action,
            occurred_at: format_millis(self.occurred_at),
            actor: &self.actor,
            context: &self.context,
            metadata: self.metadata.as_ref(),
            imported: self.imported,
            quarantine_id: self.quarantine_id.as_deref(),
        })?;
        let mut tail = to_canonical_bytes(&RecordTail {
            targets: &self.targets,
            version: self.version,
        })?;
        // `{head members}` loses its `}` and `{tail members}` its `{`: `complete` puts the
        // two members between them.
        head.pop();
        tail.remove(0);
        Ok(PreparedRecord { head, tail })
    }
}

/// An event's canonical record without its `received_at` and `sequence`, which the store
/// sets when it appends the event. RFC 8785 orders an object's members by name, and those
/// two names sort next to each other, after every other member but `targets` and
/// `version`; so the record is the encoding of the members before them, then the two,
/// then the members after them. Encoding the rest ahead of time keeps that work off the
/// store's single writer.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRecord {
    /// `{` and the members that sort before `received_at`, without the closing `}`.
    head: Vec<u8>,
    /// The members that sort after `sequence`, without the opening `{`, and the `}`.
    tail: Vec<u8>,
}

impl PreparedRecord {
    /// The canonical record at `sequence`, received at `received_at`: the same bytes as
    /// encoding the whole [`EventRecord`].
    pub fn complete(
        &self,
        sequence: i64,
        received_at: UnixMillis,
    ) -> Result<Vec<u8>, CanonicalError> {
        // Both through the canonical encoder too: it spells numbers as JavaScript does.
        let received_at = to_canonical_bytes(&format_millis(received_at))?;
        let sequence = to_canonical_bytes(&sequence)?;
        let mut record = Vec::with_capacity(self.head.len() + self.tail.len() + 64);
        record.extend_from_slice(&self.head);
        record.extend_from_slice(b",\"received_at\":");
        record.extend_from_slice(&received_at);
        record.extend_from_slice(b",\"sequence\":");
        record.extend_from_slice(&sequence);
        record.push(b',');
        record.extend_from_slice(&self.tail);
        Ok(record)
    }
}

/// The members of an [`EventRecord`] whose names sort before `received_at`.
#[derive(Serialize)]
struct RecordHead<'a> {
    id: &'a str,
    organization_id: &'a str,
    action: &'a str,
    occurred_at: String,
    actor: &'a Entity,
    context: &'a EventContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    imported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantine_id: Option<&'a str>,
}

/// The members of an [`EventRecord`] whose names sort after `sequence`.
#[derive(Serialize)]
struct RecordTail<'a> {
    targets: &'a [Entity],
    version: i64,
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

/// The metadata numbers of `request` (event, actor and target metadata, at any depth) that
/// its stored form would change, each as an error naming it.
///
/// RFC 8785 writes every number as JavaScript does: the shortest decimal that reads back as
/// the nearest IEEE 754 double. An integer that decimal does not spell (9007199254740993
/// becomes 9007199254740992, 1152921504606846976 becomes 1152921504606847000) would be
/// stored, hashed and returned as another number, so live ingest refuses it rather than
/// alter an audit record. Numbers written with a fraction or an exponent, or too long for a
/// 64-bit integer, reach the server already read as doubles (as any JavaScript emitter's
/// do) and are kept as those doubles.
pub fn altered_numbers(request: &CreateEventRequest) -> Vec<FieldError> {
    fn check(value: &Value, path: String, errors: &mut Vec<FieldError>) {
        match value {
            Value::Number(number) => {
                if let Some(stored) = canonical_integer_change(number) {
                    errors.push(FieldError::invalid(
                        &path,
                        format!(
                            "{path} is {number}, which the stored form (RFC 8785 keeps numbers as IEEE 754 doubles) would change to {stored}. Send it as a string."
                        ),
                    ));
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    check(item, format!("{path}[{index}]"), errors);
                }
            }
            Value::Object(members) => {
                for (key, member) in members {
                    check(member, format!("{path}.{key}"), errors);
                }
            }
            _ => {}
        }
    }
    let event = &request.event;
    let mut errors = Vec::new();
    let mut metadata = vec![("event.actor.metadata".to_owned(), &event.actor.metadata)];
    for (index, target) in event.targets.iter().enumerate() {
        metadata.push((format!("event.targets[{index}].metadata"), &target.metadata));
    }
    metadata.push(("event.metadata".to_owned(), &event.metadata));
    for (path, map) in metadata {
        for (key, value) in map.iter().flatten() {
            check(value, format!("{path}.{key}"), &mut errors);
        }
    }
    errors
}

/// What an integer `number` would be stored as, when that is another number.
fn canonical_integer_change(number: &serde_json::Number) -> Option<String> {
    let written = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))?;
    let stored = String::from_utf8(to_canonical_bytes(number).ok()?).ok()?;
    // The canonical form of an integer-valued double is plain digits (exponents start
    // past 10^21, beyond any 64-bit integer).
    (stored.parse::<i128>().ok() != Some(written)).then_some(stored)
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
    use proptest::prelude::*;
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
    fn metadata_integers_the_canonical_form_would_change_are_named() {
        let with_metadata = |metadata: Value, actor_metadata: Value| {
            let mut payload = seed_node_payload();
            payload["event"]["metadata"] = metadata;
            payload["event"]["actor"]["metadata"] = actor_metadata;
            let request = parse_create_event(&payload).expect("a valid shape");
            altered_numbers(&request)
                .into_iter()
                .map(|error| error.field)
                .collect::<Vec<_>>()
        };
        // Kept as written: integers the shortest double spells, and any fraction.
        let kept = json!({
            "max": 9_007_199_254_740_991_u64, "min": -9_007_199_254_740_991_i64,
            "round": 1_000_000_000_000_000_000_u64, "ratio": 0.1
        });
        assert!(with_metadata(kept.clone(), kept).is_empty());
        assert_eq!(
            with_metadata(
                json!({"n": 9_007_199_254_740_993_u64, "ok": 1}),
                json!({"deep": {"list": [1, 1_152_921_504_606_846_976_u64]}}),
            ),
            ["event.actor.metadata.deep.list[1]", "event.metadata.n"]
        );
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

    /// Any JSON string, escapes, quotes, control characters and non-ASCII included.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{0,12}",
            any::<String>(),
            Just("\"received_at\":\"x\",\"sequence\":1".to_owned()),
        ]
    }

    fn any_map() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map(
            prop_oneof![
                any_text(),
                Just("received_at".to_owned()),
                Just("sequence".to_owned())
            ],
            prop_oneof![
                any_text().prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Null),
            ],
            0..4,
        )
        .prop_map(|map| map.into_iter().collect())
    }

    fn any_entity() -> impl Strategy<Value = Entity> {
        (
            any_text(),
            any_text(),
            proptest::option::of(any_text()),
            proptest::option::of(any_map()),
        )
            .prop_map(|(id, kind, name, metadata)| Entity {
                id,
                kind,
                name,
                metadata,
            })
    }

    fn any_event() -> impl Strategy<Value = EventInput> {
        (
            (any_text(), any::<i64>(), any::<i64>(), any_entity()),
            proptest::collection::vec(any_entity(), 0..3),
            (any_text(), proptest::option::of(any_text())),
            proptest::option::of(any_map()),
            any::<bool>(),
            proptest::option::of(any_text()),
        )
            .prop_map(
                |(
                    (action, occurred_at, version, actor),
                    targets,
                    (location, user_agent),
                    metadata,
                    imported,
                    quarantine_id,
                )| EventInput {
                    action,
                    occurred_at: occurred_at % 253_402_300_800_000,
                    version,
                    actor,
                    targets,
                    context: EventContext {
                        location,
                        user_agent,
                    },
                    metadata,
                    imported,
                    quarantine_id,
                },
            )
    }

    proptest! {
        /// The record the store joins from a prepared head and tail is, byte for byte, the
        /// canonical encoding of the whole record: the stored form and every chain hash
        /// depend on it.
        #[test]
        fn a_prepared_record_completes_to_the_whole_records_encoding(
            event in any_event(),
            id in any_text(),
            organization_id in any_text(),
            sequence in prop_oneof![1..1_000_000i64, any::<i64>()],
            received_at in 0..253_402_300_800_000i64,
        ) {
            let whole = to_canonical_bytes(&EventRecord {
                id: &id,
                organization_id: &organization_id,
                sequence,
                version: event.version,
                action: &event.action,
                occurred_at: format_millis(event.occurred_at),
                received_at: format_millis(received_at),
                actor: &event.actor,
                targets: &event.targets,
                context: &event.context,
                metadata: event.metadata.as_ref(),
                imported: event.imported,
                quarantine_id: event.quarantine_id.as_deref(),
            })
            .expect("whole");
            let joined = event
                .prepare_record(&id, &organization_id)
                .expect("prepare")
                .complete(sequence, received_at)
                .expect("complete");
            prop_assert_eq!(joined, whole);
        }
    }
}
