//! Retention: organizations may keep events for a number of days (measured from when Stele
//! received them); older events are purged oldest first, so what remains is always a
//! contiguous tail of the chain, anchored to the hash it continues from.

use std::sync::Arc;

use serde_json::Value;
use stele_core::timestamp::now_millis;
use stele_core::FieldError;
use stele_store::Store;

use crate::services::transparency::TransparencyService;
use crate::services::ServiceError;

pub const MIN_DAYS: i64 = 1;
pub const MAX_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Events deleted per write transaction, so a large purge (or an organization's deletion)
/// never stalls event ingestion.
pub(crate) const PURGE_BATCH: u32 = 5000;

/// Reads a retention PUT body: `{"retention_period_in_days": N|null}` or WorkOS's
/// `{"retention_period": "1_MONTH".."11_MONTHS" | "1_YEAR".."10_YEARS"}`.
pub fn parse_retention_body(body: &Value) -> Result<Option<i64>, ServiceError> {
    let invalid = |field: &str, message: String| {
        ServiceError::InvalidRequest(vec![FieldError::invalid(field, message)])
    };
    let Some(object) = body.as_object() else {
        return Err(ServiceError::InvalidRequest(vec![
            FieldError::invalid_type("body", "a JSON object"),
        ]));
    };
    match (object.get("retention_period_in_days"), object.get("retention_period")) {
        (Some(_), Some(_)) => Err(invalid(
            "retention_period",
            "Send either retention_period_in_days or retention_period, not both.".into(),
        )),
        (Some(Value::Null), None) => Ok(None),
        (Some(days), None) => match days.as_i64() {
            Some(days) if is_valid_days(days) => Ok(Some(days)),
            _ => Err(invalid(
                "retention_period_in_days",
                format!("retention_period_in_days must be a whole number of days from {MIN_DAYS} to {MAX_DAYS}, or null."),
            )),
        },
        (None, Some(period)) => period.as_str().and_then(period_in_days).map(Some).ok_or_else(|| {
            invalid(
                "retention_period",
                "retention_period must be one of 1_MONTH..11_MONTHS or 1_YEAR..10_YEARS.".into(),
            )
        }),
        (None, None) => Err(ServiceError::InvalidRequest(vec![FieldError::required("retention_period_in_days")])),
    }
}

/// Whether `days` is a retention period Stele accepts (beyond WorkOS's 30 and 365).
pub fn is_valid_days(days: i64) -> bool {
    (MIN_DAYS..=MAX_DAYS).contains(&days)
}

/// `N_MONTH(S)` is 30·N days and `N_YEAR(S)` 365·N days.
fn period_in_days(period: &str) -> Option<i64> {
    let (count, unit) = period.split_once('_')?;
    let count: i64 = count.parse().ok()?;
    match (unit, count) {
        ("MONTH", 1) | ("MONTHS", 2..=11) => Some(30 * count),
        ("YEAR", 1) | ("YEARS", 2..=10) => Some(365 * count),
        _ => None,
    }
}

/// Retention periods and the purges that apply them.
#[derive(Clone)]
pub struct RetentionService {
    store: Arc<dyn Store>,
    transparency: TransparencyService,
}

impl RetentionService {
    pub fn new(store: Arc<dyn Store>, transparency: TransparencyService) -> Self {
        Self {
            store,
            transparency,
        }
    }

    pub async fn set(&self, organization_id: &str, days: Option<i64>) -> Result<(), ServiceError> {
        // The activity log is kept forever: no retention can be set on it.
        if stele_core::access::is_activity_log(organization_id) {
            return Err(ServiceError::OrganizationNotFound(
                organization_id.to_owned(),
            ));
        }
        self.store
            .set_retention(organization_id, days)
            .await
            .map_err(|error| ServiceError::on_organization(error, organization_id))
    }

    /// One retention pass over every organization with a retention period; returns how many
    /// events were purged in all.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        let mut total = 0;
        for (organization_id, days) in self.store.organizations_with_retention().await? {
            let now = now_millis();
            let cutoff = now - days * DAY_MS;
            // Keep the subtree hashes proofs will need before their leaves go: a purge then
            // only has to keep leaf hashes of the one partial 256-leaf block at its edge.
            let size = self.transparency.tree_size(&organization_id).await?;
            self.transparency
                .ensure_tree_nodes(&organization_id, size)
                .await?;
            let mut purged = 0;
            loop {
                let outcome = self
                    .store
                    .purge_events(&organization_id, cutoff, PURGE_BATCH)
                    .await?;
                purged += outcome.purged;
                if !outcome.more {
                    break;
                }
            }
            if purged > 0 {
                tracing::info!(
                    organization_id,
                    purged,
                    retention_period_in_days = days,
                    "retention purged events"
                );
            }
            total += purged;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_body_forms_are_read() {
        assert_eq!(
            parse_retention_body(&json!({"retention_period_in_days": 30})).ok(),
            Some(Some(30))
        );
        assert_eq!(
            parse_retention_body(&json!({"retention_period_in_days": null})).ok(),
            Some(None)
        );
        assert_eq!(
            parse_retention_body(&json!({"retention_period": "1_MONTH"})).ok(),
            Some(Some(30))
        );
        assert_eq!(
            parse_retention_body(&json!({"retention_period": "11_MONTHS"})).ok(),
            Some(Some(330))
        );
        assert_eq!(
            parse_retention_body(&json!({"retention_period": "1_YEAR"})).ok(),
            Some(Some(365))
        );
        assert_eq!(
            parse_retention_body(&json!({"retention_period": "10_YEARS"})).ok(),
            Some(Some(3650))
        );
    }

    #[test]
    fn out_of_range_and_unknown_values_are_rejected() {
        for body in [
            json!({"retention_period_in_days": 0}),
            json!({"retention_period_in_days": 3651}),
            json!({"retention_period_in_days": 1.5}),
            json!({"retention_period_in_days": "30"}),
            json!({"retention_period": "12_MONTHS"}),
            json!({"retention_period": "1_MONTHS"}),
            json!({"retention_period": "11_YEARS"}),
            json!({"retention_period": 30}),
            json!({}),
            json!({"retention_period_in_days": 30, "retention_period": "1_MONTH"}),
        ] {
            assert!(parse_retention_body(&body).is_err(), "{body}");
        }
    }
}
