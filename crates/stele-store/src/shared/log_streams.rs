//! Log stream rows and reads, decided once for both backends: what a stored row means,
//! and how the events after a stream's cursor are assembled (the hash they chain from, a
//! gap retention left), refusing a hole in the log that no purge explains.

use stele_core::chain::GENESIS;
use stele_core::log_stream::{
    LogStream, LogStreamState, LogStreamType, PurgedGap, StreamEvent, StreamEvents, StreamPosition,
    StreamPositions, StreamTotals,
};
use stele_core::timestamp::UnixMillis;

use super::encoding::hash_from;
use crate::{StoreError, StoreResult};

/// The columns every read of a stream selects, in [`StreamRow`]'s order.
pub(crate) const STREAM_COLUMNS: &str =
    "id, organization_id, type, state, settings, sealed_secrets,
     delivered_sequence, delivered_events, failures, last_synced_at, last_error,
     next_attempt_at, created_at, updated_at";

/// A `log_streams` row as read, before its text columns are decoded.
pub(crate) struct StreamRow {
    pub id: String,
    pub organization_id: String,
    pub stream_type: String,
    pub state: String,
    pub settings: String,
    pub sealed_secrets: Option<Vec<u8>>,
    pub delivered_sequence: i64,
    pub delivered_events: i64,
    pub failures: i64,
    pub last_synced_at: Option<UnixMillis>,
    pub last_error: Option<String>,
    pub next_attempt_at: UnixMillis,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl StreamRow {
    pub(crate) fn decode(self) -> StoreResult<LogStream> {
        let corrupt = |detail: String| {
            StoreError::corrupt(
                Some(&self.organization_id),
                None,
                format!("log stream {}: {detail}", self.id),
            )
        };
        let (stream_type, state) = type_and_state(
            &self.stream_type,
            &self.state,
            Some(&self.organization_id),
            &format!("log stream {}", self.id),
        )?;
        let settings: serde_json::Value = serde_json::from_str(&self.settings)
            .map_err(|error| corrupt(format!("settings are not JSON: {error}")))?;
        if !settings.is_object() {
            return Err(corrupt("settings are not a JSON object".into()));
        }
        Ok(LogStream {
            id: self.id,
            organization_id: self.organization_id.into(),
            stream_type,
            state,
            settings,
            sealed_secrets: self.sealed_secrets,
            delivered_sequence: self.delivered_sequence,
            delivered_events: self.delivered_events,
            failures: self.failures,
            last_synced_at: self.last_synced_at,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A stream's position as read: id, organization id, type, state, cursor, and the
/// organization's newest sequence.
pub(crate) type PositionRow = (String, String, String, String, i64, i64);
/// The streams of one type in one state: type, state, how many, their largest lag.
pub(crate) type TotalsRow = (String, String, i64, i64);

fn type_and_state(
    stream_type: &str,
    state: &str,
    organization_id: Option<&str>,
    what: &str,
) -> StoreResult<(LogStreamType, LogStreamState)> {
    let corrupt = |detail: String| StoreError::corrupt(organization_id, None, detail);
    Ok((
        LogStreamType::parse(stream_type)
            .ok_or_else(|| corrupt(format!("{what}: unknown type {stream_type:?}")))?,
        LogStreamState::parse(state)
            .ok_or_else(|| corrupt(format!("{what}: unknown state {state:?}")))?,
    ))
}

/// Decodes the two reads of [`crate::LogStreamStore::log_stream_positions`].
pub(crate) fn decode_positions(
    streams: Vec<PositionRow>,
    totals: Vec<TotalsRow>,
) -> StoreResult<StreamPositions> {
    let streams = streams
        .into_iter()
        .map(
            |(id, organization_id, stream_type, state, delivered_sequence, newest_sequence)| {
                let (stream_type, state) = type_and_state(
                    &stream_type,
                    &state,
                    Some(&organization_id),
                    &format!("log stream {id}"),
                )?;
                Ok(StreamPosition {
                    id,
                    organization_id: organization_id.into(),
                    stream_type,
                    state,
                    delivered_sequence,
                    newest_sequence,
                })
            },
        )
        .collect::<StoreResult<_>>()?;
    let totals = totals
        .into_iter()
        .map(|(stream_type, state, streams, max_lag)| {
            let (stream_type, state) =
                type_and_state(&stream_type, &state, None, "log stream totals")?;
            Ok(StreamTotals {
                stream_type,
                state,
                streams,
                max_lag,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(StreamPositions { streams, totals })
}

/// Assembles what a stream reads after `after_sequence`, from one snapshot: `cursor_hash`
/// is the stored hash of event `after_sequence` (absent when purged, or when it is 0),
/// `anchor` the organization's chain anchor `(first retained sequence, hash before it)`,
/// `rows` the events after the cursor as `(sequence, canonical, hash)` in order.
pub(crate) fn assemble_stream_events(
    organization_id: &str,
    after_sequence: i64,
    cursor_hash: Option<Vec<u8>>,
    anchor: Option<(i64, Vec<u8>)>,
    rows: Vec<(i64, Vec<u8>, Vec<u8>)>,
) -> StoreResult<StreamEvents> {
    let (previous_hash, gap) = match anchor {
        Some((first_retained, hash)) if first_retained > after_sequence + 1 => (
            hash_from(
                &hash,
                organization_id,
                Some(first_retained - 1),
                "the chain anchor's hash",
            )?,
            Some(PurgedGap {
                first_sequence: after_sequence + 1,
                last_sequence: first_retained - 1,
            }),
        ),
        _ if after_sequence == 0 => (GENESIS, None),
        _ => match cursor_hash {
            Some(hash) => (
                hash_from(
                    &hash,
                    organization_id,
                    Some(after_sequence),
                    "an event hash",
                )?,
                None,
            ),
            None => {
                return Err(StoreError::corrupt(
                    Some(organization_id),
                    Some(after_sequence),
                    "the event a log stream's cursor names is neither stored nor purged",
                ))
            }
        },
    };
    let first_expected = gap.map_or(after_sequence, |gap| gap.last_sequence) + 1;
    let mut events = Vec::with_capacity(rows.len());
    for (expected, (sequence, canonical, hash)) in (first_expected..).zip(rows) {
        if sequence != expected {
            return Err(StoreError::corrupt(
                Some(organization_id),
                Some(expected),
                format!("sequence {sequence} found where {expected} was expected"),
            ));
        }
        let hash = hash_from(&hash, organization_id, Some(sequence), "an event hash")?;
        events.push(StreamEvent {
            sequence,
            canonical,
            hash,
        });
    }
    Ok(StreamEvents {
        previous_hash,
        gap,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sequence: i64) -> (i64, Vec<u8>, Vec<u8>) {
        (sequence, b"{}".to_vec(), vec![sequence as u8; 32])
    }

    #[test]
    fn a_purge_after_the_cursor_is_reported_as_a_gap() {
        let read = assemble_stream_events("org", 2, None, Some((6, vec![5; 32])), vec![row(6)])
            .expect("assembled");
        assert_eq!(
            read.gap,
            Some(PurgedGap {
                first_sequence: 3,
                last_sequence: 5
            })
        );
        assert_eq!(read.previous_hash, [5; 32]);
        assert_eq!(read.covers_up_to(), Some(6));
    }

    #[test]
    fn an_unexplained_hole_is_corrupt() {
        assert!(assemble_stream_events("org", 0, None, None, vec![row(2)]).is_err());
        assert!(assemble_stream_events("org", 3, None, None, vec![row(4)]).is_err());
        let read = assemble_stream_events("org", 0, None, None, vec![row(1), row(2)])
            .expect("complete log");
        assert_eq!(read.previous_hash, GENESIS);
        assert_eq!(read.gap, None);
    }
}
