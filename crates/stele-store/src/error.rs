//! What can go wrong in the store. Database failures keep the driver's error as their
//! source; damaged stored data names the organization and sequence it was found at.

use std::fmt;
use std::sync::Arc;

use stele_core::model::OrganizationId;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("organization not found")]
    OrganizationNotFound,
    /// An organization with the requested id already exists.
    #[error("an organization with this id already exists")]
    OrganizationIdTaken,
    #[error("external_id is already used by organization {existing}")]
    ExternalIdTaken { existing: String },
    #[error("username already exists")]
    UsernameTaken,
    /// SQLite refused or failed an operation.
    #[error("SQLite error while {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// PostgreSQL (or the connection to it) refused or failed an operation.
    #[error("PostgreSQL error while {context}: {}", describe_postgres(source))]
    Postgres {
        context: &'static str,
        #[source]
        source: Arc<tokio_postgres::Error>,
    },
    /// No PostgreSQL connection could be had from the pool.
    #[error("cannot get a PostgreSQL connection: {source}")]
    Pool {
        #[source]
        source: Arc<deadpool_postgres::PoolError>,
    },
    /// A file-system operation the store needs (creating the data directory) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The database is not one this binary can use as it is (schema too new or not
    /// migrated, an unusable URL).
    #[error("{0}")]
    Incompatible(String),
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// Stored data fails a check it passed when it was written.
    #[error("stored data is damaged{}: {detail}", Place(organization.as_ref(), *sequence))]
    Corrupt {
        organization: Option<OrganizationId>,
        sequence: Option<i64>,
        detail: String,
    },
    /// One write of a SQLite group commit failed after changing rows, so the whole batch
    /// was rolled back; every write in it reports this.
    #[error("a write failed after changing rows; its whole group commit was rolled back")]
    BatchRolledBack,
    /// A broken invariant or a panic, not a database failure.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the store is shutting down")]
    Unavailable,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Damaged stored data, at the organization and sequence where known.
    pub fn corrupt(
        organization: Option<&str>,
        sequence: Option<i64>,
        detail: impl Into<String>,
    ) -> Self {
        StoreError::Corrupt {
            organization: organization.map(OrganizationId::from),
            sequence,
            detail: detail.into(),
        }
    }

    pub(crate) fn sqlite(context: &'static str, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context,
            source: Arc::new(source),
        }
    }

    pub(crate) fn postgres(context: &'static str, source: tokio_postgres::Error) -> Self {
        StoreError::Postgres {
            context,
            source: Arc::new(source),
        }
    }
}

/// A PostgreSQL error with the server's message, code and detail when it has them.
pub(crate) fn describe_postgres(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// Where damaged data was found, as " (organization org_1, sequence 5)".
struct Place<'a>(Option<&'a OrganizationId>, Option<i64>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(organization), Some(sequence)) => {
                write!(f, " (organization {organization}, sequence {sequence})")
            }
            (Some(organization), None) => write!(f, " (organization {organization})"),
            (None, Some(sequence)) => write!(f, " (sequence {sequence})"),
            (None, None) => Ok(()),
        }
    }
}
