//! `smtpd_milters`: before-queue content filters at end of data (Postfix's milters). Each
//! `wasm:NAME` entry is a filter-role plugin, each `rhai:PATH` entry a script's `filter(msg)`
//! (docs/scripts.md); they run in order on the message as the previous ones left it. A reject or defer is the SMTP reply; discard and quarantine become the
//! `DISCARD` and `HOLD` actions; header, body and envelope edits are applied before cleanup.
//! A failed filter call applies the binding's `on_error` (dunno: accept as if it were absent;
//! defer: `451 4.3.0`). An entry that is not `wasm:NAME` (Postfix's `inet:`/`unix:` milter
//! protocol is not implemented) defers the mail, as Postfix's `milter_default_action =
//! tempfail` does for a milter it cannot reach.

use std::sync::Arc;

use postern_proto::Reply;
use postern_runtime::{
    Address, Disposition, EnvelopeEdit, FilterContext, HeaderEdit, MessageContent, OnError, Phase,
    PluginError,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::session::Session;
use crate::cleanup::Actions;
use crate::queue::{Envelope, Recipient};
use crate::restrictions::wasm::clean;
use crate::restrictions::Facts;

fn temporary() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "Error: temporary content filter failure, try again later",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Runs every filter of `smtpd_milters`; `Some(reply)` refuses the message.
    pub(super) async fn run_milters(
        &mut self,
        facts: &Facts,
        txn: &postern_runtime::Transaction,
        env: &mut Envelope,
        content: &mut Vec<u8>,
        actions: &mut Actions,
    ) -> Option<Reply> {
        let cfg = self.ctx.settings.config.clone();
        // The session's epoch, as for its policy plugins (no file checks per message).
        let set = self.ctx.settings.policy.plugins().clone();
        for entry in &cfg.smtpd_milters {
            let qid = env.id.to_string();
            if let Some(path) = entry.strip_prefix("rhai:") {
                match script_filter(path, facts, env, content) {
                    ScriptVerdict::Accept => {}
                    ScriptVerdict::Refuse(r) => return Some(r),
                    ScriptVerdict::Discard(t) => actions.discard = Some(t),
                    ScriptVerdict::Hold(t) => actions.hold = Some(t),
                    ScriptVerdict::Prepend(name, value) => {
                        let add = HeaderEdit::Insert {
                            index: 0,
                            name,
                            value,
                        };
                        *content = edit(content, &[add], None);
                    }
                }
                continue;
            }
            let Some(name) = entry.strip_prefix("wasm:") else {
                crate::warn!(
                    "smtpd",
                    "{qid}: smtpd_milters entry \"{entry}\": only wasm:NAME filters are supported"
                );
                return Some(temporary());
            };
            let Some(filter) = set.filter(name) else {
                crate::warn!(
                    "smtpd",
                    "{qid}: smtpd_milters wasm:{name}: no filter plugin \"{name}\" is loaded from plugins.toml"
                );
                return Some(temporary());
            };
            let context = FilterContext {
                phase: Phase::BeforeQueue,
                queue_id: qid.clone(),
                sender: Address::new(&env.sender),
                recipients: env
                    .recipients
                    .iter()
                    .map(|r| Address::new(&r.address))
                    .collect(),
                client: Some(crate::restrictions::wasm::client_info(facts)),
            };
            let message = Arc::new(MessageContent::parse(content));
            let limit = usize::try_from(cfg.message_size_limit).unwrap_or(usize::MAX);
            let result = match filter.scan(&context, message, limit, Some(txn)).await {
                Ok(r) => r,
                Err(e) => {
                    let text = match e {
                        PluginError::Temporary(m) | PluginError::Config(m) => m,
                    };
                    crate::warn!("smtpd", "{qid}: filter {name}: {text}");
                    match filter.binding().on_error {
                        OnError::Dunno => continue,
                        OnError::Defer => return Some(temporary()),
                    }
                }
            };
            match result.disposition {
                Disposition::Accept => {}
                Disposition::Reject(r) | Disposition::Defer(r) => {
                    let enhanced = r.enhanced.map(|e| e.to_string()).unwrap_or_default();
                    let text = clean(&r.text.join(" "));
                    return Some(Reply::new(r.code, &enhanced, text));
                }
                Disposition::Discard(t) => {
                    actions.discard = Some(t.unwrap_or_else(|| format!("filter {name}")));
                }
                Disposition::Quarantine(t) => actions.hold = Some(clean(&t)),
            }
            for e in result.envelope_edits {
                match e {
                    EnvelopeEdit::ChangeSender(a) => env.sender = a.address,
                    EnvelopeEdit::AddRecipient(a) => {
                        if !env.recipients.iter().any(|r| r.address == a.address) {
                            env.recipients.push(Recipient::new(a.address));
                        }
                    }
                    EnvelopeEdit::RemoveRecipient(a) => env.recipients.retain(|r| r.address != a),
                }
            }
            if env.recipients.is_empty() {
                actions.discard = Some(format!("filter {name} removed every recipient"));
            }
            if !result.header_edits.is_empty() || result.new_body.is_some() {
                *content = edit(content, &result.header_edits, result.new_body.as_deref());
            }
            crate::info!("smtpd", "{qid}: filter {name}: accepted");
        }
        None
    }
}

/// Most body bytes a filter script sees (as text); the `body_truncated` attribute says so.
const SCRIPT_BODY_LIMIT: usize = 1 << 20;

enum ScriptVerdict {
    Accept,
    Refuse(Reply),
    Discard(String),
    Hold(String),
    Prepend(String, String),
}

/// Runs `filter(msg)` of the script at `path` and reads its access(5)-style answer. A script
/// that fails or answers something else defers the mail (451 4.3.0) and is logged.
fn script_filter(path: &str, facts: &Facts, env: &Envelope, content: &[u8]) -> ScriptVerdict {
    let qid = env.id.to_string();
    let fail = |why: String| {
        crate::warn!("smtpd", "{qid}: smtpd_milters rhai:{path}: {why}");
        ScriptVerdict::Refuse(temporary())
    };
    let script = match crate::scripts::engine().load(std::path::Path::new(path)) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let msg = MessageContent::parse(content);
    let truncated = msg.body.len() > SCRIPT_BODY_LIMIT;
    let body = String::from_utf8_lossy(&msg.body[..msg.body.len().min(SCRIPT_BODY_LIMIT)]);
    let attrs = [
        ("queue_id", qid.clone()),
        ("sender", env.sender.clone()),
        ("client_address", facts.client_addr.to_string()),
        ("client_name", facts.client_name.clone()),
        ("helo_name", facts.helo.clone().unwrap_or_default()),
        ("size", msg.size().to_string()),
        (
            "body_truncated",
            if truncated { "yes" } else { "no" }.to_string(),
        ),
    ];
    let rcpts: Vec<String> = env.recipients.iter().map(|r| r.address.clone()).collect();
    let action = match script.filter(&attrs, &rcpts, &msg.headers, body.into_owned()) {
        Ok(a) => a,
        Err(e) => return fail(e.to_string()),
    };
    let (word, rest) = match action.split_once(char::is_whitespace) {
        Some((w, r)) => (w.to_ascii_uppercase(), clean(r.trim())),
        None => (action.to_ascii_uppercase(), String::new()),
    };
    let or = |text: String, default: &str| {
        if text.is_empty() {
            default.to_string()
        } else {
            text
        }
    };
    match word.as_str() {
        "DUNNO" | "OK" => ScriptVerdict::Accept,
        "REJECT" => ScriptVerdict::Refuse(Reply::new(
            550,
            "5.7.1",
            or(rest, "Message content rejected"),
        )),
        "DEFER" => ScriptVerdict::Refuse(Reply::new(
            451,
            "4.7.1",
            or(rest, "Message content deferred, try again later"),
        )),
        "DISCARD" => ScriptVerdict::Discard(or(rest, &format!("rhai:{path}"))),
        "HOLD" => ScriptVerdict::Hold(or(rest, &format!("rhai:{path}"))),
        "PREPEND" => match rest.split_once(':') {
            Some((n, v)) if !n.is_empty() && !n.contains(char::is_whitespace) => {
                ScriptVerdict::Prepend(n.to_string(), v.trim().to_string())
            }
            _ => fail(format!("PREPEND needs \"Name: value\", got \"{rest}\"")),
        },
        code if code.len() == 3 && (code.starts_with('4') || code.starts_with('5')) => {
            let n: u16 = code.parse().unwrap_or(0);
            let (enhanced, text) = match rest.split_once(' ') {
                Some((e, t)) if e.starts_with(&code[..1]) && e.split('.').count() == 3 => {
                    (e.to_string(), t.to_string())
                }
                _ => (format!("{}.7.1", &code[..1]), rest.clone()),
            };
            if n == 0 {
                return fail(format!("unusable reply code {code}"));
            }
            ScriptVerdict::Refuse(Reply::new(
                n,
                &enhanced,
                or(text, "Message content rejected"),
            ))
        }
        _ => fail(format!("unknown action \"{action}\"")),
    }
}

/// `content` with header edits applied and, when given, the body replaced.
pub(crate) fn edit(content: &[u8], edits: &[HeaderEdit], body: Option<&[u8]>) -> Vec<u8> {
    let mut headers: Vec<Vec<u8>> = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let end = content[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| pos + i + 1);
        let line = &content[pos..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        match (line[0], headers.last_mut()) {
            (b' ' | b'\t', Some(last)) => last.extend_from_slice(line),
            _ if bare.contains(&b':') => headers.push(line.to_vec()),
            // Not a header: the body starts here.
            _ => break,
        }
        pos = end;
    }
    let rest = &content[pos..];
    let line =
        |name: &str, value: &str| format!("{}: {}\r\n", clean(name), clean(value)).into_bytes();
    let is = |h: &[u8], name: &str| {
        h.len() > name.len()
            && h[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && h[name.len()] == b':'
    };
    for e in edits {
        match e {
            HeaderEdit::Add { name, value } => headers.push(line(name, value)),
            HeaderEdit::Insert { index, name, value } => {
                let at = (*index as usize).min(headers.len());
                headers.insert(at, line(name, value));
            }
            HeaderEdit::Change {
                name,
                occurrence,
                value,
            } => {
                let found = headers
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| is(h, name))
                    .nth((*occurrence as usize).saturating_sub(1))
                    .map(|(i, _)| i);
                match (found, value) {
                    (Some(i), Some(v)) => headers[i] = line(name, v),
                    (Some(i), None) => {
                        headers.remove(i);
                    }
                    (None, _) => {}
                }
            }
        }
    }
    let mut out: Vec<u8> = headers.concat();
    match body {
        Some(b) => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(rest),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits_add_insert_change_and_delete() {
        let msg = b"Subject: a\r\n folded\r\nX-A: 1\r\nX-A: 2\r\n\r\nbody\r\n";
        let edits = vec![
            HeaderEdit::Add {
                name: "X-New".into(),
                value: "v\r\nInjected: yes".into(),
            },
            HeaderEdit::Insert {
                index: 0,
                name: "X-First".into(),
                value: "f".into(),
            },
            HeaderEdit::Change {
                name: "x-a".into(),
                occurrence: 2,
                value: Some("two".into()),
            },
            HeaderEdit::Change {
                name: "X-A".into(),
                occurrence: 1,
                value: None,
            },
            HeaderEdit::Change {
                name: "X-Missing".into(),
                occurrence: 1,
                value: None,
            },
        ];
        let out = edit(msg, &edits, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-First: f\r\nSubject: a\r\n folded\r\nx-a: two\r\nX-New: v  Injected: yes\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn a_new_body_replaces_the_old_one() {
        let out = edit(b"A: 1\n\nold\n", &[], Some(b"new\r\n"));
        assert_eq!(out, b"A: 1\n\r\nnew\r\n");
    }
}
