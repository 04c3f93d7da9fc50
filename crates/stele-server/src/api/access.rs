//! Who may call which API route: the one table from each route (method and path template)
//! to the scopes that may call it and where its organization is, and the layer that
//! enforces it before any handler or the idempotency layer runs.
//!
//! A key lacking every accepted scope gets 403 `forbidden` naming them. An
//! organization-restricted key naming another organization (in the path, the query or the
//! body) gets 403 naming that organization, whether or not it exists; resources found by
//! their own id (an export) answer 404 when they belong to another organization, and
//! lists are pinned to the key's organizations by their handlers. A route missing from
//! the table is refused (fail closed), and a unit test fails for it.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use stele_core::access::{KeyGrants, Scope, ACTIVITY_LOG_ORGANIZATION_ID};

use crate::api::error::ApiError;
use crate::api::extract::{authenticate, ApiCaller};
use crate::error_code::ErrorCode;
use crate::services::ServiceError;
use crate::state::AppState;
use stele_core::FieldError;

/// Where a route names the organization it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationPin {
    /// The route is not about one organization (schemas, signing keys).
    Global,
    /// The path parameter `{id}`.
    Path,
    /// The `organization_id` query parameter.
    Query,
    /// The organization the JSON body names (`organization_id`, `organization`, or each
    /// batch item's `organization_id`).
    Body,
    /// A resource found by its own id; the handler answers 404 when it belongs to an
    /// organization the key may not use.
    Resource,
    /// A list the handler restricts to the key's organizations.
    List,
    /// Only keys not restricted to organizations (creating an organization).
    Unrestricted,
    /// Stele's own activity log (the reserved organization).
    ActivityLog,
}

/// The access rule of one route.
#[derive(Debug, Clone, Copy)]
pub struct RouteAccess {
    pub method: &'static str,
    pub path: &'static str,
    /// Scopes any one of which lets a key call the route (`admin` always does); empty for
    /// routes that need no API key.
    pub scopes: &'static [Scope],
    pub organization: OrganizationPin,
}

use OrganizationPin::*;
use Scope::*;

const fn rule(
    method: &'static str,
    path: &'static str,
    scopes: &'static [Scope],
    organization: OrganizationPin,
) -> RouteAccess {
    RouteAccess {
        method,
        path,
        scopes,
        organization,
    }
}

const PUBLIC: &[Scope] = &[];
const ANY_KEY: &[Scope] = &[EventsWrite, EventsRead, SchemasWrite, OrganizationsWrite];
const READ_ORGANIZATIONS: &[Scope] = &[EventsRead, OrganizationsWrite];
const READ_SCHEMAS: &[Scope] = &[EventsWrite, EventsRead, SchemasWrite];
const ADMIN_ONLY: &[Scope] = &[Admin];

/// Every API route and who may call it.
pub const ROUTE_ACCESS: &[RouteAccess] = &[
    rule("GET", "/healthz", PUBLIC, Global),
    // Organizations.
    rule(
        "POST",
        "/organizations",
        &[OrganizationsWrite],
        Unrestricted,
    ),
    rule("GET", "/organizations", READ_ORGANIZATIONS, List),
    rule("GET", "/organizations/{id}", READ_ORGANIZATIONS, Path),
    rule(
        "GET",
        "/organizations/external_id/{external_id}",
        READ_ORGANIZATIONS,
        Resource,
    ),
    rule("PUT", "/organizations/{id}", &[OrganizationsWrite], Path),
    rule("DELETE", "/organizations/{id}", &[OrganizationsWrite], Path),
    rule(
        "GET",
        "/organizations/{id}/audit_logs_retention",
        READ_ORGANIZATIONS,
        Path,
    ),
    rule(
        "PUT",
        "/organizations/{id}/audit_logs_retention",
        &[OrganizationsWrite],
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_log_configuration",
        READ_ORGANIZATIONS,
        Path,
    ),
    // Actions and schema versions.
    rule(
        "POST",
        "/audit_logs/actions/{action}/schemas",
        &[SchemasWrite],
        Global,
    ),
    rule(
        "POST",
        "/audit_logs/actions/{action}/schemas/check",
        &[SchemasWrite],
        Global,
    ),
    rule(
        "GET",
        "/audit_logs/actions/{action}/schemas",
        READ_SCHEMAS,
        Global,
    ),
    rule("GET", "/audit_logs/actions", READ_SCHEMAS, Global),
    // Events.
    rule("POST", "/audit_logs/events", &[EventsWrite], Body),
    rule("POST", "/audit_logs/events/validate", &[EventsWrite], Body),
    rule("POST", "/audit_logs/events/batch", &[EventsWrite], Body),
    rule("GET", "/audit_logs/events", &[EventsRead], Query),
    // Exports: the download is authorised by its signed link, not by a key.
    rule("POST", "/audit_logs/exports", &[EventsRead], Body),
    rule("GET", "/audit_logs/exports/{id}", &[EventsRead], Resource),
    rule("GET", "/audit_logs/exports/{id}/download", PUBLIC, Global),
    // Checkpoints and proofs.
    rule("GET", "/audit_logs/signing_keys", ANY_KEY, Global),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/checkpoint",
        &[EventsRead],
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/checkpoints",
        &[EventsRead],
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/events/{event_id}/inclusion_proof",
        &[EventsRead],
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/consistency_proof",
        &[EventsRead],
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/events/{event_id}/proof_bundle",
        &[EventsRead],
        Path,
    ),
    // Stele's own activity log.
    rule("GET", "/audit_logs/activity", ADMIN_ONLY, ActivityLog),
    // Log streams. Creating or replaying a stream sends the organization's events to a
    // destination of the caller's choosing, which is reading them: only `admin` may.
    rule(
        "POST",
        "/organizations/{id}/audit_logs/log_streams",
        ADMIN_ONLY,
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/log_streams",
        READ_ORGANIZATIONS,
        Path,
    ),
    rule(
        "GET",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}",
        READ_ORGANIZATIONS,
        Path,
    ),
    rule(
        "DELETE",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}",
        &[OrganizationsWrite],
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}/replay",
        ADMIN_ONLY,
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}/test",
        &[OrganizationsWrite],
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}/pause",
        &[OrganizationsWrite],
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/log_streams/{stream_id}/resume",
        &[OrganizationsWrite],
        Path,
    ),
    // Admin Portal links: a link lets its holder read the organization's events.
    rule("POST", "/portal/generate_link", &[EventsRead], Body),
    rule("POST", "/portal/revoke_link", &[EventsRead], Body),
    // Quarantined events hold event bodies: listing them is a read of audit data;
    // accepting or discarding one is a write of events.
    rule(
        "GET",
        "/organizations/{id}/audit_logs/quarantine",
        &[EventsRead],
        Path,
    ),
    rule(
        "DELETE",
        "/organizations/{id}/audit_logs/quarantine/{quarantine_id}",
        &[EventsWrite],
        Path,
    ),
    rule(
        "POST",
        "/organizations/{id}/audit_logs/quarantine/{quarantine_id}/accept",
        &[EventsWrite],
        Path,
    ),
    // Operations.
    rule("GET", "/metrics", ADMIN_ONLY, Global),
];

/// The rule for a route, by method and matched path template.
pub fn route_access(method: &str, path: &str) -> Option<&'static RouteAccess> {
    ROUTE_ACCESS
        .iter()
        .find(|rule| rule.method.eq_ignore_ascii_case(method) && rule.path == path)
}

fn forbidden(message: String) -> ApiError {
    ServiceError::Forbidden {
        code: ErrorCode::Forbidden,
        message,
    }
    .into()
}

/// The 403 for a key that may not use `organization_id`.
pub fn organization_forbidden(organization_id: &str) -> ApiError {
    forbidden(format!(
        "This API key is not allowed to use organization '{organization_id}'."
    ))
}

/// Refuses a key that may not use `organization_id` (403 naming it).
pub fn require_organization(grants: &KeyGrants, organization_id: &str) -> Result<(), ApiError> {
    if grants.allows_organization(organization_id) {
        Ok(())
    } else {
        Err(organization_forbidden(organization_id))
    }
}

fn check_scopes(grants: &KeyGrants, rule: &RouteAccess) -> Result<(), ApiError> {
    if grants.has_any(rule.scopes) {
        return Ok(());
    }
    let needed = rule
        .scopes
        .iter()
        .map(|scope| format!("'{scope}'"))
        .collect::<Vec<_>>();
    let needed = match needed.as_slice() {
        [one] => format!("the {one} scope"),
        many => format!("one of the scopes {}", many.join(", ")),
    };
    Err(forbidden(format!(
        "This API key lacks {needed}, needed for {} {} (it has: {}).",
        rule.method,
        rule.path,
        grants.scope_names().join(", ")
    )))
}

/// The `organization_id` values of a query string.
fn query_organizations(uri: &axum::http::Uri) -> Vec<String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|query| query.0)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name == "organization_id")
        .map(|(_, value)| value)
        .collect()
}

/// Authenticates the key, then applies the route's rule from [`ROUTE_ACCESS`].
pub async fn access_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_default();
    // The router answers HEAD with the GET handler, which would run its side effects (a
    // read recorded in the activity log, an export streamed) to send no body. HEAD is for
    // load balancers' checks: it is answered where GET needs no key (`/healthz`), and is
    // 405 elsewhere.
    if request.method() == axum::http::Method::HEAD {
        return match route_access("GET", &path) {
            Some(rule) if rule.scopes.is_empty() => next.run(request).await,
            _ => ApiError::MethodNotAllowed {
                method: "HEAD".into(),
                path: request.uri().path().to_owned(),
            }
            .into_response(),
        };
    }
    let Some(rule) = route_access(request.method().as_str(), &path) else {
        tracing::error!(method = %request.method(), path, "route has no access rule");
        return forbidden(format!(
            "{} {path} has no access rule, so no key may call it.",
            request.method()
        ))
        .into_response();
    };
    if rule.scopes.is_empty() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let caller = match authenticate(&parts, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let grants = &caller.0.grants;
    if let Err(error) = check_scopes(grants, rule) {
        return error.into_response();
    }
    let body = match rule.organization {
        Global | Resource | List => body,
        ActivityLog => {
            if let Err(error) = require_organization(grants, ACTIVITY_LOG_ORGANIZATION_ID) {
                return error.into_response();
            }
            body
        }
        Unrestricted => {
            if grants.is_restricted() {
                return forbidden(format!(
                    "This API key is restricted to organizations, so it cannot call {} {}.",
                    rule.method, rule.path
                ))
                .into_response();
            }
            body
        }
        Path => {
            let params = match RawPathParams::from_request_parts(&mut parts, &state).await {
                Ok(params) => params,
                // A path that does not decode (say, invalid UTF-8 in `{id}`): the same
                // 422 naming the path as a handler's own extractor gives.
                Err(rejection) => {
                    return ApiError::validation(vec![FieldError::invalid(
                        "path",
                        rejection.body_text(),
                    )])
                    .into_response()
                }
            };
            if let Some((_, id)) = params.iter().find(|(name, _)| *name == "id") {
                if let Err(error) = require_organization(grants, id) {
                    return error.into_response();
                }
            }
            body
        }
        Query => {
            for id in query_organizations(&parts.uri) {
                if let Err(error) = require_organization(grants, &id) {
                    return error.into_response();
                }
            }
            body
        }
        Body => {
            // Only a key that cannot use every organization needs the body read here.
            if grants.is_restricted() || !grants.has(Scope::Admin) {
                let limit = state.config.body_limit_bytes;
                let Ok(bytes) = to_bytes(body, limit).await else {
                    return ApiError::PayloadTooLarge { limit }.into_response();
                };
                if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                    for id in body_organizations(&value) {
                        if let Err(error) = require_organization(grants, id) {
                            return error.into_response();
                        }
                    }
                }
                Body::from(bytes)
            } else {
                body
            }
        }
    };
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// The organizations a JSON body names: `organization_id` (events, exports),
/// `organization` (Admin Portal links, as WorkOS names it) and each batch item's
/// `organization_id`. A restricted key naming any other organization is refused whole.
fn body_organizations(value: &Value) -> Vec<&str> {
    let Value::Object(members) = value else {
        return Vec::new();
    };
    let mut ids: Vec<&str> = ["organization_id", "organization"]
        .iter()
        .filter_map(|name| members.get(*name).and_then(Value::as_str))
        .collect();
    if let Some(Value::Array(items)) = members.get("events") {
        ids.extend(
            items
                .iter()
                .filter_map(|item| item.get("organization_id").and_then(Value::as_str)),
        );
    }
    ids
}

/// Documents what the access layer answers on every keyed route of `document` (401 for a
/// missing or unknown key, 403 `forbidden` naming the scopes from [`ROUTE_ACCESS`]), so
/// `/openapi.json` states each route's scopes without repeating them in every handler.
pub fn document_access(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Response as DocResponse};
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("PUT", item.put.as_mut()),
            ("DELETE", item.delete.as_mut()),
            ("PATCH", item.patch.as_mut()),
        ];
        for (method, operation) in operations {
            let (Some(operation), Some(rule)) = (operation, route_access(method, path)) else {
                continue;
            };
            if rule.scopes.is_empty() {
                continue;
            }
            let scopes = rule
                .scopes
                .iter()
                .map(|scope| format!("`{scope}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                RefOr::T(DocResponse::new(
                    "Missing or unknown API key (unauthorized)",
                ))
            });
            let restriction = match rule.organization {
                Path | Query | Body => " or names an organization the key is restricted from",
                Unrestricted => " or is restricted to organizations",
                ActivityLog => " or is restricted to organizations",
                Global | Resource | List => "",
            };
            responses.entry("403".into()).or_insert_with(|| {
                RefOr::T(DocResponse::new(format!(
                    "The key lacks every accepted scope ({scopes}; `admin` always works){restriction} (forbidden)"
                )))
            });
            let mut description = operation.description.take().unwrap_or_default();
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("API key scopes: {scopes} or `admin`."));
            operation.description = Some(description);
        }
    }
}

impl ApiCaller {
    pub fn grants(&self) -> &KeyGrants {
        &self.0.grants
    }

    /// A 404 for a resource of an organization this key may not use, so that its
    /// existence stays hidden.
    pub fn hide_unless_allowed(
        &self,
        organization_id: &str,
        not_found: impl FnOnce() -> ServiceError,
    ) -> Result<(), ApiError> {
        if self.0.grants.allows_organization(organization_id) {
            Ok(())
        } else {
            Err(not_found().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route of the API has exactly one rule, and every rule names a route: a route
    /// added without deciding who may call it fails here (and is refused at run time).
    #[test]
    fn every_api_route_has_exactly_one_access_rule() {
        let document = crate::api::openapi_document();
        let mut routes = BTreeSet::new();
        for (path, item) in document.paths.paths.iter() {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        let mut rules = BTreeSet::new();
        for rule in ROUTE_ACCESS {
            assert!(
                rules.insert((rule.method.to_owned(), rule.path.to_owned())),
                "{} {} has two access rules",
                rule.method,
                rule.path
            );
        }
        let missing: Vec<_> = routes.difference(&rules).collect();
        assert!(
            missing.is_empty(),
            "routes without an access rule in api/access.rs: {missing:?}"
        );
        let stale: Vec<_> = rules.difference(&routes).collect();
        assert!(
            stale.is_empty(),
            "access rules for routes that do not exist: {stale:?}"
        );
    }

    #[test]
    fn path_rules_are_on_organization_paths() {
        for rule in ROUTE_ACCESS {
            if rule.organization == Path {
                assert!(
                    rule.path.starts_with("/organizations/{id}"),
                    "{}",
                    rule.path
                );
            }
        }
    }
}
