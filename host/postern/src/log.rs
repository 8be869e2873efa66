//! Postfix-shaped log lines: `Nov 22 01:06:31 host postern/smtpd[1234]: 4Q2…: client=…`.
//!
//! Existing tools (pflogsumm, grep habits) key on this shape, so every line names the service in
//! Postfix's terms (`smtpd`, `cleanup`, `qmgr`, `local`, `bounce`, …) and, where there is one, starts
//! its message with the queue ID. Warnings and errors carry Postfix's `warning:` / `error:` prefixes.
//! Lines go to standard error unless `maillog_file` names a file.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

struct Sink {
    host: String,
    out: Box<dyn Write + Send>,
}

static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();

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
    let out: Box<dyn Write + Send> = if maillog_file.is_empty() {
        Box::new(std::io::stderr())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(maillog_file)?,
        )
    };
    let _ = SINK.set(Mutex::new(Sink {
        host: host.to_string(),
        out,
    }));
    Ok(())
}

/// Writes one line. Never fails: a logger that cannot write must not stop mail.
pub fn emit(level: Level, service: &str, args: Arguments<'_>) {
    let sink = SINK.get_or_init(|| {
        Mutex::new(Sink {
            host: "localhost".to_string(),
            out: Box::new(std::io::stderr()),
        })
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
    if let Ok(mut sink) = sink.lock() {
        let line = format!(
            "{stamp} {} postern/{service}[{}]: {prefix}{text}\n",
            sink.host,
            pid()
        );
        let _ = sink.out.write_all(line.as_bytes());
        let _ = sink.out.flush();
    }
}

/// The process ID, read once: `std::process::id()` is a system call each time, and every log
/// line shows it. (The daemon never forks after logging starts, so it cannot change.)
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
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
