//! Sendmail's command-line options, as Postfix's `sendmail(1)` accepts them.
//!
//! Programs that send mail (cron, mutt, PHP's `mail()`, git send-email, logwatch, …) call
//! `/usr/sbin/sendmail` with options from the original Sendmail. Options are POSIX `getopt`
//! style (bundling `-ti`, values attached `-fme` or separate `-f me`); parsing stops at the
//! first recipient or at `--`, as Postfix's does.
//!
//! Implemented: `-t`, `-i`/`-oi`, `-f`/`-r FROM`, `-F NAME`, `-N DSN`, `-R RET`, `-V ENVID`,
//! `-B BODY`, `-C DIR`, `-bm`, `-bp`, `-bi`/`-I`, `-q`, `-bs` (recognised; not implemented yet).
//! Accepted and ignored, as Postfix ignores them: `-A X`, `-G`, `-L LABEL`, `-O OPT`, `-U`,
//! `-X LOG`, `-c`, `-e X`, `-h HOPS`, `-m`, `-n`, `-o X` (except `-oi`), `-p PROTO`, `-v`, `-x`.

use std::path::PathBuf;

use postern_proto::params::{Body, Notify, Ret};

use super::args::{Command, QueueCommand, UsageError};

/// What `sendmail` was asked to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SendmailMode {
    /// `-bm` (default): read a message from standard input and queue it.
    #[default]
    Deliver,
    /// `-bs`: speak SMTP on standard input/output.
    Smtp,
    /// `-bp`: list the queue (mailq).
    ListQueue,
    /// `-bi` / `-I`: rebuild the alias database (newaliases).
    Newaliases,
    /// `-q`: deliver deferred mail now.
    Flush,
    /// `-qRsite`: deliver deferred mail for one site now (Postfix `postqueue -s`).
    FlushSite(String),
}

/// Parsed `sendmail` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendmailArgs {
    pub mode: SendmailMode,
    /// `-t`: take recipients from To/Cc/Bcc (and remove Bcc).
    pub extract_recipients: bool,
    /// `-i` / `-oi`: a line with a single `.` is data, not the end of input.
    pub ignore_dots: bool,
    /// `-f` / `-r`: envelope sender as given (`<>` = null sender); default: the login name.
    pub sender: Option<String>,
    /// `-F`: full name for a `From:` header the message lacks.
    pub full_name: Option<String>,
    /// `-N`: RFC 3461 NOTIFY for every recipient.
    pub notify: Option<Notify>,
    /// `-R`: RFC 3461 RET.
    pub ret: Option<Ret>,
    /// `-V`: RFC 3461 ENVID.
    pub envid: Option<String>,
    /// `-B`: body type.
    pub body: Option<Body>,
    /// `-C`: configuration directory (Postfix's sendmail takes the directory here too).
    pub config_dir: Option<PathBuf>,
    /// Command-line recipients, unparsed (each may be an address list).
    pub recipients: Vec<String>,
}

impl SendmailArgs {
    /// The command this option set amounts to (`-bp` is `queue list`, and so on).
    pub fn into_command(self) -> Command {
        match self.mode {
            SendmailMode::ListQueue => Command::Queue(QueueCommand::List),
            SendmailMode::Flush => Command::Queue(QueueCommand::Flush),
            SendmailMode::FlushSite(site) => Command::Queue(QueueCommand::FlushSite(site)),
            SendmailMode::Newaliases => Command::Newaliases,
            SendmailMode::Deliver | SendmailMode::Smtp => Command::Sendmail(self),
        }
    }
}

/// Option letters that take a value (Postfix: `A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx`).
/// `q` takes an optional attached value and is handled apart.
const WITH_VALUE: &str = "ABCFLNORVXbefhopr";
const FLAGS: &str = "GIUcimntvx";

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Parses sendmail's arguments (argv without argv[0]).
pub fn parse(args: &[String]) -> Result<SendmailArgs, UsageError> {
    let mut out = SendmailArgs::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        i += 1;
        for (pos, letter) in arg[1..].char_indices() {
            let attached = &arg[1 + pos + letter.len_utf8()..];
            if letter == 'q' {
                apply_queue_option(&mut out, attached)?;
                break;
            }
            if WITH_VALUE.contains(letter) {
                let value = if attached.is_empty() {
                    let v = args.get(i).ok_or_else(|| {
                        usage(format!("sendmail: option -{letter} needs a value"))
                    })?;
                    i += 1;
                    v.as_str()
                } else {
                    attached
                };
                apply_value(&mut out, letter, value)?;
                break;
            }
            if !FLAGS.contains(letter) {
                return Err(usage(format!(
                    "sendmail: unknown option -{letter} (supported: -t -i -f FROM -F NAME \
                     -N DSN -R RET -V ENVID -B BODY -C DIR -bm -bp -bi -bs -q)"
                )));
            }
            match letter {
                't' => out.extract_recipients = true,
                'i' => out.ignore_dots = true,
                'I' => out.mode = SendmailMode::Newaliases,
                _ => {} // G U c m n v x: accepted and ignored, as Postfix does.
            }
        }
    }
    out.recipients = args[i.min(args.len())..].to_vec();
    Ok(out)
}

fn apply_queue_option(out: &mut SendmailArgs, value: &str) -> Result<(), UsageError> {
    // `-q` and `-q<interval>` both mean "deliver the queue now"; Postern has no periodic
    // sendmail queue runner (the daemon schedules retries itself).
    if let Some(site) = value.strip_prefix('R').filter(|s| !s.is_empty()) {
        out.mode = SendmailMode::FlushSite(site.trim_start_matches('@').to_ascii_lowercase());
        return Ok(());
    }
    if value.starts_with(['R', 'S', 'I', 'r', 's', 'i']) {
        return Err(usage(format!(
            "sendmail: -q{value} (queue runs by sender, ID or recipient substring) is not \
             supported; use postern queue flush [SITE]"
        )));
    }
    out.mode = SendmailMode::Flush;
    Ok(())
}

fn apply_value(out: &mut SendmailArgs, letter: char, value: &str) -> Result<(), UsageError> {
    match letter {
        'f' | 'r' => out.sender = Some(value.to_string()),
        'F' => out.full_name = Some(value.to_string()),
        'C' => out.config_dir = Some(PathBuf::from(value)),
        'V' => out.envid = Some(value.to_string()),
        'N' => {
            let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            out.notify = Some(Notify::parse(&compact).ok_or_else(|| {
                usage(format!(
                    "sendmail: -N \"{value}\": expected never, or a comma-separated list of \
                     success, delay, failure"
                ))
            })?);
        }
        'R' => {
            out.ret = Some(match value.to_ascii_lowercase().as_str() {
                "full" => Ret::Full,
                "hdrs" => Ret::Hdrs,
                _ => {
                    return Err(usage(format!(
                        "sendmail: -R \"{value}\": expected full or hdrs"
                    )))
                }
            })
        }
        'B' => {
            out.body = Some(match value.to_ascii_uppercase().as_str() {
                "7BIT" => Body::SevenBit,
                "8BITMIME" => Body::EightBitMime,
                _ => {
                    return Err(usage(format!(
                        "sendmail: -B \"{value}\": expected 7BIT or 8BITMIME"
                    )))
                }
            })
        }
        // -oi: dots are data. -odb/-odi/-oem/-oQ… are Sendmail tuning knobs Postfix ignores.
        'o' if value.starts_with('i') => out.ignore_dots = true,
        'b' => out.mode = parse_b_mode(value)?,
        _ => {} // A L O X e h p: accepted and ignored.
    }
    Ok(())
}

fn parse_b_mode(value: &str) -> Result<SendmailMode, UsageError> {
    match value {
        "m" => Ok(SendmailMode::Deliver),
        "s" => Ok(SendmailMode::Smtp),
        "p" => Ok(SendmailMode::ListQueue),
        "i" => Ok(SendmailMode::Newaliases),
        "d" => Err(usage(
            "sendmail: -bd (daemon mode) is not how Postern runs; start the daemon with \
             postern start",
        )),
        other => Err(usage(format!(
            "sendmail: -b{other} is not supported (supported: -bm deliver, -bp list queue, \
             -bi aliases, -bs SMTP)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn option_table() {
        let base = SendmailArgs::default;
        let rcpts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, SendmailArgs)> = vec![
            (
                "bob@example.com",
                SendmailArgs {
                    recipients: rcpts(&["bob@example.com"]),
                    ..base()
                },
            ),
            (
                "-t -i",
                SendmailArgs {
                    extract_recipients: true,
                    ignore_dots: true,
                    ..base()
                },
            ),
            (
                "-ti",
                SendmailArgs {
                    extract_recipients: true,
                    ignore_dots: true,
                    ..base()
                },
            ),
            // What cron, mutt and PHP pass.
            (
                "-FCronDaemon -i -B8BITMIME -oem root",
                SendmailArgs {
                    full_name: Some("CronDaemon".into()),
                    ignore_dots: true,
                    body: Some(Body::EightBitMime),
                    recipients: rcpts(&["root"]),
                    ..base()
                },
            ),
            (
                "-oi -f alice@example.com -- -bob",
                SendmailArgs {
                    ignore_dots: true,
                    sender: Some("alice@example.com".into()),
                    recipients: rcpts(&["-bob"]),
                    ..base()
                },
            ),
            (
                "-fbounce@x -r<> -odi -v a b",
                SendmailArgs {
                    sender: Some("<>".into()),
                    recipients: rcpts(&["a", "b"]),
                    ..base()
                },
            ),
            (
                "-N success,delay -R hdrs -V env1 -C /etc/p x",
                SendmailArgs {
                    notify: Notify::parse("SUCCESS,DELAY"),
                    ret: Some(Ret::Hdrs),
                    envid: Some("env1".into()),
                    config_dir: Some(PathBuf::from("/etc/p")),
                    recipients: rcpts(&["x"]),
                    ..base()
                },
            ),
            (
                "-bs",
                SendmailArgs {
                    mode: SendmailMode::Smtp,
                    ..base()
                },
            ),
            // Options after the first recipient are recipients (no GNU permutation).
            (
                "bob -t",
                SendmailArgs {
                    recipients: rcpts(&["bob", "-t"]),
                    ..base()
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&words(line)), Ok(want), "{line}");
        }
    }

    #[test]
    fn modes_map_to_commands() {
        let cmd = |line: &str| parse(&words(line)).map(SendmailArgs::into_command);
        assert_eq!(cmd("-bp"), Ok(Command::Queue(QueueCommand::List)));
        assert_eq!(cmd("-q"), Ok(Command::Queue(QueueCommand::Flush)));
        assert_eq!(cmd("-q30m"), Ok(Command::Queue(QueueCommand::Flush)));
        assert_eq!(
            cmd("-qRexample.org"),
            Ok(Command::Queue(QueueCommand::FlushSite(
                "example.org".into()
            )))
        );
        assert_eq!(cmd("-bi"), Ok(Command::Newaliases));
        assert_eq!(cmd("-I"), Ok(Command::Newaliases));
    }

    #[test]
    fn refusals_explain() {
        for (line, want) in [
            ("-f", "-f needs a value"),
            ("-bd", "postern start"),
            ("-bv x", "-bv is not supported"),
            ("-qSexample.com", "not supported"),
            ("-N sometimes x", "expected never"),
            ("-R all x", "full or hdrs"),
            ("-B BINARYMIME x", "7BIT or 8BITMIME"),
            ("-k x", "unknown option -k"),
        ] {
            match parse(&words(line)) {
                Err(UsageError(msg)) => assert!(msg.contains(want), "{line}: {msg}"),
                other => panic!("{line}: expected a usage error, got {other:?}"),
            }
        }
    }
}
