//! The command line: `postern [-c CONFIG_DIR] [-o name=value]… COMMAND`, one binary with
//! Postfix's verbs (see `docs/cli.md`), and the `sendmail`, `mailq` and `newaliases`
//! personalities chosen by the name it is invoked as.
//!
//! - [`args`] / `sendmail_args`: parsing (pure, table-tested).
//! - `control`: `run`, `start`, `stop`, `reload`, `status`, `check` (postfix(1)).
//! - `conf`: `conf` (postconf(1)).
//! - `queue`: `queue …` (postqueue(1), postsuper(1), postcat(1)).
//! - `map`: `map build|query` (postmap(1)) and `alias build` (postalias(1)).
//! - `plugin`: `plugin list|check|test` (wasm plugin components and their test vectors).
//! - `sendmail`: `sendmail` (sendmail(1)); `headers`: the bits of RFC 5322 it needs.
//!
//! No command starts an async runtime except `run` (the daemon builds its own), so `sendmail`
//! from cron stays a plain, quick process.

pub mod args;
mod check_tables;
mod conf;
mod control;
mod headers;
mod map;
mod plugin;
mod queue;
mod queue_admin;
mod sasl;
mod sendmail;
mod sendmail_args;

use std::path::{Path, PathBuf};

use postern_config::LoadedConfig;

use args::{Command, Invocation};

/// Exit statuses (sysexits(3)); `sendmail` callers such as cron and MTAs' own tools rely on them.
pub mod exit {
    pub const OK: i32 = 0;
    /// Generic failure (and "not running" for `status`, as `postfix status`).
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 64;
    pub const DATAERR: i32 = 65;
    pub const NOUSER: i32 = 67;
    pub const UNAVAILABLE: i32 = 69;
    pub const SOFTWARE: i32 = 70;
    pub const IOERR: i32 = 74;
    pub const TEMPFAIL: i32 = 75;
    pub const NOPERM: i32 = 77;
    pub const CONFIG: i32 = 78;
}

/// An error on its way to the user, with the exit status it ends the process with.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn new(code: i32, error: anyhow::Error) -> CliError {
        CliError { code, error }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> CliError {
        CliError {
            code: exit::FAILURE,
            error,
        }
    }
}

/// The exit status on success, or the error to print.
pub type CliResult = Result<i32, CliError>;

/// `result.code(exit::TEMPFAIL)?` — fail with a specific exit status.
pub trait WithCode<T> {
    fn code(self, code: i32) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: i32) -> Result<T, CliError> {
        self.map_err(|e| CliError::new(code, e.into()))
    }
}

/// Where the configuration comes from, and why (printed by `check` and `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSource {
    /// `None` = the embedded defaults.
    pub dir: Option<PathBuf>,
    pub reason: &'static str,
}

impl ConfigSource {
    pub fn describe(&self) -> String {
        match &self.dir {
            Some(d) => format!("{} ({})", d.display(), self.reason),
            None => format!("embedded defaults ({})", self.reason),
        }
    }
}

/// The system-wide configuration directory, used when it has a main.cf.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/postern";

/// `-c DIR`, else `$POSTERN_CONFIG_DIR`, else `/etc/postern` when `/etc/postern/main.cf`
/// exists, else the embedded defaults.
pub fn resolve_config_dir(
    explicit: Option<PathBuf>,
    env: Option<String>,
    system: &Path,
) -> ConfigSource {
    if let Some(dir) = explicit {
        return ConfigSource {
            dir: Some(dir),
            reason: "-c",
        };
    }
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        return ConfigSource {
            dir: Some(PathBuf::from(dir)),
            reason: "POSTERN_CONFIG_DIR",
        };
    }
    if system.join("main.cf").is_file() {
        return ConfigSource {
            dir: Some(system.to_path_buf()),
            reason: "it has a main.cf",
        };
    }
    ConfigSource {
        dir: None,
        reason: "no -c, no POSTERN_CONFIG_DIR, no /etc/postern/main.cf",
    }
}

/// Loads the configuration, turning every diagnostic into one line of the error.
pub fn load_config(
    source: &ConfigSource,
    overrides: &[(String, String)],
) -> Result<LoadedConfig, CliError> {
    postern_config::load_with(source.dir.as_deref(), overrides).map_err(|e| {
        if e.diagnostics().is_empty() {
            // Not a problem in the files but with reading them (a missing directory, say).
            return CliError::new(
                exit::CONFIG,
                anyhow::anyhow!(
                    "cannot read the configuration (chosen by {}): {e}",
                    source.reason
                ),
            );
        }
        let what = match &source.dir {
            Some(d) => format!("invalid configuration in {}", d.display()),
            None => "invalid embedded configuration".to_string(),
        };
        let detail: String = e.diagnostics().iter().map(|d| format!("\n  {d}")).collect();
        CliError::new(
            exit::CONFIG,
            anyhow::anyhow!("{what}:{detail}\n(run `postern check` for the full report)"),
        )
    })
}

/// `queue_directory` for commands that need nothing else (`stop`, `status`, `queue …`). They
/// must keep working while main.cf has an invalid value, so when the full load fails the
/// directory is read from main.cf's syntax alone, with a warning.
fn queue_directory(
    source: &ConfigSource,
    overrides: &[(String, String)],
) -> Result<PathBuf, CliError> {
    let err = match load_config(source, overrides) {
        Ok(loaded) => return Ok(loaded.main.queue_directory),
        Err(e) => e,
    };
    // A missing directory is not "a config with errors": there is nothing to fall back on.
    if source.dir.as_deref().is_some_and(|d| !d.is_dir()) {
        return Err(err);
    }
    let Ok(mut raw) = conf::read_main_cf(source) else {
        return Err(err);
    };
    for (name, value) in overrides {
        raw.set(name, value);
    }
    match raw.expand("queue_directory") {
        Ok(dir) if !dir.is_empty() => {
            eprintln!(
                "postern: warning: the configuration has errors (postern check lists them); \
                 using queue_directory = {dir}"
            );
            Ok(PathBuf::from(dir))
        }
        _ => Err(err),
    }
}

/// Entry point of the `postern` binary; returns the process exit status.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let prog = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| matches!(n.as_str(), "sendmail" | "mailq" | "newaliases"))
        .unwrap_or_else(|| "postern".to_string());
    let inv = match args::parse(&argv) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{prog}: {e}");
            if prog == "postern" {
                eprintln!("(postern help lists the commands)");
            }
            return exit::USAGE;
        }
    };
    match dispatch(inv) {
        Ok(code) => code,
        Err(CliError { code, error }) => {
            eprintln!("{prog}: error: {}", describe(&error));
            code
        }
    }
}

/// The error and its causes on one line, `context: cause`, skipping a cause whose text the
/// message already shows (many error types print their source in their own message).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn dispatch(inv: Invocation) -> CliResult {
    let source = resolve_config_dir(
        inv.config_dir.clone(),
        std::env::var("POSTERN_CONFIG_DIR").ok(),
        Path::new(SYSTEM_CONFIG_DIR),
    );
    let overrides = &inv.overrides;
    let load = || load_config(&source, overrides);
    match inv.command {
        Command::Help => {
            print!("{}", args::USAGE);
            Ok(exit::OK)
        }
        Command::Version => {
            println!("postern {}", env!("CARGO_PKG_VERSION"));
            Ok(exit::OK)
        }
        Command::Newaliases => map::run_alias_database(&load()?.main),
        Command::Check => control::check(&source, overrides),
        Command::Conf(conf_args) => conf::run(&conf_args, &source, overrides),
        Command::Run => {
            let opts = crate::daemon::Options {
                config_dir: source.dir.clone(),
                overrides: overrides.clone(),
            };
            crate::daemon::run_with(load()?, opts)?;
            Ok(exit::OK)
        }
        Command::Start => control::start(&source, overrides, &load()?),
        Command::Stop => control::stop(&queue_directory(&source, overrides)?),
        // Refuse to signal a reload the daemon would reject: say why here, at once.
        Command::Reload => {
            let loaded = load().map_err(|e| CliError {
                code: e.code,
                error: e
                    .error
                    .context("not reloaded; the running daemon keeps its current configuration"),
            })?;
            control::reload(&loaded.main.queue_directory)
        }
        Command::Status => control::status(&source, &queue_directory(&source, overrides)?),
        Command::Queue(cmd) => queue::run(&cmd, &queue_directory(&source, overrides)?),
        Command::Sendmail(args) => sendmail::run(&args, &load()?.main),
        Command::Map(cmd) => map::run_map(&cmd),
        Command::Alias(map::AliasCommand::Build { paths }) if paths.is_empty() => {
            map::run_alias_database(&load()?.main)
        }
        Command::Alias(cmd) => map::run_alias(&cmd),
        Command::Plugin(cmd) => plugin::run(&cmd, &load),
        Command::Sasl(cmd) => sasl::run(&cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let inner = anyhow::Error::new(io).context("/q/maildrop: no such file");
        let outer = inner.context("cannot open queue_directory /q");
        assert_eq!(
            describe(&outer),
            "cannot open queue_directory /q: /q/maildrop: no such file"
        );
    }

    #[test]
    fn config_dir_precedence() {
        let tmp = std::env::temp_dir().join(format!("postern-cfgdir-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&tmp);
        let explicit = resolve_config_dir(Some("/x".into()), Some("/y".into()), &tmp);
        assert_eq!(explicit.dir, Some(PathBuf::from("/x")));
        let env = resolve_config_dir(None, Some("/y".into()), &tmp);
        assert_eq!(env.dir, Some(PathBuf::from("/y")));
        // Without main.cf the system directory is not used…
        let none = resolve_config_dir(None, Some(String::new()), &tmp);
        assert_eq!(none.dir, None);
        assert!(none.describe().starts_with("embedded defaults"));
        // …with it, it is.
        std::fs::write(tmp.join("main.cf"), "").expect("write");
        let system = resolve_config_dir(None, None, &tmp);
        assert_eq!(system.dir, Some(tmp.clone()));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
