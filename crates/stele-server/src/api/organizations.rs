//! `/organizations`: WorkOS's organization resource.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use stele_core::model::{Idempotent, Organization, OrganizationDomain, OrganizationFilter};
use stele_core::timestamp::format_millis;
use stele_core::FieldError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{typed_body, Activity, ApiCaller, JsonBody, ListQuery};
use crate::api::idempotency::written_or_replayed;
use crate::api::idempotency::IdempotencyContext;
use crate::api::wire::{json_bytes, List};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::organizations::{NewOrganizationInput, OrganizationUpdate};
use crate::services::{IdempotencyRecordFor, ServiceError};
use crate::state::AppState;

/// The `organizations` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(
            get_organization,
            update_organization,
            delete_organization
        ))
        .routes(routes!(get_organization_by_external_id))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationDomainResponse {
    #[schema(example = "organization_domain")]
    pub object: &'static str,
    pub id: String,
    pub organization_id: String,
    pub domain: String,
    pub state: String,
    pub verification_strategy: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationResponse {
    #[schema(example = "organization")]
    pub object: &'static str,
    pub id: String,
    pub name: String,
    pub domains: Vec<OrganizationDomainResponse>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Always present; `null` when unset.
    pub external_id: Option<String>,
    pub allow_profiles_outside_organization: bool,
    /// Present only when set (as WorkOS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_customer_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl OrganizationResponse {
    pub fn from_organization(organization: Organization) -> Self {
        let organization_id = organization.id.clone();
        let domain = |domain: OrganizationDomain| OrganizationDomainResponse {
            object: "organization_domain",
            id: domain.id,
            organization_id: organization_id.clone().into(),
            domain: domain.domain,
            state: domain.state,
            verification_strategy: domain.verification_strategy,
            created_at: format_millis(domain.created_at),
            updated_at: format_millis(domain.updated_at),
        };
        OrganizationResponse {
            object: "organization",
            domains: organization.domains.into_iter().map(domain).collect(),
            id: organization.id.into(),
            name: organization.name,
            metadata: organization.metadata,
            external_id: organization.external_id,
            allow_profiles_outside_organization: false,
            stripe_customer_id: organization.stripe_customer_id,
            created_at: format_millis(organization.created_at),
            updated_at: format_millis(organization.updated_at),
        }
    }
}

#[utoipa::path(post, path = "/organizations", tag = "organizations", request_body = NewOrganizationInput,
    responses((status = 201, body = OrganizationResponse),
              (status = 400, description = "`organization_id_taken`: an organization has the given `id`; `external_id_already_used`: another organization has the `external_id`"),
              (status = 422, description = "Invalid body: an `id` that is not `org_` followed by a 26-character ULID, or metadata or external_id over WorkOS's limits")))]
pub async fn create_organization(
    State(state): State<AppState>,
    Activity(activity): Activity,
    IdempotencyContext(idempotency): IdempotencyContext,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    // `id` is read apart from the writable fields: deserializing them through a
    // `#[serde(flatten)]` wrapper would report a mistyped field as `body`, not by name.
    let id = match body.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::invalid_type(
                "id", "a string",
            )]))
        }
    };
    let input = NewOrganizationInput {
        id,
        fields: typed_body(body)?,
    };
    let make_record = idempotency.clone().map(|pending| {
        Box::new(move |organization: &Organization| {
            let body = json_bytes(&OrganizationResponse::from_organization(
                organization.clone(),
            ))?;
            Ok(pending.record(StatusCode::CREATED, body))
        }) as IdempotencyRecordFor<Organization>
    });
    let outcome = state
        .organizations
        .create_with_id(input, make_record)
        .await?;
    if let Idempotent::Done(organization) = &outcome {
        state
            .activity
            .record(
                &activity,
                actions::ORGANIZATION_CREATED,
                vec![ActivityTarget::named(
                    "organization",
                    organization.id.as_ref(),
                    &organization.name,
                )],
            )
            .await?;
    }
    written_or_replayed(outcome, idempotency.as_ref(), |organization| {
        let body = json_bytes(&OrganizationResponse::from_organization(organization))?;
        Ok((StatusCode::CREATED, body))
    })
}

#[utoipa::path(get, path = "/organizations", tag = "organizations",
    params(("search" = Option<String>, Query, description = "Only organizations whose name contains this text, ignoring case (across Unicode, alike on both backends)"),
           ("domains" = Option<String>, Query, description = "Comma-separated domains; only organizations owning one of them"),
           ("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query, description = "asc, desc (default) or normal")),
    responses((status = 200, body = List<OrganizationResponse>),
              (status = 422, description = "Invalid list parameters (limit, order, cursors)")))]
pub async fn list_organizations(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<List<OrganizationResponse>>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let filter = OrganizationFilter {
        name_contains: query
            .get("search")
            .filter(|text| !text.is_empty())
            .map(str::to_owned),
        // Node and Python send `domains=a,b`; repeated `domains[]=a` pairs are accepted too.
        domains: query
            .rest
            .iter()
            .filter(|(name, _)| name == "domains" || name == "domains[]")
            .flat_map(|(_, value)| value.split(','))
            .map(|domain| domain.trim().to_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect(),
        // An organization-restricted key lists only its organizations.
        ids: caller.grants().organizations.clone(),
    };
    let page = state.organizations.list(filter, query.page()).await?;
    Ok(Json(
        query.list(page, OrganizationResponse::from_organization),
    ))
}

#[utoipa::path(get, path = "/organizations/{id}", tag = "organizations",
    responses((status = 200, body = OrganizationResponse), (status = 404, description = "No such organization")))]
pub async fn get_organization(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    Ok(Json(OrganizationResponse::from_organization(
        state.organizations.get(&id).await?,
    )))
}

#[utoipa::path(get, path = "/organizations/external_id/{external_id}", tag = "organizations",
    responses((status = 200, body = OrganizationResponse), (status = 404, description = "No such organization")))]
pub async fn get_organization_by_external_id(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(external_id): Path<String>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let organization = state.organizations.get_by_external_id(&external_id).await?;
    caller.hide_unless_allowed(organization.id.as_ref(), || {
        ServiceError::OrganizationNotFound(external_id.clone())
    })?;
    Ok(Json(OrganizationResponse::from_organization(organization)))
}

#[utoipa::path(put, path = "/organizations/{id}", tag = "organizations", request_body = OrganizationUpdate,
    responses((status = 200, body = OrganizationResponse),
              (status = 400, description = "external_id is used by another organization (external_id_already_used)"),
              (status = 404, description = "No such organization"),
              (status = 422, description = "Invalid field")))]
pub async fn update_organization(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let input: OrganizationUpdate = typed_body(body)?;
    let organization = state.organizations.update(&id, input).await?;
    state
        .activity
        .record(
            &activity,
            actions::ORGANIZATION_UPDATED,
            vec![ActivityTarget::named(
                "organization",
                organization.id.as_ref(),
                &organization.name,
            )],
        )
        .await?;
    Ok(Json(OrganizationResponse::from_organization(organization)))
}

/// What `DELETE /organizations/{id}` answers: the deletion is complete when it is sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationDeletedResponse {
    #[schema(example = "organization")]
    pub object: &'static str,
    pub id: String,
    pub deleted: bool,
    /// How many audit log events were purged with it (Stele's addition).
    pub purged_events: u64,
}

#[utoipa::path(delete, path = "/organizations/{id}", tag = "organizations",
    responses((status = 200, body = OrganizationDeletedResponse,
               description = "Deleted, with its audit log events purged; what verification needs (chain anchor, tree hashes, signed checkpoints) is kept, and the id is never reused"),
              (status = 404, description = "No such organization")))]
pub async fn delete_organization(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Path(id): Path<String>,
) -> Result<Json<OrganizationDeletedResponse>, ApiError> {
    // A large organization's deletion takes seconds (it purges in steps): on a task of its
    // own, so a client that hangs up stops neither the deletion halfway nor its record.
    // Each step commits on its own, so the start is recorded before the first: a deletion
    // cut short has destroyed events, and the activity log says who began it.
    let (id, deletion) = tokio::spawn(async move {
        state.organizations.get(&id).await?;
        state
            .activity
            .record(
                &activity,
                actions::ORGANIZATION_DELETION_STARTED,
                vec![ActivityTarget::organization(&id)],
            )
            .await?;
        let deletion = state.organizations.delete(&id).await?;
        state
            .activity
            .record(
                &activity,
                actions::ORGANIZATION_DELETED,
                vec![ActivityTarget::organization(&id)],
            )
            .await?;
        Ok::<_, ServiceError>((id, deletion))
    })
    .await
    .map_err(|error| ApiError::internal(format!("deleting an organization: {error}")))??;
    Ok(Json(OrganizationDeletedResponse {
        object: "organization",
        id,
        deleted: true,
        purged_events: deletion.purged,
    }))
}
