//! `postern sendmail` (and the binary invoked as `sendmail`): queue a message from standard
//! input into `maildrop/`, where the queue manager picks it up (Postfix: sendmail → postdrop →
//! pickup → cleanup).
//!
//! The message is stored durably before this command exits 0, so it works whether or not the
//! daemon runs; when the daemon runs it is nudged (SIGUSR2) to pick the message up at once.
//! Exit statuses follow sysexits(3), as programs calling sendmail expect.

use std::io::{BufRead, BufReader, Read};

use anyhow::Context;
use postern_config::Config;

use super::args::SendmailArgs;
use super::headers;
use super::sendmail_args::SendmailMode;
use super::{exit, CliError, CliResult, WithCode};
use crate::queue::{Envelope, Origin, QueueDir, QueueId, Recipient, Spool};

/// Why reading the message failed.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// The message exceeds `message_size_limit` (bytes).
    TooBig(u64),
}

/// Reads a message the way Postfix's sendmail does: every line ending (LF or CRLF) becomes
/// CRLF, a final line without one gets one, a leading mbox `From ` line is dropped, and — unless
/// `ignore_dots` (`-i`) — a line holding a single `.` ends the input. `limit` is
/// `message_size_limit` (0 = none); reading stops as soon as it is exceeded.
pub fn read_message(input: impl Read, ignore_dots: bool, limit: u64) -> Result<Vec<u8>, ReadError> {
    // Bound what a single unterminated line can make us buffer.
    let cap = if limit == 0 {
        u64::MAX
    } else {
        limit.saturating_add(4096)
    };
    let mut reader = BufReader::new(input.take(cap));
    let mut content = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(ReadError::Io)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if std::mem::take(&mut first) && text.starts_with(b"From ") {
            continue;
        }
        if !ignore_dots && text == b"." {
            break;
        }
        content.extend_from_slice(text);
        content.extend_from_slice(b"\r\n");
        if limit > 0 && content.len() as u64 > limit {
            return Err(ReadError::TooBig(limit));
        }
    }
    Ok(content)
}

/// `-f` as given: `<>` or empty is the null sender; angle brackets are removed.
pub fn normalize_sender(raw: &str) -> String {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed == "<>" {
        return String::new();
    }
    headers::parse_address_list(trimmed)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Qualifies an unqualified address with `myorigin`, as cleanup would (for the `From:` header
/// built from `-F`).
fn qualify(addr: &str, cfg: &Config) -> String {
    if addr.contains('@') || addr.is_empty() {
        addr.to_string()
    } else {
        format!("{addr}@{}", cfg.myorigin)
    }
}

/// A display name as an RFC 5322 phrase: as is when it is only atoms, else a quoted string.
fn phrase(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c));
    if plain && !name.trim().is_empty() {
        name.trim().to_string()
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

/// Runs `sendmail` with the already loaded configuration. Returns the exit status.
pub fn run(args: &SendmailArgs, cfg: &Config) -> CliResult {
    if args.mode == SendmailMode::Smtp {
        return Err(CliError::new(
            exit::UNAVAILABLE,
            anyhow::anyhow!(
                "-bs (SMTP on standard input) is not implemented yet; submit over SMTP to a \
                 listener instead (postern conf -M lists them)"
            ),
        ));
    }
    let user = login_name().code(exit::NOUSER)?;
    let sender = match &args.sender {
        Some(raw) => normalize_sender(raw),
        None => user.clone(),
    };
    let mut recipients: Vec<String> = args
        .recipients
        .iter()
        .flat_map(|r| headers::parse_address_list(r))
        .collect();
    // Say so before waiting for a message that could go nowhere.
    if recipients.is_empty() && !args.extract_recipients {
        return Err(CliError::new(
            exit::USAGE,
            anyhow::anyhow!(
                "no recipients: name them on the command line or use -t to take them from the \
                 message header"
            ),
        ));
    }
    let stdin = std::io::stdin().lock();
    let mut content = match read_message(stdin, args.ignore_dots, cfg.message_size_limit) {
        Ok(c) => c,
        Err(ReadError::TooBig(limit)) => {
            return Err(CliError::new(
                exit::DATAERR,
                anyhow::anyhow!(
                    "message is larger than message_size_limit ({limit} bytes); not queued"
                ),
            ))
        }
        Err(ReadError::Io(e)) => {
            return Err(CliError::new(
                exit::IOERR,
                anyhow::Error::new(e).context("cannot read the message from standard input"),
            ))
        }
    };
    if args.extract_recipients {
        recipients.extend(headers::extract_recipients(&mut content));
        if recipients.is_empty() {
            return Err(CliError::new(
                exit::USAGE,
                anyhow::anyhow!(
                    "no recipient addresses found in the message header (To:, Cc:, Bcc:)"
                ),
            ));
        }
    }
    if let Some(name) = &args.full_name {
        if !sender.is_empty() && !headers::has_field(&content, "From") {
            let line = format!("From: {} <{}>\r\n", phrase(name), qualify(&sender, cfg));
            content.splice(0..0, line.into_bytes());
        }
    }

    let mut env = Envelope::new(QueueId::generate(), sender, Origin::Local { user });
    env.ret = args.ret;
    env.envid = args.envid.clone();
    env.body = args.body;
    env.recipients = recipients
        .into_iter()
        .map(|addr| {
            let mut r = Recipient::new(addr);
            r.notify = args.notify;
            r
        })
        .collect();
    let spool = Spool::open(&cfg.queue_directory)
        .map_err(|e| spool_error(e, "cannot open the queue directory"))?;
    spool
        .store(QueueDir::Maildrop, &env, &content)
        .map_err(|e| spool_error(e, "cannot queue the message"))?;
    // The message is safe on disk; waking the daemon only saves its next maildrop scan.
    super::control::signal_daemon(&cfg.queue_directory, libc::SIGUSR2);
    Ok(exit::OK)
}

fn spool_error(e: crate::queue::QueueError, what: &str) -> CliError {
    let code = match &e {
        crate::queue::QueueError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            exit::NOPERM
        }
        _ => exit::TEMPFAIL,
    };
    let hint = if code == exit::NOPERM {
        " (run as a user who may write to queue_directory)"
    } else {
        ""
    };
    CliError::new(code, anyhow::Error::new(e).context(format!("{what}{hint}")))
}

/// The login name of the real user: the password database entry for getuid(), else `$USER` /
/// `$LOGNAME` (accounts that exist only in the environment, e.g. some containers).
pub fn login_name() -> anyhow::Result<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if let Some(name) = passwd_name(uid) {
        return Ok(name);
    }
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .with_context(|| {
            format!("cannot tell who you are: uid {uid} has no password entry and $USER is unset; give the sender with -f")
        })
}

fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` is plain old data that getpwuid_r fills in; `buf` outlives every pointer
    // getpwuid_r stores into `pwd`, and we copy the name out before `buf` is dropped.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name);
        Some(name.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], ignore_dots: bool) -> Vec<u8> {
        match read_message(input, ignore_dots, 0) {
            Ok(c) => c,
            Err(e) => panic!("read failed: {e:?}"),
        }
    }

    #[test]
    fn line_endings_become_crlf() {
        assert_eq!(read(b"a\nb\r\nc", false), b"a\r\nb\r\nc\r\n");
        assert_eq!(read(b"", false), b"");
        // A bare CR inside a line is data.
        assert_eq!(read(b"x\ry\n", false), b"x\ry\r\n");
    }

    #[test]
    fn dot_ends_input_unless_dash_i() {
        let msg = b"Subject: x\n\nline\n.\nafter\n";
        assert_eq!(read(msg, false), b"Subject: x\r\n\r\nline\r\n");
        assert_eq!(read(msg, true), b"Subject: x\r\n\r\nline\r\n.\r\nafter\r\n");
        // Only a line of exactly "." counts; ".." and ". " are data and are not unstuffed.
        assert_eq!(read(b"..\n. \n.\r\n", false), b"..\r\n. \r\n");
    }

    #[test]
    fn mbox_from_line_is_dropped() {
        assert_eq!(
            read(
                b"From alice Mon Jan  1 00:00:00 2026\nSubject: x\n\nFrom here\n",
                false
            ),
            b"Subject: x\r\n\r\nFrom here\r\n"
        );
    }

    #[test]
    fn size_limit_stops_reading() {
        let big = vec![b'x'; 10_000];
        assert!(matches!(
            read_message(&big[..], false, 1000),
            Err(ReadError::TooBig(1000))
        ));
        assert!(read_message(&b"small\n"[..], false, 1000).is_ok());
    }

    #[test]
    fn sender_forms() {
        assert_eq!(normalize_sender("<>"), "");
        assert_eq!(normalize_sender(""), "");
        assert_eq!(normalize_sender("<a@example.com>"), "a@example.com");
        assert_eq!(normalize_sender("a@example.com"), "a@example.com");
        assert_eq!(normalize_sender("Alice <a@example.com>"), "a@example.com");
    }

    #[test]
    fn display_names_are_quoted_when_needed() {
        assert_eq!(phrase("Cron Daemon"), "Cron Daemon");
        assert_eq!(phrase("Smith, John"), "\"Smith, John\"");
        assert_eq!(phrase("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn login_name_is_known() {
        assert!(login_name().is_ok_and(|n| !n.is_empty()));
    }
}
