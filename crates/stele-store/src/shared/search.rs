//! The search plan, once for both backends: which filters become conditions, the keyset
//! bounds of a page, and when a selective id filter should drive. Each backend supplies
//! only its placeholder syntax and bound values ([`Binder`]) and wraps the conditions in
//! its own SQL.

use stele_core::model::{EventQuery, OccurredAtKey};
use stele_core::pagination::Scan;

/// How a backend spells and binds the values of a generated query.
pub(crate) trait Binder {
    /// The placeholder of the organization id, bound first.
    const ORGANIZATION: &'static str;
    /// Binds a list of texts; returns the condition on `column` that matches any of them.
    fn one_of(&mut self, column: &str, items: &[String]) -> String;
    /// Binds an integer; returns its placeholder.
    fn integer(&mut self, value: i64) -> String;
}

/// The conditions and page size of one page of a search.
pub(crate) struct SearchPlan {
    pub(crate) conditions: Vec<String>,
    /// Placeholder of the number of rows to fetch.
    pub(crate) fetch: String,
    pub(crate) direction: &'static str,
    /// The `ORDER BY` list of the page (over `e.`): by sequence, or by `occurred_at` then
    /// sequence.
    pub(crate) order: String,
}

/// The exclusive bound a page of a search resumes from, in the search's order.
#[derive(Clone, Copy)]
pub(crate) enum SearchBound {
    Sequence(i64),
    OccurredAt(OccurredAtKey),
}

/// How a store scans for one page of a search: its order (by sequence, the default, or by
/// `occurred_at` with ties broken by sequence), direction, bound and row count.
#[derive(Clone, Copy)]
pub(crate) struct SearchScan {
    pub(crate) by_occurred_at: bool,
    pub(crate) descending: bool,
    /// `Some((bound, true))` means keys greater than `bound`; `false` means less than.
    pub(crate) bound: Option<(SearchBound, bool)>,
    pub(crate) fetch: u32,
}

impl SearchScan {
    pub(crate) fn by_sequence(scan: &Scan<'_, i64>) -> Self {
        SearchScan {
            by_occurred_at: false,
            descending: scan.descending,
            bound: scan
                .bound
                .map(|(key, greater)| (SearchBound::Sequence(*key), greater)),
            fetch: scan.fetch,
        }
    }

    pub(crate) fn by_occurred_at(scan: &Scan<'_, OccurredAtKey>) -> Self {
        SearchScan {
            by_occurred_at: true,
            descending: scan.descending,
            bound: scan
                .bound
                .map(|(key, greater)| (SearchBound::OccurredAt(*key), greater)),
            fetch: scan.fetch,
        }
    }

    /// `ORDER BY` direction.
    pub(crate) fn direction(&self) -> &'static str {
        if self.descending {
            "DESC"
        } else {
            "ASC"
        }
    }

    /// The `ORDER BY` list over the columns of `alias`.
    pub(crate) fn order(&self, alias: &str) -> String {
        let direction = self.direction();
        if self.by_occurred_at {
            format!("{alias}.occurred_at {direction}, {alias}.sequence {direction}")
        } else {
            format!("{alias}.sequence {direction}")
        }
    }
}

/// Whether `query` filters on an actor or target id: those have selective indexes of their
/// own, which should drive the scan while the time range is checked row by row.
pub(crate) fn has_selective_id(query: &EventQuery) -> bool {
    !query.actor_ids.is_empty() || !query.target_ids.is_empty()
}

/// Whether a page of `query` is bounded by time only (no selective id, not an export's
/// snapshot): the case where walking the sequence index can read far before matching.
pub(crate) fn is_time_bounded_only(query: &EventQuery) -> bool {
    (query.occurred_from.is_some() || query.occurred_to.is_some())
        && !has_selective_id(query)
        && query.up_to_sequence.is_none()
}

/// Where the target filters find an event's targets.
#[derive(Clone, Copy)]
pub(crate) enum TargetRows<'a> {
    /// The `event_targets` rows of the event.
    Indexed,
    /// The `targets` array of this SQLite JSON text expression (the event's canonical
    /// bytes), for events whose target rows are not written yet.
    Json(&'a str),
}

/// How a backend names the columns whose indexes it may want the planner not to use, and
/// where the targets are found.
pub(crate) struct SearchColumns<'a> {
    /// `occurred_at` in the conditions.
    pub(crate) time: &'a str,
    /// `action` in the conditions.
    pub(crate) action: &'a str,
    pub(crate) targets: TargetRows<'a>,
}

impl SearchColumns<'static> {
    /// The plain column names: the planner may use any index.
    pub(crate) const PLAIN: Self = SearchColumns {
        time: "e.occurred_at",
        action: "e.action",
        targets: TargetRows::Indexed,
    };

    /// For a planner without statistics (SQLite): when an actor or target id filters,
    /// that index drives and the action and time range are checked per candidate, so
    /// the `occurred_at` and `action` indexes are hidden with `+`. Left visible, SQLite
    /// may walk an action's whole index (hundreds of thousands of entries) for a page
    /// that one actor's few entries answer.
    pub(crate) fn hinted_for(query: &EventQuery) -> Self {
        if has_selective_id(query) {
            Self::HINTED
        } else {
            Self::PLAIN
        }
    }

    /// `occurred_at` and `action` hidden from the planner with `+`: another index (or
    /// walk) drives and they are checked per candidate.
    pub(crate) const HINTED: Self = SearchColumns {
        time: "+e.occurred_at",
        action: "+e.action",
        targets: TargetRows::Indexed,
    };
}

/// Plans one page of `query`. Only the filters in use appear. `columns` says how the
/// backend names `occurred_at` and `action` in the conditions.
pub(crate) fn plan_search<B: Binder>(
    query: &EventQuery,
    scan: &SearchScan,
    binder: &mut B,
    columns: &SearchColumns<'_>,
) -> SearchPlan {
    let organization = B::ORGANIZATION;
    let time_column = columns.time;
    let mut conditions = vec![format!("e.organization_id = {organization}")];
    for (column, items) in [
        (columns.action, &query.actions),
        ("e.actor_id", &query.actor_ids),
        ("e.actor_name", &query.actor_names),
    ] {
        if !items.is_empty() {
            conditions.push(binder.one_of(column, items));
        }
    }
    for (field, items) in [("id", &query.target_ids), ("type", &query.target_types)] {
        if items.is_empty() {
            continue;
        }
        conditions.push(match columns.targets {
            TargetRows::Json(json) => {
                let condition = binder.one_of(&format!("j.value ->> '$.{field}'"), items);
                format!("EXISTS (SELECT 1 FROM json_each({json}, '$.targets') j WHERE {condition})")
            }
            // Target ids are selective: let their index drive.
            TargetRows::Indexed if field == "id" => {
                let condition = binder.one_of("t.target_id", items);
                format!(
                    "e.sequence IN (SELECT t.sequence FROM event_targets t WHERE t.organization_id = {organization} AND {condition})"
                )
            }
            // Target types are not (most events of an action share them): check them per
            // candidate row instead of collecting every matching sequence first.
            TargetRows::Indexed => {
                let condition = binder.one_of("t.target_type", items);
                format!(
                    "EXISTS (SELECT 1 FROM event_targets t
                     WHERE t.organization_id = e.organization_id AND {condition} AND t.sequence = e.sequence)"
                )
            }
        });
    }
    let (from, to) = (format!("{time_column} >="), format!("{time_column} <="));
    // Ordered by `occurred_at`, a cursor inside the range replaces the range's bound on its
    // side (it implies it): SQLite then starts the index walk at the cursor, where with both
    // it may start at the range's edge and skip row by row to the cursor.
    let (mut occurred_from, mut occurred_to) = (query.occurred_from, query.occurred_to);
    if let Some((SearchBound::OccurredAt(key), greater)) = scan.bound {
        if greater && occurred_from.is_some_and(|from| key.occurred_at >= from) {
            occurred_from = None;
        }
        if !greater && occurred_to.is_some_and(|to| key.occurred_at <= to) {
            occurred_to = None;
        }
    }
    for (condition, bound) in [
        (from.as_str(), occurred_from),
        (to.as_str(), occurred_to),
        ("e.sequence <=", query.up_to_sequence),
    ] {
        if let Some(bound) = bound {
            let placeholder = binder.integer(bound);
            conditions.push(format!("{condition} {placeholder}"));
        }
    }
    if let Some((bound, greater)) = scan.bound {
        let operator = if greater { ">" } else { "<" };
        conditions.push(match bound {
            SearchBound::Sequence(sequence) => {
                format!("e.sequence {operator} {}", binder.integer(sequence))
            }
            // A row value: both backends read it as one range of the
            // `(organization_id, occurred_at, sequence)` index.
            SearchBound::OccurredAt(key) => {
                let occurred_at = binder.integer(key.occurred_at);
                let sequence = binder.integer(key.sequence);
                format!("({time_column}, e.sequence) {operator} ({occurred_at}, {sequence})")
            }
        });
    }
    SearchPlan {
        conditions,
        fetch: binder.integer(i64::from(scan.fetch)),
        direction: scan.direction(),
        order: scan.order("e"),
    }
}

/// `ORDER BY` direction of a keyset scan.
pub(crate) fn direction<K>(scan: &Scan<'_, K>) -> &'static str {
    if scan.descending {
        "DESC"
    } else {
        "ASC"
    }
}

/// `WHERE`-clause fragment and `ORDER BY` direction for a keyset scan over `column`, whose
/// bound (if any) is bound to `placeholder`.
pub(crate) fn keyset<K>(
    column: &str,
    scan: &Scan<'_, K>,
    placeholder: &str,
) -> (String, &'static str) {
    let condition = match scan.bound {
        None => "TRUE".to_owned(),
        Some((_, true)) => format!("{column} > {placeholder}"),
        Some((_, false)) => format!("{column} < {placeholder}"),
    };
    (condition, direction(scan))
}
