//! smtp(8): remote delivery over SMTP, also serving the `relay` transport.
//!
//! # Layout
//! [`deliver`] takes one [`Job`] (recipients of one message for one next hop):
//! [`nexthop`] parses the next hop (`domain`, `domain:port`, `[host]`, `[host]:port`; resolve.rs
//! already chose between the transport's own next hop, `relayhost` and the recipient domain);
//! [`mx`] turns it into addresses through [`crate::dns::Resolver`] (MX by preference, ties
//! shuffled, implicit MX, null MX, NXDOMAIN and DNS failures); [`client`] speaks SMTP to each
//! address in turn until one gives an answer for the recipients; [`wire`] holds the pure
//! pieces (reply parsing, DATA encoding). One [`Outcome`] per recipient comes back to qmgr,
//! which logs, defers and bounces; this module never touches the queue.
//!
//! # What is implemented
//! - ESMTP with EHLO, falling back to HELO when EHLO gets a 5xx; PIPELINING (MAIL, RCPTs and
//!   DATA in one write); SIZE (a message larger than the announced limit bounces with 5.3.4
//!   before MAIL FROM, and `SIZE=` is sent); 8BITMIME (`BODY=8BITMIME` when the message was
//!   received so and the server offers it); SMTPUTF8 (sent when needed and offered; a message
//!   that needs it bounces with 5.6.7 when the server lacks it); DSN pass-through (RET, ENVID,
//!   NOTIFY, ORCPT) when offered.
//! - Content is sent with CRLF line ends only (bare LF and bare CR become CRLF) and dot-stuffed.
//! - Per-recipient results: a 4xx/5xx to RCPT TO defers/bounces that recipient alone; the reply
//!   to DATA or to the final "." applies to every accepted recipient.
//! - A connection failure, a greeting other than 220, or a conversation that breaks before
//!   MAIL FROM moves on to the next address; when none is left the recipients get the last
//!   failure (`connect to host[addr]:port: Connection refused`, 4.4.1).
//! - Every stage has its Postfix time limit (`smtp_connect_timeout` … `smtp_quit_timeout`).
//!
//! # Not implemented yet (issue 5)
//! TLS (STARTTLS, `smtp_tls_*`), SMTP AUTH, a connection cache, `smtp_destination_recipient_limit`
//! (a job is sent in one transaction, however many recipients), 8BITMIME→7bit conversion for
//! servers without 8BITMIME (the message is sent as is, as Postfix does with
//! `disable_mime_output_conversion = yes`), SMTPUTF8 downgrade, `smtp_fallback_relay`,
//! `smtp_bind_address`, the "mail for X loops back to myself" check, LMTP.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_config::Config;
use postern_proto::EnhancedCode;

use crate::transport::{Job, Outcome};

pub mod client;
pub mod mx;
pub mod nexthop;
pub mod wire;

#[cfg(test)]
mod tests;

use client::{Attempt, Message, Settings};

/// The resolver of `cfg`, made once per configuration (a reload makes a new one) rather than
/// once per delivery.
fn resolver(cfg: &Arc<Config>) -> Option<Arc<dyn crate::dns::Resolver>> {
    type Cached = Option<(std::sync::Weak<Config>, Arc<dyn crate::dns::Resolver>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((c, r)) = cache.as_ref() {
        if c.upgrade().is_some_and(|c| Arc::ptr_eq(&c, cfg)) {
            return Some(r.clone());
        }
    }
    let r = crate::dns::resolver_for(cfg)?;
    *cache = Some((Arc::downgrade(cfg), r.clone()));
    Some(r)
}

/// Delivers one job and returns one outcome per entry of `job.rcpts`, in order.
pub async fn deliver(cfg: Arc<Config>, job: &Job) -> Vec<Outcome> {
    let n = job.rcpts.len();
    let Some(hop) = nexthop::parse(&job.route.nexthop) else {
        let text = format!(
            "bad next hop \"{}\" (check relayhost and transport_maps)",
            job.route.nexthop
        );
        return vec![Outcome::defer(EnhancedCode::new(4, 3, 5), "none", text); n];
    };
    // Only names need DNS; `[127.0.0.1]:10025` works without a resolver.
    let resolver = match hop.literal() {
        Some(_) => None,
        None => resolver(&cfg),
    };
    let families = mx::Families::from_inet_protocols(&cfg.inet_protocols);
    let hosts = match mx::hosts(resolver.as_deref(), &hop, families).await {
        Ok(hosts) => hosts,
        Err(o) => return vec![o; n],
    };
    let mut rcpts = Vec::with_capacity(n);
    for &i in &job.rcpts {
        match job.env.recipients.get(i) {
            Some(r) => rcpts.push(r),
            None => {
                let o = Outcome::defer(
                    EnhancedCode::new(4, 3, 0),
                    "none",
                    "internal error: no such recipient",
                );
                return vec![o; n];
            }
        }
    }
    let msg = Message {
        queue_id: job.env.id.to_string(),
        sender: &job.env.sender,
        rcpts,
        content: &job.content,
        body: job.env.body,
        smtputf8: job.env.smtputf8,
        ret: job.env.ret,
        envid: job.env.envid.as_deref(),
    };
    let targets: Vec<(String, SocketAddr)> = hosts
        .into_iter()
        .map(|h| (h.name, SocketAddr::new(h.addr, hop.port)))
        .collect();
    deliver_to(&Settings::from_config(&cfg), &targets, &msg).await
}

/// Tries `targets` in order until one server answers for the recipients.
pub async fn deliver_to(
    settings: &Settings,
    targets: &[(String, SocketAddr)],
    msg: &Message<'_>,
) -> Vec<Outcome> {
    let mut last = Outcome::defer(
        EnhancedCode::new(4, 4, 1),
        "none",
        "no mail host to connect to",
    );
    for (name, addr) in targets {
        match client::attempt(settings, name, *addr, msg).await {
            Attempt::Done(outcomes) => return outcomes,
            Attempt::Next(o) => {
                crate::info!("smtp", "{}: {}", msg.queue_id, o.text);
                last = o;
            }
        }
    }
    vec![last; msg.rcpts.len()]
}
