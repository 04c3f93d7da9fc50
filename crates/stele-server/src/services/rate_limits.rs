//! Per-API-key request rate limits (WorkOS's documented 6,000 requests per minute by
//! default), counted in fixed one-minute windows that every process on the database shares.
//!
//! A process admits requests from a local allowance that it takes from the window's shared
//! counter ([`LimitStore::take_from_window`]) a chunk at a time (a hundredth of the limit),
//! so the database is asked once per chunk rather than once per request. The shared counter
//! never hands out more than the limit, so all processes together never admit more than
//! the limit in one window. A process may be left holding part of a chunk it does not use
//! before the window ends, so a client whose requests are spread over N processes can be
//! refused up to (N − 1) chunks early (1% of the limit per other process). A single process
//! (SQLite) counts exactly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stele_core::timestamp::{now_millis, UnixMillis};
use stele_store::Store;

use crate::services::ServiceError;

/// The length of one counting window.
pub const WINDOW_MS: i64 = 60_000;
/// Allowances kept in memory before those of ended windows are dropped.
const MAX_TRACKED: usize = 10_000;

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The window's limit is used up; it ends in this many seconds (at least 1).
    Limited {
        retry_after_secs: u64,
    },
}

/// What this process may still admit for one subject in the current window.
#[derive(Default)]
struct Allowance {
    window_start: UnixMillis,
    left: u32,
    /// The shared counter granted nothing: refuse without asking again until the window ends.
    exhausted: bool,
}

type Allowances = Mutex<HashMap<String, Arc<tokio::sync::Mutex<Allowance>>>>;

/// Request rate limits per API key. Clones share their allowances.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    per_minute: u32,
    allowances: Arc<Allowances>,
}

impl RateLimiter {
    /// A limiter admitting `per_minute` requests per subject and minute; 0 admits everything.
    pub fn new(store: Arc<dyn Store>, per_minute: u32) -> Self {
        Self {
            store,
            per_minute,
            allowances: Arc::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.per_minute > 0
    }

    /// How many requests one chunk taken from the shared counter holds.
    fn chunk(&self) -> u32 {
        (self.per_minute / 100).max(1)
    }

    /// Counts one request of API key `key_id` and says whether it may proceed. When the
    /// database cannot be asked the request is admitted (and the failure logged): a limit
    /// exists to protect the service, not to turn a database hiccup into refusals.
    pub async fn admit_api_key(&self, key_id: &str) -> Admission {
        let subject = format!("api_key:{key_id}");
        match self.admit(&subject).await {
            Ok(admission) => admission,
            Err(error) => {
                tracing::warn!(%error, subject, "cannot count the request against its rate limit; admitting it");
                Admission::Allowed
            }
        }
    }

    async fn admit(&self, subject: &str) -> Result<Admission, ServiceError> {
        if !self.is_enabled() {
            return Ok(Admission::Allowed);
        }
        let now = now_millis();
        let window_start = now - now.rem_euclid(WINDOW_MS);
        let allowance = {
            let mut allowances = self
                .allowances
                .lock()
                .map_err(|_| ServiceError::Internal("rate limit state poisoned".into()))?;
            if allowances.len() >= MAX_TRACKED {
                allowances.retain(|_, allowance| {
                    allowance
                        .try_lock()
                        .map_or(true, |allowance| allowance.window_start >= window_start)
                });
            }
            Arc::clone(allowances.entry(subject.to_owned()).or_default())
        };
        // One request per subject asks the database at a time; the others wait for its chunk.
        let mut allowance = allowance.lock().await;
        if allowance.window_start != window_start {
            *allowance = Allowance {
                window_start,
                ..Allowance::default()
            };
        }
        if allowance.left == 0 && !allowance.exhausted {
            let granted = self
                .store
                .take_from_window(subject, window_start, self.chunk(), self.per_minute)
                .await?;
            allowance.left = granted;
            allowance.exhausted = granted == 0;
        }
        if allowance.left > 0 {
            allowance.left -= 1;
            return Ok(Admission::Allowed);
        }
        let remaining_ms = (window_start + WINDOW_MS - now).max(0);
        Ok(Admission::Limited {
            retry_after_secs: u64::try_from(remaining_ms)
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1),
        })
    }
}
