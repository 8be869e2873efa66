//! The daemon's pid file, `$queue_directory/pid/master.pid` (where Postfix keeps its master's).
//!
//! The running daemon holds a write lock on the file for as long as it lives, so "is a daemon
//! running?" is answered by the lock, not by the pid alone: a pid left behind by a crash may have
//! been reused by an unrelated process, which `kill(pid, 0)` would report as alive (and which
//! `postern stop` would then kill). The kernel drops the lock when the daemon exits, however it
//! exits. On Linux the lock is an open-file-description lock (`F_OFD_SETLK`), which can be tested
//! without taking it (`F_OFD_GETLK`) — so `postern status` never gets in the way of a daemon that
//! is starting. Where locks are not available at all, `kill(pid, 0)` is the fallback.
//!
//! The content is the pid right-aligned in 10 columns and a newline, as Postfix writes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const GETLK: libc::c_int = libc::F_OFD_GETLK;
#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const GETLK: libc::c_int = libc::F_GETLK;

/// `$queue_directory/pid/master.pid`.
pub fn pid_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("pid").join("master.pid")
}

#[derive(Debug, thiserror::Error)]
pub enum PidError {
    #[error(
        "postern is already running{} (pid file {}); stop it with `postern stop`, or give this \
         instance its own queue_directory",
        pid.map(|p| format!(" as pid {p}")).unwrap_or_default(),
        path.display()
    )]
    Running { pid: Option<i32>, path: PathBuf },
    #[error("pid file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The pid file of the running daemon: locked while held, removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: File,
}

fn lock_request(kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value (whole file, pid 0 as
    // F_OFD_* require) and the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Takes the write lock without waiting. `Ok(false)` = someone else holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    let mut fl = lock_request(libc::F_WRLCK as libc::c_short);
    // SAFETY: valid fd owned by `file`; `fl` is a properly initialised flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), SETLK, &mut fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Whether someone holds a lock on the file, without taking one.
fn is_locked(file: &File) -> io::Result<bool> {
    let mut fl = lock_request(libc::F_WRLCK as libc::c_short);
    // SAFETY: as in `try_lock`; F_GETLK only writes into `fl`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// True when a process with this pid exists (`kill(pid, 0)`; EPERM means it exists but
/// belongs to someone else).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|&p| p > 0)
}

/// Reads the pid from the start of the file. A daemon writes it right after taking the lock,
/// so an empty file that is locked is read again for a short while.
fn read_pid(file: &mut File) -> Option<i32> {
    for _ in 0..20 {
        let mut text = String::new();
        if file.read_to_string(&mut text).is_ok() {
            if let Some(pid) = parse_pid(&text) {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
        // Re-read from the start.
        let _ = io::Seek::rewind(file);
    }
    None
}

fn same_file(path: &Path, file: &File) -> bool {
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl PidFile {
    /// Creates (or takes over a stale) pid file and writes this process's pid into it.
    /// Fails with [`PidError::Running`] when a live daemon holds it.
    pub fn acquire(path: &Path) -> Result<PidFile, PidError> {
        let io_err = |source| PidError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        // A daemon that is exiting unlinks the file while we may be opening it; retry until the
        // locked file is the one the path names.
        for _ in 0..10 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_err)?;
            match try_lock(&file) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(PidError::Running {
                        pid: read_pid(&mut file),
                        path: path.to_path_buf(),
                    })
                }
                // No locking on this file system: fall back to asking whether the pid lives.
                Err(_) => {
                    let pid = read_pid_once(&mut file);
                    if pid.is_some_and(|p| p != std::process::id() as i32 && pid_alive(p)) {
                        return Err(PidError::Running {
                            pid,
                            path: path.to_path_buf(),
                        });
                    }
                }
            }
            if !same_file(path, &file) {
                continue;
            }
            file.set_len(0).map_err(io_err)?;
            io::Seek::rewind(&mut file).map_err(io_err)?;
            file.write_all(format!("{:>10}\n", std::process::id()).as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(io_err)?;
            return Ok(PidFile {
                path: path.to_path_buf(),
                file,
            });
        }
        Err(io_err(io::Error::other(
            "the pid file keeps being replaced by another process",
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid_once(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    parse_pid(&text)
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Remove it only if it is still ours; the lock goes when `file` closes.
        if same_file(&self.path, &self.file) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The pid of the daemon running on this pid file, or `None` when none runs (no file, or a
/// stale file nobody holds).
pub fn running(path: &Path) -> io::Result<Option<i32>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match is_locked(&file) {
        Ok(true) => Ok(read_pid(&mut file)),
        Ok(false) => Ok(None),
        Err(_) => Ok(read_pid_once(&mut file).filter(|&p| pid_alive(p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid file path under a fresh directory that is removed when the guard drops.
    struct TempQueue(PathBuf);

    impl TempQueue {
        fn new(tag: &str) -> TempQueue {
            TempQueue(std::env::temp_dir().join(format!(
                "postern-pid-{tag}-{}-{}",
                std::process::id(),
                crate::time::now_micros()
            )))
        }

        fn pid_path(&self) -> PathBuf {
            pid_path(&self.0)
        }
    }

    impl Drop for TempQueue {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn acquire_writes_pid_and_drop_removes_it() {
        let queue = TempQueue::new("basic");
        let path = queue.pid_path();
        let held = PidFile::acquire(&path).expect("acquire");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.len(), 11, "{text:?}");
        assert_eq!(parse_pid(&text), Some(std::process::id() as i32));
        drop(held);
        assert!(!path.exists());
        assert_eq!(running(&path).expect("running"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_held_file_refuses_a_second_daemon_and_reports_the_pid() {
        let queue = TempQueue::new("held");
        let path = queue.pid_path();
        let held = PidFile::acquire(&path).expect("acquire");
        let me = std::process::id() as i32;
        assert_eq!(running(&path).expect("running"), Some(me));
        match PidFile::acquire(&path) {
            Err(PidError::Running { pid, .. }) => assert_eq!(pid, Some(me)),
            other => panic!("expected Running, got {other:?}"),
        }
        // The failed attempt must not have removed or rewritten the holder's file.
        assert_eq!(running(&path).expect("running"), Some(me));
        drop(held);
    }

    #[test]
    fn a_stale_file_is_replaced() {
        let queue = TempQueue::new("stale");
        let path = queue.pid_path();
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        // pid 1 is alive, but nobody holds the lock: the file is stale all the same.
        fs::write(&path, "         1\n").expect("write");
        assert_eq!(running(&path).expect("running"), None);
        let held = PidFile::acquire(&path).expect("take over");
        assert_eq!(
            parse_pid(&fs::read_to_string(&path).expect("read")),
            Some(std::process::id() as i32)
        );
        drop(held);
        // Garbage content is stale too.
        fs::write(&path, "not a pid").expect("write");
        assert_eq!(running(&path).expect("running"), None);
        assert!(PidFile::acquire(&path).is_ok());
    }

    #[test]
    fn liveness_fallback() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
    }
}
