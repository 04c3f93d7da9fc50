//! Secret files (signing keys) that a server generates on first start, and that replicas
//! started together may all try to create.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

/// What the temporary file of a create in progress is named after.
const TEMPORARY_PREFIX: &str = ".stele-new-key";
/// A temporary file this old was left by a create that crashed before linking it: a create
/// takes well under a second, and a younger one may be another replica's, in flight.
const ABANDONED_AFTER: Duration = Duration::from_secs(10 * 60);

/// Creates `path` holding `contents`, readable only by this user (mode 0600; missing
/// directories are created 0700), unless a file of that name exists. Answers whether this
/// call created it.
///
/// The contents go whole to a temporary file beside `path` (named `.stele-new-key…`),
/// which is linked into place only if the name is still free. So a process that finds the
/// file never reads it half written, and when several create at once exactly one file
/// wins; the losers get `Ok(false)` and should read the winner's. The directory is synced
/// either way, so no process uses a key whose name a crash could still undo. A crash
/// before the link leaves the temporary file behind, holding a key that was never used;
/// the next read or create of a key in that directory removes such files once they are
/// [`ABANDONED_AFTER`] old.
///
/// The link needs a file system with `renameat2(RENAME_NOREPLACE)` or hard links (any
/// local Linux file system; not vfat or some network and FUSE mounts).
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let dir = directory_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    remove_abandoned_temporary_files(dir);
    // `NamedTempFile` creates its file with mode 0600 and removes it if we return early.
    let mut file = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .tempfile_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    let created = match file.persist_noclobber(path) {
        Ok(_) => true,
        Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(error) => return Err(error.error),
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(created)
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Removes the temporary files of creates in `dir` that crashed before linking theirs
/// (best effort: a file that cannot be removed is logged and left).
fn remove_abandoned_temporary_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(TEMPORARY_PREFIX)
        {
            continue;
        }
        let abandoned = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if !abandoned {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "removed a temporary key file that a crashed create left behind"
            ),
            // Another replica removed it first.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "could not remove a key file that a crash left half created"
            ),
        }
    }
}

/// The text of `path`, or `None` when there is no such file. A file open to other users is
/// still read, with a warning naming the `chmod` that fixes it: refusing it would stop a
/// running deployment at its next start over what may be a deliberate choice.
/// Temporary files that crashed creates left beside it are removed once abandoned, so a
/// restart soon after such a crash leaves its file only until a later start.
pub fn read_private_file(path: &Path) -> std::io::Result<Option<String>> {
    remove_abandoned_temporary_files(directory_of(path));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if let Some(mode) = open_to_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "a secret key file is open to other users; restrict it: chmod 600 {}",
            path.display()
        );
    }
    Ok(Some(text))
}

/// The permission bits of `path` when they give its group or others any access.
fn open_to_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .expect("list the directory")
            .map(|entry| entry.expect("a directory entry").file_name())
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn of_many_creating_at_once_exactly_one_wins_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("keys").join("secret");
        let created: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8u8)
                .map(|writer| {
                    let path = &path;
                    scope.spawn(move || create_private_file(path, &[writer; 64]).expect("create"))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("the thread finished"))
                .collect()
        });
        let winners: Vec<u8> = (0..8u8).filter(|&i| created[usize::from(i)]).collect();
        assert_eq!(winners.len(), 1, "{created:?}");
        let kept = std::fs::read(&path).expect("read the file");
        assert_eq!(kept, vec![winners[0]; 64], "the winner's whole contents");
        assert_eq!(names_in(&dir.path().join("keys")), vec!["secret"]);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        assert!(!create_private_file(&path, b"other").expect("create again"));
        assert_eq!(std::fs::read(&path).expect("read again"), kept);
    }

    #[test]
    fn a_create_removes_temporary_files_a_crash_left_and_keeps_those_in_flight() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let abandoned = dir.path().join(format!("{TEMPORARY_PREFIX}crashed"));
        let in_flight = dir.path().join(format!("{TEMPORARY_PREFIX}writing"));
        let unrelated = dir.path().join("notes");
        for path in [&abandoned, &in_flight, &unrelated] {
            std::fs::write(path, b"x").expect("write");
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
        for path in [&abandoned, &unrelated] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|file| file.set_modified(long_ago))
                .expect("age the file");
        }
        assert!(create_private_file(&dir.path().join("secret"), b"key").expect("create"));
        // Reading a key cleans up too: a crash soon before a start leaves its file young,
        // and later starts only read the key.
        let crashed_again = dir.path().join(format!("{TEMPORARY_PREFIX}crashed-again"));
        std::fs::write(&crashed_again, b"x").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&crashed_again)
            .and_then(|file| file.set_modified(long_ago))
            .expect("age the file");
        assert_eq!(
            read_private_file(&dir.path().join("secret"))
                .expect("read")
                .as_deref(),
            Some("key")
        );
        let mut names = names_in(dir.path());
        names.sort();
        assert_eq!(
            names,
            vec![
                in_flight.file_name().expect("name").to_owned(),
                "notes".into(),
                "secret".into()
            ]
        );
    }

    #[test]
    fn a_key_file_open_to_others_is_still_read() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("secret");
        assert!(create_private_file(&path, b"key").expect("create"));
        assert_eq!(open_to_others(&path), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(open_to_others(&path), Some(0o644));
        assert_eq!(
            read_private_file(&path).expect("read").as_deref(),
            Some("key")
        );
        assert_eq!(
            read_private_file(&dir.path().join("missing")).expect("read"),
            None
        );
    }
}
