//! Backward compatibility between two schema versions of an action: the change list (one
//! entry per JSON pointer that differs) and whether every event valid under the old version
//! stays valid under the new one.
//!
//! The checker proves compatibility only for the JSON Schema keywords it understands, and
//! it knows what a metadata object can hold (an object whose values are strings, numbers
//! or booleans, see [`crate::metadata`]). Anything it cannot prove (an unsupported keyword,
//! a changed `pattern`, a `$schema` switch) is reported as "may break", never as compatible.
//!
//! Pointers address the definition with `targets` keyed by type rather than by position,
//! so removing one target type does not renumber every pointer after it:
//! `/targets/team/metadata/properties/owner`, `/actor/metadata/required`, `/metadata/type`.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::schema::{escape_pointer_token, SchemaDefinition};

/// How one change affects events that were valid under the old version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// Proven: every event valid before is still valid.
    Compatible,
    /// Not proven either way: the checker does not reason about this change.
    MayBreak,
    /// Some events valid before are rejected now.
    Breaking,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Compatible => "compatible",
            Compatibility::MayBreak => "may_break",
            Compatibility::Breaking => "breaking",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    /// Identical in both versions, listed because it makes a neighbouring change unprovable.
    Unchanged,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
            ChangeKind::Unchanged => "unchanged",
        }
    }
}

/// One difference between the old and the new definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub pointer: String,
    pub kind: ChangeKind,
    pub compatibility: Compatibility,
    /// Why the change has that compatibility, in words a reviewer can act on.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// The outcome of comparing two definitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatibilityReport {
    /// The worst compatibility among the changes; `Compatible` when nothing changed.
    pub verdict: Compatibility,
    pub changes: Vec<Change>,
}

impl CompatibilityReport {
    /// Stored events outrank static reasoning: when events that passed the latest version
    /// fail the proposal, the change breaks them whatever the checker could prove about it
    /// (e.g. a new property typed differently from values already sent under that name).
    pub fn contradicted_by_stored_events(&mut self, failing: usize, latest_version: i64) {
        if failing == 0 {
            return;
        }
        self.verdict = Compatibility::Breaking;
        self.changes.push(Change {
            pointer: String::new(),
            kind: ChangeKind::Changed,
            compatibility: Compatibility::Breaking,
            reason: format!(
                "{failing} recently stored event(s) that were valid under version {latest_version} would be rejected"
            ),
            old: None,
            new: None,
        });
    }

    pub fn breaking_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|change| change.compatibility != Compatibility::Compatible)
    }
}

/// Compares `old` (the latest version, or `None` for an action that does not exist yet)
/// with the proposed `new` definition.
pub fn compare(old: Option<&SchemaDefinition>, new: &SchemaDefinition) -> CompatibilityReport {
    let empty = SchemaDefinition {
        targets: Vec::new(),
        actor: None,
        metadata: None,
    };
    let old = old.unwrap_or(&empty);
    let mut checker = Checker::default();

    for target in &old.targets {
        let pointer = format!("/targets/{}", escape_pointer_token(&target.kind));
        match new.targets.iter().find(|t| t.kind == target.kind) {
            None => checker.push(
                &pointer,
                ChangeKind::Removed,
                Compatibility::Breaking,
                format!(
                    "target type '{}' was removed: events with a '{}' target are rejected",
                    target.kind, target.kind
                ),
                serde_json::to_value(target).ok(),
                None,
            ),
            Some(kept) => checker.metadata_schema(
                &format!("{pointer}/metadata"),
                target.metadata.as_ref(),
                kept.metadata.as_ref(),
            ),
        }
    }
    for target in &new.targets {
        if !old.targets.iter().any(|t| t.kind == target.kind) {
            checker.push(
                &format!("/targets/{}", escape_pointer_token(&target.kind)),
                ChangeKind::Added,
                Compatibility::Compatible,
                format!(
                    "target type '{}' was added: events may now name it",
                    target.kind
                ),
                None,
                serde_json::to_value(target).ok(),
            );
        }
    }
    checker.metadata_schema(
        "/actor/metadata",
        old.actor.as_ref().map(|actor| &actor.metadata),
        new.actor.as_ref().map(|actor| &actor.metadata),
    );
    checker.metadata_schema("/metadata", old.metadata.as_ref(), new.metadata.as_ref());

    let verdict = checker
        .changes
        .iter()
        .map(|change| change.compatibility)
        .max()
        .unwrap_or(Compatibility::Compatible);
    CompatibilityReport {
        verdict,
        changes: checker.changes,
    }
}

/// The JSON types a schema node can meet. Metadata objects are always objects, and their
/// values are strings, numbers or booleans (nulls, arrays and objects fail the limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// A whole metadata object.
    Object,
    /// One metadata value.
    Value,
}

impl Level {
    fn domain(self) -> &'static [&'static str] {
        match self {
            Level::Object => &["object"],
            Level::Value => &["string", "number", "boolean"],
        }
    }
}

/// Keywords that never affect validation.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

#[derive(Default)]
struct Checker {
    changes: Vec<Change>,
}

fn pointer_to(parent: &str, token: &str) -> String {
    format!("{parent}/{}", escape_pointer_token(token))
}

/// A schema in object form: `true` and absent are `{}`; `false` stays a boolean.
fn as_object(schema: &Value) -> Option<Map<String, Value>> {
    match schema {
        Value::Object(map) => Some(map.clone()),
        Value::Bool(true) | Value::Null => Some(Map::new()),
        _ => None,
    }
}

/// Orders two JSON numbers as the validator does, exactly: integers (and floats without a
/// fraction) compare as integers, so limits beyond 2^53 that differ by one are not equal
/// as they would be once rounded to `f64`.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    fn integer(number: &Number) -> Option<i128> {
        if let Some(value) = number.as_i64() {
            return Some(value.into());
        }
        if let Some(value) = number.as_u64() {
            return Some(value.into());
        }
        let value = number.as_f64()?;
        (value.fract() == 0.0 && value.abs() < 2f64.powi(120)).then_some(value as i128)
    }
    match (integer(a), integer(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        // One side has a fraction, so it lies strictly between -2^52 and 2^52, where rounding
        // the other side to `f64` cannot carry it across.
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Checker {
    fn push(
        &mut self,
        pointer: &str,
        kind: ChangeKind,
        compatibility: Compatibility,
        reason: String,
        old: Option<Value>,
        new: Option<Value>,
    ) {
        self.changes.push(Change {
            pointer: pointer.to_owned(),
            kind,
            compatibility,
            reason,
            old,
            new,
        });
    }

    /// A keyword-level change at `pointer`: kind follows from which side has a value.
    fn keyword(
        &mut self,
        pointer: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        compatibility: Compatibility,
        reason: String,
    ) {
        let kind = match (old, new) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        };
        self.push(
            pointer,
            kind,
            compatibility,
            reason,
            old.cloned(),
            new.cloned(),
        );
    }

    /// Compares the JSON Schemas of one metadata object; `None` means no schema (anything
    /// within the metadata limits is accepted).
    fn metadata_schema(&mut self, pointer: &str, old: Option<&Value>, new: Option<&Value>) {
        let unconstrained = Value::Object(Map::new());
        self.schema(
            pointer,
            old.unwrap_or(&unconstrained),
            new.unwrap_or(&unconstrained),
            Level::Object,
        );
    }

    /// The worst compatibility of comparing `old` with `new` at `pointer`, without keeping
    /// the individual changes (the caller reports one summarising change instead).
    fn worst_of(&mut self, pointer: &str, old: &Value, new: &Value) -> Compatibility {
        let start = self.changes.len();
        self.schema(pointer, old, new, Level::Value);
        let worst = self.changes[start..]
            .iter()
            .map(|change| change.compatibility)
            .max()
            .unwrap_or(Compatibility::Compatible);
        self.changes.truncate(start);
        worst
    }

    fn schema(&mut self, pointer: &str, old: &Value, new: &Value, level: Level) {
        if old == new {
            return;
        }
        let (old_map, new_map) = match (as_object(old), as_object(new)) {
            (Some(old_map), Some(new_map)) => (old_map, new_map),
            // `false` accepted nothing before, so anything now is a widening.
            (None, _) if *old == Value::Bool(false) => {
                self.keyword(
                    pointer,
                    Some(old),
                    Some(new),
                    Compatibility::Compatible,
                    "the old schema was `false` and accepted nothing".into(),
                );
                return;
            }
            (_, None) if *new == Value::Bool(false) => {
                self.keyword(
                    pointer,
                    Some(old),
                    Some(new),
                    Compatibility::Breaking,
                    "the new schema is `false` and rejects everything".into(),
                );
                return;
            }
            _ => {
                self.keyword(
                    pointer,
                    Some(old),
                    Some(new),
                    Compatibility::MayBreak,
                    "not a JSON Schema object or boolean; cannot compare".into(),
                );
                return;
            }
        };
        let keys: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
        let mut node_changed = false;
        let mut unsupported_unchanged = Vec::new();
        let before = self.changes.len();
        for key in keys {
            let (old_value, new_value) = (old_map.get(key), new_map.get(key));
            if old_value == new_value {
                if !self.understands(key, level) {
                    unsupported_unchanged.push(key.clone());
                }
                continue;
            }
            node_changed = true;
            let at = pointer_to(pointer, key);
            self.schema_keyword(&at, key, old_value, new_value, &old_map, &new_map, level);
        }
        // An unsupported keyword left as it was still combines with what changed beside it
        // (`allOf`, `$ref`, `patternProperties`...), so those changes are unproven.
        if node_changed && self.changes.len() > before {
            for key in unsupported_unchanged {
                let value = old_map.get(&key).cloned();
                self.push(
                    &pointer_to(pointer, &key),
                    ChangeKind::Unchanged,
                    Compatibility::MayBreak,
                    format!(
                        "'{key}' is not understood by the checker, so the changes beside it cannot be proven compatible"
                    ),
                    value.clone(),
                    value,
                );
            }
        }
    }

    fn understands(&self, keyword: &str, level: Level) -> bool {
        if ANNOTATIONS.contains(&keyword) {
            return true;
        }
        let common = [
            "type",
            "enum",
            "const",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "pattern",
            "format",
        ];
        let object = [
            "properties",
            "required",
            "additionalProperties",
            "minProperties",
            "maxProperties",
        ];
        common.contains(&keyword) || (level == Level::Object && object.contains(&keyword))
    }

    #[allow(clippy::too_many_arguments)]
    fn schema_keyword(
        &mut self,
        at: &str,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        old_node: &Map<String, Value>,
        new_node: &Map<String, Value>,
        level: Level,
    ) {
        use Compatibility::*;
        if ANNOTATIONS.contains(&key) {
            self.keyword(
                at,
                old,
                new,
                Compatible,
                format!("'{key}' is an annotation and does not affect validation"),
            );
            return;
        }
        match (key, level) {
            ("type", _) => self.type_keyword(at, old, new, level),
            ("enum" | "const", _) => self.enumeration(at, key, old, new),
            ("minLength" | "minimum" | "minProperties", _) => {
                self.bound(at, key, old, new, Bound::Lower)
            }
            ("exclusiveMinimum", _) => self.bound(at, key, old, new, Bound::Lower),
            ("maxLength" | "maximum" | "maxProperties", _) => {
                self.bound(at, key, old, new, Bound::Upper)
            }
            ("exclusiveMaximum", _) => self.bound(at, key, old, new, Bound::Upper),
            ("multipleOf", _) => self.multiple_of(at, old, new),
            ("pattern", _) => match (old, new) {
                (_, None) => self.keyword(at, old, new, Compatible, "pattern removed: strings are no longer matched against it".into()),
                (None, Some(pattern)) => self.keyword(at, old, new, Breaking, format!("new pattern {}: strings that do not match it are rejected", compact(pattern))),
                _ => self.keyword(at, old, new, MayBreak, "pattern changed: the checker cannot prove the new pattern accepts every string the old one did".into()),
            },
            ("format", _) => match new {
                None => self.keyword(at, old, new, Compatible, "format removed".into()),
                Some(_) => self.keyword(at, old, new, MayBreak, "format added or changed: whether it is asserted depends on the draft; not proven".into()),
            },
            ("required", Level::Object) => self.required(at, old, new),
            ("properties", Level::Object) => self.properties(at, old_node, new_node),
            ("additionalProperties", Level::Object) => self.additional_properties(at, old_node, new_node),
            ("$schema", _) => self.keyword(at, old, new, MayBreak, "$schema changed: the draft's semantics differ; not proven".into()),
            _ => self.keyword(
                at,
                old,
                new,
                MayBreak,
                format!("the checker does not reason about '{key}'; not proven compatible"),
            ),
        }
    }

    /// The JSON types a node accepts, within what `level` can meet.
    fn accepted_types(node: Option<&Value>, level: Level) -> Option<BTreeSet<&'static str>> {
        let domain = level.domain();
        let Some(declared) = node else {
            return Some(domain.iter().copied().collect());
        };
        let names: Vec<&str> = match declared {
            Value::String(name) => vec![name.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        let mut accepted = BTreeSet::new();
        for name in names {
            match name {
                "integer" if domain.contains(&"number") => {
                    accepted.insert("integer");
                }
                _ => {
                    if let Some(known) = domain.iter().find(|d| **d == name) {
                        accepted.insert(*known);
                    }
                }
            }
        }
        Some(accepted)
    }

    fn type_keyword(&mut self, at: &str, old: Option<&Value>, new: Option<&Value>, level: Level) {
        let (Some(before), Some(after)) = (
            Self::accepted_types(old, level),
            Self::accepted_types(new, level),
        ) else {
            self.keyword(
                at,
                old,
                new,
                Compatibility::MayBreak,
                "type is not a string or an array of strings".into(),
            );
            return;
        };
        // `number` covers `integer`; `integer` covers only part of `number`.
        let covers =
            |kind: &str| after.contains(kind) || (kind == "integer" && after.contains("number"));
        let lost: Vec<&str> = before
            .iter()
            .copied()
            .filter(|kind| !covers(kind))
            .collect();
        let narrowed_number =
            before.contains("number") && !after.contains("number") && after.contains("integer");
        if lost.is_empty() {
            self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                "type accepts at least what it accepted before".into(),
            );
        } else {
            let lost = lost
                .iter()
                .map(|kind| {
                    if *kind == "number" && narrowed_number {
                        "non-integer number".to_owned()
                    } else {
                        (*kind).to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                format!("type narrowed: {lost} values are rejected now"),
            );
        }
    }

    fn enumeration(&mut self, at: &str, key: &str, old: Option<&Value>, new: Option<&Value>) {
        let values = |value: Option<&Value>| -> Option<Vec<Value>> {
            match (key, value) {
                (_, None) => None,
                ("const", Some(value)) => Some(vec![value.clone()]),
                (_, Some(Value::Array(items))) => Some(items.clone()),
                (_, Some(other)) => Some(vec![other.clone()]),
            }
        };
        match (values(old), values(new)) {
            (_, None) => self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                format!("{key} removed: any value is accepted again"),
            ),
            (None, Some(_)) => self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                format!("new {key}: values outside it are rejected"),
            ),
            (Some(before), Some(after)) => {
                let dropped: Vec<String> = before
                    .iter()
                    .filter(|value| !after.contains(value))
                    .map(compact)
                    .collect();
                if dropped.is_empty() {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::Compatible,
                        format!("{key} keeps every value it allowed"),
                    );
                } else {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::Breaking,
                        format!("{key} narrowed: {} no longer allowed", dropped.join(", ")),
                    );
                }
            }
        }
    }

    fn bound(
        &mut self,
        at: &str,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        bound: Bound,
    ) {
        match (old.map(Value::as_number), new.map(Value::as_number)) {
            (Some(None), _) | (_, Some(None)) => self.keyword(
                at,
                old,
                new,
                Compatibility::MayBreak,
                format!("{key} is not a number"),
            ),
            (_, None) => self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                format!("{key} removed: the limit no longer applies"),
            ),
            (None, Some(Some(limit))) => self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                format!("new {key} {limit}: values beyond it are rejected"),
            ),
            (Some(Some(before)), Some(Some(after))) => {
                let Some(order) = compare_numbers(after, before) else {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::MayBreak,
                        format!("{key} {before} and {after} cannot be compared"),
                    );
                    return;
                };
                let widened = match bound {
                    Bound::Lower => order.is_le(),
                    Bound::Upper => order.is_ge(),
                };
                if widened {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::Compatible,
                        format!("{key} relaxed from {before} to {after}"),
                    );
                } else {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::Breaking,
                        format!("{key} tightened from {before} to {after}"),
                    );
                }
            }
        }
    }

    fn multiple_of(&mut self, at: &str, old: Option<&Value>, new: Option<&Value>) {
        let integer = |value: Option<&Value>| value.map(Value::as_u64);
        match (integer(old), integer(new)) {
            (_, None) => self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                "multipleOf removed".into(),
            ),
            (None, Some(_)) => self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                "new multipleOf: numbers that are not multiples are rejected".into(),
            ),
            (Some(Some(before)), Some(Some(after))) if after != 0 && before % after == 0 => self
                .keyword(
                    at,
                    old,
                    new,
                    Compatibility::Compatible,
                    format!("every multiple of {before} is a multiple of {after}"),
                ),
            (Some(Some(_)), Some(Some(_))) => self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                "multipleOf changed: some multiples of the old value are rejected".into(),
            ),
            _ => self.keyword(
                at,
                old,
                new,
                Compatibility::MayBreak,
                "multipleOf is not a positive integer; not proven".into(),
            ),
        }
    }

    fn required(&mut self, at: &str, old: Option<&Value>, new: Option<&Value>) {
        let names = |value: Option<&Value>| -> Option<BTreeSet<String>> {
            match value {
                None => Some(BTreeSet::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect(),
                Some(_) => None,
            }
        };
        let (Some(before), Some(after)) = (names(old), names(new)) else {
            self.keyword(
                at,
                old,
                new,
                Compatibility::MayBreak,
                "required is not an array of names".into(),
            );
            return;
        };
        let added: Vec<&String> = after.difference(&before).collect();
        if added.is_empty() {
            self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                "no property became required".into(),
            );
        } else {
            let list = added
                .iter()
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(", ");
            self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                format!("new required property {list}: events without it are rejected"),
            );
        }
    }

    /// What the node accepts for a property it does not list: `None` means nothing
    /// (`additionalProperties: false`).
    fn additional_schema(node: &Map<String, Value>) -> Option<Value> {
        match node.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Some(Value::Object(Map::new())),
            Some(Value::Bool(false)) => None,
            Some(schema) => Some(schema.clone()),
        }
    }

    fn properties(
        &mut self,
        at: &str,
        old_node: &Map<String, Value>,
        new_node: &Map<String, Value>,
    ) {
        let empty = Map::new();
        let listed = |node: &Map<String, Value>| -> Option<Map<String, Value>> {
            match node.get("properties") {
                None => Some(empty.clone()),
                Some(Value::Object(map)) => Some(map.clone()),
                Some(_) => None,
            }
        };
        let (Some(before), Some(after)) = (listed(old_node), listed(new_node)) else {
            self.keyword(
                at,
                old_node.get("properties"),
                new_node.get("properties"),
                Compatibility::MayBreak,
                "properties is not an object".into(),
            );
            return;
        };
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            let pointer = pointer_to(at, name);
            match (before.get(name), after.get(name)) {
                (Some(old), Some(new)) => self.schema(&pointer, old, new, Level::Value),
                (Some(old), None) => match Self::additional_schema(new_node) {
                    None => self.push(
                        &pointer,
                        ChangeKind::Removed,
                        Compatibility::Breaking,
                        format!("property '{name}' was removed while additionalProperties is false: events that send it are rejected"),
                        Some(old.clone()),
                        None,
                    ),
                    Some(fallback) if fallback == Value::Object(Map::new()) => self.push(
                        &pointer,
                        ChangeKind::Removed,
                        Compatibility::Compatible,
                        format!("property '{name}' is no longer described: any value is accepted"),
                        Some(old.clone()),
                        None,
                    ),
                    Some(fallback) => {
                        let worst = self.worst_of(&pointer, old, &fallback);
                        self.push(
                            &pointer,
                            ChangeKind::Removed,
                            worst,
                            format!("property '{name}' is no longer listed and falls under additionalProperties ({})", worst.as_str()),
                            Some(old.clone()),
                            None,
                        );
                    }
                },
                (None, Some(new)) => match Self::additional_schema(old_node) {
                    None => self.push(
                        &pointer,
                        ChangeKind::Added,
                        Compatibility::Compatible,
                        format!("property '{name}' was added; additionalProperties was false, so no event sent it before"),
                        None,
                        Some(new.clone()),
                    ),
                    Some(fallback) if fallback == Value::Object(Map::new()) => self.push(
                        &pointer,
                        ChangeKind::Added,
                        Compatibility::Compatible,
                        format!("property '{name}' was added; the previous version did not describe it, so only events that already sent '{name}' with another value fail (the impact check finds them)"),
                        None,
                        Some(new.clone()),
                    ),
                    Some(fallback) => {
                        let worst = self.worst_of(&pointer, &fallback, new);
                        self.push(
                            &pointer,
                            ChangeKind::Added,
                            worst,
                            format!("property '{name}' was added; before, additionalProperties described it ({})", worst.as_str()),
                            None,
                            Some(new.clone()),
                        );
                    }
                },
                (None, None) => {}
            }
        }
    }

    fn additional_properties(
        &mut self,
        at: &str,
        old_node: &Map<String, Value>,
        new_node: &Map<String, Value>,
    ) {
        let (old, new) = (
            old_node.get("additionalProperties"),
            new_node.get("additionalProperties"),
        );
        match (Self::additional_schema(old_node), Self::additional_schema(new_node)) {
            (None, _) => self.keyword(
                at,
                old,
                new,
                Compatibility::Compatible,
                "additionalProperties was false: opening it accepts more".into(),
            ),
            (Some(_), None) => self.keyword(
                at,
                old,
                new,
                Compatibility::Breaking,
                "additionalProperties closed: events with properties that are not listed are rejected".into(),
            ),
            (Some(before), Some(after)) => {
                let start = self.changes.len();
                self.schema(at, &before, &after, Level::Value);
                if self.changes.len() == start {
                    self.keyword(
                        at,
                        old,
                        new,
                        Compatibility::Compatible,
                        "additionalProperties accepts the same values".into(),
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    Lower,
    Upper,
}

#[cfg(test)]
mod tests;
