//! `postern queue list|show|flush` (postqueue -p, postcat -q, postqueue -f) and the dispatch of
//! the postsuper-style commands in `queue_admin`.
//!
//! Everything here reads the spool files directly, so it works whether or not the daemon runs.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::args::{QueueCommand, ShowParts};
use super::{exit, queue_admin, CliError, CliResult};
use crate::queue::{Envelope, QueueDir, QueueError, QueueId, RcptState, Spool};

/// Queues `queue list` shows, as Postfix's showq does (corrupt files are not mail).
const LISTED: [QueueDir; 5] = [
    QueueDir::Maildrop,
    QueueDir::Incoming,
    QueueDir::Active,
    QueueDir::Deferred,
    QueueDir::Hold,
];

pub fn run(cmd: &QueueCommand, queue_dir: &Path) -> CliResult {
    match cmd {
        QueueCommand::List => list(queue_dir),
        QueueCommand::Show { id, parts } => show(queue_dir, id, *parts),
        QueueCommand::Flush => flush(queue_dir),
        QueueCommand::Delete(sel) => queue_admin::delete(queue_dir, sel),
        QueueCommand::Hold(sel) => queue_admin::hold(queue_dir, sel),
        QueueCommand::Release(sel) => queue_admin::release(queue_dir, sel),
        QueueCommand::Requeue(sel) => queue_admin::requeue(queue_dir, sel),
        QueueCommand::FlushSite(site) => flush_site(queue_dir, site),
    }
}

/// Opens the spool of `cfg`, or `None` when `queue_directory` does not exist yet (nothing was
/// ever queued; reading commands must not create it).
pub fn open_existing(queue_dir: &Path) -> Result<Option<Spool>, CliError> {
    if !queue_dir.is_dir() {
        return Ok(None);
    }
    Spool::open(queue_dir)
        .with_context(|| format!("cannot open queue_directory {}", queue_dir.display()))
        .map(Some)
        .map_err(CliError::from)
}

/// One message as `queue list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub id: QueueId,
    pub dir: QueueDir,
    /// Content size in bytes.
    pub size: u64,
    /// Size of the queue file (the `Kbytes` total counts these, as Postfix does).
    pub file_size: u64,
    pub arrival: u64,
    pub sender: String,
    /// Recipients still to be delivered, with the last delivery result if any.
    pub recipients: Vec<(String, Option<String>)>,
}

impl Listed {
    pub fn new(dir: QueueDir, env: &Envelope, size: u64, file_size: u64) -> Listed {
        Listed {
            id: env.id.clone(),
            dir,
            size,
            file_size,
            arrival: env.arrival,
            sender: env.sender.clone(),
            recipients: env
                .recipients
                .iter()
                .filter(|r| r.state == RcptState::Pending)
                .map(|r| (r.address.clone(), r.reason.clone()))
                .collect(),
        }
    }
}

/// Replaces control characters so a hostile address cannot rewrite the admin's terminal
/// (Postfix's `printable()`).
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The mailq listing, byte for byte in Postfix's layout (showq): tools that parse `mailq` output
/// keep working. `stamp` formats an arrival time as asctime(3) does.
pub fn format_listing(entries: &[Listed], stamp: &dyn Fn(u64) -> String) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out = format!(
        "{:<11} {:>7} {:<20} {}\n",
        "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------"
    );
    let mut total: u64 = 0;
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        total += e.file_size;
        let status = match e.dir {
            QueueDir::Active => '*',
            QueueDir::Hold => '!',
            _ => ' ',
        };
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON".to_string()
        } else {
            printable(&e.sender)
        };
        let date: String = stamp(e.arrival).chars().take(20).collect();
        out.push_str(&format!(
            "{:<10}{status}{:>8} {date:<20} {sender}\n",
            e.id.as_str(),
            e.size
        ));
        let mut last_reason: Option<&str> = None;
        for (rcpt, reason) in &e.recipients {
            if let Some(reason) = reason.as_deref() {
                if last_reason != Some(reason) {
                    out.push_str(&format!("{:>78}\n", format!("({})", printable(reason))));
                }
                last_reason = Some(reason);
            }
            out.push_str(&format!("{:41}{}\n", "", printable(rcpt)));
        }
    }
    let n = entries.len();
    out.push_str(&format!(
        "\n-- {} Kbytes in {n} Request{}.\n",
        total / 1024,
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// asctime(3) in local time: `Thu Mar  2 07:10:58 2026`.
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain old data filled in by localtime_r, which is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        let c = crate::time::civil(secs);
        tm.tm_wday = c.weekday as i32;
        tm.tm_mon = c.month as i32 - 1;
        tm.tm_mday = c.day as i32;
        tm.tm_hour = c.hour as i32;
        tm.tm_min = c.minute as i32;
        tm.tm_sec = c.second as i32;
        tm.tm_year = (c.year - 1900) as i32;
    }
    format!(
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}

/// Loads every message in `dirs`, oldest first. Unreadable files are reported on stderr and
/// skipped; files that vanish meanwhile (delivered) are skipped silently.
pub fn scan(spool: &Spool, dirs: &[QueueDir]) -> Result<Vec<Listed>, CliError> {
    let mut entries = Vec::new();
    for &dir in dirs {
        let ids = spool
            .list(dir)
            .with_context(|| format!("cannot read the {} queue", dir.name()))?;
        for id in ids {
            match spool.load(dir, &id) {
                Ok((env, content)) => {
                    let file_size = std::fs::metadata(spool.path(dir, &id))
                        .map(|m| m.len())
                        .unwrap_or(content.len() as u64);
                    entries.push(Listed::new(dir, &env, content.len() as u64, file_size));
                }
                Err(QueueError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("postern: warning: {e}"),
            }
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

fn list(queue_dir: &Path) -> CliResult {
    let entries = match open_existing(queue_dir)? {
        Some(spool) => scan(&spool, &LISTED)?,
        None => Vec::new(),
    };
    print!("{}", format_listing(&entries, &asctime));
    Ok(exit::OK)
}

/// Message counts per queue (for `status`).
pub fn counts(queue_dir: &Path) -> Result<Vec<(QueueDir, usize)>, CliError> {
    let Some(spool) = open_existing(queue_dir)? else {
        return Ok(QueueDir::ALL.iter().map(|&d| (d, 0)).collect());
    };
    QueueDir::ALL
        .iter()
        .map(|&d| {
            spool
                .list(d)
                .map(|ids| (d, ids.len()))
                .with_context(|| format!("cannot read the {} queue", d.name()))
                .map_err(CliError::from)
        })
        .collect()
}

fn show(queue_dir: &Path, id: &QueueId, parts: ShowParts) -> CliResult {
    let not_found = || {
        CliError::new(
            exit::FAILURE,
            anyhow::anyhow!(
                "no message {id} in {} (postern queue list shows what is queued)",
                queue_dir.display()
            ),
        )
    };
    let spool = open_existing(queue_dir)?.ok_or_else(not_found)?;
    let dir = spool.locate(id).ok_or_else(not_found)?;
    let (env, content) = spool
        .load(dir, id)
        .with_context(|| format!("cannot read message {id}"))?;
    let mut out = std::io::stdout().lock();
    write_show(&mut out, dir, &env, &content, parts).context("cannot write to standard output")?;
    Ok(exit::OK)
}

/// postcat-style output: envelope records, then content with CRLF shown as LF.
pub fn write_show(
    out: &mut dyn Write,
    dir: QueueDir,
    env: &Envelope,
    content: &[u8],
    parts: ShowParts,
) -> std::io::Result<()> {
    let place = format!("{}/{}", dir.name(), env.id);
    if parts.envelope {
        writeln!(out, "*** ENVELOPE RECORDS {place} ***")?;
        for line in envelope_lines(env, content.len()) {
            writeln!(out, "{}", printable(&line))?;
        }
    }
    let split = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |p| p + 2);
    let (header, body) = content.split_at(split);
    let body = body.strip_prefix(b"\r\n").unwrap_or(body);
    let full = parts.envelope && parts.header && parts.body;
    if parts.header || parts.body {
        if full {
            writeln!(out, "*** MESSAGE CONTENTS {place} ***")?;
        }
        if parts.header {
            out.write_all(&crlf_to_lf(header))?;
        }
        if parts.header && parts.body {
            writeln!(out)?;
        }
        if parts.body {
            out.write_all(&crlf_to_lf(body))?;
        }
    }
    if full {
        writeln!(out, "*** MESSAGE FILE END {place} ***")?;
    }
    Ok(())
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn envelope_lines(env: &Envelope, size: usize) -> Vec<String> {
    use crate::queue::Origin;
    use postern_proto::params::{Body, Ret};
    let mut lines = vec![
        format!("message_size: {size}"),
        format!("message_arrival_time: {}", asctime(env.arrival)),
        format!("sender: {}", env.sender),
    ];
    lines.push(match &env.origin {
        Origin::Smtp { addr, helo, name } => {
            format!("origin: smtp client={name}[{addr}] helo={helo}")
        }
        Origin::Local { user } => format!("origin: local user={user}"),
    });
    if let Some(ret) = env.ret {
        lines.push(format!(
            "dsn_ret: {}",
            if ret == Ret::Full { "FULL" } else { "HDRS" }
        ));
    }
    if let Some(envid) = &env.envid {
        lines.push(format!("dsn_envid: {envid}"));
    }
    if let Some(body) = env.body {
        let b = match body {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        };
        lines.push(format!("body_type: {b}"));
    }
    if env.smtputf8 {
        lines.push("smtputf8: yes".to_string());
    }
    lines.push(format!("delivery_attempts: {}", env.attempts));
    if env.next_attempt > 0 {
        lines.push(format!("next_attempt: {}", asctime(env.next_attempt)));
    }
    if env.warned {
        lines.push("delay_warning_sent: yes".to_string());
    }
    for r in &env.recipients {
        let label = match r.state {
            RcptState::Pending => "recipient",
            RcptState::Delivered => "done_recipient",
            RcptState::Failed => "failed_recipient",
        };
        lines.push(format!("{label}: {}", r.address));
        if let Some((kind, addr)) = &r.orcpt {
            lines.push(format!("original_recipient: {kind};{addr}"));
        }
        if let Some(n) = r.notify {
            lines.push(format!("notify_flags: {}", n.to_param()));
        }
        if let Some(reason) = &r.reason {
            lines.push(format!("reason: {reason}"));
        }
    }
    lines
}

fn flush(queue_dir: &Path) -> CliResult {
    match super::control::signal_daemon(queue_dir, libc::SIGUSR1) {
        Some(_) => Ok(exit::OK),
        None => Err(CliError::new(
            exit::UNAVAILABLE,
            anyhow::anyhow!(
                "cannot flush the mail queue: the mail system is not running (postern start); \
                 deferred mail is retried when it starts"
            ),
        )),
    }
}

/// Per-site flush (Postfix `postqueue -s site`): deferred messages with a pending recipient in
/// `site` (or a subdomain of it) are requeued; the requeue tells a running daemon to rescan
/// (SIGUSR2), which delivers them now and leaves every other deferred message's retry time
/// alone.
fn flush_site(queue_dir: &Path, site: &str) -> CliResult {
    let entries = match open_existing(queue_dir)? {
        Some(spool) => scan(&spool, &[QueueDir::Deferred])?,
        None => Vec::new(),
    };
    let ids: Vec<QueueId> = entries
        .into_iter()
        .filter(|e| {
            e.recipients
                .iter()
                .any(|(r, _)| crate::qmgr::in_site(r, site))
        })
        .map(|e| e.id)
        .collect();
    if ids.is_empty() {
        eprintln!("postern: no deferred mail for {site}");
        return Ok(exit::OK);
    }
    let sel = super::args::Selection {
        all: false,
        from_stdin: false,
        ids,
        queues: vec![QueueDir::Deferred],
    };
    queue_admin::requeue(queue_dir, &sel)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
