//! Maildir writing (<https://cr.yp.to/proto/maildir.html>, Postfix local(8) "qmail-style
//! delivery").
//!
//! A message is written completely into `tmp/` under a name no other delivery can choose, then
//! moved into `new/` by a rename that refuses to replace an existing file (`renameat2` with
//! `RENAME_NOREPLACE`; where that is not supported, a hard link and an unlink, as the Maildir
//! spec describes, or a plain rename on file systems without links); then the file and `new/`
//! are `fsync`ed. Only then is the delivery reported: the queue file is removed
//! after this returns, so the Maildir copy must already survive a crash.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Maildir file name: `<secs>.M<micros>P<pid>Q<counter>.<host>` (the modern qmail/Dovecot form).
/// `/` and `:` in the host name are written `\057` and `\072` as the Maildir spec asks, because
/// `/` would make a path and `:` starts the info suffix.
pub fn unique_name(hostname: &str) -> String {
    let now = crate::time::now_micros();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    format!(
        "{}.M{}P{}Q{}.{}",
        now / 1_000_000,
        now % 1_000_000,
        crate::log::pid(),
        n,
        host
    )
}

/// Creates `dir` and its `tmp`, `new`, `cur` subdirectories (mode 0700: a mailbox is private).
/// When anything was created, the parents are `fsync`ed so the directory entries are durable.
pub fn ensure(dir: &Path) -> io::Result<()> {
    // `tmp` last: a delivery that finds `tmp/` (and so skips this) must find `new/` too.
    let subdirs = ["new", "cur", "tmp"].map(|s| dir.join(s));
    if subdirs.iter().all(|d| d.is_dir()) {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for d in &subdirs {
        builder.create(d)?;
    }
    sync_dir(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Converts the queue's CRLF line endings to the LF that Maildir files use on Unix (as Postfix
/// local(8) writes them); a lone CR is kept as it is.
pub fn crlf_to_lf(content: &[u8], out: &mut Vec<u8>) {
    out.reserve(content.len());
    let mut i = 0;
    while i < content.len() {
        if content[i] == b'\r' && content.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(content[i]);
        i += 1;
    }
}

/// The header lines a final delivery adds (Postfix local(8)/virtual(8)): `Return-Path:` with the
/// envelope sender and `Delivered-To:` with the recipient, each kept on one line.
pub fn delivery_head(sender: &str, rcpt: &str) -> String {
    format!(
        "Return-Path: <{}>\nDelivered-To: {}\n",
        one_line(sender),
        one_line(rcpt)
    )
}

/// Header values must stay on one line whatever an address contained.
pub fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// [`deliver`] for a delivery agent: the result as the agent's outcome for one recipient. A full
/// disk or quota is `4.3.1` (RFC 3463 "mail system full"), any other failure `4.3.0`; both
/// defer, so the message stays queued.
pub fn deliver_outcome(
    dir: &Path,
    hostname: &str,
    head: &[u8],
    content: &[u8],
    slot: &mut super::DestinationSlot,
    relay: &str,
) -> super::Outcome {
    let mut written = || drop(slot.take());
    match deliver(dir, hostname, head, content, &mut written) {
        Ok(_) => super::Outcome::sent(relay, "delivered to maildir"),
        Err(e) => {
            let code = match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                    postern_proto::EnhancedCode::new(4, 3, 1)
                }
                _ => postern_proto::EnhancedCode::new(4, 3, 0),
            };
            super::Outcome::defer(
                code,
                relay,
                format!("cannot update maildir {}: {e}", dir.display()),
            )
        }
    }
}

/// Delivers `head` (extra header lines, LF-terminated) followed by `content` (CRLF) into the
/// Maildir `dir`. Returns the path of the file in `new/`. `written` is called once the file is
/// complete in `new/`, before the fsyncs that make it durable.
pub fn deliver(
    dir: &Path,
    hostname: &str,
    head: &[u8],
    content: &[u8],
    written: &mut dyn FnMut(),
) -> io::Result<PathBuf> {
    deliver_as(dir, &unique_name(hostname), head, content, written)
}

/// [`deliver`] under a given file name.
fn deliver_as(
    dir: &Path,
    name: &str,
    head: &[u8],
    content: &[u8],
    written: &mut dyn FnMut(),
) -> io::Result<PathBuf> {
    let tmp = dir.join("tmp").join(name);
    let new = dir.join("new").join(name);
    let mut data = Vec::with_capacity(head.len() + content.len());
    data.extend_from_slice(head);
    crlf_to_lf(content, &mut data);
    // What this delivery made, so that a failure removes exactly that: a name that clashed
    // belongs to another message (or another delivery still writing it).
    let (mut created, mut published) = (false, false);
    let result = create_tmp(dir, &tmp).and_then(|f| {
        created = true;
        if write_and_publish(f, dir, (&tmp, &new), &data, written, &mut published)? {
            // Linked, not renamed: the tmp name is still there.
            let _ = fs::remove_file(&tmp);
        }
        // Shared with concurrent deliveries into the same Maildir (see `dirsync`).
        super::dirsync::sync(&dir.join("new"))
    });
    if result.is_err() {
        // Not durable, so not delivered: the retry must not find a second copy, and a
        // half-written tmp file must not linger.
        if created {
            let _ = fs::remove_file(&tmp);
        }
        if published {
            let _ = fs::remove_file(&new);
        }
    }
    result.map(|()| new)
}

/// Creates the file in `tmp/`. The Maildir is created (see [`ensure`]) only when that fails
/// because it does not exist yet, so a delivery to an existing Maildir costs no extra look-ups.
fn create_tmp(dir: &Path, tmp: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure(dir)?;
            open()
        }
        other => other,
    }
}

/// Writes the file completely under `tmp/`, moves it into `new/`, then fsyncs it. Readers only
/// ever see complete files in `new/` (the write finished before the move), and fsyncing after
/// the move lets a journaling file system commit data, inode and directory entry in one
/// transaction; the caller's fsync of `new/` (shared by deliveries running at the same time)
/// then finds nothing left to commit. A Maildir without `new/` is completed first (see
/// [`ensure`]). Returns true when the file was hard-linked (the tmp name still exists), false
/// when it was renamed; `published` is set once the file is in `new/`.
fn write_and_publish(
    mut f: File,
    dir: &Path,
    (tmp, new): (&Path, &Path),
    data: &[u8],
    written: &mut dyn FnMut(),
    published: &mut bool,
) -> io::Result<bool> {
    f.write_all(data)?;
    let linked = match publish(tmp, new) {
        // `new/` is missing: a Maildir made by hand or another program with `tmp/` only.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure(dir)?;
            publish(tmp, new)?
        }
        other => other?,
    };
    *published = true;
    written();
    f.sync_all()?;
    Ok(linked)
}

/// Moves `tmp` to `new` without ever replacing an existing message: one `renameat2` with
/// `RENAME_NOREPLACE` where the kernel and file system support it, else a hard link (the
/// Maildir spec's way; the caller unlinks `tmp`), else a plain rename (file systems without
/// hard links). Returns true when it linked.
fn publish(tmp: &Path, new: &Path) -> io::Result<bool> {
    match rename_noreplace(tmp, new) {
        Ok(()) => return Ok(false),
        // A name collision means the unique name was not unique: never overwrite a message.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        Err(e) if !unsupported(&e) => return Err(e),
        Err(_) => {}
    }
    match fs::hard_link(tmp, new) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => fs::rename(tmp, new).map(|()| false),
    }
}

/// `renameat2` flags this kernel or file system does not know.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call; renameat2 reads them
    // and nothing else.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory path under the system's temporary directory (not created).
    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "postern-maildir-{tag}-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ))
    }

    #[test]
    fn names_are_unique_and_safe() {
        let a = unique_name("mail/host:1");
        let b = unique_name("mail/host:1");
        assert_ne!(a, b);
        assert!(!a.contains('/') && !a.contains(':'));
        assert!(a.ends_with(".mail\\057host\\0721"));
    }

    #[test]
    fn crlf_becomes_lf() {
        let mut out = Vec::new();
        crlf_to_lf(b"a\r\nb\rc\r\n", &mut out);
        assert_eq!(out, b"a\nb\rc\n");
    }

    #[test]
    fn delivery_lands_in_new() {
        let dir = scratch("plain");
        let md = dir.join("bob");
        let mut written = 0;
        let path = deliver(
            &md,
            "h",
            b"X-Test: 1\n",
            b"Subject: s\r\n\r\nbody\r\n",
            &mut || written += 1,
        )
        .expect("ok");
        assert_eq!(written, 1, "the destination slot is released exactly once");
        assert!(path.starts_with(md.join("new")));
        assert_eq!(
            fs::read(&path).expect("read"),
            b"X-Test: 1\nSubject: s\n\nbody\n"
        );
        assert_eq!(fs::read_dir(md.join("tmp")).expect("tmp").count(), 0);
        assert!(md.join("cur").is_dir());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_existing_message_is_never_replaced() {
        let dir = scratch("clash");
        ensure(&dir).expect("maildir");
        let (tmp, new) = (dir.join("tmp/x"), dir.join("new/x"));
        fs::write(&new, b"first").expect("write");
        fs::write(&tmp, b"second").expect("write");
        let err = publish(&tmp, &new).expect_err("a clash is refused");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&new).expect("read"), b"first");
        fs::remove_file(&new).expect("rm");
        if !publish(&tmp, &new).expect("moved") {
            assert!(!tmp.exists(), "renamed: the tmp name is gone");
        }
        assert_eq!(fs::read(&new).expect("read"), b"second");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A Maildir with `tmp/` but no `new/` (made by hand, or by another program) is completed
    /// instead of failing the delivery.
    #[test]
    fn a_maildir_without_new_is_completed() {
        let dir = scratch("partial");
        fs::create_dir_all(dir.join("tmp")).expect("tmp");
        let path = deliver(&dir, "h", b"", b"x\r\n", &mut || {}).expect("delivered");
        assert_eq!(fs::read(&path).expect("read"), b"x\n");
        assert!(dir.join("cur").is_dir());
        let _ = fs::remove_dir_all(&dir);
    }

    /// The first deliveries into a Maildir that does not exist yet, all at once: every one
    /// succeeds, whichever creates the directories.
    #[test]
    fn concurrent_first_deliveries_all_succeed() {
        let dir = scratch("race");
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (dir, start) = (dir.join("bob"), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..5)
                        .map(|_| deliver(&dir, "h", b"", b"x\r\n", &mut || {}).map(|_| ()))
                        .collect::<io::Result<Vec<()>>>()
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join").expect("every delivery succeeds");
        }
        assert_eq!(fs::read_dir(dir.join("bob/new")).expect("new").count(), 40);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A delivery whose name is taken fails and leaves the other file alone, whether the clash
    /// is in `new/` (a delivered message) or in `tmp/` (a delivery still writing).
    #[test]
    fn a_failed_delivery_removes_only_its_own_files() {
        let dir = scratch("own");
        ensure(&dir).expect("maildir");
        fs::write(dir.join("new/taken"), b"delivered").expect("write");
        let err = deliver_as(&dir, "taken", b"", b"x\r\n", &mut || {}).expect_err("clash");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(dir.join("new/taken")).expect("kept"), b"delivered");
        assert!(
            !dir.join("tmp/taken").exists(),
            "its own tmp file is removed"
        );

        fs::write(dir.join("tmp/busy"), b"in progress").expect("write");
        let err = deliver_as(&dir, "busy", b"", b"x\r\n", &mut || {}).expect_err("clash");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            fs::read(dir.join("tmp/busy")).expect("kept"),
            b"in progress"
        );
        assert!(!dir.join("new/busy").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
