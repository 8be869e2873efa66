//! Postfix-shaped log lines: `Nov 22 01:06:31 host postern/smtpd[1234]: 4Q2…: client=…`.
//!
//! Existing tools (pflogsumm, grep habits) key on this shape, so every line names the service in
//! Postfix's terms (`smtpd`, `cleanup`, `qmgr`, `local`, `bounce`, …) and, where there is one, starts
//! its message with the queue ID. Warnings and errors carry Postfix's `warning:` / `error:` prefixes.
//! Lines go to standard error unless `maillog_file` names a file.

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

/// Where lines go. No lock is held while writing: each line is one `write(2)`, and appends to a
/// file opened with `O_APPEND` are atomic (the kernel positions and writes each call as one),
/// as are writes of up to 4 KiB to a pipe; sessions on several threads therefore never wait for
/// each other in user space to log.
enum Out {
    File(File),
    Stderr,
}

struct Sink {
    host: String,
    out: Out,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Severity; only `Warning` and `Error` change the text (Postfix prefixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Routes log lines to `maillog_file` (appending) or standard error when it is empty. Later calls
/// are ignored: the destination is fixed for the life of the process.
pub fn init(host: &str, maillog_file: &str) -> std::io::Result<()> {
    let out = if maillog_file.is_empty() {
        Out::Stderr
    } else {
        Out::File(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(maillog_file)?,
        )
    };
    let _ = SINK.set(Sink {
        host: host.to_string(),
        out,
    });
    Ok(())
}

/// Writes one line. Never fails: a logger that cannot write must not stop mail.
pub fn emit(level: Level, service: &str, args: Arguments<'_>) {
    let sink = SINK.get_or_init(|| Sink {
        host: "localhost".to_string(),
        out: Out::Stderr,
    });
    let prefix = match level {
        Level::Info => "",
        Level::Warning => "warning: ",
        Level::Error => "error: ",
    };
    let stamp = crate::time::syslog_stamp(crate::time::now_secs());
    // Keep one record per line whatever the message contained.
    let text: String = args
        .to_string()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let line = format!(
        "{stamp} {} postern/{service}[{}]: {prefix}{text}\n",
        sink.host,
        pid()
    );
    let _ = match &sink.out {
        Out::File(f) => (&*f).write_all(line.as_bytes()),
        Out::Stderr => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// The process ID, read once: `std::process::id()` is a system call each time, and every log
/// line shows it. (The daemon never forks after logging starts, so it cannot change.)
pub fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// Client-supplied text as it may appear in a log line: at most 100 characters, control
/// characters as `?` (Postfix `printable()`).
pub fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `info!("smtpd", "{id}: client={name}[{addr}]")`
#[macro_export]
macro_rules! info {
    ($svc:expr, $($arg:tt)*) => { $crate::log::emit($crate::log::Level::Info, $svc, format_args!($($arg)*)) };
}

/// `warn!("smtpd", "…")` — logged with Postfix's `warning:` prefix.
#[macro_export]
macro_rules! warn {
    ($svc:expr, $($arg:tt)*) => { $crate::log::emit($crate::log::Level::Warning, $svc, format_args!($($arg)*)) };
}

/// `error!("qmgr", "…")` — logged with Postfix's `error:` prefix.
#[macro_export]
macro_rules! error {
    ($svc:expr, $($arg:tt)*) => { $crate::log::emit($crate::log::Level::Error, $svc, format_args!($($arg)*)) };
}
