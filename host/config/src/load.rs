//! Loading a configuration directory (or the embedded defaults) into a [`LoadedConfig`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::expand::referenced_names;
use crate::mastercf::{listen_addrs, parse_master_lenient, Service, ServiceKind};
use crate::params::{did_you_mean, param_def, postfix_unimplemented};
use crate::typed::{build, Config};
use crate::values::parse_list;
use crate::{tidy_diagnostics, ConfigError, Diagnostic, MainCf};

/// The master.cf used when the configuration directory has none: Postfix's stock SMTP service
/// on port 25 of every `inet_interfaces` address.
pub const DEFAULT_MASTER_CF: &str = "\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
";

/// main.cf for running without a configuration directory ([`load_embedded`]): everything under
/// `./postern-data`, local delivery for `localhost` and `$myhostname`, only loopback clients
/// trusted.
pub const EMBEDDED_MAIN_CF: &str = "\
# Postern embedded defaults, used when no configuration directory is given.
# Same syntax as main.cf (postconf(5)); all other parameters have their defaults.
queue_directory = ./postern-data/queue
# A trailing / means Maildir.
mail_spool_directory = ./postern-data/mail/
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = loopback-only
";

/// master.cf for running without a configuration directory: one SMTP listener on
/// 127.0.0.1:2525 (an unprivileged port).
pub const EMBEDDED_MASTER_CF: &str = "\
# service        type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:2525   inet  n       -       n       -       -       smtpd
";

/// The file name diagnostics use for `name=value` overrides given to [`load_with`].
const COMMAND_LINE: &str = "command line";

/// A loaded configuration: the main configuration, one entry per SMTP listener, and warnings.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// main.cf (plus command-line overrides); what the queue manager uses.
    pub main: Config,
    /// One per master.cf `inet` service whose command is `smtpd`, in file order.
    pub listeners: Vec<Listener>,
    /// Non-fatal findings: unknown parameter names (with "did you mean X?" when a known name is
    /// within edit distance 2), Postfix parameters Postern ignores, undefined `$names`,
    /// master.cf inet services Postern does not run, a `#` inside a value. Also problems in
    /// restriction lists (unknown elements, missing arguments) with
    /// [`Diagnostic::fails_check`] set: the daemon runs (smtpd answers 451 4.3.5 for such a
    /// list) but `postern check` reports them as errors.
    pub warnings: Vec<Diagnostic>,
}

/// One SMTP listener (a master.cf `inet` service running `smtpd`).
#[derive(Clone, Debug)]
pub struct Listener {
    /// The master.cf service name as written, e.g. `smtp` or `127.0.0.1:2525`.
    pub service: String,
    /// The addresses to bind. A service name without a host yields every address of
    /// `inet_interfaces` (`all` gives both `0.0.0.0` and `[::]`; bind the IPv6 socket with
    /// IPV6_V6ONLY so both can coexist).
    pub addrs: Vec<SocketAddr>,
    /// main.cf + this service's `-o` overrides (+ command-line overrides); maxproc, when set,
    /// becomes `default_process_limit` (unless a command-line override sets it).
    pub config: Config,
}

/// Load `dir/main.cf` and `dir/master.cf`.
///
/// A missing master.cf means [`DEFAULT_MASTER_CF`] (`smtp inet n - y - - smtpd`, port 25); a
/// missing main.cf means all defaults; a missing `dir` is an I/O error. Relative paths inside
/// the config (queue_directory, mail_spool_directory) are kept as written. Every invalid value
/// is reported together ([`ConfigError::Many`]) with file:line and a hint.
pub fn load(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with(Some(dir), &[])
}

/// Embedded defaults for running without any config directory: listens on 127.0.0.1:2525,
/// queue under ./postern-data/queue, Maildir under ./postern-data/mail/, mydestination =
/// `$myhostname, localhost`, mynetworks `127.0.0.0/8 [::1]/128`. Parsed from
/// [`EMBEDDED_MAIN_CF`] and [`EMBEDDED_MASTER_CF`] by the same code as [`load`].
pub fn load_embedded() -> Result<LoadedConfig, ConfigError> {
    load_with(None, &[])
}

/// Like [`load`] (`dir` = `Some`) or [`load_embedded`] (`None`), with `name=value` overrides
/// applied last — after main.cf and after each service's master.cf `-o` options (used by
/// tests and the CLI `-o`).
pub fn load_with(
    dir: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    check_with(dir, overrides).map_err(|(error, _warnings)| error)
}

/// Like [`load_with`], but a configuration with errors also returns its warnings (unknown
/// parameter names and the like), so `postern check` can show every problem at once.
pub fn check_with(
    dir: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<LoadedConfig, (ConfigError, Vec<Diagnostic>)> {
    let no_warnings = |e: ConfigError| (e, Vec::new());
    match dir {
        Some(dir) => {
            let meta = std::fs::metadata(dir)
                .map_err(|source| ConfigError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
                .map_err(no_warnings)?;
            if !meta.is_dir() {
                return Err(no_warnings(ConfigError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::other("not a directory"),
                }));
            }
            let main_file = dir.join("main.cf");
            let main_text = read_optional(&main_file)
                .map_err(no_warnings)?
                .unwrap_or_default();
            let master_file = dir.join("master.cf");
            let (master_text, master_file) =
                match read_optional(&master_file).map_err(no_warnings)? {
                    Some(text) => (text, master_file),
                    None => (
                        DEFAULT_MASTER_CF.to_string(),
                        PathBuf::from("built-in master.cf"),
                    ),
                };
            let sources = Sources {
                main: (&main_text, &main_file),
                master: (&master_text, &master_file),
                config_dir: Some(dir.to_path_buf()),
            };
            assemble(sources, overrides)
        }
        None => {
            let sources = Sources {
                main: (EMBEDDED_MAIN_CF, Path::new("embedded main.cf")),
                master: (EMBEDDED_MASTER_CF, Path::new("embedded master.cf")),
                config_dir: None,
            };
            assemble(sources, overrides)
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

struct Sources<'a> {
    main: (&'a str, &'a Path),
    master: (&'a str, &'a Path),
    config_dir: Option<PathBuf>,
}

fn assemble(
    src: Sources<'_>,
    overrides: &[(String, String)],
) -> Result<LoadedConfig, (ConfigError, Vec<Diagnostic>)> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let (mut base, main_errors) = MainCf::parse_lenient(src.main.0, src.main.1);
    errors.extend(main_errors);
    warnings.extend(base.warnings().iter().cloned());
    if let Some(dir) = &src.config_dir {
        base.set_default("config_directory", &dir.display().to_string());
    }
    let (services, master_errors) = parse_master_lenient(src.master.0, src.master.1);
    errors.extend(master_errors);

    let apply_overrides = |cf: &mut MainCf| {
        for (name, value) in overrides {
            cf.set_at(name, value, Path::new(COMMAND_LINE), 0);
        }
    };
    let mut main_raw = base.clone();
    apply_overrides(&mut main_raw);
    unknown_parameter_warnings(&main_raw, &services, &mut warnings);
    let main = build(main_raw, src.config_dir.clone(), &mut errors, &mut warnings);

    let mut listeners: Vec<Listener> = Vec::new();
    let mut owners: Vec<(SocketAddr, &Service)> = Vec::new();
    for svc in &services {
        if !svc.is_smtp_listener() {
            if svc.kind == ServiceKind::Inet {
                warnings.push(ignored_service(svc));
            }
            continue;
        }
        let mut raw = base.clone();
        for (name, value) in &svc.overrides {
            raw.set_at(name, value, &svc.file, svc.line);
        }
        apply_overrides(&mut raw);
        let mut config = build(raw, src.config_dir.clone(), &mut errors, &mut warnings);
        let cli_limit = overrides.iter().any(|(n, _)| n == "default_process_limit");
        if let Some(maxproc) = svc.maxproc.filter(|_| !cli_limit) {
            config.default_process_limit = if maxproc == 0 { u32::MAX } else { maxproc };
        }
        let addrs = match listen_addrs(&svc.name, &main.inet_interfaces, &main.inet_protocols) {
            Ok(addrs) => addrs,
            Err((message, hint)) => {
                // Bad inet_interfaces entries are already reported against main.cf.
                if !message.starts_with("invalid inet_interfaces") {
                    errors.push(Diagnostic::new(&svc.file, svc.line, message).with_hint(hint));
                }
                continue;
            }
        };
        for addr in &addrs {
            if let Some((_, first)) = owners.iter().find(|(a, _)| a == addr) {
                errors.push(
                    Diagnostic::new(
                        &svc.file,
                        svc.line,
                        format!(
                            "service {} listens on {addr}, which service {} (line {}) already uses",
                            svc.name, first.name, first.line
                        ),
                    )
                    .with_hint("give each smtpd inet service its own address and port"),
                );
            } else {
                owners.push((*addr, svc));
            }
        }
        listeners.push(Listener {
            service: svc.name.clone(),
            addrs,
            config,
        });
    }
    if listeners.is_empty() && errors.is_empty() {
        warnings.push(
            Diagnostic::new(
                src.master.1,
                0,
                "no smtpd inet service; Postern will not accept mail over SMTP",
            )
            .with_hint("add e.g. \"smtp inet n - y - - smtpd\" to master.cf"),
        );
    }
    tidy_diagnostics(&mut errors);
    tidy_diagnostics(&mut warnings);
    if errors.is_empty() {
        Ok(LoadedConfig {
            main,
            listeners,
            warnings,
        })
    } else {
        Err((ConfigError::Many(errors), warnings))
    }
}

fn ignored_service(svc: &Service) -> Diagnostic {
    let d = Diagnostic::new(
        &svc.file,
        svc.line,
        format!(
            "inet service {} runs {}, which Postern does not implement; ignored",
            svc.name, svc.command
        ),
    );
    if svc.command == "postscreen" {
        d.with_hint(format!(
            "Postern has no postscreen; to accept mail on this port run smtpd directly: \
             \"{} inet n - y - - smtpd\"",
            svc.name
        ))
    } else {
        d
    }
}

/// Warn about parameters Postern does not know: names set in main.cf, and names set with `-o`
/// on SMTP listeners. A name referenced as `$name` somewhere is a user-defined parameter and
/// is not reported (like Postfix's "unused parameter" check).
fn unknown_parameter_warnings(main: &MainCf, services: &[Service], warnings: &mut Vec<Diagnostic>) {
    let mut referenced: HashSet<String> = HashSet::new();
    for (_, value) in main.explicit() {
        referenced.extend(referenced_names(value));
    }
    for svc in services {
        for (_, value) in &svc.overrides {
            referenced.extend(referenced_names(value));
        }
    }
    // Restriction class names are user-defined parameters too.
    let classes = "smtpd_restriction_classes";
    if let Ok(value) = main.expand(classes) {
        referenced.extend(parse_list(&value));
    }
    for svc in services {
        for (name, value) in &svc.overrides {
            if name == classes {
                referenced.extend(parse_list(value));
            }
        }
    }
    let mut check = |name: &str, file: &Path, line: usize, defined_in_main: bool| {
        if param_def(name).is_some() || referenced.contains(name) || defined_in_main {
            return;
        }
        let d = if postfix_unimplemented(name) {
            Diagnostic::new(
                file,
                line,
                format!("Postfix parameter {name} is not implemented by Postern; ignored"),
            )
        } else {
            let message = match did_you_mean(name) {
                Some(known) => format!("unknown parameter {name} (did you mean {known}?); ignored"),
                None => format!("unknown parameter {name}; ignored"),
            };
            Diagnostic::new(file, line, message)
                .with_hint("`postern conf -d` lists the parameters Postern knows")
        };
        warnings.push(d);
    };
    for (name, _) in main.explicit() {
        let (file, line) = main.location(name).unwrap_or((main.file(), 0));
        check(name, file, line, false);
    }
    for svc in services.iter().filter(|s| s.is_smtp_listener()) {
        for (name, _) in &svc.overrides {
            check(name, &svc.file, svc.line, main.get_raw(name).is_some());
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
