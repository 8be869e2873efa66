//! Logging through the host: each line goes to the MTA's log as
//! `postern/plugin[PID]: BINDING: message`, the host adding the binding name and session.
//!
//! Functions take a finished `&str`; the macros format like `format!`:
//!
//! ```no_run
//! use postern_plugin_sdk::log;
//! # let address = "a@example.com";
//! log::info("plain text");
//! log::info!("reject recipient <{}>: listed", address);
//! ```

pub use crate::logging::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    crate::logging::log(level, message);
}

/// Logs at `trace`.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs at `debug`.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at `info`.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at `warn`.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at `error`.
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace { ($($arg:tt)+) => { $crate::__log_at!(Trace, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug { ($($arg:tt)+) => { $crate::__log_at!(Debug, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info { ($($arg:tt)+) => { $crate::__log_at!(Info, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn { ($($arg:tt)+) => { $crate::__log_at!(Warn, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error { ($($arg:tt)+) => { $crate::__log_at!(Error, $($arg)+) }; }

/// `log::debug!("fmt", args…)`: formats and logs at `debug`.
#[doc(inline)]
pub use crate::__log_debug as debug;
/// `log::error!("fmt", args…)`: formats and logs at `error`.
#[doc(inline)]
pub use crate::__log_error as error;
/// `log::info!("fmt", args…)`: formats and logs at `info`.
#[doc(inline)]
pub use crate::__log_info as info;
/// `log::trace!("fmt", args…)`: formats and logs at `trace`.
#[doc(inline)]
pub use crate::__log_trace as trace;
/// `log::warn!("fmt", args…)`: formats and logs at `warn`.
#[doc(inline)]
pub use crate::__log_warn as warn;
