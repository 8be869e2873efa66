//! `smtpd_milters`: before-queue content filters at end of data (Postfix's milters). Each
//! `wasm:NAME` entry is a filter-role plugin; they run in order on the message as the previous
//! ones left it. A reject or defer is the SMTP reply; discard and quarantine become the
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
        let set = crate::plugins::for_config(&cfg);
        for entry in &cfg.smtpd_milters {
            let qid = env.id.to_string();
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

/// One line: control characters become spaces, so a filter cannot inject header lines or
/// reply lines.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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
