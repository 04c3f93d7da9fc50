//! Which migrations a database still needs, once for both backends: each backend records
//! how many it has applied in its own way (SQLite's `user_version`, PostgreSQL's
//! `stele_migrations` table) and runs its own SQL files.

use crate::{StoreError, StoreResult};

/// How many of the `known` migrations the database has applied, given the version it
/// records; refuses a database that a newer binary has migrated.
pub(crate) fn applied_migrations(recorded: i64, known: usize) -> StoreResult<usize> {
    let applied = usize::try_from(recorded).map_err(|_| {
        StoreError::corrupt(None, None, format!("schema version {recorded} is negative"))
    })?;
    if applied > known {
        return Err(StoreError::Incompatible(format!(
            "the database is at schema version {applied}, newer than this binary knows ({known}); upgrade stele"
        )));
    }
    Ok(applied)
}
