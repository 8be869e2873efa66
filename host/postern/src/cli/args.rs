//! The command-line grammar: `postern [-c DIR] [-o name=value]… COMMAND …`, and the `sendmail`,
//! `mailq` and `newaliases` personalities chosen by the name the binary was invoked as.
//!
//! Parsing is pure (argv in, [`Invocation`] out) so every accepted and refused form is covered by
//! the table-driven tests below. Sendmail's option letters are in [`super::sendmail_args`].

use std::path::PathBuf;

use crate::queue::{QueueDir, QueueId};

pub use super::sendmail_args::{SendmailArgs, SendmailMode};

/// A parsed command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// `-c DIR` (or sendmail's `-C DIR`); `None` = use `POSTERN_CONFIG_DIR`, `/etc/postern` or the
    /// embedded defaults (see [`super::resolve_config_dir`]).
    pub config_dir: Option<PathBuf>,
    /// `-o name=value`, in order; later ones win.
    pub overrides: Vec<(String, String)>,
    pub command: Command,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Command {
    /// `postern run`: the daemon in the foreground.
    Run,
    /// `postern start`: the daemon in the background.
    Start,
    Stop,
    Reload,
    Status,
    Check,
    Conf(ConfArgs),
    Queue(QueueCommand),
    Sendmail(SendmailArgs),
    /// `map build|query` (postmap).
    Map(super::map::MapCommand),
    /// `alias build` (postalias).
    Alias(super::map::AliasCommand),
    /// `plugin list|check|test`.
    Plugin(super::plugin::PluginCommand),
    /// `sasl hash`: an Argon2id hash for a passwd-file (docs/auth.md).
    Sasl(super::sasl::SaslCommand),
    /// `newaliases` / `sendmail -bi`: build every table of `alias_database`.
    Newaliases,
    #[default]
    Help,
    Version,
}

/// `postern conf` (postconf).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfArgs {
    pub mode: ConfMode,
    /// Parameter names to show (empty = all).
    pub names: Vec<String>,
    /// `-h`: print values only, without `name = `.
    pub values_only: bool,
    /// `-x`: expand `$name` references in values.
    pub expand: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ConfMode {
    /// Effective values (main.cf or default).
    #[default]
    Effective,
    /// `-n`: only what main.cf sets explicitly.
    Explicit,
    /// `-d`: built-in defaults.
    Defaults,
    /// `-e name=value…` (or bare `name=value` arguments): edit main.cf.
    Edit(Vec<(String, String)>),
    /// `-M`: master.cf services.
    Master,
}

/// `postern queue …` (postqueue, postsuper, postcat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueCommand {
    /// `queue list` / `mailq` / `postqueue -p`.
    List,
    /// `queue show [-e] [-h] [-b] ID` / `postcat -q ID`.
    Show {
        id: QueueId,
        parts: ShowParts,
    },
    Delete(Selection),
    Hold(Selection),
    Release(Selection),
    Requeue(Selection),
    /// `queue flush` / `postqueue -f` / `sendmail -q`.
    Flush,
    /// `queue flush SITE` / `postqueue -s site` / `sendmail -qRsite`: deferred mail with a
    /// pending recipient in domain SITE is retried now.
    FlushSite(String),
}

/// Which parts `queue show` prints; all three when no flag is given (as postcat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShowParts {
    pub envelope: bool,
    pub header: bool,
    pub body: bool,
}

/// Messages an admin command applies to: `ID…`, `ALL`, or `-` (IDs read from standard input,
/// one per line, as `postsuper -d -`), optionally restricted to some queues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub all: bool,
    pub from_stdin: bool,
    pub ids: Vec<QueueId>,
    /// Empty = every queue the command applies to.
    pub queues: Vec<QueueDir>,
}

/// A command line that cannot be understood; the message says what and how to fix it.
/// Exit status 64 (`EX_USAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

pub const USAGE: &str = "\
usage: postern [-c CONFIG_DIR] [-o name=value]... COMMAND [ARGS]

Daemon:
  run                     run in the foreground (logs to stderr or maillog_file)
  start                   start in the background and wait until it accepts mail
  stop                    stop the running daemon (SIGTERM)
  reload                  re-read the configuration (SIGHUP)
  status                  is it running? queue sizes; exit 0 when running, 1 when not
  check                   validate the configuration without listening

Configuration (postconf):
  conf [-h] [-x] [NAME...]        effective values
  conf -n                         parameters set in main.cf
  conf -d [NAME...]               built-in defaults
  conf -e NAME=VALUE...           edit main.cf
  conf -M                         master.cf services

Queue (postqueue, postsuper, postcat):
  queue list                      list queued mail (mailq)
  queue show [-e] [-h] [-b] ID    print a queued message
  queue delete|hold|release|requeue ID...|ALL|- [QUEUE...]
  queue flush                     retry deferred mail now

Lookup tables (postmap, postalias):
  map build [TYPE:]NAME...        compile hash: tables (NAME -> NAME.pdb)
  map query TYPE:NAME KEY...|-    look keys up (exit 1 when none is found)
  alias build [PATH...]           compile aliases(5) files (PATH -> PATH.pdb); no PATH:
                                  every table of alias_database (= newaliases)

Plugins:
  plugin list                     plugins.toml's bindings: roles, imports, grants, instances
  plugin check PATH.wasm          a component's roles, imports and requested grants
  plugin test PATH.wasm [VECTORS] run its test vectors (default PATH.tests.toml)

SMTP AUTH:
  sasl hash < PASSWORD            an Argon2id hash for smtpd_sasl_type = passwd-file

Submission:
  sendmail [-t] [-i] [-f FROM] [-F NAME] [--] RCPT...

Global options:
  -c DIR          configuration directory (default: $POSTERN_CONFIG_DIR, /etc/postern when
                  /etc/postern/main.cf exists, else the embedded defaults)
  -o NAME=VALUE   override a main.cf parameter (repeatable)
  -h, --help      this text;  -V, --version  the version
";

/// Parses a whole argv (including argv[0], which selects the personality).
pub fn parse(argv: &[String]) -> Result<Invocation, UsageError> {
    let name = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("postern");
    let rest = argv.get(1..).unwrap_or(&[]);
    match name {
        "sendmail" => sendmail_personality(rest),
        "mailq" => {
            let mut inv = sendmail_personality(rest)?;
            if matches!(inv.command, Command::Sendmail(_)) {
                inv.command = Command::Queue(QueueCommand::List);
            }
            Ok(inv)
        }
        "newaliases" => Ok(Invocation {
            command: Command::Newaliases,
            ..Invocation::default()
        }),
        _ => parse_postern(rest),
    }
}

fn sendmail_personality(args: &[String]) -> Result<Invocation, UsageError> {
    let parsed = super::sendmail_args::parse(args)?;
    Ok(Invocation {
        config_dir: parsed.config_dir.clone(),
        overrides: Vec::new(),
        command: parsed.into_command(),
    })
}

fn parse_postern(args: &[String]) -> Result<Invocation, UsageError> {
    let mut inv = Invocation::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(inv),
            "-V" | "--version" | "version" => {
                inv.command = Command::Version;
                return Ok(inv);
            }
            "-c" | "-o" => {
                let value = args
                    .get(i)
                    .ok_or_else(|| usage(format!("{arg} needs a value")))?;
                i += 1;
                global_option(&mut inv, arg, value)?;
            }
            a if a.starts_with("-c") || a.starts_with("-o") => {
                global_option(&mut inv, &a[..2], &a[2..])?;
            }
            a if a.starts_with('-') => {
                return Err(usage(format!(
                    "unknown option {a} (global options are -c DIR and -o name=value)"
                )))
            }
            _ => {
                inv.command = parse_command(arg, &args[i..])?;
                if let Command::Sendmail(args) = &inv.command {
                    if let Some(dir) = &args.config_dir {
                        inv.config_dir = Some(dir.clone());
                    }
                }
                return Ok(inv);
            }
        }
    }
    Err(usage("no command given (try: postern help)"))
}

fn global_option(inv: &mut Invocation, opt: &str, value: &str) -> Result<(), UsageError> {
    if opt == "-c" {
        if value.is_empty() {
            return Err(usage("-c needs a directory"));
        }
        inv.config_dir = Some(PathBuf::from(value));
        return Ok(());
    }
    inv.overrides.push(parse_assignment(value, "-o")?);
    Ok(())
}

/// `name=value` (spaces around `=` allowed, as in main.cf).
fn parse_assignment(s: &str, what: &str) -> Result<(String, String), UsageError> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !name.trim().contains(' ') => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(usage(format!(
            "{what} expects name=value, got \"{s}\" (example: {what} myhostname=mail.example.com)"
        ))),
    }
}

fn parse_command(word: &str, args: &[String]) -> Result<Command, UsageError> {
    let no_args = |cmd: Command| {
        if let Some(extra) = args.first() {
            Err(usage(format!(
                "{word} takes no arguments (got \"{extra}\")"
            )))
        } else {
            Ok(cmd)
        }
    };
    match word {
        "run" => no_args(Command::Run),
        "start" => no_args(Command::Start),
        "stop" => no_args(Command::Stop),
        "reload" => no_args(Command::Reload),
        "status" => no_args(Command::Status),
        "check" => no_args(Command::Check),
        "conf" => parse_conf(args).map(Command::Conf),
        "queue" => parse_queue(args).map(Command::Queue),
        "mailq" => no_args(Command::Queue(QueueCommand::List)),
        "sendmail" => Ok(super::sendmail_args::parse(args)?.into_command()),
        "newaliases" => no_args(Command::Newaliases),
        "map" => super::map::parse_map(args).map(Command::Map),
        "alias" => super::map::parse_alias(args).map(Command::Alias),
        "plugin" => super::plugin::parse_plugin(args).map(Command::Plugin),
        "sasl" => super::sasl::parse_sasl(args).map(Command::Sasl),
        other => Err(usage(format!(
            "unknown command \"{other}\" (commands: run start stop reload status check conf \
             queue map alias plugin sasl sendmail; try: postern help)"
        ))),
    }
}

fn parse_conf(args: &[String]) -> Result<ConfArgs, UsageError> {
    let mut conf = ConfArgs::default();
    let (mut explicit, mut defaults, mut edit, mut master) = (false, false, false, false);
    let mut words = Vec::new();
    let mut options_done = false;
    for arg in args {
        if !options_done && arg == "--" {
            options_done = true;
        } else if !options_done && arg.len() > 1 && arg.starts_with('-') {
            for flag in arg[1..].chars() {
                match flag {
                    'n' => explicit = true,
                    'd' => defaults = true,
                    'e' => edit = true,
                    'M' => master = true,
                    'h' => conf.values_only = true,
                    'x' => conf.expand = true,
                    _ => {
                        return Err(usage(format!(
                            "conf: unknown option -{flag} (options: -n -d -e -M -h -x)"
                        )))
                    }
                }
            }
        } else {
            words.push(arg.clone());
        }
    }
    // postconf treats `name=value` arguments as an edit even without -e.
    edit |= !words.is_empty() && words.iter().all(|w| w.contains('='));
    if [explicit, defaults, edit, master]
        .iter()
        .filter(|&&b| b)
        .count()
        > 1
    {
        return Err(usage("conf: -n, -d, -e and -M exclude each other"));
    }
    conf.mode = if edit {
        if words.is_empty() {
            return Err(usage("conf -e needs name=value arguments"));
        }
        let edits = words
            .iter()
            .map(|w| parse_assignment(w, "conf -e"))
            .collect::<Result<Vec<_>, _>>()?;
        ConfMode::Edit(edits)
    } else if master {
        ConfMode::Master
    } else if explicit {
        ConfMode::Explicit
    } else if defaults {
        ConfMode::Defaults
    } else {
        ConfMode::Effective
    };
    if let Some(w) = words.iter().find(|w| w.contains('=')) {
        if !edit {
            return Err(usage(format!(
                "conf: \"{w}\" looks like an edit; use conf -e name=value"
            )));
        }
    }
    if !edit {
        conf.names = words;
    }
    Ok(conf)
}

fn parse_queue(args: &[String]) -> Result<QueueCommand, UsageError> {
    let (sub, rest) = args.split_first().ok_or_else(|| {
        usage("queue needs a subcommand: list, show, delete, hold, release, requeue, flush")
    })?;
    let none = |cmd: QueueCommand| match rest.first() {
        Some(extra) => Err(usage(format!(
            "queue {sub} takes no arguments (got \"{extra}\")"
        ))),
        None => Ok(cmd),
    };
    match sub.as_str() {
        "list" | "ls" => none(QueueCommand::List),
        "flush" => match rest {
            [] => Ok(QueueCommand::Flush),
            [site] if !site.is_empty() && !site.starts_with('-') => Ok(QueueCommand::FlushSite(
                site.trim_start_matches('@').to_ascii_lowercase(),
            )),
            _ => Err(usage(
                "queue flush takes at most one argument: a domain (site)",
            )),
        },
        "show" | "cat" => parse_show(rest),
        "delete" | "rm" => parse_selection(sub, rest).map(QueueCommand::Delete),
        "hold" => parse_selection(sub, rest).map(QueueCommand::Hold),
        "release" => parse_selection(sub, rest).map(QueueCommand::Release),
        "requeue" => parse_selection(sub, rest).map(QueueCommand::Requeue),
        other => Err(usage(format!(
            "unknown queue subcommand \"{other}\" (list, show, delete, hold, release, requeue, \
             flush)"
        ))),
    }
}

fn parse_show(args: &[String]) -> Result<QueueCommand, UsageError> {
    let mut parts = ShowParts {
        envelope: false,
        header: false,
        body: false,
    };
    let mut id = None;
    for arg in args {
        if arg.len() > 1 && arg.starts_with('-') {
            for flag in arg[1..].chars() {
                match flag {
                    'e' => parts.envelope = true,
                    'h' => parts.header = true,
                    'b' => parts.body = true,
                    _ => {
                        return Err(usage(format!(
                            "queue show: unknown option -{flag} (-e envelope, -h header, -b body)"
                        )))
                    }
                }
            }
        } else if id.is_some() {
            return Err(usage("queue show takes one queue ID"));
        } else {
            id = Some(queue_id(arg)?);
        }
    }
    if !(parts.envelope || parts.header || parts.body) {
        parts = ShowParts {
            envelope: true,
            header: true,
            body: true,
        };
    }
    let id = id.ok_or_else(|| usage("queue show needs a queue ID (see: postern queue list)"))?;
    Ok(QueueCommand::Show { id, parts })
}

fn parse_selection(sub: &str, args: &[String]) -> Result<Selection, UsageError> {
    let mut sel = Selection::default();
    for arg in args {
        match arg.as_str() {
            "ALL" => sel.all = true,
            "-" => sel.from_stdin = true,
            a => match QueueDir::ALL.iter().find(|d| d.name() == a) {
                Some(&dir) => sel.queues.push(dir),
                None => sel.ids.push(queue_id(a)?),
            },
        }
    }
    if !sel.all && !sel.from_stdin && sel.ids.is_empty() {
        return Err(usage(format!(
            "queue {sub} needs queue IDs, ALL, or - (IDs on standard input)"
        )));
    }
    Ok(sel)
}

pub(super) fn queue_id(s: &str) -> Result<QueueId, UsageError> {
    QueueId::parse(s).ok_or_else(|| {
        usage(format!(
            "\"{s}\" is not a queue ID (IDs are 16 characters such as 6ZDQ4CK1N2B0C0V3; \
             see: postern queue list)"
        ))
    })
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
