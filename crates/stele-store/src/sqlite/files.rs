//! The data directory and database file: private to the server's user. They hold every
//! organization's audit data and deployment secrets, so a new directory is created 0700
//! and a new database file 0600 (SQLite gives its `-wal` and `-shm` files the database
//! file's mode), and looser ones found at start are reported.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{StoreError, StoreResult};

/// Creates the directory holding `database` (mode 0700) and the database file itself
/// (mode 0600) when they do not exist yet, and warns when existing ones are readable by
/// other users.
pub(super) fn prepare_private_files(database: &Path) -> StoreResult<()> {
    if let Some(directory) = database
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        if !directory.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(directory)
                .map_err(|source| StoreError::Io {
                    context: format!("cannot create {}", directory.display()),
                    source: source.into(),
                })?;
        }
    }
    if !database.exists() {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(database)
            .map_err(|source| StoreError::Io {
                context: format!("cannot create {}", database.display()),
                source: source.into(),
            })?;
    }
    warn_if_shared_files(database);
    Ok(())
}

/// Warns when the database or its directory is readable by other users.
pub(super) fn warn_if_shared_files(database: &Path) {
    if let Some(directory) = database
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        warn_if_shared(directory);
    }
    warn_if_shared(database);
}

fn warn_if_shared(path: &Path) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let private = if metadata.is_dir() { 0o700 } else { 0o600 };
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "audit data is readable by other users; restrict it: chmod {private:o} {}",
            path.display()
        );
    }
}

/// The mode bits of `path` (for tests and diagnostics).
#[cfg(test)]
pub(super) fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|metadata| metadata.permissions().mode() & 0o777)
        .unwrap_or_default()
}
