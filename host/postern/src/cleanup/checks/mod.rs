//! Content checks: `header_checks`, `mime_header_checks`, `nested_header_checks` and
//! `body_checks` (Postfix header_checks(5), cleanup(8) `cleanup_message.c`).
//!
//! [`apply`] walks the message once ([`mime`]) and looks each piece up in its tables (full key
//! only, as pattern tables expect):
//! - a logical header of the primary header section — `Name: value` with continuation lines
//!   unfolded (the CRLF removed, the leading blank kept) — in `header_checks`;
//! - a MIME header (`Content-*`, `MIME-Version`) anywhere, and every header of a multipart part,
//!   in `mime_header_checks`;
//! - any other header of an attached `message/rfc822` in `nested_header_checks`;
//! - each body line, boundaries and part bodies included, in `body_checks`, while the line
//!   starts within the first `body_checks_size_limit` bytes of its body segment (0 = no limit);
//!   a line longer than `line_length_limit` is looked at in pieces of that size, as Postfix's
//!   records are.
//!
//! Actions (the first word of the table's value, any case; the rest is the text):
//! `REJECT [[4|5].x.x] [text]` (`550 5.7.1 message content rejected` by default, 451 with a
//! 4.x.x code), `WARN`/`INFO [text]` (log only), `HOLD`, `DISCARD`, `REDIRECT user@domain`,
//! `FILTER transport:destination`, `BCC user@domain` (returned as [`Actions`]), `IGNORE`
//! (delete the header or line), `PREPEND text` (insert a header, which must look like one, or a
//! body line before this one), `REPLACE text` (replace it), `DUNNO`/`OK` (nothing). Like
//! Postfix, REJECT, DISCARD and REDIRECT end all further checks of the message, and a bad
//! action is logged and ignored. Postern extensions: `DEFER [text]` (= `REJECT 4.7.1 text`) and
//! `4NN`/`5NN text` as in access(5).
//!
//! Every action is logged the way Postfix's cleanup logs it:
//! `QUEUEID: reject: header Subject: Make money fast from unknown[192.0.2.1]; from=<a@b.example>
//! to=<c@d.example> proto=ESMTP helo=<x.example>: 5.7.1 message content rejected`.
//!
//! Lookup errors refuse the message for now (`451 4.3.0`) — never a silent "no match" — and a
//! table that cannot be opened is a configuration error (`451 4.3.5`), where Postfix's cleanup
//! would stop with a fatal error and smtpd would answer 451.
//!
//! Known difference: Postfix's smtpd writes its `Received:` header before cleanup sees the
//! message, so header_checks see it; Postern adds it after the checks.

mod mime;

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use postern_config::Config;
use postern_maps::{Scope, Tables};
use postern_proto::Reply;

use super::{Actions, Protocol};
use crate::queue::{Envelope, Origin};
use mime::{Item, Section};

/// Runs the content checks over `content` (the message as received, CRLF line endings) and
/// edits it in place for IGNORE/PREPEND/REPLACE (the content is only copied when something
/// changes). Returns the side effects to carry out, or the reply that refuses the message
/// (REJECT, DEFER, lookup errors).
pub fn apply(
    cfg: &Config,
    env: &Envelope,
    protocol: &Protocol,
    content: &mut Cow<'_, [u8]>,
) -> Result<Actions, Reply> {
    let maps = Maps::open(cfg)?;
    if maps.is_empty() {
        return Ok(Actions::default());
    }
    let log = LogCtx::new(env, protocol);
    let mut run = Run {
        cfg,
        maps: &maps,
        log: &log,
        actions: Actions::default(),
        edits: Vec::new(),
        reply: None,
    };
    let bytes: &[u8] = content;
    mime::walk(bytes, &mut |item| run.visit(bytes, item));
    if let Some(reply) = run.reply {
        return Err(reply);
    }
    if !run.edits.is_empty() && run.actions.discard.is_none() {
        let edited = rebuild(bytes, &run.edits);
        *content = Cow::Owned(edited);
    }
    Ok(run.actions)
}

/// The four parameters' tables (opened through cleanup's shared table cache, which reopens a
/// table when its file changes); `None` = the parameter is empty.
struct Maps {
    header: Option<Arc<Tables>>,
    mime: Option<Arc<Tables>>,
    nested: Option<Arc<Tables>>,
    body: Option<Arc<Tables>>,
}

impl Maps {
    fn open(cfg: &Config) -> Result<Maps, Reply> {
        let open = |param: &str, specs: &[String]| {
            if specs.is_empty() {
                return Ok(None);
            }
            super::tables::open(specs).map(Some).map_err(|e| {
                crate::warn!(
                    "cleanup",
                    "{param}: {e} -- message not accepted, try again later"
                );
                Reply::new(451, "4.3.5", "Server configuration error")
            })
        };
        Ok(Maps {
            header: open("header_checks", &cfg.header_checks)?,
            mime: open("mime_header_checks", &cfg.mime_header_checks)?,
            nested: open("nested_header_checks", &cfg.nested_header_checks)?,
            body: open("body_checks", &cfg.body_checks)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.header.is_none() && self.mime.is_none() && self.nested.is_none() && self.body.is_none()
    }
}

/// What the log lines say about the message (Postfix `cleanup_act_log`).
struct LogCtx {
    id: String,
    /// `name[addr]`, or `local` for `postern sendmail`.
    origin: String,
    /// ` from=<…> to=<…> proto=… helo=<…>`.
    envelope: String,
}

impl LogCtx {
    fn new(env: &Envelope, protocol: &Protocol) -> LogCtx {
        let mut envelope = format!(" from=<{}>", env.sender);
        if let Some(first) = env.recipients.first() {
            envelope.push_str(&format!(" to=<{}>", first.address));
        }
        let origin = match &env.origin {
            Origin::Smtp { addr, helo, name } => {
                let proto = if protocol.esmtp { "ESMTP" } else { "SMTP" };
                envelope.push_str(&format!(" proto={proto}"));
                if !helo.is_empty() {
                    envelope.push_str(&format!(" helo=<{helo}>"));
                }
                format!("{name}[{addr}]")
            }
            Origin::Local { .. } => "local".to_string(),
        };
        LogCtx {
            id: env.id.to_string(),
            origin,
            envelope: printable(&envelope),
        }
    }
}

/// Header or body: decides the log wording and whether PREPEND/REPLACE text must be a header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Header,
    Body,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Header => "header",
            Context::Body => "body",
        }
    }
}

/// What happens to the header or line that matched.
enum Outcome {
    Keep,
    /// Keep it and check nothing else (REJECT, DISCARD, REDIRECT).
    Stop,
    Drop,
    Replace(String),
    Prepend(String),
}

/// A change to the content: `start..end` becomes `text`.
struct Edit {
    start: usize,
    end: usize,
    text: Vec<u8>,
}

struct Run<'a> {
    cfg: &'a Config,
    maps: &'a Maps,
    log: &'a LogCtx,
    actions: Actions,
    edits: Vec<Edit>,
    reply: Option<Reply>,
}

impl Run<'_> {
    fn visit(&mut self, bytes: &[u8], item: Item) -> ControlFlow<()> {
        match item {
            Item::Header {
                section,
                mime,
                start,
                end,
            } => {
                let (param, tables) = match section {
                    _ if mime => ("mime_header_checks", &self.maps.mime),
                    Section::Part => ("mime_header_checks", &self.maps.mime),
                    Section::Nested => ("nested_header_checks", &self.maps.nested),
                    Section::Primary => ("header_checks", &self.maps.header),
                };
                let Some(tables) = tables else {
                    return ControlFlow::Continue(());
                };
                let key = header_key(&bytes[start..end], self.cfg.header_size_limit);
                self.check(tables, param, Context::Header, &key, (start, end, true))
            }
            Item::Body {
                start,
                text_end,
                end,
                segment_offset,
            } => {
                let Some(tables) = &self.maps.body else {
                    if self.maps.mime.is_none() && self.maps.nested.is_none() {
                        // Nothing below the primary header section is checked.
                        return ControlFlow::Break(());
                    }
                    return ControlFlow::Continue(());
                };
                let limit = self.cfg.body_checks_size_limit;
                let piece = self.cfg.line_length_limit.max(1);
                let mut from = start;
                loop {
                    let offset = segment_offset.saturating_add((from - start) as u64);
                    if limit != 0 && offset >= limit {
                        return ControlFlow::Continue(());
                    }
                    let to = text_end.min(from.saturating_add(piece));
                    let last = to == text_end;
                    let key = String::from_utf8_lossy(&bytes[from..to]);
                    let span = if last {
                        (from, end, true)
                    } else {
                        (from, to, false)
                    };
                    self.check(tables, "body_checks", Context::Body, &key, span)?;
                    if last {
                        return ControlFlow::Continue(());
                    }
                    from = to;
                }
            }
        }
    }

    /// Looks `key` up and records the outcome for the content at `span` (start, end, whether
    /// it ends with the line ending).
    fn check(
        &mut self,
        tables: &Tables,
        param: &str,
        context: Context,
        key: &str,
        (start, end, eol): (usize, usize, bool),
    ) -> ControlFlow<()> {
        let value = match tables.find(key, Scope::Full) {
            Ok(Some(value)) => value,
            Ok(None) => return ControlFlow::Continue(()),
            Err(e) => {
                crate::warn!(
                    "cleanup",
                    "{}: {param} map lookup problem -- message not accepted, try again later: {e}",
                    self.log.id
                );
                self.reply = Some(Reply::new(451, "4.3.0", "Error: temporary lookup failure"));
                return ControlFlow::Break(());
            }
        };
        let edit = match self.act(context, key, &value, param) {
            Outcome::Keep => return ControlFlow::Continue(()),
            Outcome::Stop => return ControlFlow::Break(()),
            Outcome::Drop => Edit {
                start,
                end,
                text: Vec::new(),
            },
            Outcome::Replace(text) => Edit {
                start,
                end,
                text: line(&text, eol),
            },
            Outcome::Prepend(text) => Edit {
                start,
                end: start,
                text: line(&text, true),
            },
        };
        self.edits.push(edit);
        ControlFlow::Continue(())
    }

    /// Postfix `cleanup_act`: carries out one table result.
    fn act(&mut self, context: Context, content: &str, value: &str, param: &str) -> Outcome {
        let (command, text) = match value.find([' ', '\t']) {
            Some(i) => (&value[..i], value[i..].trim_start()),
            None => (value, ""),
        };
        let command = command.to_ascii_uppercase();
        let needs_header = context == Context::Header;
        match command.as_str() {
            "REJECT" => self.refuse(context, content, content_reply(None, text)),
            "DEFER" => {
                let text = if text.is_empty() {
                    "message content deferred"
                } else {
                    text
                };
                self.refuse(context, content, content_reply(Some(451), text))
            }
            c if c.len() == 3
                && c.bytes().all(|b| b.is_ascii_digit())
                && matches!(c.as_bytes()[0], b'4' | b'5') =>
            {
                let code = c.parse().unwrap_or(451);
                self.refuse(context, content, content_reply(Some(code), text))
            }
            "WARN" => self.logged("warning", context, content, text, Outcome::Keep),
            "INFO" => self.logged("info", context, content, text, Outcome::Keep),
            "HOLD" => {
                if self.actions.hold.is_none() && self.actions.discard.is_none() {
                    self.actions.hold = Some(text.to_string());
                    self.log("hold", context, content, text);
                }
                Outcome::Keep
            }
            "DISCARD" => {
                self.actions.discard = Some(text.to_string());
                self.logged("discard", context, content, text, Outcome::Stop)
            }
            "FILTER" if text.contains(':') => {
                self.actions.filter = Some(text.to_string());
                self.logged("filter", context, content, text, Outcome::Keep)
            }
            "REDIRECT" if text.contains('@') => {
                self.actions.redirect = Some(text.to_string());
                self.logged("redirect", context, content, text, Outcome::Stop)
            }
            "BCC" if text.contains('@') => {
                self.actions.bcc.push(text.to_string());
                self.logged("bcc", context, content, text, Outcome::Keep)
            }
            "FILTER" | "REDIRECT" | "BCC" => {
                let need = match command.as_str() {
                    "FILTER" => "transport:destination",
                    _ => "user@domain",
                };
                crate::warn!(
                    "cleanup",
                    "bad {command} argument \"{text}\" in {param} map -- need {need}"
                );
                Outcome::Keep
            }
            "PREPEND" | "REPLACE" => {
                if text.is_empty() {
                    crate::warn!("cleanup", "{command} action without text in {param} map");
                    return Outcome::Keep;
                }
                if needs_header && mime::header_name(text.as_bytes()).is_none() {
                    crate::warn!(
                        "cleanup",
                        "bad {command} header text \"{text}\" in {param} map -- need \
                         \"headername: headervalue\""
                    );
                    return Outcome::Keep;
                }
                let (action, outcome) = if command == "PREPEND" {
                    ("prepend", Outcome::Prepend(text.to_string()))
                } else {
                    ("replace", Outcome::Replace(text.to_string()))
                };
                self.logged(action, context, content, text, outcome)
            }
            "IGNORE" => Outcome::Drop,
            "DUNNO" | "OK" => Outcome::Keep,
            _ => {
                crate::warn!("cleanup", "unknown command in {param} map: {value}");
                Outcome::Keep
            }
        }
    }

    fn refuse(&mut self, context: Context, content: &str, reply: Reply) -> Outcome {
        let reason = match &reply.enhanced {
            Some(enh) => format!("{enh} {}", reply.lines.join(" ")),
            None => reply.lines.join(" "),
        };
        self.log("reject", context, content, &reason);
        self.reply = Some(reply);
        Outcome::Stop
    }

    fn logged(
        &self,
        action: &str,
        context: Context,
        content: &str,
        text: &str,
        outcome: Outcome,
    ) -> Outcome {
        self.log(action, context, content, text);
        outcome
    }

    /// `QUEUEID: action: header|body CONTENT from ORIGIN; from=<…> to=<…> …[: text]`.
    fn log(&self, action: &str, context: Context, content: &str, text: &str) {
        let content: String = printable(content).chars().take(200).collect();
        let text = if text.is_empty() {
            String::new()
        } else {
            format!(": {}", printable(text))
        };
        crate::info!(
            "cleanup",
            "{}: {action}: {} {content} from {};{}{text}",
            self.log.id,
            context.name(),
            self.log.origin,
            self.log.envelope
        );
    }
}

/// The reply for REJECT/DEFER/`4NN`/`5NN`: an RFC 3463 code at the start of `text` is kept
/// (Postfix `dsn_prepend`), otherwise x.7.1 is used; `code` None = REJECT, whose class follows
/// the enhanced code (550, or 451 for 4.x.x; any other class becomes 4, as in Postfix).
fn content_reply(code: Option<u16>, text: &str) -> Reply {
    let (dsn, rest) = match text.split_once(' ') {
        Some((word, rest)) if is_dsn(word) => (Some(word), rest.trim_start()),
        _ if is_dsn(text) => (Some(text), ""),
        _ => (None, text),
    };
    let rest = if rest.is_empty() {
        "message content rejected"
    } else {
        rest
    };
    let class = match code {
        Some(code) => code / 100,
        None => match dsn.map(|d| d.as_bytes()[0]) {
            Some(b'5') | None => 5,
            Some(b'4') => 4,
            Some(_) => {
                crate::warn!("cleanup", "bad DSN action in {text} -- need 4.x.x or 5.x.x");
                4
            }
        },
    };
    let enh = match dsn {
        Some(d) if d.as_bytes()[0] == b'0' + class as u8 => d.to_string(),
        Some(d) if code.is_none() => format!("{class}{}", &d[1..]),
        _ => format!("{class}.7.1"),
    };
    let code = code.unwrap_or(if class == 4 { 451 } else { 550 });
    Reply::new(code, &enh, printable(rest))
}

/// Postfix `dsn_valid`: `[245].ddd.ddd` (one to three digits each).
fn is_dsn(word: &str) -> bool {
    let mut parts = word.split('.');
    let class_ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"));
    let digits = |p: Option<&str>| {
        p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    class_ok && digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// The lookup key of a header: unfolded (line breaks removed, RFC 5322 §2.2.3) and cut to
/// `header_size_limit` bytes like the stored header.
fn header_key(raw: &[u8], limit: usize) -> String {
    let raw = &raw[..raw.len().min(limit.max(1))];
    let mut unfolded = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            unfolded.push(b);
        }
    }
    String::from_utf8_lossy(&unfolded).into_owned()
}

/// Text from a table as a line of the message: CR and LF cannot be smuggled in (a `$1`
/// substitution could carry a bare CR from the key).
fn line(text: &str, eol: bool) -> Vec<u8> {
    let mut out: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect();
    if eol {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Control characters in log text become `?` (tabs from folded headers become spaces).
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

fn rebuild(content: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 256);
    let mut pos = 0;
    for edit in edits {
        // Edits come in content order and never overlap; skip any that would not.
        if edit.start < pos || edit.end < edit.start || edit.end > content.len() {
            continue;
        }
        out.extend_from_slice(&content[pos..edit.start]);
        out.extend_from_slice(&edit.text);
        pos = edit.end;
    }
    out.extend_from_slice(&content[pos..]);
    out
}

#[cfg(test)]
mod tests;
