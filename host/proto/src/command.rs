//! SMTP command parsing (RFC 5321 §4.1.1, with extensions).
//!
//! [`parse_command`] turns one command line (terminator already removed by
//! the [`crate::line::LineReader`]) into a [`Command`], or a
//! [`CommandError`] whose [`CommandError::reply`] is the Postfix-worded reply.
//! Session state (is a MAIL transaction open? was EHLO given?) is the
//! caller's business; this module only checks syntax.

use crate::address::{self, SplitError};
use crate::params::{MailParams, ParamError, RcptParams};
use crate::reply::Reply;

/// One parsed SMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// HELO with the client's claimed hostname (verbatim, trimmed).
    Helo(String),
    /// EHLO with the client's claimed hostname (verbatim, trimmed).
    Ehlo(String),
    /// MAIL FROM. `from` is the address without `<>` and without any source
    /// route; `""` for the null sender `<>`.
    Mail {
        /// Sender address.
        from: String,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// RCPT TO. `to` is never empty.
    Rcpt {
        /// Recipient address.
        to: String,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// DATA (RFC 5321 §4.1.1.4).
    Data,
    /// BDAT (RFC 3030 §2): chunk size, and whether it is the LAST chunk.
    Bdat {
        /// Octets of message data that follow the command line.
        size: u64,
        /// `LAST` was given.
        last: bool,
    },
    /// RSET.
    Rset,
    /// NOOP (an argument is allowed and ignored, RFC 5321 §4.1.1.9).
    Noop,
    /// QUIT.
    Quit,
    /// VRFY with its argument verbatim.
    Vrfy(String),
    /// EXPN with its argument verbatim.
    Expn(String),
    /// HELP with an optional topic.
    Help(Option<String>),
    /// ETRN (RFC 1985) with its argument verbatim (`example.com`, `@example.com`, `#queue`).
    Etrn(String),
    /// STARTTLS (RFC 3207).
    Starttls,
    /// AUTH (RFC 4954): the rest of the line, e.g. `PLAIN dGVzdA==`.
    Auth(String),
}

impl Command {
    /// The upper-case verb, for logging and per-command statistics.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::Etrn(_) => "ETRN",
            Command::Starttls => "STARTTLS",
            Command::Auth(_) => "AUTH",
        }
    }
}

/// Why a command line was refused. See [`CommandError::reply`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Empty line, or NUL / other control characters (other than TAB).
    /// Reply: `500 5.5.2 Error: bad syntax`.
    #[error("bad command syntax")]
    BadSyntax,
    /// The line is not valid UTF-8. Reply: `500 5.5.2 Error: bad UTF-8 syntax`.
    #[error("command is not valid UTF-8")]
    BadUtf8,
    /// Unknown verb (at most 64 bytes of it are kept, for logging and for
    /// checks such as Postfix's `smtpd_forbidden_commands`).
    /// Reply: `500 5.5.2 Error: command not recognized`.
    #[error("command not recognized: {0}")]
    Unrecognized(String),
    /// Missing or malformed arguments; holds the usage text, e.g.
    /// `"MAIL FROM:<address>"`. Reply: `501 5.5.4 Syntax: <usage>`.
    #[error("syntax: {0}")]
    Usage(&'static str),
    /// Reply: `501 5.1.7 Bad sender address syntax`.
    #[error("bad sender address syntax")]
    BadSender,
    /// Reply: `501 5.1.3 Bad recipient address syntax`.
    #[error("bad recipient address syntax")]
    BadRecipient,
    /// Non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
    /// Reply: `553 5.6.7 Must declare SMTPUTF8 to send unicode address`.
    #[error("non-ASCII address without SMTPUTF8")]
    NeedSmtputf8,
    /// A bad ESMTP parameter; see [`ParamError::reply`].
    #[error(transparent)]
    Param(#[from] ParamError),
}

impl CommandError {
    /// The SMTP reply to send (Postfix wording).
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::BadSyntax => Reply::new(500, "5.5.2", "Error: bad syntax"),
            CommandError::BadUtf8 => Reply::new(500, "5.5.2", "Error: bad UTF-8 syntax"),
            CommandError::Unrecognized(_) => {
                Reply::new(500, "5.5.2", "Error: command not recognized")
            }
            CommandError::Usage(usage) => Reply::new(501, "5.5.4", format!("Syntax: {usage}")),
            CommandError::BadSender => Reply::new(501, "5.1.7", "Bad sender address syntax"),
            CommandError::BadRecipient => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
            CommandError::NeedSmtputf8 => Reply::new(
                553,
                "5.6.7",
                "Must declare SMTPUTF8 to send unicode address",
            ),
            CommandError::Param(p) => p.reply(),
        }
    }
}

/// Longest verb kept in [`CommandError::Unrecognized`].
const MAX_VERB_ECHO: usize = 64;

/// Parse one command line. `line` EXCLUDES the terminating CRLF.
///
/// `smtputf8_allowed`: when false, a non-ASCII character anywhere in a
/// MAIL/RCPT address is an error ([`CommandError::NeedSmtputf8`]) unless
/// the MAIL command itself carries the SMTPUTF8 parameter (RFC 6531 §3.4);
/// the caller passes true for RCPT when the transaction's MAIL had SMTPUTF8.
///
/// Leading and trailing spaces/tabs are ignored, and arguments may be
/// separated by runs of spaces or tabs (RFC 5321 §4.1.1 asks for exactly
/// one SP; Postfix, like most servers, is liberal here).
pub fn parse_command(line: &[u8], smtputf8_allowed: bool) -> Result<Command, CommandError> {
    // RFC 5321 §4.1.1: commands are text; NUL, CR, LF and friends inside a
    // command are never legitimate and are a classic injection vector.
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(CommandError::BadSyntax);
    }
    let line = std::str::from_utf8(line).map_err(|_| CommandError::BadUtf8)?;
    let line = line.trim_matches([' ', '\t']);
    if line.is_empty() {
        return Err(CommandError::BadSyntax);
    }
    let (verb, arg) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    };
    let upper = verb.to_ascii_uppercase();
    match upper.as_str() {
        "HELO" => required(arg, "HELO hostname").map(Command::Helo),
        "EHLO" => required(arg, "EHLO hostname").map(Command::Ehlo),
        "MAIL" => parse_mail(arg, smtputf8_allowed),
        "RCPT" => parse_rcpt(arg, smtputf8_allowed),
        "DATA" => no_args(arg, "DATA", Command::Data),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_args(arg, "RSET", Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(arg, "QUIT", Command::Quit),
        "VRFY" => required(arg, "VRFY address").map(Command::Vrfy),
        "EXPN" => required(arg, "EXPN address").map(Command::Expn),
        "HELP" => Ok(Command::Help((!arg.is_empty()).then(|| arg.to_string()))),
        "ETRN" => required(arg, "ETRN domain").map(Command::Etrn),
        "STARTTLS" => no_args(arg, "STARTTLS", Command::Starttls),
        "AUTH" => required(arg, "AUTH mechanism").map(Command::Auth),
        _ => {
            let mut end = verb.len().min(MAX_VERB_ECHO);
            while !verb.is_char_boundary(end) {
                end -= 1;
            }
            Err(CommandError::Unrecognized(verb[..end].to_string()))
        }
    }
}

fn required(arg: &str, usage: &'static str) -> Result<String, CommandError> {
    if arg.is_empty() {
        Err(CommandError::Usage(usage))
    } else {
        Ok(arg.to_string())
    }
}

fn no_args(arg: &str, usage: &'static str, cmd: Command) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Usage(usage))
    }
}

/// Strips a case-insensitive `FROM:` / `TO:` prefix and following blanks
/// (`MAIL FROM: <a@b>` is accepted like Postfix does).
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start_matches([' ', '\t']);
    (!rest.is_empty()).then_some(rest)
}

const MAIL_USAGE: &str = "MAIL FROM:<address>";
const RCPT_USAGE: &str = "RCPT TO:<address>";

fn parse_mail(arg: &str, smtputf8_allowed: bool) -> Result<Command, CommandError> {
    let rest = strip_keyword(arg, "FROM:").ok_or(CommandError::Usage(MAIL_USAGE))?;
    let (inner, param_text) = address::split_path(rest).map_err(|e| match e {
        SplitError::BadAddress => CommandError::BadSender,
        SplitError::Junk => CommandError::Usage(MAIL_USAGE),
    })?;
    let from = address::parse_path_contents(inner).ok_or(CommandError::BadSender)?;
    let params = MailParams::parse(param_text)?;
    // RFC 6531 §3.4: SMTPUTF8 on this very MAIL command allows UTF-8 here.
    if !from.is_ascii() && !smtputf8_allowed && !params.smtputf8 {
        return Err(CommandError::NeedSmtputf8);
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(arg: &str, smtputf8_allowed: bool) -> Result<Command, CommandError> {
    let rest = strip_keyword(arg, "TO:").ok_or(CommandError::Usage(RCPT_USAGE))?;
    let (inner, param_text) = address::split_path(rest).map_err(|e| match e {
        SplitError::BadAddress => CommandError::BadRecipient,
        SplitError::Junk => CommandError::Usage(RCPT_USAGE),
    })?;
    let to = address::parse_path_contents(inner).ok_or(CommandError::BadRecipient)?;
    // The null path is only meaningful as a reverse-path (RFC 5321 §4.5.5).
    if to.is_empty() {
        return Err(CommandError::BadRecipient);
    }
    let params = RcptParams::parse(param_text, smtputf8_allowed)?;
    if !to.is_ascii() && !smtputf8_allowed {
        return Err(CommandError::NeedSmtputf8);
    }
    Ok(Command::Rcpt { to, params })
}

/// RFC 3030 §2: `bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF`,
/// `chunk-size ::= 1*DIGIT`, `end-marker ::= "LAST"`.
fn parse_bdat(arg: &str) -> Result<Command, CommandError> {
    const USAGE: &str = "BDAT count [LAST]";
    let mut words = arg.split([' ', '\t']).filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or(CommandError::Usage(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Usage(USAGE)),
    };
    if words.next().is_some() {
        return Err(CommandError::Usage(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests;
