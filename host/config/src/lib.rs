//! # Layout
//!
//! `postern-config` owns Postern's configuration model: it parses `main.cf` and `master.cf`
//! written in Postfix syntax (postconf(5), master(5)) into typed, validated structs. It is pure
//! logic: no sockets, no async runtime, and no I/O beyond reading `main.cf`/`master.cf` from the
//! configuration directory ([`load`]) and, for the `myhostname` default, the system host name
//! (`/proc/sys/kernel/hostname`, else `/etc/hostname`).
//!
//! * `maincf` — [`MainCf`]: `main.cf` syntax (logical lines, comments, last definition wins) and
//!   [`edit_main_cf`] for `postern conf -e`.
//! * `expand` — lazy `$name` / `${name}` / `$(name)` / `${name?value}` / `${name:value}` expansion
//!   with loop detection.
//! * `params` — the parameter table ([`param_table`]) with every default as `postern conf -d`
//!   prints it; `docs/parameters.md` mirrors it.
//! * `values` — scalar syntax: times, sizes, booleans, lists, [`Cidr`], [`BareNewline`].
//! * `mastercf` — [`parse_master_cf`] and the mapping of `smtpd` inet services to socket addresses.
//! * `typed` — the validated [`Config`] struct; `build` fills it in from a [`MainCf`], with
//!   `build/restrict` checking restriction lists against [`RESTRICTION_NAMES`].
//! * `load` — [`load`], [`load_embedded`], [`load_with`]: all of the above, with every invalid value
//!   reported at once and unknown parameters reported as warnings.

use std::fmt;
use std::path::{Path, PathBuf};

mod build;
mod expand;
mod load;
mod maincf;
mod mastercf;
mod params;
mod typed;
mod values;

pub use build::restrict::{
    restriction_takes_argument, RESTRICTIONS_WITH_ARGUMENT, RESTRICTION_NAMES,
};
pub use build::security::{
    ClientSasl, ClientTlsLevel, Delivery, Sasl, SaslType, ServerTlsLevel, SmtpTls, SmtpdTls,
};
pub use load::{
    check_with, load, load_embedded, load_with, Listener, LoadedConfig, DEFAULT_MASTER_CF,
    EMBEDDED_MAIN_CF, EMBEDDED_MASTER_CF,
};
pub use maincf::{edit_main_cf, MainCf};
pub use mastercf::{parse_master_cf, service_port, Service, ServiceKind};
pub use params::{param_def, param_table, postfix_unimplemented, ParamDef};
pub use typed::Config;
pub use values::{
    parse_bool, parse_list, parse_nameserver, parse_size, parse_time, split_braced, BareNewline,
    Cidr,
};

/// One problem found in a configuration file, located by file and line.
///
/// `line` is 1-based; `0` means "no particular line" (a built-in default, or a command-line
/// `-o name=value` override).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub hint: Option<String>,
    /// A warning at load time (the daemon starts) that `postern check` must report as an
    /// error: an unknown restriction element or a restriction missing its argument (smtpd
    /// answers `451 4.3.5` for those lists at run time).
    pub fails_check: bool,
}

impl Diagnostic {
    /// A diagnostic without a hint.
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_path_buf(),
            line,
            message: message.into(),
            hint: None,
            fails_check: false,
        }
    }

    /// The same diagnostic with `hint` attached.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `main.cf:12: message (hint: ...)`; the line is omitted when it is 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)?;
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Why a configuration could not be read.
///
/// [`load`], [`load_embedded`] and [`load_with`] always report problems in the files as
/// [`ConfigError::Many`] (even when there is only one), so callers see every invalid value at
/// once. The single-item APIs ([`MainCf::parse`], [`MainCf::expand`], [`parse_master_cf`])
/// return [`ConfigError::Invalid`] for exactly one problem and `Many` for several.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
    #[error("{}", display_many(.0))]
    Many(Vec<Diagnostic>),
}

impl ConfigError {
    /// The diagnostics carried by this error (empty for [`ConfigError::Io`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid(d) => std::slice::from_ref(d),
            ConfigError::Many(v) => v,
        }
    }

    /// `Invalid` for one diagnostic, `Many` for several (and for none, which callers avoid).
    pub(crate) fn from_diagnostics(mut diags: Vec<Diagnostic>) -> ConfigError {
        if diags.len() == 1 {
            if let Some(d) = diags.pop() {
                return ConfigError::Invalid(d);
            }
        }
        ConfigError::Many(diags)
    }

    /// Turn the error into diagnostics (an I/O error becomes one diagnostic for its path).
    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Io { path, source } => vec![Diagnostic::new(&path, 0, source.to_string())],
            ConfigError::Invalid(d) => vec![d],
            ConfigError::Many(v) => v,
        }
    }
}

fn display_many(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Remove repeated diagnostics (same file, line and message; e.g. each listener re-validates
/// main.cf), keeping the first occurrence, then order them by file and line (stable).
pub(crate) fn tidy_diagnostics(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.file.clone(), d.line, d.message.clone())));
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_display_with_hint() {
        let d = Diagnostic::new(
            Path::new("main.cf"),
            12,
            "invalid value \"abc\" for message_size_limit: expected a size in bytes",
        )
        .with_hint("write the size in bytes, e.g. 10240000");
        assert_eq!(
            d.to_string(),
            "main.cf:12: invalid value \"abc\" for message_size_limit: expected a size in bytes \
             (hint: write the size in bytes, e.g. 10240000)"
        );
    }

    #[test]
    fn diagnostic_display_without_line() {
        let d = Diagnostic::new(Path::new("command line"), 0, "oops");
        assert_eq!(d.to_string(), "command line: oops");
    }

    #[test]
    fn many_is_one_per_line() {
        let e = ConfigError::Many(vec![
            Diagnostic::new(Path::new("/etc/postern/main.cf"), 1, "a"),
            Diagnostic::new(Path::new("/etc/postern/master.cf"), 2, "b"),
        ]);
        assert_eq!(
            e.to_string(),
            "/etc/postern/main.cf:1: a\n/etc/postern/master.cf:2: b"
        );
        assert_eq!(e.diagnostics().len(), 2);
    }

    #[test]
    fn io_error_names_path() {
        let e = ConfigError::Io {
            path: PathBuf::from("/x/main.cf"),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(e.to_string(), "/x/main.cf: denied");
        assert!(e.diagnostics().is_empty());
    }
}
