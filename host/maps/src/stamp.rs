//! Change detection for [`crate::Table::is_stale`]: a file's identity (device, inode), size and
//! modification time, taken when a table is opened and compared on demand.
//!
//! The inode catches `postern map build`'s atomic rename even when size and mtime happen to
//! match; size and mtime (with nanoseconds) catch editors that rewrite in place. A file that
//! vanished is stale too: reopening reports the error instead of serving old data forever.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn identity(path: &Path) -> Option<Identity> {
    let md = std::fs::metadata(path).ok()?;
    Some(Identity {
        dev: md.dev(),
        ino: md.ino(),
        size: md.size(),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec(),
    })
}

/// The files a table was read from, as they were when it was opened.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stamps {
    files: Vec<(PathBuf, Option<Identity>)>,
}

impl Stamps {
    pub(crate) fn new() -> Stamps {
        Stamps::default()
    }

    /// Records `path` as it is now (call before reading it, so a write during the read makes
    /// the table stale rather than silently half-read).
    pub(crate) fn add(&mut self, path: &Path) {
        self.files.push((path.to_path_buf(), identity(path)));
    }

    pub(crate) fn of(path: &Path) -> Stamps {
        let mut s = Stamps::new();
        s.add(path);
        s
    }

    pub(crate) fn changed(&self) -> bool {
        self.files
            .iter()
            .any(|(path, then)| identity(path).as_ref() != then.as_ref())
    }
}

/// The modification time of `path`, if it can be read.
pub(crate) fn mtime(path: &Path) -> Option<(i64, i64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.mtime(), md.mtime_nsec()))
}
