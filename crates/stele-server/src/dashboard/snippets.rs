//! "Emit events for this version": curl, Node and Python snippets built from a version's
//! definition, with `version` set, example metadata that the version accepts, and an
//! organization of this deployment (or a placeholder that says to replace it).

use serde_json::{json, Map, Value};
use stele_core::schema::SchemaDefinition;

pub struct Snippets {
    pub curl: String,
    pub node: String,
    pub python: String,
}

/// An example value for one property schema: the first enum value, else one of its type.
fn example_value(name: &str, schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or("string"),
        _ => "string",
    };
    match kind {
        "number" | "integer" => json!(1),
        "boolean" => json!(true),
        _ => Value::String(format!("example {name}")),
    }
}

/// Example metadata for a metadata schema: one value per listed property.
fn example_metadata(schema: Option<&Value>) -> Option<Value> {
    let properties = schema?.get("properties")?.as_object()?;
    if properties.is_empty() {
        return None;
    }
    let example: Map<String, Value> = properties
        .iter()
        .map(|(name, property)| (name.clone(), example_value(name, property)))
        .collect();
    Some(Value::Object(example))
}

/// The event as the WorkOS wire format has it (snake_case), for curl and Python.
fn example_event(action: &str, version: i64, definition: &SchemaDefinition) -> Value {
    let mut actor = json!({"type": "user", "id": "user_01GBNJC3MX9ZZJW1FSTF4C5938"});
    if let Some(metadata) = example_metadata(definition.actor.as_ref().map(|actor| &actor.metadata))
    {
        actor["metadata"] = metadata;
    }
    let targets: Vec<Value> = definition
        .targets
        .iter()
        .map(|target| {
            let mut value = json!({"type": target.kind, "id": format!("{}_01GBNJD4MKHVKJGEWK42JNMBGS", target.kind)});
            if let Some(metadata) = example_metadata(target.metadata.as_ref()) {
                value["metadata"] = metadata;
            }
            value
        })
        .collect();
    let mut event = json!({
        "action": action,
        "version": version,
        "occurred_at": "2022-09-08T19:46:03.435Z",
        "actor": actor,
        "targets": targets,
        "context": {"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"}
    });
    if let Some(metadata) = example_metadata(definition.metadata.as_ref()) {
        event["metadata"] = metadata;
    }
    event
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            if index == 0 {
                line.to_owned()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON value written as a Python literal.
fn python_literal(value: &Value, depth: usize) -> String {
    let pad = "    ".repeat(depth + 1);
    let close = "    ".repeat(depth);
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => serde_json::to_string(text).unwrap_or_default(),
        Value::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|item| format!("{pad}{},", python_literal(item, depth + 1)))
                .collect();
            format!("[\n{}\n{close}]", inner.join("\n"))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(key, item)| {
                    format!(
                        "{pad}{}: {},",
                        serde_json::to_string(key).unwrap_or_default(),
                        python_literal(item, depth + 1)
                    )
                })
                .collect();
            format!("{{\n{}\n{close}}}", inner.join("\n"))
        }
    }
}

/// Stands in for the organization id when this deployment has no organization yet.
pub const ORGANIZATION_PLACEHOLDER: &str = "org_REPLACE_WITH_YOUR_ORGANIZATION_ID";

/// `base_url` is how the browser reached this server (the emitter may use another);
/// `organization` is an organization of this deployment, when there is one.
pub fn for_version(
    base_url: &str,
    action: &str,
    version: i64,
    definition: &SchemaDefinition,
    organization: Option<&str>,
) -> Snippets {
    let organization_id = organization.unwrap_or(ORGANIZATION_PLACEHOLDER);
    let replace_note = |comment: &str| {
        match organization {
        Some(_) => String::new(),
        None => format!(
            "{comment} Replace {ORGANIZATION_PLACEHOLDER} with the id of one of your organizations\n{comment} (create one on the Organizations page).\n"
        ),
    }
    };
    let event = example_event(action, version, definition);
    let body = json!({"organization_id": organization_id, "event": event});
    let curl = format!(
        "{}curl -X POST {base_url}/audit_logs/events \\\n  -H \"Authorization: Bearer $STELE_API_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
        replace_note("#"),
        serde_json::to_string_pretty(&body).unwrap_or_default().replace('\'', "'\\''")
    );

    // The Node SDK takes camelCase fields and a Date for occurredAt.
    let mut node_event = event.clone();
    if let Some(map) = node_event.as_object_mut() {
        map.remove("occurred_at");
        map.insert("occurredAt".into(), Value::String("__NOW__".into()));
        if let Some(context) = map.get_mut("context").and_then(Value::as_object_mut) {
            if let Some(agent) = context.remove("user_agent") {
                context.insert("userAgent".into(), agent);
            }
        }
    }
    let node_object = serde_json::to_string_pretty(&node_event)
        .unwrap_or_default()
        .replace("\"__NOW__\"", "new Date()");
    let (host, port) = host_and_port(base_url);
    let node = format!(
        "import {{ WorkOS }} from '@workos-inc/node';\n\nconst workos = new WorkOS(process.env.STELE_API_KEY, {{\n  apiHostname: '{host}',\n  port: {port},\n  https: {https},\n}});\n\n{}await workos.auditLogs.createEvent('{organization_id}', {});",
        replace_note("//"),
        indent(&node_object, 0),
        https = base_url.starts_with("https://"),
    );

    let mut python_event = event;
    if let Some(map) = python_event.as_object_mut() {
        map.insert("occurred_at".into(), Value::String("__NOW__".into()));
    }
    let python_object = python_literal(&python_event, 0).replace(
        "\"__NOW__\"",
        "datetime.datetime.now(tz=datetime.timezone.utc).isoformat()",
    );
    let python = format!(
        "import datetime, os\nfrom workos import WorkOSClient\nfrom workos.audit_logs.models import AuditLogEvent\n\nclient = WorkOSClient(\n    api_key=os.environ[\"STELE_API_KEY\"],\n    client_id=\"client_unused\",\n    base_url=\"{base_url}\",\n)\n{}client.audit_logs.create_event(\n    organization_id=\"{organization_id}\",\n    event=AuditLogEvent.from_dict({}),\n)",
        replace_note("#"),
        indent(&python_object, 4)
    );
    Snippets { curl, node, python }
}

fn host_and_port(base_url: &str) -> (String, u16) {
    let https = base_url.starts_with("https://");
    let authority = base_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            (host.to_owned(), port.parse().unwrap_or(80))
        }
        _ => (authority.to_owned(), if https { 443 } else { 80 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::schema::parse_schema_definition;

    #[test]
    fn snippets_name_the_version_and_fill_declared_metadata() {
        let definition = parse_schema_definition(&json!({
            "targets": [{"type": "team"}],
            "actor": {"metadata": {"type": "object", "properties": {"role": {"enum": ["admin", "member"]}}}}
        }))
        .expect("valid");
        let snippets = for_version(
            "http://127.0.0.1:8080",
            "user.signed_in",
            2,
            &definition,
            Some("org_01EHWNCE74X7JSDV0X3SZ3KJNY"),
        );
        for snippet in [&snippets.curl, &snippets.node, &snippets.python] {
            assert!(
                snippet.contains("org_01EHWNCE74X7JSDV0X3SZ3KJNY"),
                "{snippet}"
            );
            assert!(!snippet.contains(ORGANIZATION_PLACEHOLDER), "{snippet}");
        }
        assert!(
            snippets.python.contains("datetime.timezone.utc"),
            "Python 3.10 has no datetime.UTC: {}",
            snippets.python
        );
        assert!(
            snippets.curl.contains("\"version\": 2"),
            "{}",
            snippets.curl
        );
        assert!(
            snippets.curl.contains("\"role\": \"admin\""),
            "{}",
            snippets.curl
        );
        assert!(
            snippets.node.contains("\"version\": 2"),
            "{}",
            snippets.node
        );
        assert!(
            snippets.node.contains("occurredAt\": new Date()"),
            "{}",
            snippets.node
        );
        assert!(
            snippets
                .node
                .contains("apiHostname: '127.0.0.1',\n  port: 8080,"),
            "{}",
            snippets.node
        );
        assert!(
            snippets.python.contains("\"version\": 2,"),
            "{}",
            snippets.python
        );
        assert!(
            snippets
                .python
                .contains("base_url=\"http://127.0.0.1:8080\","),
            "{}",
            snippets.python
        );
    }

    #[test]
    fn without_an_organization_every_snippet_marks_the_placeholder() {
        let definition =
            parse_schema_definition(&json!({"targets": [{"type": "team"}]})).expect("valid");
        let snippets = for_version(
            "http://127.0.0.1:8080",
            "user.signed_in",
            1,
            &definition,
            None,
        );
        for (snippet, comment) in [
            (&snippets.curl, "# Replace"),
            (&snippets.node, "// Replace"),
            (&snippets.python, "# Replace"),
        ] {
            assert!(snippet.contains(ORGANIZATION_PLACEHOLDER), "{snippet}");
            assert!(snippet.contains(comment), "{snippet}");
        }
    }
}
