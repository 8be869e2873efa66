//! Delivery status notifications: Postfix bounce(8) for RFC 3464 reports.
//!
//! The queue manager calls [`send`] with the recipients that failed, were delayed or (on request)
//! were delivered. [`build`] composes an RFC 6522 `multipart/report; report-type=delivery-status`
//! message ([`dsn`]); [`send`] stores it into `incoming/` as a new message from the null sender
//! and returns its queue ID so the caller can schedule it.
//!
//! Loop safety (RFC 3461 §6.2, RFC 5321 §6.1): a message from the null sender never produces a
//! notification — a bounce is never bounced. The notification itself has the null sender, so its
//! own failure ends the chain.
//!
//! Which recipients are reported follows their RFC 3461 NOTIFY parameter: without one, FAILURE and
//! DELAY apply ([`Notify::effective`]); `NEVER` suppresses every report.

use postern_config::Config;
use postern_proto::{EnhancedCode, Notify};

use crate::queue::{Envelope, Origin, QueueDir, QueueError, QueueId, Recipient, Spool};

pub mod dsn;

/// The three kinds of delivery status notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnKind {
    /// Undeliverable recipients (`Action: failed`), "Undelivered Mail Returned to Sender".
    Failure,
    /// Still-queued recipients after `delay_warning_time` (`Action: delayed`).
    Delay,
    /// Delivered recipients that asked for NOTIFY=SUCCESS (`Action: delivered`).
    Success,
}

impl DsnKind {
    /// RFC 3464 §2.3.3 action value.
    pub fn action(self) -> &'static str {
        match self {
            DsnKind::Failure => "failed",
            DsnKind::Delay => "delayed",
            DsnKind::Success => "delivered",
        }
    }

    /// Postfix's log wording: `QUEUEID: sender non-delivery notification: NEWID`.
    pub fn log_name(self) -> &'static str {
        match self {
            DsnKind::Failure => "sender non-delivery notification",
            DsnKind::Delay => "sender delay notification",
            DsnKind::Success => "sender delivery status notification",
        }
    }
}

/// One recipient line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    pub address: String,
    /// RFC 3461 ORCPT `(addr-type, address)`, reported as `Original-Recipient`.
    pub orcpt: Option<(String, String)>,
    pub notify: Option<Notify>,
    pub status: EnhancedCode,
    /// Human-readable reason, e.g. `unknown user: "bob"`.
    pub text: String,
    /// RFC 3464 `Diagnostic-Code` value (`smtp; 550 …`); `None` = `X-Postern; text`.
    pub diagnostic: Option<String>,
}

impl DsnRecipient {
    /// A report line for a queue recipient.
    pub fn new(rcpt: &Recipient, status: EnhancedCode, text: impl Into<String>) -> DsnRecipient {
        DsnRecipient {
            address: rcpt.address.clone(),
            orcpt: rcpt.orcpt.clone(),
            notify: rcpt.notify,
            status,
            text: text.into(),
            diagnostic: None,
        }
    }
}

/// Whether a recipient's NOTIFY asks for `kind` (RFC 3461 §4.1).
pub fn wanted(kind: DsnKind, notify: Option<Notify>) -> bool {
    let n = Notify::effective(notify);
    if n.never {
        return false;
    }
    match kind {
        DsnKind::Failure => n.failure,
        DsnKind::Delay => n.delay,
        DsnKind::Success => n.success,
    }
}

/// Splits a queue-file reason `4.3.0 text` into status and text; `default` when it has no code.
pub fn parse_reason(reason: Option<&str>, default: EnhancedCode) -> (EnhancedCode, String) {
    let reason = reason.unwrap_or("").trim();
    match reason.split_once(' ') {
        Some((code, text)) => match EnhancedCode::parse(code) {
            Some(c) => (c, text.to_string()),
            None => (default, reason.to_string()),
        },
        None => match EnhancedCode::parse(reason) {
            Some(c) => (c, String::new()),
            None => (default, reason.to_string()),
        },
    }
}

/// Composes the notification for `env`, or `None` when nothing is to be sent: the sender is
/// null (never bounce a bounce), or no recipient's NOTIFY asks for this kind of report.
pub fn build(
    cfg: &Config,
    kind: DsnKind,
    env: &Envelope,
    content: &[u8],
    rcpts: &[DsnRecipient],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if env.sender.is_empty() {
        return None;
    }
    let rcpts: Vec<&DsnRecipient> = rcpts.iter().filter(|r| wanted(kind, r.notify)).collect();
    if rcpts.is_empty() {
        return None;
    }
    let id = QueueId::generate();
    let message = dsn::compose(cfg, kind, env, content, &rcpts, &id, now);
    let mut out = Envelope::new(
        id,
        "",
        Origin::Local {
            user: "MAILER-DAEMON".into(),
        },
    );
    out.arrival = now;
    out.smtputf8 = env.smtputf8;
    if !message.is_ascii() {
        out.body = Some(postern_proto::Body::EightBitMime);
    }
    out.recipients.push(Recipient::new(env.sender.clone()));
    Some((out, message))
}

/// Builds and queues the notification (blocking). Returns the new message's ID, `None` when
/// nothing was to be sent. Logs Postfix's `QUEUEID: sender non-delivery notification: NEWID`.
pub fn send(
    cfg: &Config,
    spool: &Spool,
    kind: DsnKind,
    env: &Envelope,
    content: &[u8],
    rcpts: &[DsnRecipient],
) -> Result<Option<QueueId>, QueueError> {
    if rcpts.is_empty() {
        return Ok(None);
    }
    if env.sender.is_empty() {
        if kind == DsnKind::Failure {
            crate::info!(
                "bounce",
                "{}: undeliverable mail from the null sender dropped (a bounce is never bounced)",
                env.id
            );
        }
        return Ok(None);
    }
    let Some((out, message)) = build(cfg, kind, env, content, rcpts, crate::time::now_secs())
    else {
        return Ok(None);
    };
    spool.store(QueueDir::Incoming, &out, &message)?;
    crate::info!("bounce", "{}: {}: {}", env.id, kind.log_name(), out.id);
    Ok(Some(out.id))
}

#[cfg(test)]
mod tests;
