//! Schema versions of an action: parsing and normalising a definition, checking its JSON
//! Schemas against their meta-schema, and validating events against a compiled version.
//!
//! A version is immutable once stored, so a [`CompiledSchema`] can be cached forever.

use jsonschema::{Draft, Validator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::EventInput;
use crate::metadata::check_limits;
use crate::FieldError;

/// One entry of a 400 `invalid_audit_log_event` response: where in the event (a JSON
/// pointer from the event root) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaViolation {
    #[serde(rename = "instancePath")]
    pub instance_path: String,
    pub message: String,
}

impl SchemaViolation {
    pub fn new(instance_path: &str, message: impl Into<String>) -> Self {
        Self {
            instance_path: instance_path.to_owned(),
            message: message.into(),
        }
    }
}

/// Escapes one JSON pointer token (RFC 6901).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetDefinition {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorDefinition {
    pub metadata: Value,
}

/// What one schema version declares: its target types and the JSON Schemas for target,
/// actor and event metadata. This is also exactly its wire form, so it is returned as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaDefinition {
    pub targets: Vec<TargetDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl SchemaDefinition {
    pub fn target_types(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|target| target.kind.as_str())
    }

    /// RFC 8785 bytes: two definitions are the same version exactly when these are equal,
    /// whatever the key order they were submitted in.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, crate::canonical::CanonicalError> {
        crate::canonical::to_canonical_bytes(self)
    }
}

/// The JSON Schema drafts a metadata schema may select with `$schema` (draft-07 when absent,
/// matching the Ajv default WorkOS's `instancePath` errors come from).
fn draft_of(schema: &Map<String, Value>) -> Result<Draft, String> {
    let Some(declared) = schema.get("$schema") else {
        return Ok(Draft::Draft7);
    };
    let uri = declared
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('#')
        .trim_end_matches('/');
    let uri = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .unwrap_or(uri);
    match uri {
        "json-schema.org/draft-07/schema" => Ok(Draft::Draft7),
        "json-schema.org/draft/2019-09/schema" => Ok(Draft::Draft201909),
        "json-schema.org/draft/2020-12/schema" => Ok(Draft::Draft202012),
        _ => Err(format!(
            "$schema {declared} is not supported; use draft-07 (the default), 2019-09 or 2020-12"
        )),
    }
}

/// A metadata schema that constrains nothing: absent, `null`, `{}`, or an object schema with
/// no properties (the Node SDK always sends `actor` that way). Such schemas are stored as absent.
fn is_unconstrained(schema: &Value) -> bool {
    match schema {
        Value::Null => true,
        Value::Object(map) => map.iter().all(|(key, value)| match key.as_str() {
            "type" => value == "object",
            "properties" => value.as_object().is_some_and(Map::is_empty),
            _ => false,
        }),
        _ => false,
    }
}

fn compile(schema: &Value) -> Result<Validator, String> {
    let map = schema.as_object().ok_or("must be a JSON Schema object")?;
    let draft = draft_of(map)?;
    let meta_check = match draft {
        Draft::Draft201909 => jsonschema::draft201909::meta::validate(schema),
        Draft::Draft202012 => jsonschema::draft202012::meta::validate(schema),
        _ => jsonschema::draft7::meta::validate(schema),
    };
    if let Err(error) = meta_check {
        if let Some(problem) = unknown_type(schema, &mut String::new()) {
            return Err(format!("is not a valid JSON Schema{problem}"));
        }
        let at = error.instance_path().to_string();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {at}")
        };
        return Err(format!("is not a valid JSON Schema{at}: {error}"));
    }
    // Built without the remote-resolving features: a remote `$ref` fails here instead of
    // being fetched.
    jsonschema::options()
        .with_draft(draft)
        .build(schema)
        .map_err(|error| match remote_ref(schema, &mut String::new()) {
            Some(problem) => problem,
            None => format!("cannot be compiled: {error}"),
        })
}

/// The types the `type` keyword may name.
const JSON_TYPES: [&str; 7] = [
    "string", "number", "integer", "object", "array", "boolean", "null",
];

/// Keywords whose values are data, not schemas, so a `type` inside them is no keyword.
const DATA_KEYWORDS: [&str; 5] = ["enum", "const", "default", "examples", "example"];

/// Looks at one schema object (with its JSON pointer) for a problem to report.
type SchemaVisitor<'a> = dyn FnMut(&Map<String, Value>, &str) -> Option<String> + 'a;

/// Calls `visit` on every object of a schema that is not inside data keywords, with its
/// JSON pointer, stopping at the first `Some`.
fn find_in_schema(
    value: &Value,
    pointer: &mut String,
    visit: &mut SchemaVisitor<'_>,
) -> Option<String> {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => {
            if let Some(found) = visit(map, pointer) {
                return Some(found);
            }
            map.iter()
                .filter(|(key, _)| !DATA_KEYWORDS.contains(&key.as_str()))
                .map(|(key, child)| (escape_pointer_token(key), child))
                .collect()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), child))
            .collect(),
        _ => return None,
    };
    for (token, child) in children {
        let length = pointer.len();
        pointer.push('/');
        pointer.push_str(&token);
        let found = find_in_schema(child, pointer, visit);
        pointer.truncate(length);
        if found.is_some() {
            return found;
        }
    }
    None
}

/// ` at /p/type: "strin" is not a JSON Schema type ...` for the first misspelt `type`,
/// which the meta-schema would only report as a failed `anyOf`.
fn unknown_type(schema: &Value, pointer: &mut String) -> Option<String> {
    find_in_schema(schema, pointer, &mut |map, at| {
        let names: Vec<&str> = match map.get("type")? {
            Value::String(name) => vec![name.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        let unknown = names.into_iter().find(|name| !JSON_TYPES.contains(name))?;
        let suggestion = JSON_TYPES
            .iter()
            .map(|known| (edit_distance(unknown, known), known))
            .filter(|(distance, _)| *distance <= 2)
            .min()
            .map(|(_, known)| format!("; did you mean \"{known}\"?"))
            .unwrap_or_else(|| format!("; the types are {}", JSON_TYPES.join(", ")));
        Some(format!(
            " at {at}/type: \"{unknown}\" is not a JSON Schema type{suggestion}"
        ))
    })
}

/// A `$ref` to another document, which Stele never fetches.
fn remote_ref(schema: &Value, pointer: &mut String) -> Option<String> {
    find_in_schema(schema, pointer, &mut |map, at| {
        let reference = map.get("$ref")?.as_str()?;
        (!reference.starts_with('#')).then(|| {
            format!(
                "has a remote reference at {at}/$ref (\"{reference}\"): remote references are \
                 not fetched; copy the referenced schema in, under \"definitions\" or \"$defs\" \
                 with a local \"#/...\" reference"
            )
        })
    })
}

/// Levenshtein distance, for suggesting the type a misspelt one meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Reads an optional metadata schema; unconstrained schemas normalise to `None`.
fn metadata_schema(
    value: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let value = value?;
    if is_unconstrained(value) {
        return None;
    }
    match compile(value) {
        Ok(_) => Some(value.clone()),
        Err(problem) => {
            errors.push(FieldError::invalid(field, format!("{field} {problem}")));
            None
        }
    }
}

/// Parses the body of `POST /audit_logs/actions/{action}/schemas`.
pub fn parse_schema_definition(body: &Value) -> Result<SchemaDefinition, Vec<FieldError>> {
    let Some(root) = body.as_object() else {
        return Err(vec![FieldError::invalid_type("body", "a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut targets = Vec::new();
    match root.get("targets") {
        None | Some(Value::Null) => errors.push(FieldError::required("targets")),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let field = format!("targets[{index}]");
                let Some(target) = item.as_object() else {
                    errors.push(FieldError::invalid_type(field, "an object"));
                    continue;
                };
                let kind = match target.get("type") {
                    Some(Value::String(kind)) if !kind.trim().is_empty() => kind.clone(),
                    None | Some(Value::Null) => {
                        errors.push(FieldError::required(format!("{field}.type")));
                        continue;
                    }
                    Some(_) => {
                        errors.push(FieldError::invalid_type(
                            format!("{field}.type"),
                            "a non-empty string",
                        ));
                        continue;
                    }
                };
                if targets.iter().any(|t: &TargetDefinition| t.kind == kind) {
                    errors.push(FieldError::invalid(
                        format!("{field}.type"),
                        format!("target type '{kind}' is listed more than once"),
                    ));
                    continue;
                }
                let metadata = metadata_schema(
                    target.get("metadata"),
                    &format!("{field}.metadata"),
                    &mut errors,
                );
                targets.push(TargetDefinition { kind, metadata });
            }
        }
        Some(_) => errors.push(FieldError::invalid_type("targets", "an array")),
    }
    let actor = match root.get("actor") {
        None | Some(Value::Null) => None,
        Some(Value::Object(actor)) => {
            metadata_schema(actor.get("metadata"), "actor.metadata", &mut errors)
                .map(|metadata| ActorDefinition { metadata })
        }
        Some(_) => {
            errors.push(FieldError::invalid_type("actor", "an object"));
            None
        }
    };
    let metadata = metadata_schema(root.get("metadata"), "metadata", &mut errors);
    if errors.is_empty() {
        Ok(SchemaDefinition {
            targets,
            actor,
            metadata,
        })
    } else {
        Err(errors)
    }
}

/// A stored schema version with its validators built, ready to check events.
pub struct CompiledSchema {
    pub action: String,
    pub version: i64,
    /// Declared target types in declaration order, with their metadata validator if any.
    targets: Vec<(String, Option<Validator>)>,
    actor_metadata: Option<Validator>,
    metadata: Option<Validator>,
}

impl CompiledSchema {
    /// Compiles a stored definition. Stored definitions passed [`parse_schema_definition`],
    /// so an error here means the stored row was damaged.
    pub fn compile(
        action: &str,
        version: i64,
        definition: &SchemaDefinition,
    ) -> Result<Self, String> {
        let optional = |schema: &Option<Value>| schema.as_ref().map(compile).transpose();
        Ok(Self {
            action: action.to_owned(),
            version,
            targets: definition
                .targets
                .iter()
                .map(|target| Ok((target.kind.clone(), optional(&target.metadata)?)))
                .collect::<Result<_, String>>()?,
            actor_metadata: definition
                .actor
                .as_ref()
                .map(|actor| compile(&actor.metadata))
                .transpose()?,
            metadata: optional(&definition.metadata)?,
        })
    }

    fn declared_types(&self) -> String {
        let names: Vec<&str> = self.targets.iter().map(|(kind, _)| kind.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Every way `event` breaks this version: metadata limits first, then target types,
    /// then the metadata JSON Schemas. Empty when the event is valid.
    pub fn violations(&self, event: &EventInput) -> Vec<SchemaViolation> {
        let mut found = Vec::new();
        if let Some(metadata) = &event.metadata {
            check_limits("/metadata", metadata, &mut found);
        }
        if let Some(metadata) = &event.actor.metadata {
            check_limits("/actor/metadata", metadata, &mut found);
        }
        for (index, target) in event.targets.iter().enumerate() {
            if let Some(metadata) = &target.metadata {
                check_limits(&format!("/targets/{index}/metadata"), metadata, &mut found);
            }
        }
        if !found.is_empty() {
            return found;
        }

        let empty = Map::new();
        for (index, target) in event.targets.iter().enumerate() {
            match self.targets.iter().find(|(kind, _)| *kind == target.kind) {
                None => found.push(SchemaViolation::new(
                    &format!("/targets/{index}/type"),
                    format!(
                        "target type '{}' is not declared by version {} of '{}'; declared types: {}",
                        target.kind,
                        self.version,
                        self.action,
                        self.declared_types()
                    ),
                )),
                Some((_, Some(validator))) => collect(
                    validator,
                    target.metadata.as_ref().unwrap_or(&empty),
                    &format!("/targets/{index}/metadata"),
                    &mut found,
                ),
                Some((_, None)) => {}
            }
        }
        if let Some(validator) = &self.actor_metadata {
            collect(
                validator,
                event.actor.metadata.as_ref().unwrap_or(&empty),
                "/actor/metadata",
                &mut found,
            );
        }
        if let Some(validator) = &self.metadata {
            collect(
                validator,
                event.metadata.as_ref().unwrap_or(&empty),
                "/metadata",
                &mut found,
            );
        }
        found
    }
}

fn collect(
    validator: &Validator,
    metadata: &Map<String, Value>,
    prefix: &str,
    found: &mut Vec<SchemaViolation>,
) {
    // Validating a borrowed map needs a `Value`; metadata maps are small (at most 50 scalars).
    let instance = Value::Object(metadata.clone());
    for error in validator.iter_errors(&instance) {
        found.push(SchemaViolation::new(
            &format!("{prefix}{}", error.instance_path()),
            error.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_create_event;
    use serde_json::json;

    fn event(targets: Value, actor_metadata: Value) -> EventInput {
        parse_create_event(&json!({
            "organization_id": "org_x",
            "event": {
                "action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z",
                "actor": {"id": "u1", "type": "user", "metadata": actor_metadata},
                "targets": targets,
                "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid shape")
        .event
    }

    #[test]
    fn node_style_empty_actor_schema_is_stored_as_absent() {
        let definition = parse_schema_definition(&json!({
            "targets": [{"type": "team"}],
            "actor": {"metadata": {"type": "object", "properties": {}}}
        }))
        .expect("valid");
        assert_eq!(definition.actor, None);
        let python_style = parse_schema_definition(
            &json!({"targets": [{"type": "team"}], "actor": {"metadata": null}}),
        )
        .expect("valid");
        assert_eq!(
            definition.to_canonical_bytes().expect("canonical"),
            python_style.to_canonical_bytes().expect("canonical")
        );
    }

    #[test]
    fn rejects_invalid_json_schema_and_duplicate_types() {
        let errors = parse_schema_definition(&json!({
            "targets": [{"type": "team"}, {"type": "team"}, {"type": ""}],
            "metadata": {"type": "objekt"}
        }))
        .expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["targets[1].type", "targets[2].type", "metadata"]);
    }

    #[test]
    fn a_remote_ref_says_remote_references_are_not_fetched() {
        let errors = parse_schema_definition(&json!({"targets": [], "metadata": {
            "type": "object",
            "properties": {"owner": {"$ref": "https://example.com/owner.json"}}
        }}))
        .expect_err("remote $ref");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "metadata has a remote reference at /properties/owner/$ref \
             (\"https://example.com/owner.json\"): remote references are not fetched; copy the \
             referenced schema in, under \"definitions\" or \"$defs\" with a local \"#/...\" reference"
        );
        assert!(!errors[0].message.contains("resolve-http"));
        let local = json!({"targets": [], "metadata": {
            "type": "object",
            "definitions": {"owner": {"type": "string"}},
            "properties": {"owner": {"$ref": "#/definitions/owner"}}
        }});
        assert!(
            parse_schema_definition(&local).is_ok(),
            "local references work"
        );
    }

    #[test]
    fn a_misspelt_type_is_named_with_a_suggestion() {
        let errors = parse_schema_definition(&json!({"targets": [], "metadata": {
            "type": "object",
            "properties": {"owner": {"type": "strin"}, "note": {"enum": [{"type": "x"}]}}
        }}))
        .expect_err("unknown type");
        assert_eq!(
            errors[0].message,
            "metadata is not a valid JSON Schema at /properties/owner/type: \"strin\" is not a \
             JSON Schema type; did you mean \"string\"?"
        );
        let errors = parse_schema_definition(&json!({"targets": [],
            "metadata": {"type": ["object", "dictionary"]}}))
        .expect_err("unknown type");
        assert_eq!(
            errors[0].message,
            "metadata is not a valid JSON Schema at /type: \"dictionary\" is not a JSON Schema \
             type; the types are string, number, integer, object, array, boolean, null"
        );
    }

    #[test]
    fn rejects_remote_refs_and_unknown_drafts() {
        for schema in [
            json!({"$ref": "https://example.com/schema.json"}),
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}),
        ] {
            assert!(parse_schema_definition(&json!({"targets": [], "metadata": schema})).is_err());
        }
    }

    #[test]
    fn undeclared_target_type_names_the_declared_ones() {
        let definition =
            parse_schema_definition(&json!({"targets": [{"type": "team"}]})).expect("valid");
        let compiled = CompiledSchema::compile("user.signed_in", 1, &definition).expect("compiles");
        let found = compiled.violations(&event(
            json!([{"id": "r", "type": "resource"}]),
            Value::Null,
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].instance_path, "/targets/0/type");
        assert!(
            found[0].message.contains("declared types: team"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn metadata_schema_errors_point_into_the_event() {
        let definition = parse_schema_definition(&json!({
            "targets": [{"type": "team"}],
            "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}, "required": ["role"]}}
        }))
        .expect("valid");
        let compiled = CompiledSchema::compile("a", 2, &definition).expect("compiles");
        let wrong_type = compiled.violations(&event(json!([]), json!({"role": 5})));
        assert_eq!(wrong_type[0].instance_path, "/actor/metadata/role");
        let missing = compiled.violations(&event(json!([]), Value::Null));
        assert_eq!(missing[0].instance_path, "/actor/metadata");
        assert!(compiled
            .violations(&event(
                json!([{"id": "t", "type": "team"}]),
                json!({"role": "admin"})
            ))
            .is_empty());
    }
}
