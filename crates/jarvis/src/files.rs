//! Files Jarvis writes (the SQLite database and its WAL, the history spool, the development
//! token, the logs) are readable by its own user only: task parameters and results, tokens and
//! log lines may hold secrets. New files are created `0600` and new directories `0700`; a file
//! an older version left readable by others is narrowed to `0600` when Jarvis opens it again.
//! (Directories that already exist are left as they are: they may be shared, like `/var/log`.)
//! [`ServeLock`] is the data directory's lock of a running `serve`.

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

/// The lock a `serve` process holds on its data directory's `serve.lock` for as long as it
/// runs (an advisory `flock`, released by the kernel when the process ends, however it ends).
/// Holding it on the embedded store means no other `serve` on that data directory is alive,
/// so the tasks left running in it belong to a process that is gone
/// (`TaskQueue::take_back_orphans`). A second `serve` on the same directory still runs, without
/// the lock: it waits for leases to expire, as instances sharing PostgreSQL do.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// The lock file's name in the data directory.
    pub const FILE: &'static str = "serve.lock";

    /// Takes the lock of `data_dir` without waiting: `None` when another process holds it (or
    /// the file cannot be opened, which is said in a warning).
    pub fn try_take(data_dir: &Path) -> Option<ServeLock> {
        let path = data_dir.join(Self::FILE);
        let file = match open_append(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot open the data directory's lock file");
                return None;
            }
        };
        match try_flock(&file) {
            Ok(true) => Some(ServeLock { _file: file }),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot lock the data directory's lock file");
                None
            }
        }
    }
}

/// An exclusive `flock` of `file` without waiting: `Ok(false)` when another open file holds it.
#[cfg(unix)]
fn try_flock(file: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere no lock is taken: a `serve` then waits for leases to expire after a restart.
#[cfg(not(unix))]
fn try_flock(_file: &File) -> io::Result<bool> {
    Ok(false)
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

    #[test]
    fn one_serve_lock_per_data_directory_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServeLock::try_take(dir.path()).expect("the first takes the lock");
        assert!(
            ServeLock::try_take(dir.path()).is_none(),
            "a second open of the lock file is refused while the first holds it"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(
            ServeLock::try_take(other.path()).is_some(),
            "another directory is free"
        );
        drop(first);
        assert!(
            ServeLock::try_take(dir.path()).is_some(),
            "free again once its holder is gone"
        );
    }
}
