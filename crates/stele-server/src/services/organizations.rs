//! Organizations: the tenants whose audit logs Stele keeps.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use stele_core::access::is_activity_log;
use stele_core::ids::IdKind;
use stele_core::model::{
    Idempotent, Organization, OrganizationDeletion, OrganizationDomain, OrganizationFilter,
    OrganizationId,
};
use stele_core::pagination::{Page, PageRequest};
use stele_core::timestamp::now_millis;
use stele_core::FieldError;
use stele_store::{Store, StoreError};

use crate::error_code::ErrorCode;
use crate::services::retention::PURGE_BATCH;
use crate::services::{IdempotencyRecordFor, ServiceError};

/// `domain_data` items: a domain and its verification state.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DomainData {
    pub domain: String,
    #[serde(default)]
    pub state: Option<String>,
}

/// The fields of a new organization (`POST /organizations`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OrganizationInput {
    pub name: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub domain_data: Option<Vec<DomainData>>,
    /// Deprecated WorkOS form: plain domain names, recorded as `pending`.
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// WorkOS's billing reference, stored and returned as given.
    #[serde(default)]
    pub stripe_customer_id: Option<String>,
}

/// `POST /organizations`: the writable fields plus `id`, a Stele extension that brings an
/// existing WorkOS organization id (`org_` followed by a 26-character ULID) instead of a
/// generated one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewOrganizationInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(flatten)]
    pub fields: OrganizationInput,
}

/// Checks an id given on create: the form WorkOS hands out, so an imported id can never
/// collide with another kind of resource or be a typo of one.
pub fn check_organization_id(id: &str) -> Result<OrganizationId, FieldError> {
    if IdKind::Organization.matches(id) {
        Ok(OrganizationId::from(id))
    } else {
        Err(FieldError::invalid(
            "id",
            format!("id '{id}' is not an organization id: expected 'org_' followed by a 26-character ULID in upper case (as WorkOS issues them)."),
        ))
    }
}

/// A partial update (`PUT /organizations/{id}`), as every SDK sends it: an omitted field
/// is left unchanged, an explicit `null` clears it. No field is required.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OrganizationUpdate {
    /// Omitted: unchanged. `null` is refused (an organization always has a name).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = false)]
    pub name: Option<Option<String>>,
    /// Omitted: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = false)]
    pub external_id: Option<Option<String>>,
    /// Omitted: unchanged; `null`: cleared (`{}`); an object replaces the metadata.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, required = false)]
    pub metadata: Option<Option<Map<String, Value>>>,
    /// Omitted or `null`: unchanged; a list replaces the domains.
    #[serde(default)]
    pub domain_data: Option<Vec<DomainData>>,
    /// Deprecated WorkOS form: plain domain names, recorded as `pending`.
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Omitted: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = false)]
    pub stripe_customer_id: Option<Option<String>>,
}

/// Tells a present field (`Some(value)`, `Some(None)` for `null`) from an omitted one,
/// which `#[serde(default)]` leaves `None`.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

const DOMAIN_STATES: &[&str] = &[
    "failed",
    "legacy_verified",
    "pending",
    "unverified",
    "verified",
];

/// WorkOS's limits on organization metadata and `external_id`.
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_VALUE_CHARS: usize = 600;
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
/// Stripe's customer ids are far shorter; this only bounds what is stored.
pub const MAX_STRIPE_CUSTOMER_ID_CHARS: usize = 255;

fn check_stripe_customer_id(stripe_customer_id: Option<&str>, errors: &mut Vec<FieldError>) {
    let Some(stripe_customer_id) = stripe_customer_id else {
        return;
    };
    if stripe_customer_id.trim().is_empty() {
        errors.push(FieldError::invalid(
            "stripe_customer_id",
            "stripe_customer_id must not be empty; use null to unset it.",
        ));
    } else if stripe_customer_id.chars().count() > MAX_STRIPE_CUSTOMER_ID_CHARS {
        errors.push(FieldError::invalid(
            "stripe_customer_id",
            format!("stripe_customer_id may be at most {MAX_STRIPE_CUSTOMER_ID_CHARS} characters."),
        ));
    }
}

/// Bounds what is stored and shown (dashboard, Admin Portal); far above any real name.
pub const MAX_NAME_CHARS: usize = 1_000;

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let name = name.trim();
    if name.is_empty() {
        errors.push(FieldError::invalid("name", "name must not be empty."));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::invalid(
            "name",
            format!("name may be at most {MAX_NAME_CHARS} characters."),
        ));
    }
}

fn check_external_id(external_id: Option<&str>, errors: &mut Vec<FieldError>) {
    let Some(external_id) = external_id else {
        return;
    };
    if external_id.trim().is_empty() {
        errors.push(FieldError::invalid(
            "external_id",
            "external_id must not be empty; use null to unset it.",
        ));
    } else if external_id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        errors.push(FieldError::invalid(
            "external_id",
            format!("external_id may be at most {MAX_EXTERNAL_ID_CHARS} characters."),
        ));
    }
}

fn check_metadata(metadata: Option<&Map<String, Value>>, errors: &mut Vec<FieldError>) {
    let Some(metadata) = metadata else {
        return;
    };
    if metadata.len() > MAX_METADATA_KEYS {
        errors.push(FieldError::invalid(
            "metadata",
            format!(
                "metadata has {} keys; at most {MAX_METADATA_KEYS} are allowed.",
                metadata.len()
            ),
        ));
    }
    for (key, value) in metadata {
        let field = format!("metadata.{key}");
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            errors.push(FieldError::invalid(
                field.clone(),
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters."),
            ));
        }
        match value.as_str() {
            None => errors.push(FieldError::invalid_type(field, "a string")),
            Some(text) if text.chars().count() > MAX_METADATA_VALUE_CHARS => {
                errors.push(FieldError::invalid(
                    field,
                    format!(
                        "metadata values may be at most {MAX_METADATA_VALUE_CHARS} characters."
                    ),
                ))
            }
            Some(_) => {}
        }
    }
}

fn check_domain_data(domain_data: Option<&[DomainData]>, errors: &mut Vec<FieldError>) {
    for (index, data) in domain_data.into_iter().flatten().enumerate() {
        if data.domain.trim().is_empty() {
            errors.push(FieldError::invalid(
                format!("domain_data[{index}].domain"),
                "domain must not be empty.",
            ));
        }
        if let Some(state) = data
            .state
            .as_deref()
            .filter(|state| !DOMAIN_STATES.contains(state))
        {
            errors.push(FieldError::invalid(
                format!("domain_data[{index}].state"),
                format!(
                    "unknown domain state '{state}'; expected one of {}",
                    DOMAIN_STATES.join(", ")
                ),
            ));
        }
    }
}

/// The field limits `POST /organizations` enforces, applied to an organization read from
/// elsewhere (`stele import`): every problem, in the API's terms.
pub fn field_problems(organization: &Organization) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_name(&organization.name, &mut errors);
    check_external_id(organization.external_id.as_deref(), &mut errors);
    check_metadata(Some(&organization.metadata), &mut errors);
    check_stripe_customer_id(organization.stripe_customer_id.as_deref(), &mut errors);
    errors
}

fn refuse_if_any(errors: Vec<FieldError>) -> Result<(), ServiceError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(errors))
    }
}

impl OrganizationInput {
    fn check(&self) -> Result<(), ServiceError> {
        let mut errors = Vec::new();
        check_name(&self.name, &mut errors);
        check_external_id(self.external_id.as_deref(), &mut errors);
        check_metadata(self.metadata.as_ref(), &mut errors);
        check_domain_data(self.domain_data.as_deref(), &mut errors);
        check_stripe_customer_id(self.stripe_customer_id.as_deref(), &mut errors);
        refuse_if_any(errors)
    }
}

impl OrganizationUpdate {
    fn check(&self) -> Result<(), ServiceError> {
        let mut errors = Vec::new();
        match &self.name {
            Some(Some(name)) => check_name(name, &mut errors),
            Some(None) => errors.push(FieldError::invalid(
                "name",
                "name cannot be null; omit it to keep the current name.",
            )),
            None => {}
        }
        check_external_id(self.external_id.clone().flatten().as_deref(), &mut errors);
        check_metadata(self.metadata.clone().flatten().as_ref(), &mut errors);
        check_domain_data(self.domain_data.as_deref(), &mut errors);
        check_stripe_customer_id(
            self.stripe_customer_id.clone().flatten().as_deref(),
            &mut errors,
        );
        refuse_if_any(errors)
    }
}

/// The domain list described by `domain_data` (or the deprecated `domains`), keeping the
/// ids of domains that already exist; `existing` when neither is given.
fn requested_domains(
    domain_data: Option<&[DomainData]>,
    domains: Option<&[String]>,
    existing: &[OrganizationDomain],
    now: i64,
) -> Vec<OrganizationDomain> {
    let requested: Vec<(String, String)> = match (domain_data, domains) {
        (Some(data), _) => data
            .iter()
            .map(|d| {
                (
                    d.domain.trim().to_lowercase(),
                    d.state.clone().unwrap_or_else(|| "pending".into()),
                )
            })
            .collect(),
        (None, Some(names)) => names
            .iter()
            .map(|name| (name.trim().to_lowercase(), "pending".into()))
            .collect(),
        (None, None) => return existing.to_vec(),
    };
    requested
        .into_iter()
        .map(
            |(domain, state)| match existing.iter().find(|d| d.domain == domain) {
                Some(known) if known.state == state => known.clone(),
                Some(known) => OrganizationDomain {
                    state,
                    updated_at: now,
                    ..known.clone()
                },
                None => OrganizationDomain {
                    id: IdKind::OrganizationDomain.generate(),
                    domain,
                    state,
                    verification_strategy: "manual".into(),
                    created_at: now,
                    updated_at: now,
                },
            },
        )
        .collect()
}

fn map_store_error(error: StoreError, id: &str) -> ServiceError {
    match error {
        StoreError::OrganizationNotFound => ServiceError::OrganizationNotFound(id.to_owned()),
        StoreError::OrganizationIdTaken => ServiceError::Rejected {
            code: ErrorCode::OrganizationIdTaken,
            message: format!(
                "The id '{id}' belongs to an existing or a deleted organization; ids are never reused."
            ),
        },
        StoreError::ExternalIdTaken { existing } => ServiceError::Rejected {
            code: ErrorCode::ExternalIdAlreadyUsed,
            message: format!("external_id is already used by organization '{existing}'."),
        },
        other => ServiceError::Store(other),
    }
}

/// Creating, reading, updating and deleting organizations.
#[derive(Clone)]
pub struct OrganizationService {
    store: Arc<dyn Store>,
}

impl OrganizationService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn create(
        &self,
        input: OrganizationInput,
        idempotency: Option<IdempotencyRecordFor<Organization>>,
    ) -> Result<Idempotent<Organization>, ServiceError> {
        self.create_with_id(
            NewOrganizationInput {
                id: None,
                fields: input,
            },
            idempotency,
        )
        .await
    }

    /// Creates an organization under the id the input gives, or a generated one.
    pub async fn create_with_id(
        &self,
        input: NewOrganizationInput,
        idempotency: Option<IdempotencyRecordFor<Organization>>,
    ) -> Result<Idempotent<Organization>, ServiceError> {
        let id = match input.id.as_deref() {
            None => None,
            Some(id) => Some(
                check_organization_id(id)
                    .map_err(|error| ServiceError::InvalidRequest(vec![error]))?,
            ),
        };
        let input = input.fields;
        input.check()?;
        let now = now_millis();
        let organization = Organization {
            id: id.unwrap_or_else(OrganizationId::generate),
            name: input.name.trim().to_owned(),
            external_id: input.external_id.clone(),
            metadata: input.metadata.clone().unwrap_or_default(),
            domains: requested_domains(
                input.domain_data.as_deref(),
                input.domains.as_deref(),
                &[],
                now,
            ),
            retention_period_in_days: None,
            stripe_customer_id: input.stripe_customer_id.clone(),
            created_at: now,
            updated_at: now,
        };
        let record = idempotency
            .map(|make_record| make_record(&organization))
            .transpose()?;
        let id = organization.id.clone();
        self.store
            .create_organization(organization, record)
            .await
            .map_err(|error| map_store_error(error, &id))
    }

    /// An organization whose log may be read and proved: a customer organization or the
    /// activity log (which only unrestricted admin keys and dashboard users reach).
    pub async fn get_log(&self, id: &str) -> Result<Organization, ServiceError> {
        self.store
            .get_organization(id)
            .await?
            .ok_or_else(|| ServiceError::OrganizationNotFound(id.to_owned()))
    }

    /// A customer organization (never the reserved activity log).
    pub async fn get(&self, id: &str) -> Result<Organization, ServiceError> {
        if is_activity_log(id) {
            return Err(ServiceError::OrganizationNotFound(id.to_owned()));
        }
        self.store
            .get_organization(id)
            .await?
            .ok_or_else(|| ServiceError::OrganizationNotFound(id.to_owned()))
    }

    pub async fn get_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Organization, ServiceError> {
        self.store
            .get_organization_by_external_id(external_id)
            .await?
            .filter(|organization| !is_activity_log(organization.id.as_ref()))
            .ok_or_else(|| ServiceError::OrganizationNotFound(external_id.to_owned()))
    }

    pub async fn list(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<String>,
    ) -> Result<Page<Organization>, ServiceError> {
        Ok(self.store.list_organizations(filter, page).await?)
    }

    pub async fn update(
        &self,
        id: &str,
        input: OrganizationUpdate,
    ) -> Result<Organization, ServiceError> {
        input.check()?;
        let current = self.get(id).await?;
        let now = now_millis();
        let updated = Organization {
            name: match input.name {
                Some(Some(name)) => name.trim().to_owned(),
                _ => current.name.clone(),
            },
            external_id: input.external_id.unwrap_or(current.external_id.clone()),
            metadata: match input.metadata {
                Some(metadata) => metadata.unwrap_or_default(),
                None => current.metadata.clone(),
            },
            domains: requested_domains(
                input.domain_data.as_deref(),
                input.domains.as_deref(),
                &current.domains,
                now,
            ),
            stripe_customer_id: input
                .stripe_customer_id
                .unwrap_or(current.stripe_customer_id.clone()),
            updated_at: now,
            ..current
        };
        self.store
            .update_organization(updated)
            .await
            .map_err(|error| map_store_error(error, id))
    }

    /// Deletes the organization and purges its events (see
    /// [`stele_store::OrganizationStore::delete_organization`]): WorkOS deletes an
    /// organization's events with it, and tenant off-boarding depends on that. Stele's own
    /// activity log is never deleted.
    ///
    /// The events go first, in retention's purge steps (each its own write transaction), so
    /// that deleting a large organization never holds SQLite's single writer, and every
    /// other organization's appends with it, for longer than one step; the store's deletion
    /// then purges what arrived meanwhile and removes the organization. Each step leaves the
    /// state a retention purge leaves, so a deletion cut short (a crash, a failed step) is
    /// an organization with fewer events, and deleting it again finishes the job.
    pub async fn delete(&self, id: &str) -> Result<OrganizationDeletion, ServiceError> {
        if is_activity_log(id) {
            return Err(ServiceError::OrganizationNotFound(id.to_owned()));
        }
        let deletion = delete_in_steps(self.store.as_ref(), id)
            .await
            .map_err(|error| map_store_error(error, id))?;
        tracing::info!(
            organization = id,
            purged_events = deletion.purged,
            tree_size = deletion.tree_size,
            "organization deleted"
        );
        Ok(deletion)
    }
}

/// Purges the organization's events received before now in retention's steps, then deletes
/// it (see [`OrganizationService::delete`]). Events appended meanwhile are received after
/// the cutoff, so the steps end however fast the organization keeps emitting.
async fn delete_in_steps(store: &dyn Store, id: &str) -> Result<OrganizationDeletion, StoreError> {
    let cutoff = now_millis();
    let mut purged_beforehand = 0;
    loop {
        let outcome = store.purge_events(id, cutoff, PURGE_BATCH).await?;
        purged_beforehand += outcome.purged;
        if !outcome.more {
            break;
        }
    }
    store.delete_organization(id, purged_beforehand).await
}
