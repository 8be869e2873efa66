//! cleanup: completes messages and writes them into `incoming/` (Postfix cleanup(8)).
//!
//! CONTRACT (smtpd and the maildrop pickup rely on this exactly):
//! - `pub fn enqueue_full(cfg, spool, env, content, protocol, &Actions) -> Result<Stored,
//!   CleanupError>` — blocking: carries out the restrictions' [`Actions`], rewrites and expands
//!   the envelope, adds missing headers, enforces header limits, writes into `incoming/` (or
//!   `hold/`) durably. [`Stored`] says whether the message was held or discarded.
//! - `enqueue(cfg, spool, env, content)` / `enqueue_with(…, protocol)` — the same without
//!   actions, returning the stored envelope.
//! - `pub enum CleanupError { Rejected(postern_proto::Reply), Queue(crate::queue::QueueError) }`
//!
//! What happens to a message, in order:
//! 0. Content checks (`checks`) may add actions; `REDIRECT` replaces the recipients, `BCC` adds
//!    some (before rewriting, so these addresses are rewritten too, as in Postfix).
//! 1. Envelope addresses without a domain get `@$myorigin` (postconf(5) `append_at_myorigin`),
//!    `user@host` gets `.$mydomain` when `append_dot_mydomain = yes`; duplicate recipients are
//!    dropped (Postfix's duplicate filter), and a message without recipients is refused.
//!
//!    Then the sender goes through `sender_canonical_maps`, `canonical_maps` and masquerading,
//!    each recipient through `recipient_canonical_maps`, `canonical_maps` (masquerading only
//!    with `masquerade_classes` = envelope_recipient) and `virtual_alias_maps` expansion
//!    ([`rewrite`], [`virtual_alias`]); a rewritten recipient keeps its original address as
//!    ORCPT; header addresses are rewritten per `canonical_classes`/`masquerade_classes`
//!    ([`header_rewrite`]). A lookup error refuses the message with `451 4.3.0` (try again
//!    later). `DISCARD` ends here: nothing is stored.
//! 2. Line endings become CRLF and the content ends with one (the queue stores mail exactly as
//!    it will be delivered).
//! 3. The header section is found (`headers::split`); `Bcc`, `Resent-Bcc`, `Content-Length`
//!    and `Return-Path` are removed (Postfix's default `message_drop_headers`: a `Bcc` must not
//!    reach recipients, `Return-Path` is the delivery agent's to write); each header is cut to
//!    `header_size_limit`; more than [`HOPCOUNT_LIMIT`] `Received:` headers refuse the message as
//!    a mail loop.
//! 4. `PREPEND` header lines, then a `Received:` header, are prepended, and `Message-ID:` and
//!    `Date:` are appended when missing (Postfix adds them for local submissions and, with
//!    `always_add_missing_headers`, for all mail; Postern always does, so every queued message
//!    is identifiable). Local submissions also get `From:` and `To: undisclosed-recipients:;`
//!    when missing.
//! 5. The file is stored durably in `incoming/` (`hold/` for `HOLD`; a `FILTER` is kept in the
//!    envelope's `filter` record); `QUEUEID: message-id=<…>` is logged.
//!
//! The number of header fields is not limited separately: the whole message is already bounded
//! by `message_size_limit`, each field by `header_size_limit`, and loops by the hop count.

mod actions;
pub use actions::Actions;
mod checks;
mod header_rewrite;
mod headers;
pub mod rewrite;
pub mod tables;
pub mod virtual_alias;

use std::borrow::Cow;

use postern_config::Config;
use postern_proto::Reply;

use crate::queue::{Envelope, Origin, QueueDir, QueueError, QueueId, Recipient, Spool};

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The message itself is unacceptable; the reply says why (sent as is to SMTP clients).
    #[error("message rejected: {0}")]
    Rejected(Reply),
    /// The queue could not be written (see [`QueueError::is_disk_full`]).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// More `Received:` headers than this means a mail loop: `554 5.4.0 Error: too many hops`
/// (postconf(5) `hopcount_limit`, default 50; RFC 5321 §6.3 asks servers to detect loops by
/// counting them).
pub const HOPCOUNT_LIMIT: usize = 50;

/// Headers removed from every message (Postfix `message_drop_headers` default).
const DROP_HEADERS: &[&str] = &["bcc", "content-length", "resent-bcc", "return-path"];

/// How an SMTP message arrived: the `with` clause of `Received:` (RFC 5321 §4.4, RFC 3848)
/// and what goes into its comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// The client greeted with EHLO (or never greeted: Postfix logs ESMTP then too); `false`
    /// for HELO.
    pub esmtp: bool,
    /// The session was encrypted (`ESMTPS`).
    pub tls: Option<crate::tls::TlsSummary>,
    /// The client authenticated (`ESMTPA`).
    pub login: Option<crate::sasl::Login>,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol::ESMTP
    }
}

impl Protocol {
    /// A HELO client.
    pub const SMTP: Protocol = Protocol {
        esmtp: false,
        tls: None,
        login: None,
    };
    /// An EHLO client without TLS or AUTH.
    pub const ESMTP: Protocol = Protocol {
        esmtp: true,
        tls: None,
        login: None,
    };

    /// The RFC 3848 / RFC 6531 protocol name: `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA`, or
    /// with `utf8` the `UTF8SMTP…` forms.
    pub fn name(&self, utf8: bool) -> String {
        if !self.esmtp {
            return "SMTP".to_string();
        }
        let mut name = if utf8 { "UTF8SMTP" } else { "ESMTP" }.to_string();
        if self.tls.is_some() {
            name.push('S');
        }
        if self.login.is_some() {
            name.push('A');
        }
        name
    }
}

/// What cleanup did with a message.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The envelope as stored (recipients rewritten and expanded).
    pub env: Envelope,
    /// Stored into `hold/` (a `HOLD` action): the queue manager must not be told about it.
    pub held: bool,
    /// Not stored at all (a `DISCARD` action): the client is still told it was accepted.
    pub discarded: bool,
}

/// Completes and queues a message (see the module docs). For SMTP mail the `Received:` header
/// says `with ESMTP`; [`enqueue_with`] lets smtpd say `with SMTP` for HELO clients.
pub fn enqueue(
    cfg: &Config,
    spool: &Spool,
    env: Envelope,
    content: &[u8],
) -> Result<Envelope, CleanupError> {
    enqueue_with(cfg, spool, env, content, Protocol::default())
}

/// [`enqueue`] with the protocol the SMTP client used.
pub fn enqueue_with(
    cfg: &Config,
    spool: &Spool,
    env: Envelope,
    content: &[u8],
    protocol: Protocol,
) -> Result<Envelope, CleanupError> {
    enqueue_full(cfg, spool, env, content, protocol, &Actions::default()).map(|s| s.env)
}

/// [`enqueue_with`] carrying out the [`Actions`] restrictions asked for: `REDIRECT` and `BCC`
/// change the recipients (before rewriting, so the new addresses are rewritten and expanded
/// too, as in Postfix), `PREPEND` adds header lines above `Received:`, `FILTER` is recorded in
/// the envelope, `HOLD` stores into `hold/` and `DISCARD` stores nothing.
pub fn enqueue_full(
    cfg: &Config,
    spool: &Spool,
    mut env: Envelope,
    content: &[u8],
    protocol: Protocol,
    actions: &Actions,
) -> Result<Stored, CleanupError> {
    let mut content = normalize_line_endings(content);
    let mut actions = actions.clone();
    let checked = checks::apply(cfg, &env, &protocol, &mut content);
    actions.merge(checked.map_err(CleanupError::Rejected)?);
    apply_recipient_actions(&mut env, &actions);
    qualify_envelope(cfg, &mut env);
    let rw = rewrite::Rewriter::new(cfg)
        .map_err(|e| lookup_failed(&env.id, "cannot open tables", &e))?;
    rewrite_envelope(cfg, &rw, &mut env)?;
    match header_rewrite::apply(&rw, &content) {
        Ok(Some(rewritten)) => content = Cow::Owned(rewritten),
        Ok(None) => {}
        Err(e) => return Err(lookup_failed(&env.id, "header address rewriting", &e)),
    }
    if env.recipients.is_empty() {
        return Err(CleanupError::Rejected(Reply::new(
            550,
            "5.1.0",
            "Error: no recipients specified",
        )));
    }
    if let Some(reason) = &actions.discard {
        crate::info!(
            "cleanup",
            "{}: discard: {}; from=<{}>",
            env.id,
            or_default(reason, "discarded"),
            env.sender
        );
        return Ok(Stored {
            env,
            held: false,
            discarded: true,
        });
    }
    if let Some(filter) = &actions.filter {
        env.filter = Some(filter.clone());
    } else if env.filter.is_none() && !cfg.content_filter.trim().is_empty() {
        env.filter = Some(cfg.content_filter.trim().to_string());
    }
    let message = complete(cfg, &env, &content, &protocol, &actions.prepend)?;
    let held = actions.hold.is_some();
    let dir = if held {
        QueueDir::Hold
    } else {
        QueueDir::Incoming
    };
    spool.store(dir, &env, &message)?;
    if let Some(reason) = &actions.hold {
        crate::info!(
            "cleanup",
            "{}: hold: {}; from=<{}>",
            env.id,
            or_default(reason, "held"),
            env.sender
        );
    }
    Ok(Stored {
        env,
        held,
        discarded: false,
    })
}

fn or_default<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.trim().is_empty() {
        default
    } else {
        text
    }
}

/// `REDIRECT` replaces every recipient with one; `BCC` adds recipients (Postfix
/// `cleanup_addr_bcc`, default DSN notification).
fn apply_recipient_actions(env: &mut Envelope, actions: &Actions) {
    if let Some(to) = &actions.redirect {
        crate::info!("cleanup", "{}: redirect: {to}", env.id);
        env.recipients = vec![Recipient::new(to.clone())];
    }
    for bcc in &actions.bcc {
        env.recipients.push(Recipient::new(bcc.clone()));
    }
}

/// A table could not be read while rewriting: the message is refused for now (`451 4.3.0`),
/// never queued with an address that should have been rewritten.
fn lookup_failed(id: &QueueId, what: &str, e: &dyn std::fmt::Display) -> CleanupError {
    crate::warn!("cleanup", "{id}: {what}: {e}");
    CleanupError::Rejected(Reply::new(
        451,
        "4.3.0",
        "Error: temporary lookup failure, try again later",
    ))
}

/// Canonical mapping, masquerading and virtual alias expansion of the envelope
/// ([`rewrite`], [`virtual_alias`]); duplicates that result are dropped. A rewritten recipient
/// keeps its original address as ORCPT (Postfix logs it as `orig_to=`).
fn rewrite_envelope(
    cfg: &Config,
    rw: &rewrite::Rewriter<'_>,
    env: &mut Envelope,
) -> Result<(), CleanupError> {
    let deferred = |what: &str, e: &dyn std::fmt::Display| lookup_failed(&env.id, what, e);
    env.sender = rw
        .sender(&env.sender)
        .map_err(|e| deferred("sender rewriting", &e))?;
    let recursion = cfg.virtual_alias_recursion_limit as usize;
    let expansion = cfg.virtual_alias_expansion_limit as usize;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(env.recipients.len());
    for r in std::mem::take(&mut env.recipients) {
        let canonical = rw
            .recipient(&r.address)
            .map_err(|e| deferred("recipient rewriting", &e))?;
        let expanded = match virtual_alias::expand(rw, &canonical, recursion, expansion) {
            Ok(list) => list,
            Err(virtual_alias::ExpandError::Lookup(e)) => {
                return Err(deferred("virtual alias expansion", &e))
            }
            Err(virtual_alias::ExpandError::Limit(text)) => {
                crate::warn!("cleanup", "{}: {text}", env.id);
                return Err(CleanupError::Rejected(Reply::new(
                    451,
                    "4.3.0",
                    "Error: virtual alias expansion limit exceeded, try again later",
                )));
            }
        };
        for address in expanded {
            let mut n = r.clone();
            if address != r.address && n.orcpt.is_none() {
                n.orcpt = Some(("rfc822".to_string(), r.address.clone()));
            }
            n.address = address;
            if seen.insert(n.address.to_ascii_lowercase()) {
                out.push(n);
            }
        }
    }
    env.recipients = out;
    Ok(())
}

/// Step 1 of the module docs.
fn qualify_envelope(cfg: &Config, env: &mut Envelope) {
    if !env.sender.is_empty() {
        env.sender = qualify(cfg, &env.sender);
    }
    let mut seen = std::collections::HashSet::new();
    let mut recipients = Vec::with_capacity(env.recipients.len());
    for mut r in std::mem::take(&mut env.recipients) {
        r.address = qualify(cfg, &r.address);
        if seen.insert((r.address.clone(), r.orcpt.clone())) {
            recipients.push(r);
        }
    }
    env.recipients = recipients;
}

/// `user` → `user@$myorigin`; `user@host` → `user@host.$mydomain` with `append_dot_mydomain`.
pub fn qualify(cfg: &Config, address: &str) -> String {
    let (local, domain) = crate::restrictions::split_address(address);
    match domain {
        None => format!("{local}@{}", cfg.myorigin),
        Some(d) if cfg.append_dot_mydomain && !d.contains('.') && !d.starts_with('[') => {
            format!("{local}@{d}.{}", cfg.mydomain)
        }
        Some(_) => address.to_string(),
    }
}

/// Bare LF becomes CRLF; a missing final line ending is added. Bare CR is left alone (it is not
/// a line ending, RFC 5322 §2.3). Content that is already canonical (all SMTP DATA is) is not
/// copied.
fn normalize_line_endings(content: &[u8]) -> Cow<'_, [u8]> {
    let bare_lf = content
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || content[i - 1] != b'\r'));
    if !bare_lf && (content.is_empty() || content.ends_with(b"\r\n")) {
        return Cow::Borrowed(content);
    }
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 2);
    let mut prev = 0u8;
    for &b in content {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    Cow::Owned(out)
}

/// Steps 3 and 4: the final message text.
fn complete(
    cfg: &Config,
    env: &Envelope,
    content: &[u8],
    protocol: &Protocol,
    prepend: &[String],
) -> Result<Vec<u8>, CleanupError> {
    let split = headers::split(content);
    let hops = split.fields.iter().filter(|f| f.is("received")).count();
    if hops >= HOPCOUNT_LIMIT {
        crate::warn!("cleanup", "{}: message rejected: hopcount exceeded", env.id);
        return Err(CleanupError::Rejected(Reply::new(
            554,
            "5.4.0",
            "Error: too many hops",
        )));
    }
    let mut out = Vec::with_capacity(content.len() + 512);
    for header in prepend {
        // access(5) PREPEND: above our Received:, as Postfix smtpd writes them.
        out.extend_from_slice(sanitize_header(header).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(received(cfg, env, protocol).as_bytes());
    let mut message_id = None;
    let (mut has_date, mut has_from, mut has_to) = (false, false, false);
    for field in &split.fields {
        if DROP_HEADERS.iter().any(|d| field.is(d)) {
            continue;
        }
        if field.is("message-id") && message_id.is_none() {
            message_id = Some(field.value());
        }
        has_date |= field.is("date");
        has_from |= field.is("from");
        has_to |= ["to", "cc", "resent-to", "resent-cc"]
            .iter()
            .any(|n| field.is(n));
        if headers::write_limited(field.raw, cfg.header_size_limit, &mut out) {
            crate::warn!(
                "cleanup",
                "{}: header {} exceeds header_size_limit {}; excess discarded",
                env.id,
                String::from_utf8_lossy(field.name),
                cfg.header_size_limit
            );
        }
    }
    let local = matches!(env.origin, Origin::Local { .. });
    let message_id = match message_id {
        Some(id) => id,
        None => {
            let id = format!("<{}@{}>", env.id, cfg.myhostname);
            out.extend_from_slice(format!("Message-ID: {id}\r\n").as_bytes());
            id
        }
    };
    if !has_date {
        let date = crate::time::rfc5322(env.arrival);
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if local && !has_from {
        let from = if env.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            env.sender.as_str()
        };
        out.extend_from_slice(format!("From: {}\r\n", sanitize(from)).as_bytes());
    }
    if local && !has_to {
        out.extend_from_slice(b"To: undisclosed-recipients:;\r\n");
    }
    if split.needs_separator {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&content[split.body_start..]);
    crate::info!("cleanup", "{}: message-id={}", env.id, message_id);
    Ok(out)
}

/// Postfix's `Received:` header (smtpd.c / pickup): `for <rcpt>` only with one recipient.
///
/// Between the `from` and `by` lines, as Postfix smtpd writes them: with
/// `smtpd_tls_received_header = yes` and an encrypted session, `(using TLSv1.3 with cipher …
/// (256/256 bits))` and `(No client certificate requested)` (Postern never asks for one); with
/// `smtpd_sasl_authenticated_header = yes`, `(Authenticated sender: NAME)`. Both are off by
/// default because they tell every recipient how and as whom the sender connected.
fn received(cfg: &Config, env: &Envelope, protocol: &Protocol) -> String {
    let date = crate::time::rfc5322(env.arrival);
    let host = sanitize(&cfg.myhostname);
    let mail_name = sanitize(&cfg.mail_name);
    let for_clause = |recipients: &[crate::queue::Recipient]| match recipients {
        [one] => format!("\r\n\tfor <{}>; {date}", sanitize(&one.address)),
        _ => format!(";\r\n\t{date}"),
    };
    match &env.origin {
        Origin::Smtp { addr, helo, name } => {
            let with = protocol.name(env.smtputf8);
            // RFC 5321 §4.1.3: IPv6 address literals carry the "IPv6:" tag.
            let addr = if addr.contains(':') {
                format!("IPv6:{addr}")
            } else {
                addr.clone()
            };
            let from = if helo.is_empty() { name } else { helo };
            let mut comments = String::new();
            if let Some(tls) = protocol
                .tls
                .as_ref()
                .filter(|_| cfg.smtpd_tls.received_header)
            {
                comments.push_str(&format!(
                    "\t(using {} with cipher {} ({}/{} bits))\r\n\t(No client certificate requested)\r\n",
                    sanitize(&tls.protocol),
                    sanitize(&tls.cipher),
                    tls.bits,
                    tls.bits
                ));
            }
            if let Some(login) = protocol
                .login
                .as_ref()
                .filter(|_| cfg.sasl.authenticated_header)
            {
                comments.push_str(&format!(
                    "\t(Authenticated sender: {})\r\n",
                    sanitize(&login.username)
                ));
            }
            format!(
                "Received: from {} ({} [{}])\r\n{comments}\tby {host} ({mail_name}) with {with} id {}{}\r\n",
                sanitize(from),
                sanitize(name),
                sanitize(&addr),
                env.id,
                for_clause(&env.recipients)
            )
        }
        Origin::Local { user } => {
            let who = if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
                format!("from userid {user}")
            } else {
                format!("from user {}", sanitize(user))
            };
            format!(
                "Received: by {host} ({mail_name}, {who})\r\n\tid {}; {date}\r\n",
                env.id
            )
        }
    }
}

/// A `PREPEND` header line: no line breaks may sneak in from a table or policy server.
fn sanitize_header(line: &str) -> String {
    line.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// Header text from client-supplied values: control characters and the comment delimiters that
/// would unbalance `Received:` comments become `?`/`_` (no header injection, RFC 5322 §3.2.2).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => '?',
            '(' | ')' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests;
