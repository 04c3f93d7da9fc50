//! Secret files (signing keys) that a server generates on first start, and that replicas
//! started together may all try to create.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

/// Creates `path` holding `contents`, readable only by this user (mode 0600; missing
/// directories are created 0700), unless a file of that name exists. Answers whether this
/// call created it.
///
/// The contents go whole to a temporary file beside `path` (named `.stele-new-key…`),
/// which is linked into place only if the name is still free. So a process that finds the
/// file never reads it half written, and when several create at once exactly one file
/// wins; the losers get `Ok(false)` and should read the winner's. The directory is synced
/// either way, so no process uses a key whose name a crash could still undo. A crash
/// before the link leaves the temporary file behind, holding a key that was never used.
///
/// The link needs a file system with `renameat2(RENAME_NOREPLACE)` or hard links (any
/// local Linux file system; not vfat or some network and FUSE mounts).
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // `NamedTempFile` creates its file with mode 0600 and removes it if we return early.
    let mut file = tempfile::Builder::new()
        .prefix(".stele-new-key")
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

/// The text of `path`, or `None` when there is no such file.
pub fn read_private_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

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
}
