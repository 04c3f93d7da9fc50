//! Object store destinations (`S3`, `GoogleCloudStorage`): each batch is one gzip NDJSON
//! object with a companion `.meta.json`.

use stele_core::timestamp::UnixMillis;

use super::delivery::{Batch, DeliveryFailure};
use super::outbound::DestinationPolicy;
use super::settings::Destination;

/// Writes one batch as an object.
pub async fn put_batch(
    _destination: &Destination,
    _policy: &DestinationPolicy,
    _batch: &Batch,
    _now: UnixMillis,
) -> Result<(), DeliveryFailure> {
    Err(DeliveryFailure::retry(
        "object store destinations are not delivered by this version",
    ))
}
