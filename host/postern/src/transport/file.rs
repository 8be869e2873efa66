//! Delivery to a file named in an alias (local(8) "EXTERNAL FILE DELIVERY", `/path` targets).
//!
//! A path ending in `/` is a Maildir ([`super::maildir`]). Anything else is an mbox file: the
//! message is appended under an exclusive `flock`, starting with a `From sender date` line,
//! body lines starting with `From ` quoted as `>From `, and ending with an empty line, as
//! local(8) writes mailbox files. The append is `fsync`ed before success is reported; after a
//! failed write the file is truncated back to its old length so no half message remains.
//!
//! The file is written with the daemon's uid; Postern does not switch to the alias owner.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use postern_proto::EnhancedCode;

use super::{maildir, Outcome};

/// The `From ` envelope line mbox files and commands receive (`From sender Sun Nov 22 …`).
pub fn from_line(sender: &str) -> String {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let now = crate::time::now_secs();
    format!(
        "From {} {}\n",
        sender.replace(['\r', '\n', ' '], "_"),
        asctime(now)
    )
}

/// `Sun Nov 22 02:12:10 2026` in UTC (ctime(3) format without the newline).
fn asctime(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Civil-from-days (H. Hinnant), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{} {} {:2} {h:02}:{m:02}:{s:02} {y}",
        WD[(days % 7) as usize],
        MO[(mo - 1) as usize],
        d
    )
}

/// Appends (or, for `dir/`, Maildir-delivers) the message. `head` holds the `Return-Path:` and
/// `Delivered-To:` lines (LF), `content` the queued message (CRLF).
pub fn deliver(path: &Path, hostname: &str, sender: &str, head: &str, content: &[u8]) -> Outcome {
    let relay = "local";
    let text = path.display().to_string();
    if text.ends_with('/') {
        return match maildir::deliver(path, hostname, head.as_bytes(), content, &mut || {}) {
            Ok(_) => Outcome::sent(relay, format!("delivered to maildir {text}")),
            Err(e) => Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                relay,
                format!("cannot update maildir {text}: {e}"),
            ),
        };
    }
    let mut data = Vec::with_capacity(content.len() + 256);
    data.extend_from_slice(from_line(sender).as_bytes());
    data.extend_from_slice(head.as_bytes());
    let mut lf = Vec::with_capacity(content.len());
    maildir::crlf_to_lf(content, &mut lf);
    for line in lf.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            data.push(b'>');
        }
        data.extend_from_slice(line);
    }
    data.push(b'\n');
    match append(path, &data) {
        Ok(()) => Outcome::sent(relay, format!("delivered to file: {text}")),
        Err(e) => Outcome::defer(
            EnhancedCode::new(4, 3, 0),
            relay,
            format!("cannot append message to file {text}: {e}"),
        ),
    }
}

fn append(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let start = f.seek(SeekFrom::End(0))?;
    let result = f.write_all(data).and_then(|()| f.sync_all());
    if result.is_err() {
        let _ = f.set_len(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_ctime() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_309_591), "Sun Nov 22 01:06:31 2026");
    }

    #[test]
    fn mbox_append_quotes_from_lines() {
        let dir = std::env::temp_dir().join(format!("postern-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mbox = dir.join("archive");
        for _ in 0..2 {
            let o = deliver(
                &mbox,
                "h",
                "a@b",
                "Delivered-To: x@y\n",
                b"Subject: s\r\n\r\nFrom me\r\n",
            );
            assert!(o.is_sent(), "{o:?}");
        }
        let text = std::fs::read_to_string(&mbox).expect("read");
        assert_eq!(
            text.matches("\nFrom a@b ").count() + usize::from(text.starts_with("From a@b ")),
            2
        );
        assert!(text.contains("Delivered-To: x@y\nSubject: s\n\n>From me\n\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
