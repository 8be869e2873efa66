//! Maildir writing (<https://cr.yp.to/proto/maildir.html>, Postfix local(8) "qmail-style
//! delivery").
//!
//! A message is written completely into `tmp/` under a name no other delivery can choose, then
//! hard-linked into `new/` (falling back to `rename` where links are not supported); then the
//! file and `new/` are `fsync`ed. Only then is the delivery reported: the queue file is removed
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
    let subdirs = ["tmp", "new", "cur"].map(|s| dir.join(s));
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
    ensure(dir)?;
    let name = unique_name(hostname);
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let mut data = Vec::with_capacity(head.len() + content.len());
    data.extend_from_slice(head);
    crlf_to_lf(content, &mut data);
    let result =
        write_and_link(&tmp, &new, &data, written).and_then(|()| sync_dir(&dir.join("new")));
    // The tmp name is gone after a link+unlink or rename; after a failure it must not linger.
    let _ = fs::remove_file(&tmp);
    if result.is_err() {
        // Not durable, so not delivered: the retry must not find a second copy.
        let _ = fs::remove_file(&new);
    }
    result.map(|()| new)
}

/// Writes the file completely under `tmp/`, links it into `new/`, then fsyncs it. Readers only
/// ever see complete files in `new/` (the write finished before the link), and fsyncing after
/// the link lets a journaling file system commit data, inode and directory entry in one
/// transaction; the caller's fsync of `new/` then finds nothing left to commit.
fn write_and_link(
    tmp: &Path,
    new: &Path,
    data: &[u8],
    written: &mut dyn FnMut(),
) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(data)?;
    match fs::hard_link(tmp, new) {
        Ok(()) => {}
        // A name collision means the unique name was not unique: never overwrite a message.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        // File systems without hard links (some FUSE/overlay setups): rename is atomic too.
        Err(_) => fs::rename(tmp, new)?,
    }
    written();
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = std::env::temp_dir().join(format!(
            "postern-maildir-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ));
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
}
