//! Object store destinations (`S3`, `GoogleCloudStorage`), through the `object_store`
//! crate (request signing, credentials and retries are its own): each batch is one gzip
//! NDJSON object, one stored event per line, named as the contract says, with a companion
//! `<name>.meta.json` carrying the range, `previous_hash`, `checkpoint` and any gap.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use serde_json::{json, Map, Value};
use stele_core::log_stream::{object_name, utc_date};
use stele_core::timestamp::UnixMillis;

use super::delivery::{Batch, DeliveryFailure};
use super::outbound::{DestinationPolicy, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use super::settings::Destination;

fn client_options(policy: &DestinationPolicy) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(RESPONSE_TIMEOUT)
        .with_allow_http(policy.allow_private)
}

/// Few, quick retries inside one attempt: the stream's own backoff does the rest.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

/// An object store destination's client and object name prefix. A delivery opens it once
/// and writes every batch through it: building a client loads its TLS roots and sets up a
/// connection pool, which per batch cost more CPU than the batch itself.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// Opens the bucket of an object store destination.
pub fn open_bucket(
    destination: &Destination,
    policy: &DestinationPolicy,
) -> Result<Bucket, DeliveryFailure> {
    let (store, prefix) = open(destination, policy)?;
    Ok(Bucket { store, prefix })
}

/// The store and the object name prefix of a destination.
fn open(
    destination: &Destination,
    policy: &DestinationPolicy,
) -> Result<(Arc<dyn ObjectStore>, String), DeliveryFailure> {
    let config_error = |error: object_store::Error| {
        DeliveryFailure::retry(format!("object store settings: {error}"))
    };
    match destination {
        Destination::S3 {
            bucket,
            region,
            endpoint,
            access_key_id,
            secret_access_key,
            prefix,
        } => {
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(region)
                .with_access_key_id(access_key_id)
                .with_secret_access_key(secret_access_key)
                .with_client_options(client_options(policy))
                .with_retry(retry());
            if let Some(endpoint) = endpoint {
                // S3-compatible stores are addressed by path (`<endpoint>/<bucket>/...`).
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            Ok((
                Arc::new(builder.build().map_err(config_error)?),
                prefix.clone(),
            ))
        }
        Destination::GoogleCloudStorage {
            bucket,
            service_account_key,
            endpoint,
            prefix,
        } => {
            let mut builder = GoogleCloudStorageBuilder::new()
                .with_bucket_name(bucket)
                .with_client_options(client_options(policy))
                .with_retry(retry());
            // object_store reads a custom endpoint from the service account key
            // (`gcs_base_url`); without a key, an endpoint means an unauthenticated
            // emulator or proxy.
            let key = match (service_account_key, endpoint) {
                (Some(key), endpoint) => {
                    let mut key: Map<String, Value> = serde_json::from_str(key).map_err(|_| {
                        DeliveryFailure::Credentials("the service account key is not JSON".into())
                    })?;
                    if let Some(endpoint) = endpoint {
                        key.insert("gcs_base_url".into(), Value::String(endpoint.clone()));
                    }
                    Some(Value::Object(key).to_string())
                }
                (None, Some(endpoint)) => Some(
                    json!({"gcs_base_url": endpoint, "disable_oauth": true,
                           "client_email": "", "private_key": "", "private_key_id": ""})
                    .to_string(),
                ),
                (None, None) => None,
            };
            if let Some(key) = key {
                builder = builder.with_service_account_key(key);
            }
            Ok((
                Arc::new(builder.build().map_err(config_error)?),
                prefix.clone(),
            ))
        }
        _ => Err(DeliveryFailure::retry("not an object store destination")),
    }
}

fn failure(what: &str, error: object_store::Error) -> DeliveryFailure {
    let message = format!("{what}: {error}");
    match error {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => DeliveryFailure::Credentials(message),
        _ => DeliveryFailure::retry(message),
    }
}

fn gzip_lines(batch: &Batch) -> Result<Vec<u8>, DeliveryFailure> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for event in &batch.events {
        encoder
            .write_all(&event.canonical)
            .and_then(|()| encoder.write_all(b"\n"))
            .map_err(|error| DeliveryFailure::retry(error.to_string()))?;
    }
    encoder
        .finish()
        .map_err(|error| DeliveryFailure::retry(error.to_string()))
}

/// The companion `.meta.json` of a batch object.
pub fn batch_metadata(batch: &Batch) -> Value {
    json!({
        "organization_id": batch.organization_id,
        "first_sequence": batch.first_sequence,
        "last_sequence": batch.last_sequence,
        "previous_hash": hex::encode(batch.previous_hash),
        "checkpoint": batch.checkpoint,
        "gap": batch.gap.map(|gap| json!({
            "first_sequence": gap.first_sequence,
            "last_sequence": gap.last_sequence,
            "reason": "purged_by_retention",
        })),
        "events": batch.events.len(),
    })
}

/// Checks the endpoint of an object store destination at delivery time: its URL form, and
/// unless private destinations are allowed, every address its host resolves to now.
async fn check_endpoint(
    destination: &Destination,
    policy: &DestinationPolicy,
) -> Result<(), DeliveryFailure> {
    let endpoint = match destination {
        Destination::S3 { endpoint, .. } | Destination::GoogleCloudStorage { endpoint, .. } => {
            endpoint
        }
        _ => &None,
    };
    if let Some(endpoint) = endpoint {
        policy
            .check_destination(endpoint)
            .await
            .map_err(DeliveryFailure::retry)?;
    }
    Ok(())
}

/// Writes one batch to `bucket`, opened from `destination` (the data object, then its
/// `.meta.json`); a test delivery writes a small `_stele_test/<stream id>.json` object
/// instead. The endpoint's addresses are checked again first, every batch.
pub async fn put_batch(
    bucket: &Bucket,
    destination: &Destination,
    policy: &DestinationPolicy,
    batch: &Batch,
    now: UnixMillis,
) -> Result<(), DeliveryFailure> {
    check_endpoint(destination, policy).await?;
    let (store, prefix) = (&bucket.store, &bucket.prefix);
    if batch.test {
        let prefix = prefix.trim_matches('/');
        let name = format!(
            "{}{}/_stele_test/{}.json",
            if prefix.is_empty() { "" } else { prefix },
            if prefix.is_empty() {
                batch.organization_id.clone()
            } else {
                format!("/{}", batch.organization_id)
            },
            batch.stream_id
        );
        let body = json!({"type": "stele.log_stream.test", "stream_id": batch.stream_id,
                          "organization_id": batch.organization_id});
        store
            .put(
                &ObjectPath::from(name.as_str()),
                PutPayload::from(body.to_string().into_bytes()),
            )
            .await
            .map_err(|error| failure("writing the test object", error))?;
        return Ok(());
    }
    let first = batch
        .gap
        .map_or(batch.first_sequence, |gap| gap.first_sequence);
    let name = object_name(
        prefix,
        &batch.organization_id,
        utc_date(now),
        first,
        batch.last_sequence,
    );
    store
        .put(
            &ObjectPath::from(name.as_str()),
            PutPayload::from(gzip_lines(batch)?),
        )
        .await
        .map_err(|error| failure("writing the batch object", error))?;
    let meta = serde_json::to_vec(&batch_metadata(batch))
        .map_err(|error| DeliveryFailure::retry(error.to_string()))?;
    store
        .put(
            &ObjectPath::from(format!("{name}.meta.json").as_str()),
            PutPayload::from(meta),
        )
        .await
        .map_err(|error| failure("writing the batch metadata", error))?;
    Ok(())
}
