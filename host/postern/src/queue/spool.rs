//! Spool directory operations. Blocking I/O: async callers use `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::envelope::Header;
use super::pool::{self, Pool, Reservation, MAX_SPARES};
use super::{Envelope, QueueId};

/// One of the queue directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueDir {
    Maildrop,
    Incoming,
    Active,
    Deferred,
    Hold,
    Corrupt,
}

impl QueueDir {
    pub const ALL: [QueueDir; 6] = [
        QueueDir::Maildrop,
        QueueDir::Incoming,
        QueueDir::Active,
        QueueDir::Deferred,
        QueueDir::Hold,
        QueueDir::Corrupt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueueDir::Maildrop => "maildrop",
            QueueDir::Incoming => "incoming",
            QueueDir::Active => "active",
            QueueDir::Deferred => "deferred",
            QueueDir::Hold => "hold",
            QueueDir::Corrupt => "corrupt",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file exists but cannot be a message; the caller moves it to `corrupt/`.
    #[error("{path}: corrupt queue file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl QueueError {
    /// True when the file system is out of space or quota (`452 4.3.1` in SMTP).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, QueueError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }
}

/// Name prefix of recycled queue files in `tmp/`.
const SPARE_PREFIX: &str = "spare-";

/// Mode of a queue file being written: not yet mail.
pub(super) const MODE_INCOMPLETE: u32 = 0o600;
/// Mode of a complete queue file. As in Postfix, the owner-execute bit says "complete": a file
/// is written in its queue directory under its final name and marked complete before the fsync.
const MODE_COMPLETE: u32 = 0o700;

/// True when a file's mode marks it complete (see [`MODE_COMPLETE`]).
fn is_complete(mode: u32) -> bool {
    mode & 0o100 != 0
}

/// Queue files grow in whole steps of this many bytes, zero-filled: a later, slightly longer
/// message still fits without the file growing (growing is a journal commit).
pub(super) const GROW_STEP: u64 = 4096;
/// One step of the zeros that fill it.
pub(super) static ZEROS: [u8; GROW_STEP as usize] = [0; GROW_STEP as usize];
/// A recycled file this much longer than the message written into it is cut back
/// (see [`write_complete`]).
const SHRINK_FACTOR: u64 = 4;
const SHRINK_MIN: u64 = 64 * 1024;
/// Bytes read at first when loading a queue file; most messages fit.
const FIRST_READ: u64 = 16 * 1024;

/// Handle on a `queue_directory`. Cheap to clone; clones share the pool of spare files.
///
/// A new message is written straight into its queue directory under its final name with mode
/// 0600, sealed (see `envelope.rs`), marked complete (0700) and `fdatasync`ed, then the directory
/// is fsynced. Readers ([`Spool::list`]) skip incomplete files.
///
/// Files are overwritten in place and never shrink (within limits), so the write changes
/// neither the file's size nor its blocks: `fdatasync` then writes the data and flushes the
/// disk cache without a file system journal commit, about a quarter of the cost of `fsync` on
/// journaled ext4. The mode change is not made durable by it; the seal stands in for it after a
/// crash: [`Spool::clean_tmp`] takes a 0600 file whose seal and queue ID match for complete mail.
///
/// Finished queue files are recycled instead of unlinked: they are renamed to `tmp/spare-…` and
/// the next [`Spool::store`] overwrites one. Creating a file costs an inode allocation, and on
/// ext4 every allocation scans past recently freed inodes, so a queue that creates and deletes
/// one file per message spends much of its time in the allocator. A spare is marked incomplete
/// before it is renamed back into a queue, so stale content is never taken for mail.
#[derive(Clone, Debug)]
pub struct Spool {
    root: PathBuf,
    pub(super) pool: Arc<Pool>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating when missing) the queue directory and its subdirectories. Stale files in
    /// `tmp/` — writes interrupted by a crash, never acknowledged — are removed.
    pub fn open(root: &Path) -> Result<Spool, QueueError> {
        let spool = Spool::from_parts(root.to_path_buf(), Arc::default());
        for dir in QueueDir::ALL {
            let p = spool.dir(dir);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(spool)
    }

    /// Removes half-written files left by a crash (in `tmp/` and `incoming/`) and adopts spare
    /// files for reuse. Only the
    /// daemon calls this, at start-up: a concurrent `postern sendmail` may be writing into `tmp/`
    /// at any other time.
    pub fn clean_tmp(&self) -> Result<usize, QueueError> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        let mut adopted = Vec::new();
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            let spare = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(SPARE_PREFIX));
            if spare && adopted.len() < MAX_SPARES {
                adopted.push(entry.path());
            } else if fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        // A file not marked complete whose seal and queue ID match is complete mail whose mode
        // change a crash lost (the data was made durable by fdatasync, the mode was not): it is
        // marked complete again. In incoming/ anything else was being written when the daemon
        // stopped, or was pre-created and never used: no client was told it was queued, and it
        // becomes a spare. In maildrop/ it is left alone (`postern sendmail` may be writing it
        // now); elsewhere it cannot be mail and is quarantined.
        for dir in [
            QueueDir::Incoming,
            QueueDir::Maildrop,
            QueueDir::Active,
            QueueDir::Deferred,
            QueueDir::Hold,
        ] {
            let path = self.dir(dir);
            for entry in fs::read_dir(&path).map_err(io_err(&path))? {
                let entry = entry.map_err(io_err(&path))?;
                let incomplete = entry
                    .metadata()
                    .is_ok_and(|m| m.is_file() && !is_complete(m.permissions().mode()));
                if !incomplete {
                    continue;
                }
                let id = entry.file_name().to_str().and_then(QueueId::parse);
                if id.is_some_and(|id| self.restore_sealed(dir, &id)) {
                    continue;
                }
                match dir {
                    QueueDir::Incoming => {
                        let spare = tmp.join(format!("{SPARE_PREFIX}{}", QueueId::generate()));
                        if adopted.len() < MAX_SPARES && fs::rename(entry.path(), &spare).is_ok() {
                            adopted.push(spare);
                        } else if fs::remove_file(entry.path()).is_ok() {
                            removed += 1;
                        }
                    }
                    QueueDir::Maildrop => {}
                    _ => self.quarantine(dir, &entry.file_name()),
                }
            }
        }
        self.pool.set_spares(adopted);
        Ok(removed)
    }

    /// Marks `dir/id` complete when it is sealed mail under its own queue ID (see
    /// [`Spool::clean_tmp`]); true when it was.
    fn restore_sealed(&self, dir: QueueDir, id: &QueueId) -> bool {
        let path = self.path(dir, id);
        let sealed = read_queue_file(&path).is_ok_and(|(bytes, decoded)| {
            decoded
                .is_ok_and(|(env, head)| head.sealed && env.id == *id && head.check(&bytes).is_ok())
        });
        if !sealed {
            return false;
        }
        let complete = fs::Permissions::from_mode(MODE_COMPLETE);
        let restored = fs::set_permissions(&path, complete)
            .and_then(|()| File::open(&path)?.sync_all())
            .is_ok();
        if restored {
            crate::info!(
                "master",
                "{id}: {}/{id}: complete queue file marked complete again after a crash",
                dir.name()
            );
        }
        restored
    }

    fn quarantine(&self, dir: QueueDir, name: &std::ffi::OsStr) {
        let from = self.dir(dir).join(name);
        let to = self.dir(QueueDir::Corrupt).join(name);
        match fs::rename(&from, &to) {
            Ok(()) => crate::warn!(
                "master",
                "{}: incomplete queue file moved to {}",
                from.display(),
                to.display()
            ),
            Err(e) => crate::warn!("master", "{}: incomplete queue file: {e}", from.display()),
        }
    }

    pub(super) fn from_parts(root: PathBuf, pool: Arc<Pool>) -> Spool {
        Spool { root, pool }
    }

    /// Starts keeping pre-created queue files ready (see the `pool` module). Only the daemon
    /// does this; other processes write new files the slower way.
    pub fn start_pool(&self) {
        pool::start_filler(self);
    }

    /// The queue ID for a new transaction, with its pre-created file when one is ready. Dropping
    /// the reservation without storing the message gives the file back.
    pub fn reserve(&self) -> Reservation {
        self.pool.reserve()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, dir: QueueDir) -> PathBuf {
        self.root.join(dir.name())
    }

    pub fn path(&self, dir: QueueDir, id: &QueueId) -> PathBuf {
        self.dir(dir).join(id.as_str())
    }

    /// Writes a message durably into `dir`. When this returns `Ok` the message survives a crash
    /// or power loss. A message that already exists there is replaced atomically (written under
    /// `tmp/`, then renamed over it), never overwritten in place.
    pub fn store(&self, dir: QueueDir, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
        let dest = self.path(dir, &env.id);
        if dir == QueueDir::Incoming && self.pool.take_reserved(&env.id) {
            // A pool file: its name is already durable, so the file's fsync is enough.
            let result = self.fill_reserved(&dest, env, content);
            if result.is_err() {
                let _ = fs::remove_file(&dest);
            }
            return result;
        }
        if dest.exists() {
            return self.replace(dir, env, content);
        }
        let result = self
            .write_file(&dest, env, content)
            .and_then(|()| self.sync_dir(dir));
        if result.is_err() {
            let _ = fs::remove_file(&dest);
        }
        result
    }

    /// Replaces a message in place (after a delivery attempt changed recipient states), durably.
    pub fn rewrite(&self, dir: QueueDir, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
        self.store(dir, env, content)
    }

    fn replace(&self, dir: QueueDir, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
        let tmp = self.root.join("tmp").join(env.id.as_str());
        let result = self.write_file(&tmp, env, content).and_then(|()| {
            let dest = self.path(dir, &env.id);
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            self.sync_dir(dir)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn fill_reserved(&self, path: &Path, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        write_complete(f, path, env, content)
    }

    fn write_file(&self, path: &Path, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
        let f = match self.reuse_spare(path) {
            Some(f) => f,
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(MODE_INCOMPLETE)
                .open(path)
                .map_err(io_err(path))?,
        };
        write_complete(f, path, env, content)
    }

    /// Renames a spare file to `path` and opens it for overwriting; `None` when there is no
    /// usable spare (the caller creates a new file).
    fn reuse_spare(&self, path: &Path) -> Option<File> {
        while let Some(spare) = self.pool.take_spare() {
            let incomplete = fs::Permissions::from_mode(MODE_INCOMPLETE);
            if fs::set_permissions(&spare, incomplete).is_ok() && fs::rename(&spare, path).is_ok() {
                match OpenOptions::new().write(true).open(path) {
                    Ok(f) => return Some(f),
                    Err(_) => {
                        let _ = fs::remove_file(path);
                    }
                }
            }
        }
        None
    }

    /// Makes renames into `dir` durable.
    pub fn sync_dir(&self, dir: QueueDir) -> Result<(), QueueError> {
        let p = self.dir(dir);
        File::open(&p)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&p))
    }

    /// Reads and validates a queue file.
    pub fn load(&self, dir: QueueDir, id: &QueueId) -> Result<(Envelope, Vec<u8>), QueueError> {
        let path = self.path(dir, id);
        let (mut bytes, decoded) = read_queue_file(&path).map_err(io_err(&path))?;
        let corrupt = |reason| QueueError::Corrupt {
            path: path.clone(),
            reason,
        };
        let (env, head) = decoded.map_err(corrupt)?;
        let content = head.check(&bytes).map_err(corrupt)?;
        if &env.id != id {
            return Err(QueueError::Corrupt {
                path,
                reason: format!("file holds queue id {}", env.id),
            });
        }
        bytes.truncate(content.end);
        bytes.drain(..content.start);
        Ok((env, bytes))
    }

    /// Atomically moves a message between queues (a rename; the file is unchanged).
    pub fn move_to(&self, id: &QueueId, from: QueueDir, to: QueueDir) -> Result<(), QueueError> {
        let src = self.path(from, id);
        fs::rename(&src, self.path(to, id)).map_err(io_err(&src))
    }

    /// Deletes a message (delivery finished, or an admin's `queue delete`). The file leaves the
    /// queue with one atomic rename: in the daemon, straight back into `incoming/` under a fresh
    /// queue ID as a pool file (made incomplete first, so its old content is never mail under
    /// the new name; the pool offers it after its next directory fsync); otherwise into `tmp/`,
    /// where it waits as a spare for reuse.
    pub fn remove(&self, dir: QueueDir, id: &QueueId) -> Result<(), QueueError> {
        let p = self.path(dir, id);
        if self.pool.wants_recycled()
            && fs::set_permissions(&p, fs::Permissions::from_mode(MODE_INCOMPLETE)).is_ok()
        {
            let fresh = QueueId::generate();
            if fs::rename(&p, self.path(QueueDir::Incoming, &fresh)).is_ok() {
                self.pool.add_unsynced(fresh);
                return Ok(());
            }
            // Still here: it must stay visible until it is gone.
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(MODE_COMPLETE));
        }
        if self.pool.has_room_for_spare() {
            let spare = self.root.join("tmp").join(format!("{SPARE_PREFIX}{id}"));
            fs::rename(&p, &spare).map_err(io_err(&p))?;
            self.pool.add_spare(spare);
            return Ok(());
        }
        fs::remove_file(&p).map_err(io_err(&p))
    }

    /// IDs of the complete messages in a queue, oldest first. Names that are not queue IDs and
    /// files still being written are ignored.
    pub fn list(&self, dir: QueueDir) -> Result<Vec<QueueId>, QueueError> {
        let p = self.dir(dir);
        let mut ids = Vec::new();
        for entry in fs::read_dir(&p).map_err(io_err(&p))? {
            let entry = entry.map_err(io_err(&p))?;
            let Some(id) = entry.file_name().to_str().and_then(QueueId::parse) else {
                continue;
            };
            // A file still being written (or left half-written by a crash) is not mail yet.
            if entry
                .metadata()
                .is_ok_and(|m| is_complete(m.permissions().mode()))
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Finds which queue holds `id`.
    pub fn locate(&self, id: &QueueId) -> Option<QueueDir> {
        QueueDir::ALL
            .into_iter()
            .find(|&d| self.path(d, id).exists())
    }
}

/// Writes the sealed message over whatever `f` held, marks it complete and makes the data
/// durable.
///
/// The file keeps its length when the message fits, so that `fdatasync` has no metadata to
/// commit (the old tail stays behind the seal, unread). A file that must grow is zero-filled to
/// a whole [`GROW_STEP`], and one far longer than the message is cut back to one: both change
/// the size, which `fdatasync` then commits as well.
fn write_complete(
    mut f: File,
    path: &Path,
    env: &Envelope,
    content: &[u8],
) -> Result<(), QueueError> {
    let file = env.encode_sealed(content);
    let need = file.len() as u64;
    let have = f.metadata().map_err(io_err(path))?.len();
    let whole = need.div_ceil(GROW_STEP) * GROW_STEP;
    f.write_all(&file).map_err(io_err(path))?;
    if have < need {
        let pad = usize::try_from(whole - need).unwrap_or(0);
        f.write_all(&ZEROS[..pad]).map_err(io_err(path))?;
    } else if have > SHRINK_MIN && have > need.saturating_mul(SHRINK_FACTOR) {
        f.set_len(whole).map_err(io_err(path))?;
    }
    f.set_permissions(fs::Permissions::from_mode(MODE_COMPLETE))
        .map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

/// What [`read_queue_file`] found: the file's bytes up to the end of the message, and its
/// parsed record header (not yet checked against the bytes, see [`Header::check`]).
type QueueFile = (Vec<u8>, Result<(Envelope, Header), String>);

/// Reads the part of a queue file that holds the message and parses its record header once: a
/// sealed file may go on with the old bytes of a longer earlier message, which are not read.
fn read_queue_file(path: &Path) -> io::Result<QueueFile> {
    let mut f = File::open(path)?;
    let mut bytes = Vec::with_capacity(FIRST_READ as usize);
    let mut chunk = FIRST_READ;
    loop {
        let before = bytes.len();
        (&mut f).take(chunk).read_to_end(&mut bytes)?;
        let eof = ((bytes.len() - before) as u64) < chunk;
        if !eof && !bytes.windows(2).any(|w| w == b"\n\n") {
            chunk = chunk.saturating_mul(2);
            continue;
        }
        // Not a queue file, or cut short: what was read is enough to say so.
        let decoded = Envelope::decode_header(&bytes);
        match &decoded {
            Ok((_, head)) if head.sealed => {
                let more = head.file_len().saturating_sub(bytes.len()) as u64;
                (&mut f).take(more).read_to_end(&mut bytes)?;
                bytes.truncate(head.file_len());
            }
            // Unsealed (an older file): the content runs to the end of the file.
            Ok(_) if !eof => {
                f.read_to_end(&mut bytes)?;
            }
            _ => {}
        }
        return Ok((bytes, decoded));
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
