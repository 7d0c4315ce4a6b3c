//! Files Jarvis writes (the SQLite database and its WAL, the history spool, the development
//! token, the logs) are readable by its own user only: task parameters and results, tokens and
//! log lines may hold secrets. New files are created `0600` and new directories `0700`; a file
//! an older version left readable by others is narrowed to `0600` when Jarvis opens it again.
//! (Directories that already exist are left as they are: they may be shared, like `/var/log`.)

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents, each new one `0700`.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Opens `path` for appending, creating it `0600` (an existing file is narrowed to `0600`).
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    restrict_open(&f)?;
    Ok(f)
}

/// Creates `path` empty and `0600` if it does not exist, else narrows it to `0600` (SQLite then
/// gives its `-wal` and `-shm` files the database file's permissions).
pub fn create_private(path: &Path) -> io::Result<()> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    restrict_open(&o.open(path)?)
}

/// Narrows `path` to `0600` if it exists and others or the group may read or write it.
pub fn restrict(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => restrict_open(&f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn restrict_open(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_open(_: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_directories_are_the_owners_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let log = dir.join("x.log");
        open_append(&log).unwrap();
        assert_eq!(mode(&log), 0o600);
        let db = dir.join("x.db");
        create_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn a_file_left_readable_by_others_is_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("old.db");
        std::fs::write(&p, b"rows").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"rows", "its content is kept");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        restrict(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        restrict(&tmp.path().join("missing")).unwrap();
    }
}
