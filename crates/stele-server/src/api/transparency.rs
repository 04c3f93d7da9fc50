//! Tamper evidence over HTTP (Stele extensions; WorkOS has no equivalent): signing keys,
//! signed checkpoints, inclusion and consistency proofs, and single-event proof bundles.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use stele_core::merkle::leaf_hash;
use stele_core::model::Checkpoint;
use stele_core::timestamp::format_millis;
use stele_core::FieldError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller};
use crate::error_code::ErrorCode;
use crate::responses::proof_bundle_download;
use crate::services::activity::{actions, ActivityTarget};
use crate::services::transparency::encode_hashes;
use crate::services::ServiceError;
use crate::state::AppState;

/// The `transparency` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_signing_keys))
        .routes(routes!(get_checkpoint))
        .routes(routes!(create_checkpoint))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(proof_bundle))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyResponse {
    #[schema(example = "signing_key")]
    pub object: &'static str,
    /// Hex key id, as in each signature line of a checkpoint.
    pub key_id: String,
    /// C2SP verifier key `<name>+<key id>+<base64(0x01 || public key)>`: what
    /// `stele verify-export --public-key` takes.
    pub verifier_key: String,
    /// The raw Ed25519 public key, base64.
    pub public_key: String,
    /// Whether this server signs new checkpoints with it (older keys stay listed).
    pub current: bool,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<SigningKeyResponse>,
}

#[utoipa::path(get, path = "/audit_logs/signing_keys", tag = "transparency",
    responses((status = 200, body = SigningKeyList)))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> Result<Json<SigningKeyList>, ApiError> {
    let current = state.transparency.signer().verifier().key_id_hex();
    let keys = state.transparency.signing_keys().await?;
    let data = keys
        .into_iter()
        .map(|key| {
            let verifier =
                stele_core::note::NoteVerifier::parse(&key.verifier_key).map_err(|error| {
                    ServiceError::Corrupt {
                        record: format!("signing key {}", key.key_id),
                        detail: error.to_string(),
                    }
                })?;
            Ok(SigningKeyResponse {
                object: "signing_key",
                current: key.key_id == current,
                public_key: BASE64.encode(verifier.public_key().as_bytes()),
                key_id: key.key_id,
                verifier_key: key.verifier_key,
                created_at: format_millis(key.created_at),
            })
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    Ok(Json(SigningKeyList {
        object: "list",
        data,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointResponse {
    #[schema(example = "checkpoint")]
    pub object: &'static str,
    pub organization_id: String,
    pub tree_size: u64,
    /// Base64 Merkle root of the first `tree_size` events.
    pub root_hash: String,
    pub key_id: String,
    /// The C2SP signed note, exactly as signed.
    pub note: String,
    pub created_at: String,
}

impl CheckpointResponse {
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Self {
        Self {
            object: "checkpoint",
            organization_id: checkpoint.organization_id.into(),
            tree_size: checkpoint.tree_size,
            root_hash: BASE64.encode(checkpoint.root_hash),
            key_id: checkpoint.key_id,
            note: checkpoint.note,
            created_at: format_millis(checkpoint.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CheckpointQuery {
    /// A specific checkpoint by size; the newest one when omitted.
    pub tree_size: Option<String>,
}

/// Parses an optional positive integer query parameter into a 422 naming the field.
fn positive(field: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(text) => match text.parse::<u64>() {
            Ok(number) if number > 0 => Ok(Some(number)),
            _ => Err(ApiError::validation(vec![FieldError::invalid(
                field,
                format!("{field} must be a positive whole number."),
            )])),
        },
    }
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/checkpoint", tag = "transparency",
    params(CheckpointQuery),
    responses((status = 200, body = CheckpointResponse),
              (status = 404, description = "Unknown organization, or no such checkpoint yet")))]
pub async fn get_checkpoint(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
    Query(query): Query<CheckpointQuery>,
) -> Result<Json<CheckpointResponse>, ApiError> {
    state.organizations.get_log(&id).await?;
    let size = positive("tree_size", query.tree_size.as_deref())?;
    let checkpoint = match size {
        Some(size) => {
            state
                .transparency
                .checkpoint_for(&id, Some(size), None)
                .await?
        }
        None => state
            .transparency
            .latest_checkpoint(&id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "Checkpoint",
                id: id.clone(),
            })?,
    };
    Ok(Json(CheckpointResponse::from_checkpoint(checkpoint)))
}

/// Signs a checkpoint of the organization's log now (returns the newest one when it
/// already covers every event).
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/checkpoints", tag = "transparency",
    responses((status = 200, body = CheckpointResponse),
              (status = 404, description = "Unknown organization, or it has no events yet")))]
pub async fn create_checkpoint(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<CheckpointResponse>, ApiError> {
    state.organizations.get_log(&id).await?;
    let checkpoint = state
        .transparency
        .checkpoint_now(&id)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            kind: "Checkpoint",
            id: id.clone(),
        })?;
    Ok(Json(CheckpointResponse::from_checkpoint(checkpoint)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProofResponse {
    #[schema(example = "inclusion_proof")]
    pub object: &'static str,
    pub organization_id: String,
    pub event_id: String,
    /// The event's position in the tree: its sequence minus one.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 `SHA-256(0x00 || stored event bytes)`.
    pub leaf_hash: String,
    /// Base64 sibling hashes from the leaf up (RFC 9162 §2.1.3).
    pub hashes: Vec<String>,
    pub checkpoint: CheckpointResponse,
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/events/{event_id}/inclusion_proof", tag = "transparency",
    params(CheckpointQuery),
    responses((status = 200, body = InclusionProofResponse),
              (status = 404, description = "Unknown organization, event or checkpoint")))]
pub async fn inclusion_proof(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path((id, event_id)): Path<(String, String)>,
    Query(query): Query<CheckpointQuery>,
) -> Result<Json<InclusionProofResponse>, ApiError> {
    state.organizations.get_log(&id).await?;
    let size = positive("tree_size", query.tree_size.as_deref())?;
    let event = state.events.get(&id, &event_id).await?.event;
    let leaf = event.sequence as u64 - 1;
    let checkpoint = state
        .transparency
        .checkpoint_for(&id, size, Some(leaf))
        .await?;
    if leaf >= checkpoint.tree_size {
        return Err(ServiceError::Rejected {
            code: ErrorCode::EventNotInCheckpoint,
            message: format!(
                "Event '{event_id}' has sequence {}, after the checkpoint of tree size {}.",
                event.sequence, checkpoint.tree_size
            ),
        }
        .into());
    }
    let hashes = state
        .transparency
        .inclusion_proof(&id, leaf, checkpoint.tree_size)
        .await?;
    Ok(Json(InclusionProofResponse {
        object: "inclusion_proof",
        organization_id: id,
        event_id,
        leaf_index: leaf,
        tree_size: checkpoint.tree_size,
        leaf_hash: BASE64.encode(leaf_hash(&event.canonical)),
        hashes: encode_hashes(&hashes),
        checkpoint: CheckpointResponse::from_checkpoint(checkpoint),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConsistencyQuery {
    /// The older tree size (at least 1).
    pub first: Option<String>,
    /// The newer tree size; the newest checkpoint's when omitted.
    pub second: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProofResponse {
    #[schema(example = "consistency_proof")]
    pub object: &'static str,
    pub organization_id: String,
    pub first: u64,
    pub second: u64,
    /// Base64 hashes per RFC 9162 §2.1.4.
    pub hashes: Vec<String>,
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/consistency_proof", tag = "transparency",
    params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProofResponse),
              (status = 404, description = "Unknown organization"),
              (status = 422, description = "Sizes missing, not 1 <= first <= second, or beyond the log")))]
pub async fn consistency_proof(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
    Query(query): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProofResponse>, ApiError> {
    state.organizations.get_log(&id).await?;
    let Some(first) = positive("first", query.first.as_deref())? else {
        return Err(ApiError::validation(vec![FieldError::required("first")]));
    };
    let second = match positive("second", query.second.as_deref())? {
        Some(second) => second,
        None => {
            state
                .transparency
                .checkpoint_for(&id, None, None)
                .await?
                .tree_size
        }
    };
    let size = state.transparency.tree_size(&id).await?;
    if first > second || second > size {
        return Err(ApiError::validation(vec![FieldError::invalid(
            "second",
            format!("Need 1 <= first <= second <= {size} (the log's size); got first={first}, second={second}."),
        )]));
    }
    let hashes = state
        .transparency
        .consistency_proof(&id, first, second)
        .await?;
    Ok(Json(ConsistencyProofResponse {
        object: "consistency_proof",
        organization_id: id,
        first,
        second,
        hashes: encode_hashes(&hashes),
    }))
}

/// One event's proof bundle: proven JSONL (checkpoint, the event with its inclusion proof,
/// signed manifest) that `stele verify-export` checks offline.
#[utoipa::path(get, path = "/organizations/{id}/audit_logs/events/{event_id}/proof_bundle", tag = "transparency",
    responses((status = 200, content_type = "application/x-ndjson", description = "Proven JSONL"),
              (status = 404, description = "Unknown organization or event")))]
pub async fn proof_bundle(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.organizations.get_log(&id).await?;
    let bundle = state.transparency.proof_bundle(&id, &event_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::PROOF_BUNDLE_DOWNLOADED,
            vec![
                ActivityTarget::new("event", &event_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(proof_bundle_download(&event_id, bundle))
}
