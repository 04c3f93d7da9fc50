//! `/audit_logs/exports`: WorkOS-compatible exports (CSV, or JSONL as an extension) with
//! signed download links.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use stele_core::export::ExportFormat;
use stele_core::model::{EventQuery, Export, Idempotent};
use stele_core::timestamp::format_millis;
use stele_core::FieldError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::events::search_metadata;
use crate::api::extract::{typed_body, Activity, ApiCaller, JsonBody};
use crate::api::idempotency::written_or_replayed;
use crate::api::idempotency::IdempotencyContext;
use crate::api::wire::json_bytes;
use crate::error_code::ErrorCode;
use crate::origin::RequestOrigin;
use crate::services::activity::{actions, ActivityTarget, Actor};
use crate::services::exports::{self, is_downloadable};
use crate::services::filters::{check_value_count, parse_bound};
use crate::services::ServiceError;
use crate::state::AppState;

/// The `exports` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_export))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateExportBody {
    pub organization_id: String,
    /// Inclusive bounds on `occurred_at` (RFC 3339).
    pub range_start: String,
    pub range_end: String,
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    pub actor_names: Option<Vec<String>>,
    /// Alias of `actor_names` (older SDKs).
    #[serde(default)]
    pub actors: Option<Vec<String>>,
    #[serde(default)]
    pub actor_ids: Option<Vec<String>>,
    /// Target types.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// `csv` (default) or `jsonl` (one stored event per line, exactly as hashed).
    #[serde(default)]
    pub format: Option<String>,
    /// With `jsonl`: add a signed checkpoint, each event's inclusion proof and a signed
    /// manifest, so `stele verify-export` can check the file offline (proven JSONL).
    #[serde(default)]
    pub include_proofs: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    #[schema(example = "audit_log_export")]
    pub object: &'static str,
    pub id: String,
    /// `ready` while the export can be downloaded (24 hours), `error` afterwards.
    pub state: &'static str,
    /// A signed link valid for 10 minutes; every GET issues a fresh one.
    pub url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The base of download links: the configured public URL, or this request's host.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.config.public_url {
        return base.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    export: &Export,
) -> Result<ExportResponse, ApiError> {
    let downloadable = is_downloadable(export);
    let url = if downloadable {
        Some(format!(
            "{}{}",
            public_base(state, headers),
            state.exports.download_path(&export.id).await?
        ))
    } else {
        None
    };
    Ok(ExportResponse {
        object: "audit_log_export",
        id: export.id.clone().into(),
        state: if downloadable { "ready" } else { "error" },
        url,
        created_at: format_millis(export.created_at),
        updated_at: format_millis(export.created_at),
    })
}

fn non_empty(values: Option<Vec<String>>) -> Vec<String> {
    values
        .unwrap_or_default()
        .into_iter()
        .filter(|value| !value.is_empty())
        .collect()
}

#[utoipa::path(post, path = "/audit_logs/exports", tag = "audit logs", request_body = CreateExportBody,
    responses((status = 201, body = ExportResponse),
              (status = 400, description = "invalid_audit_log_export_range_date: range_start is after range_end"),
              (status = 404, description = "Unknown organization"), (status = 422, description = "Malformed request")))]
pub async fn create_export(
    State(state): State<AppState>,
    Activity(activity): Activity,
    headers: HeaderMap,
    IdempotencyContext(idempotency): IdempotencyContext,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let body: CreateExportBody = typed_body(body)?;
    let mut errors = Vec::new();
    let from = parse_bound("range_start", Some(&body.range_start), &mut errors);
    let to = parse_bound("range_end", Some(&body.range_end), &mut errors);
    let format = match body.format.as_deref() {
        None => Some(ExportFormat::Csv),
        Some(name) => ExportFormat::parse(name).or_else(|| {
            errors.push(FieldError::invalid(
                "format",
                "format must be 'csv' or 'jsonl'.",
            ));
            None
        }),
    };
    let format = match (format, body.include_proofs.unwrap_or(false)) {
        (Some(ExportFormat::Jsonl), true) => Some(ExportFormat::ProvenJsonl),
        (Some(ExportFormat::Jsonl), false) | (Some(ExportFormat::Csv), false) => format,
        (Some(_), true) => {
            errors.push(FieldError::invalid(
                "include_proofs",
                "include_proofs needs format 'jsonl'.",
            ));
            None
        }
        (other, _) => other,
    };
    let mut actor_names = non_empty(body.actor_names);
    actor_names.extend(non_empty(body.actors));
    let (actions, actor_ids, target_types) = (
        non_empty(body.actions),
        non_empty(body.actor_ids),
        non_empty(body.targets),
    );
    check_value_count("actions", &actions, &mut errors);
    check_value_count("actor_names", &actor_names, &mut errors);
    check_value_count("actor_ids", &actor_ids, &mut errors);
    check_value_count("targets", &target_types, &mut errors);
    let (Some(from), Some(to), Some(format), true) = (from, to, format, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    exports::check_range(Some(from), Some(to))?;
    let query = EventQuery {
        organization_id: body.organization_id.into(),
        actions,
        actor_ids,
        actor_names,
        target_types,
        target_ids: Vec::new(),
        occurred_from: Some(from),
        occurred_to: Some(to),
        up_to_sequence: None,
    };
    let export = exports::prepare(query, format);
    let response_body = json_bytes(&render(&state, &headers, &export).await?)?;
    let record = idempotency
        .as_ref()
        .map(|pending| pending.record(StatusCode::CREATED, response_body.clone()));
    let outcome = match state.exports.create(export, record).await? {
        // A concurrent request with the same key created it first.
        Idempotent::AlreadyDone(mut first) => {
            if let Some(fresh) = replayed_export_body(&state, &headers, &first.body).await {
                first.body = fresh;
            }
            Idempotent::AlreadyDone(first)
        }
        done => done,
    };
    if let Idempotent::Done(export) = &outcome {
        state
            .activity
            .record_with(
                &activity,
                actions::EXPORT_CREATED,
                vec![
                    ActivityTarget::new("export", export.id.as_ref()),
                    ActivityTarget::organization(export.query.organization_id.as_ref()),
                ],
                search_metadata(&export.query, 0)
                    .into_iter()
                    .filter(|(name, _)| name == "filters")
                    .collect(),
            )
            .await?;
    }
    written_or_replayed(outcome, idempotency.as_ref(), |_| {
        Ok((StatusCode::CREATED, response_body))
    })
}

/// The body of a replayed export creation with a freshly signed link (the stored one's
/// link expires 10 minutes after the first response), or `None` when `body` is not an
/// export or the export is gone.
pub async fn replayed_export_body(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<u8>> {
    let stored: serde_json::Value = serde_json::from_slice(body).ok()?;
    if stored.get("object")?.as_str()? != "audit_log_export" {
        return None;
    }
    let export = state
        .exports
        .get(stored.get("id")?.as_str()?)
        .await
        .ok()??;
    json_bytes(&render(state, headers, &export).await.ok()?).ok()
}

async fn find(state: &AppState, id: &str) -> Result<Export, ApiError> {
    state.exports.get(id).await?.ok_or_else(|| {
        ServiceError::NotFound {
            kind: "Audit log export",
            id: id.to_owned(),
        }
        .into()
    })
}

#[utoipa::path(get, path = "/audit_logs/exports/{id}", tag = "audit logs",
    responses((status = 200, body = ExportResponse), (status = 404, description = "Unknown export")))]
pub async fn get_export(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ExportResponse>, ApiError> {
    let export = find(&state, &id).await?;
    // Another organization's export is as unknown to a restricted key as a missing one.
    caller.hide_unless_allowed(export.query.organization_id.as_ref(), || {
        ServiceError::NotFound {
            kind: "Audit log export",
            id: id.clone(),
        }
    })?;
    Ok(Json(render(&state, &headers, &export).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DownloadParams {
    /// Expiry of the link, Unix milliseconds.
    #[param(value_type = i64)]
    pub expires: Option<String>,
    pub signature: Option<String>,
}

#[utoipa::path(get, path = "/audit_logs/exports/{id}/download", tag = "audit logs", params(DownloadParams),
    security(()),
    responses((status = 200, description = "The export file (text/csv or application/x-ndjson)"),
              (status = 403, description = "The link is forged or expired"),
              (status = 410, description = "The export is older than its 24-hour download window")))]
pub async fn download_export(
    State(state): State<AppState>,
    origin: RequestOrigin,
    Path(id): Path<String>,
    Query(params): Query<DownloadParams>,
) -> Result<Response, ApiError> {
    // Missing or malformed parameters are just another invalid link (a JSON 403, not a
    // plain-text query rejection).
    let expires = params
        .expires
        .as_deref()
        .and_then(|text| text.parse::<i64>().ok());
    let genuine = match (expires, params.signature.as_deref()) {
        (Some(expires), Some(signature)) => {
            state
                .exports
                .link_is_genuine(&id, expires, signature)
                .await?
        }
        _ => false,
    };
    if !genuine {
        return Err(ServiceError::Forbidden {
            code: ErrorCode::InvalidDownloadLink,
            message:
                "This download link is invalid or has expired; GET the export for a fresh one."
                    .into(),
        }
        .into());
    }
    let export = find(&state, &id).await?;
    if !is_downloadable(&export) {
        let why = if export.complete {
            "This export is older than its 24-hour download window; create a new one."
        } else {
            "Retention has purged events this export covered, so it can no longer be produced as it was; create a new one."
        };
        return Err(ServiceError::Gone(why.into()).into());
    }
    // Recorded before a byte is sent: a download whose record fails is refused.
    state
        .activity
        .record(
            &origin.context(Actor::DownloadLink),
            actions::EXPORT_DOWNLOADED,
            vec![
                ActivityTarget::new("export", export.id.as_ref()),
                ActivityTarget::organization(export.query.organization_id.as_ref()),
            ],
        )
        .await?;
    let format = export.format;
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        export.id,
        format.file_extension()
    );
    let mut response = Response::new(Body::from_stream(state.exports.stream(export)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
