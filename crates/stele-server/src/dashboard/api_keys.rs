//! API keys: the list, creating one (its secret is shown on that one response only) and
//! revoking one.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use stele_core::access::{grants_from_names, Scope};
use stele_core::model::ApiKey;

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::page::{display_time, no_store, render, FormData, Layout, PageError};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::ServiceError;
use crate::state::AppState;

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub scopes: String,
    /// "all", or the organization ids the key is restricted to.
    pub organizations: String,
}

impl KeyRow {
    fn from_key(key: ApiKey) -> Self {
        KeyRow {
            scopes: key.grants.scope_names().join(", "),
            organizations: if key.grants.is_restricted() {
                key.grants.organizations.join(", ")
            } else {
                "all".to_owned()
            },
            id: key.id.into(),
            name: key.name,
            created_at: display_time(key.created_at),
            revoked_at: key.revoked_at.map(display_time),
        }
    }
}

/// A key created on this response, with its secret.
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub scopes: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    created: Option<NewKey>,
    revoked: Option<String>,
    error: Option<String>,
    /// Every scope a key can be given, for the form.
    scope_names: Vec<&'static str>,
}

#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    #[serde(default)]
    revoked: Option<String>,
}

async fn view(state: &AppState, user: &DashboardUser) -> Result<ApiKeysPage, PageError> {
    let mut keys: Vec<KeyRow> = state
        .api_keys
        .list()
        .await?
        .into_iter()
        .map(KeyRow::from_key)
        .collect();
    // Newest first, like every other list.
    keys.reverse();
    Ok(ApiKeysPage {
        layout: Layout::for_user(user, "api-keys"),
        keys,
        created: None,
        revoked: None,
        error: None,
        scope_names: Scope::ALL.iter().map(|scope| scope.as_str()).collect(),
    })
}

pub async fn index(
    State(state): State<AppState>,
    user: DashboardUser,
    Query(query): Query<KeysQuery>,
) -> Result<Response, PageError> {
    let mut page = view(&state, &user).await?;
    page.revoked = query.revoked;
    render(&page)
}

pub async fn create(
    State(state): State<AppState>,
    user: DashboardUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let name = form.get("name").trim();
    if name.is_empty() || name.len() > 100 {
        let mut page = view(&state, &user).await?;
        page.error = Some(
            "Name the key (1 to 100 characters), for example after the service that uses it."
                .into(),
        );
        return render(&page);
    }
    let scopes: Vec<String> = form.all("scope").map(str::to_owned).collect();
    let organizations: Vec<String> = form
        .get("organizations")
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let grants = match grants_from_names(&scopes, &organizations) {
        Ok(grants) => grants,
        Err(message) => {
            let mut page = view(&state, &user).await?;
            page.error = Some(message);
            return render(&page);
        }
    };
    let (key, secret) = match state.api_keys.create(name, None, grants).await {
        Ok(created) => created,
        Err(ServiceError::OrganizationNotFound(id)) => {
            let mut page = view(&state, &user).await?;
            page.error = Some(format!("There is no organization {id}."));
            return render(&page);
        }
        Err(other) => return Err(other.into()),
    };
    state
        .activity
        .record(
            &user.activity,
            actions::API_KEY_CREATED,
            vec![ActivityTarget::api_key(&key)],
        )
        .await?;
    let mut page = view(&state, &user).await?;
    page.created = Some(NewKey {
        scopes: key.grants.scope_names().join(", "),
        id: key.id.into(),
        name: key.name,
        secret,
    });
    // The secret is on this page only: keep it out of every cache.
    Ok(no_store(render(&page)?))
}

pub async fn revoke(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    if !state.api_keys.revoke(&id).await? {
        return Err(PageError::NotFound(format!(
            "There is no active API key {id}."
        )));
    }
    state
        .activity
        .record(
            &user.activity,
            actions::API_KEY_REVOKED,
            vec![ActivityTarget::new("api_key", &id)],
        )
        .await?;
    Ok(Redirect::to(&format!("/dashboard/api-keys?revoked={id}")).into_response())
}
