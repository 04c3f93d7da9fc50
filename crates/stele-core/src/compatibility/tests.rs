use super::*;
use crate::schema::parse_schema_definition;
use serde_json::json;

fn definition(value: Value) -> SchemaDefinition {
    parse_schema_definition(&value).expect("valid definition")
}

fn with_metadata(schema: Value) -> SchemaDefinition {
    definition(json!({"targets": [{"type": "team"}], "metadata": schema}))
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

fn verdict_of(old: Value, new: Value) -> CompatibilityReport {
    compare(Some(&definition(old)), &definition(new))
}

#[test]
fn stored_events_failing_the_proposal_make_it_breaking() {
    let mut report = verdict_of(
        json!({"targets": []}),
        json!({"targets": [], "metadata": object(json!({"n": {"type": "string"}}))}),
    );
    assert_eq!(report.verdict, Compatibility::Compatible);
    report.contradicted_by_stored_events(0, 1);
    assert_eq!(report.verdict, Compatibility::Compatible);
    report.contradicted_by_stored_events(2, 1);
    assert_eq!(report.verdict, Compatibility::Breaking);
    assert!(report
        .breaking_changes()
        .any(|change| change.reason.contains("2 recently stored")));
}

/// Every row of the table: (what, old definition, new definition, expected verdict).
#[test]
fn classifies_the_table_of_schema_pairs() {
    use Compatibility::*;
    let team = |schema: Value| json!({"targets": [{"type": "team"}], "metadata": schema});
    let rows: Vec<(&str, Value, Value, Compatibility)> = vec![
        (
            "adding an optional property to an open object",
            team(object(json!({"a": {"type": "string"}}))),
            team(object(
                json!({"a": {"type": "string"}, "b": {"type": "number"}}),
            )),
            Compatible,
        ),
        (
            "adding a property schema where there was none",
            json!({"targets": [{"type": "team"}]}),
            team(object(json!({"env": {"type": "string"}}))),
            Compatible,
        ),
        (
            "adding a target type",
            json!({"targets": [{"type": "team"}]}),
            json!({"targets": [{"type": "team"}, {"type": "resource"}]}),
            Compatible,
        ),
        (
            "widening a type",
            team(object(json!({"a": {"type": "string"}}))),
            team(object(json!({"a": {"type": ["string", "number"]}}))),
            Compatible,
        ),
        (
            "integer to number",
            team(object(json!({"a": {"type": "integer"}}))),
            team(object(json!({"a": {"type": "number"}}))),
            Compatible,
        ),
        (
            "dropping a required property",
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
            ),
            team(object(json!({"a": {"type": "string"}}))),
            Compatible,
        ),
        (
            "growing an enum",
            team(object(json!({"a": {"enum": ["x", "y"]}}))),
            team(object(json!({"a": {"enum": ["x", "y", "z"]}}))),
            Compatible,
        ),
        (
            "opening additionalProperties",
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            ),
            team(object(json!({"a": {"type": "string"}}))),
            Compatible,
        ),
        (
            "relaxing maxLength",
            team(object(json!({"a": {"type": "string", "maxLength": 5}}))),
            team(object(json!({"a": {"type": "string", "maxLength": 10}}))),
            Compatible,
        ),
        (
            "changing only a description",
            team(object(
                json!({"a": {"type": "string", "description": "old"}}),
            )),
            team(object(
                json!({"a": {"type": "string", "description": "new"}}),
            )),
            Compatible,
        ),
        (
            "adding a required property",
            team(object(json!({"a": {"type": "string"}}))),
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
            ),
            Breaking,
        ),
        (
            "removing a target type",
            json!({"targets": [{"type": "team"}, {"type": "resource"}]}),
            json!({"targets": [{"type": "team"}]}),
            Breaking,
        ),
        (
            "narrowing a type",
            team(object(json!({"a": {"type": ["string", "number"]}}))),
            team(object(json!({"a": {"type": "string"}}))),
            Breaking,
        ),
        (
            "number to integer",
            team(object(json!({"a": {"type": "number"}}))),
            team(object(json!({"a": {"type": "integer"}}))),
            Breaking,
        ),
        (
            "narrowing an enum",
            team(object(json!({"a": {"enum": ["x", "y"]}}))),
            team(object(json!({"a": {"enum": ["x"]}}))),
            Breaking,
        ),
        (
            "adding an enum",
            team(object(json!({"a": {"type": "string"}}))),
            team(object(json!({"a": {"type": "string", "enum": ["x"]}}))),
            Breaking,
        ),
        (
            "closing additionalProperties",
            team(object(json!({"a": {"type": "string"}}))),
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            ),
            Breaking,
        ),
        (
            "tightening maxLength",
            team(object(json!({"a": {"type": "string", "maxLength": 10}}))),
            team(object(json!({"a": {"type": "string", "maxLength": 5}}))),
            Breaking,
        ),
        (
            "removing a property from a closed object",
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "additionalProperties": false}),
            ),
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            ),
            Breaking,
        ),
        (
            "target metadata gains a required property",
            json!({"targets": [{"type": "team"}]}),
            json!({"targets": [{"type": "team", "metadata": {"type": "object", "properties": {"o": {"type": "string"}}, "required": ["o"]}}]}),
            Breaking,
        ),
        (
            "unsupported keyword added",
            team(object(json!({"a": {"type": "string"}}))),
            team(
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}),
            ),
            MayBreak,
        ),
        (
            "unsupported keyword beside a change",
            team(
                json!({"type": "object", "allOf": [{"properties": {"x": {"type": "string"}}}], "properties": {"a": {"type": "string"}}}),
            ),
            team(
                json!({"type": "object", "allOf": [{"properties": {"x": {"type": "string"}}}], "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}),
            ),
            MayBreak,
        ),
        (
            "pattern changed",
            team(object(json!({"a": {"type": "string", "pattern": "^a"}}))),
            team(object(json!({"a": {"type": "string", "pattern": "^[ab]"}}))),
            MayBreak,
        ),
        (
            "$ref into changed definitions",
            team(
                json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}, "definitions": {"x": {"type": "string"}}}),
            ),
            team(
                json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}, "definitions": {"x": {"type": "number"}}}),
            ),
            MayBreak,
        ),
    ];
    for (what, old, new, expected) in rows {
        let report = verdict_of(old, new);
        assert_eq!(report.verdict, expected, "{what}: {:#?}", report.changes);
    }
}

#[test]
fn identical_definitions_have_no_changes() {
    let schema = with_metadata(object(json!({"a": {"type": "string"}})));
    let report = compare(Some(&schema), &schema);
    assert_eq!(report.verdict, Compatibility::Compatible);
    assert!(report.changes.is_empty());
}

#[test]
fn breaking_changes_name_their_pointer_and_reason() {
    let report = verdict_of(
        json!({"targets": [{"type": "team"}, {"type": "resource"}],
               "actor": {"metadata": object(json!({"role": {"type": "string"}}))}}),
        json!({"targets": [{"type": "team"}],
               "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}, "required": ["role"]}}}),
    );
    let breaking: Vec<(&str, &str)> = report
        .breaking_changes()
        .map(|change| (change.pointer.as_str(), change.reason.as_str()))
        .collect();
    assert_eq!(breaking.len(), 2, "{breaking:?}");
    assert_eq!(breaking[0].0, "/targets/resource");
    assert!(breaking[0].1.contains("removed"), "{}", breaking[0].1);
    assert_eq!(breaking[1].0, "/actor/metadata/required");
    assert!(breaking[1].1.contains("'role'"), "{}", breaking[1].1);
}

#[test]
fn change_list_is_per_json_pointer() {
    let report = verdict_of(
        json!({"targets": [{"type": "team"}], "metadata": object(json!({"env": {"type": "string"}}))}),
        json!({"targets": [{"type": "team"}], "metadata": object(json!({"env": {"type": "string", "enum": ["prod", "dev"]}, "region": {"type": "string"}}))}),
    );
    let pointers: Vec<(&str, ChangeKind)> = report
        .changes
        .iter()
        .map(|change| (change.pointer.as_str(), change.kind))
        .collect();
    assert_eq!(
        pointers,
        [
            ("/metadata/properties/env/enum", ChangeKind::Added),
            ("/metadata/properties/region", ChangeKind::Added)
        ]
    );
    assert_eq!(report.verdict, Compatibility::Breaking);
}

#[test]
fn a_new_action_is_compared_with_nothing() {
    let report = compare(
        None,
        &definition(
            json!({"targets": [{"type": "team"}], "metadata": object(json!({"a": {"type": "string"}}))}),
        ),
    );
    assert_eq!(report.verdict, Compatibility::Compatible);
    assert!(report
        .changes
        .iter()
        .any(|change| change.pointer == "/targets/team" && change.kind == ChangeKind::Added));
}

#[test]
fn pointer_tokens_are_escaped() {
    let report = verdict_of(
        json!({"targets": [{"type": "a/b"}]}),
        json!({"targets": [{"type": "c~d"}]}),
    );
    let pointers: Vec<&str> = report.changes.iter().map(|c| c.pointer.as_str()).collect();
    assert_eq!(pointers, ["/targets/a~1b", "/targets/c~0d"]);
}

/// One keyword change: (what, old metadata schema, new metadata schema, pointer, kind,
/// compatibility, a distinctive part of the reason).
type Row = (
    String,
    Value,
    Value,
    String,
    ChangeKind,
    Compatibility,
    String,
);

/// Each row must yield exactly one change, at its pointer, with its kind, compatibility and
/// reason, and the report's verdict must be that compatibility.
fn assert_single_changes(rows: Vec<Row>) {
    for (what, old, new, pointer, kind, compatibility, reason) in rows {
        let report = compare(Some(&with_metadata(old)), &with_metadata(new));
        assert_eq!(
            report.verdict, compatibility,
            "{what}: {:#?}",
            report.changes
        );
        let [change] = report.changes.as_slice() else {
            panic!("{what}: expected one change, got {:#?}", report.changes);
        };
        assert_eq!(
            (change.pointer.as_str(), change.kind, change.compatibility),
            (pointer.as_str(), kind, compatibility),
            "{what}: {change:#?}"
        );
        assert!(
            change.reason.contains(&reason),
            "{what}: reason {:?} does not contain {reason:?}",
            change.reason
        );
    }
}

/// A metadata schema whose only property `a` has `schema`.
fn on_a(schema: Value) -> Value {
    object(json!({ "a": schema }))
}

/// A metadata schema listing `a` with `keywords` added at the object level.
fn on_object(keywords: Value) -> Value {
    let mut schema = object(json!({"a": {"type": "string"}}));
    let map = schema.as_object_mut().expect("object");
    map.extend(keywords.as_object().expect("object").clone());
    schema
}

fn single(key: &str, value: Value) -> Value {
    Value::Object(Map::from_iter([(key.to_owned(), value)]))
}

/// Tightened, loosened, added and removed rows for the numeric bound `key`; `tight` is the
/// stricter limit (larger for a lower bound, smaller for an upper one).
fn bound_rows(
    key: &str,
    loose: Value,
    tight: Value,
    place: fn(Value) -> Value,
    pointer: &str,
) -> Vec<Row> {
    use ChangeKind::*;
    use Compatibility::*;
    let with = |limit: &Value| place(single(key, limit.clone()));
    let without = place(json!({}));
    let (loose_text, tight_text) = (loose.to_string(), tight.to_string());
    vec![
        (
            format!("{key} tightened"),
            with(&loose),
            with(&tight),
            pointer.to_owned(),
            Changed,
            Breaking,
            format!("{key} tightened from {loose_text} to {tight_text}"),
        ),
        (
            format!("{key} loosened"),
            with(&tight),
            with(&loose),
            pointer.to_owned(),
            Changed,
            Compatible,
            format!("{key} relaxed from {tight_text} to {loose_text}"),
        ),
        (
            format!("{key} added"),
            without.clone(),
            with(&tight),
            pointer.to_owned(),
            Added,
            Breaking,
            format!("new {key} {tight_text}: values beyond it are rejected"),
        ),
        (
            format!("{key} removed"),
            with(&tight),
            without,
            pointer.to_owned(),
            Removed,
            Compatible,
            format!("{key} removed: the limit no longer applies"),
        ),
    ]
}

#[test]
fn numeric_bounds_in_each_direction() {
    let property = |key: &str| format!("/metadata/properties/a/{key}");
    let whole = |key: &str| format!("/metadata/{key}");
    let mut rows = Vec::new();
    for (key, loose, tight) in [
        ("minLength", json!(2), json!(3)),
        ("maxLength", json!(10), json!(5)),
        ("minimum", json!(0), json!(1)),
        ("minimum", json!(0.25), json!(0.5)),
        ("maximum", json!(100), json!(10)),
        ("exclusiveMinimum", json!(-1), json!(0)),
        ("exclusiveMinimum", json!(1.5), json!(2.5)),
        ("exclusiveMaximum", json!(10), json!(9)),
        ("exclusiveMaximum", json!(0.75), json!(0.5)),
    ] {
        rows.extend(bound_rows(key, loose, tight, on_a, &property(key)));
    }
    for (key, loose, tight) in [
        ("minProperties", json!(0), json!(1)),
        ("maxProperties", json!(5), json!(2)),
    ] {
        rows.extend(bound_rows(key, loose, tight, on_object, &whole(key)));
    }
    // The same limit written differently is no tighter.
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        rows.push((
            format!("{key} 2 rewritten as 2.0"),
            on_a(single(key, json!(2))),
            on_a(single(key, json!(2.0))),
            property(key),
            ChangeKind::Changed,
            Compatibility::Compatible,
            format!("{key} relaxed from 2 to 2.0"),
        ));
    }
    assert_single_changes(rows);
}

/// Limits are compared exactly, as the validator compares values: rounded to `f64`,
/// 2^53 + 1 equals 2^53, and lowering a maximum from one to the other read as "relaxed"
/// while events carrying 2^53 + 1 became invalid.
#[test]
fn bounds_beyond_f64_precision_compare_exactly() {
    use ChangeKind::*;
    use Compatibility::*;
    let above = json!(9_007_199_254_740_993_u64);
    let below = json!(9_007_199_254_740_992_u64);
    let row = |key: &str, old: &Value, new: &Value, compatibility, reason: &str| {
        (
            format!("{key} {old} to {new}"),
            on_a(single(key, old.clone())),
            on_a(single(key, new.clone())),
            format!("/metadata/properties/a/{key}"),
            Changed,
            compatibility,
            reason.to_owned(),
        )
    };
    let float_below = json!(9_007_199_254_740_992.0);
    let negative_above = json!(-9_007_199_254_740_992_i64);
    let negative_below = json!(-9_007_199_254_740_993_i64);
    assert_single_changes(vec![
        row(
            "maximum",
            &above,
            &below,
            Breaking,
            "maximum tightened from 9007199254740993 to 9007199254740992",
        ),
        row("maximum", &below, &above, Compatible, "maximum relaxed"),
        row(
            "exclusiveMinimum",
            &below,
            &above,
            Breaking,
            "exclusiveMinimum tightened",
        ),
        row(
            "maximum",
            &above,
            &float_below,
            Breaking,
            "maximum tightened",
        ),
        row(
            "minimum",
            &negative_below,
            &negative_above,
            Breaking,
            "minimum tightened",
        ),
        row(
            "minimum",
            &json!(0.5),
            &above,
            Breaking,
            "minimum tightened",
        ),
        row(
            "maximum",
            &json!(0.5),
            &above,
            Compatible,
            "maximum relaxed",
        ),
    ]);

    // The validator does tell the two apart.
    let maximum = jsonschema::validator_for(&json!({"maximum": below})).expect("schema");
    assert!(!maximum.is_valid(&above));
}

#[test]
fn multiple_of_in_each_direction() {
    use ChangeKind::*;
    use Compatibility::*;
    let row = |what: &str, old: Value, new: Value, kind, compatibility, reason: &str| {
        (
            what.to_owned(),
            on_a(old),
            on_a(new),
            "/metadata/properties/a/multipleOf".to_owned(),
            kind,
            compatibility,
            reason.to_owned(),
        )
    };
    assert_single_changes(vec![
        row(
            "tightened to a multiple of the old value",
            json!({"multipleOf": 2}),
            json!({"multipleOf": 4}),
            Changed,
            Breaking,
            "some multiples of the old value are rejected",
        ),
        row(
            "changed to a value that does not divide the old one",
            json!({"multipleOf": 4}),
            json!({"multipleOf": 6}),
            Changed,
            Breaking,
            "some multiples of the old value are rejected",
        ),
        row(
            "loosened to a divisor of the old value",
            json!({"multipleOf": 6}),
            json!({"multipleOf": 3}),
            Changed,
            Compatible,
            "every multiple of 6 is a multiple of 3",
        ),
        row(
            "added",
            json!({}),
            json!({"multipleOf": 5}),
            Added,
            Breaking,
            "new multipleOf: numbers that are not multiples are rejected",
        ),
        row(
            "removed",
            json!({"multipleOf": 5}),
            json!({}),
            Removed,
            Compatible,
            "multipleOf removed",
        ),
        row(
            "fractional values are not reasoned about",
            json!({"multipleOf": 0.5}),
            json!({"multipleOf": 0.25}),
            Changed,
            MayBreak,
            "not a positive integer",
        ),
    ]);
}

/// Rows for a string keyword on property `a`: (what, old, new, kind, compatibility, reason).
fn string_keyword_rows(
    key: &str,
    cases: Vec<(&str, Value, Value, ChangeKind, Compatibility, &str)>,
) -> Vec<Row> {
    cases
        .into_iter()
        .map(|(what, old, new, kind, compatibility, reason)| {
            (
                format!("{key} {what}"),
                on_a(old),
                on_a(new),
                format!("/metadata/properties/a/{key}"),
                kind,
                compatibility,
                reason.to_owned(),
            )
        })
        .collect()
}

#[test]
fn pattern_in_each_direction() {
    use ChangeKind::*;
    use Compatibility::*;
    let string = |pattern: Option<&str>| match pattern {
        Some(pattern) => json!({"type": "string", "pattern": pattern}),
        None => json!({"type": "string"}),
    };
    assert_single_changes(string_keyword_rows(
        "pattern",
        vec![
            (
                "added",
                string(None),
                string(Some("^a")),
                Added,
                Breaking,
                "new pattern \"^a\": strings that do not match it are rejected",
            ),
            (
                "removed",
                string(Some("^a")),
                string(None),
                Removed,
                Compatible,
                "pattern removed",
            ),
            (
                "tightened",
                string(Some("^[ab]")),
                string(Some("^a")),
                Changed,
                MayBreak,
                "cannot prove the new pattern accepts every string the old one did",
            ),
            (
                "loosened (still not proven)",
                string(Some("^a")),
                string(Some("^[ab]")),
                Changed,
                MayBreak,
                "cannot prove the new pattern accepts every string the old one did",
            ),
        ],
    ));
}

#[test]
fn format_in_each_direction() {
    use ChangeKind::*;
    use Compatibility::*;
    let string = |format: Option<&str>| match format {
        Some(format) => json!({"type": "string", "format": format}),
        None => json!({"type": "string"}),
    };
    assert_single_changes(string_keyword_rows(
        "format",
        vec![
            (
                "added",
                string(None),
                string(Some("email")),
                Added,
                MayBreak,
                "format added or changed",
            ),
            (
                "removed",
                string(Some("email")),
                string(None),
                Removed,
                Compatible,
                "format removed",
            ),
            (
                "tightened",
                string(Some("idn-email")),
                string(Some("email")),
                Changed,
                MayBreak,
                "format added or changed",
            ),
            (
                "loosened (still not proven)",
                string(Some("email")),
                string(Some("idn-email")),
                Changed,
                MayBreak,
                "format added or changed",
            ),
        ],
    ));
}

#[test]
fn array_length_keywords_are_not_understood() {
    use ChangeKind::*;
    use Compatibility::*;
    assert!(!Checker::default().understands("minItems", Level::Value));
    assert!(!Checker::default().understands("maxItems", Level::Object));
    let mut rows = Vec::new();
    for key in ["minItems", "maxItems"] {
        rows.extend(string_keyword_rows(
            key,
            vec![
                (
                    "added",
                    json!({}),
                    single(key, json!(1)),
                    Added,
                    MayBreak,
                    "does not reason about",
                ),
                (
                    "removed",
                    single(key, json!(1)),
                    json!({}),
                    Removed,
                    MayBreak,
                    "does not reason about",
                ),
                (
                    "changed",
                    single(key, json!(1)),
                    single(key, json!(2)),
                    Changed,
                    MayBreak,
                    "does not reason about",
                ),
            ],
        ));
    }
    assert_single_changes(rows);

    // Left unchanged beside a change, the keyword still makes that change unproven.
    let report = compare(
        Some(&with_metadata(on_a(json!({"maxItems": 1, "maxLength": 5})))),
        &with_metadata(on_a(json!({"maxItems": 1, "maxLength": 6}))),
    );
    assert_eq!(report.verdict, MayBreak, "{:#?}", report.changes);
    let unchanged = report
        .changes
        .iter()
        .find(|change| change.pointer == "/metadata/properties/a/maxItems")
        .expect("maxItems listed");
    assert_eq!(unchanged.kind, Unchanged);
    assert!(unchanged.reason.contains("'maxItems' is not understood"));
}

#[test]
fn boolean_schemas() {
    use ChangeKind::*;
    use Compatibility::*;
    let at_a = "/metadata/properties/a".to_owned();
    let row =
        |what: &str, old: Value, new: Value, pointer: &str, kind, compatibility, reason: &str| {
            (
                what.to_owned(),
                on_a(old),
                on_a(new),
                pointer.to_owned(),
                kind,
                compatibility,
                reason.to_owned(),
            )
        };
    assert_single_changes(vec![
        row(
            "true to false",
            json!(true),
            json!(false),
            &at_a,
            Changed,
            Breaking,
            "the new schema is `false` and rejects everything",
        ),
        row(
            "false to true",
            json!(false),
            json!(true),
            &at_a,
            Changed,
            Compatible,
            "the old schema was `false` and accepted nothing",
        ),
        row(
            "object to false",
            json!({"type": "string"}),
            json!(false),
            &at_a,
            Changed,
            Breaking,
            "the new schema is `false` and rejects everything",
        ),
        row(
            "false to object",
            json!(false),
            json!({"type": "string", "minLength": 3}),
            &at_a,
            Changed,
            Compatible,
            "the old schema was `false` and accepted nothing",
        ),
        row(
            "true to a typed object",
            json!(true),
            json!({"type": "string"}),
            "/metadata/properties/a/type",
            Added,
            Breaking,
            "type narrowed: boolean, number values are rejected now",
        ),
        row(
            "true to an object with a bound",
            json!(true),
            json!({"minLength": 2}),
            "/metadata/properties/a/minLength",
            Added,
            Breaking,
            "new minLength 2",
        ),
        row(
            "true to an object with only an annotation",
            json!(true),
            json!({"description": "any value"}),
            "/metadata/properties/a/description",
            Added,
            Compatible,
            "annotation",
        ),
        row(
            "object with a bound to true",
            json!({"maximum": 3}),
            json!(true),
            "/metadata/properties/a/maximum",
            Removed,
            Compatible,
            "maximum removed",
        ),
    ]);

    // `true` and `{}` accept the same; `false` compared with itself is no change.
    for (old, new) in [
        (json!(true), json!({})),
        (json!({}), json!(true)),
        (json!(false), json!(false)),
    ] {
        let report = compare(
            Some(&with_metadata(on_a(old.clone()))),
            &with_metadata(on_a(new.clone())),
        );
        assert!(
            report.changes.is_empty(),
            "{old} -> {new}: {:#?}",
            report.changes
        );
        assert_eq!(report.verdict, Compatible);
    }
}
