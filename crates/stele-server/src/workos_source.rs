//! Reads what `stele import` copies from a server speaking the WorkOS API (WorkOS itself
//! or another Stele): every page of the organization and action lists, every schema
//! version of each action, and each organization's retention.

use anyhow::{anyhow, bail, Context};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Map, Value};
use stele_core::model::{Organization, OrganizationDomain};
use stele_core::schema::parse_schema_definition;
use stele_core::timestamp::{now_millis, parse_instant};

use crate::services::import::{SourceAction, SourceSnapshot};

/// A client for one source deployment.
pub struct WorkosSource {
    client: Client,
    base: Url,
    api_key: String,
}

impl WorkosSource {
    pub fn new(base_url: &str, api_key: &str) -> anyhow::Result<Self> {
        let mut base =
            Url::parse(base_url).with_context(|| format!("--from {base_url:?} is not a URL"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            client: Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            base,
            api_key: api_key.to_owned(),
        })
    }

    /// GET `segments` joined under the base URL; `None` for a 404.
    async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<Option<Value>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow!("--from cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut().extend_pairs(query);
        let response = self
            .client
            .get(url.clone())
            .bearer_auth(&self.api_key)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response
            .text()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("GET {url}: the response is not JSON"))
    }

    /// Every item of a list endpoint, following `list_metadata.after` until it is null.
    async fn all_pages(&self, segments: &[&str], order: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100"), ("order", order)];
            if let Some(cursor) = &after {
                query.push(("after", cursor));
            }
            let page = self
                .get(segments, &query)
                .await?
                .ok_or_else(|| anyhow!("GET /{}: not found", segments.join("/")))?;
            let data = page["data"]
                .as_array()
                .ok_or_else(|| anyhow!("GET /{}: no data list", segments.join("/")))?;
            items.extend(data.iter().cloned());
            after = page["list_metadata"]["after"].as_str().map(str::to_owned);
            if after.is_none() || data.is_empty() {
                return Ok(items);
            }
        }
    }

    /// Reads everything the import copies, reporting each step through `progress`.
    pub async fn snapshot(
        &self,
        progress: &mut dyn FnMut(String),
    ) -> anyhow::Result<SourceSnapshot> {
        let mut snapshot = SourceSnapshot::default();
        for item in self.all_pages(&["organizations"], "desc").await? {
            let mut organization = organization_from(&item)?;
            let retention = self
                .get(
                    &["organizations", &organization.id, "audit_logs_retention"],
                    &[],
                )
                .await?;
            organization.retention_period_in_days = retention
                .as_ref()
                .and_then(|body| body["retention_period_in_days"].as_i64())
                .filter(|days| *days > 0);
            snapshot.organizations.push(organization);
        }
        progress(format!(
            "read {} organizations",
            snapshot.organizations.len()
        ));
        for item in self.all_pages(&["audit_logs", "actions"], "desc").await? {
            let name = item["name"]
                .as_str()
                .ok_or_else(|| anyhow!("an action without a name: {item}"))?
                .to_owned();
            let mut versions = self
                .all_pages(&["audit_logs", "actions", &name, "schemas"], "asc")
                .await?;
            versions.sort_by_key(|version| version["version"].as_i64().unwrap_or(0));
            let definitions = versions
                .iter()
                .enumerate()
                .map(|(index, version)| {
                    if version["version"].as_i64() != Some(index as i64 + 1) {
                        bail!("action {name}: the source's versions are not numbered 1, 2, 3...");
                    }
                    parse_schema_definition(version).map_err(|errors| {
                        anyhow!(
                            "action {name} version {}: {}",
                            index + 1,
                            errors
                                .into_iter()
                                .map(|error| error.message)
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            progress(format!(
                "read action {name}: {} versions",
                definitions.len()
            ));
            snapshot.actions.push(SourceAction {
                name,
                versions: definitions,
            });
        }
        Ok(snapshot)
    }
}

fn instant(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|text| parse_instant(text).ok())
        .unwrap_or_else(now_millis)
}

fn organization_from(item: &Value) -> anyhow::Result<Organization> {
    let id = item["id"]
        .as_str()
        .ok_or_else(|| anyhow!("an organization without an id: {item}"))?;
    let metadata: Map<String, Value> = item["metadata"].as_object().cloned().unwrap_or_default();
    let domains = item["domains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|domain| {
            Some(OrganizationDomain {
                id: domain["id"].as_str()?.to_owned(),
                domain: domain["domain"].as_str()?.to_lowercase(),
                state: domain["state"].as_str().unwrap_or("pending").to_owned(),
                verification_strategy: domain["verification_strategy"]
                    .as_str()
                    .unwrap_or("manual")
                    .to_owned(),
                created_at: instant(&domain["created_at"]),
                updated_at: instant(&domain["updated_at"]),
            })
        })
        .collect();
    Ok(Organization {
        id: id.into(),
        name: item["name"].as_str().unwrap_or(id).to_owned(),
        external_id: item["external_id"].as_str().map(str::to_owned),
        metadata,
        domains,
        retention_period_in_days: None,
        stripe_customer_id: item["stripe_customer_id"].as_str().map(str::to_owned),
        created_at: instant(&item["created_at"]),
        updated_at: instant(&item["updated_at"]),
    })
}
