//! smtp(8): remote delivery over SMTP, also serving the `relay` transport; and lmtp(8)
//! ([`lmtp`]), which shares the session code.
//!
//! # Layout
//! [`deliver`] takes one [`Job`] (recipients of one message for one next hop):
//! [`nexthop`] parses the next hop (`domain`, `domain:port`, `[host]`, `[host]:port`; resolve.rs
//! already chose between the transport's own next hop, `relayhost` and the recipient domain);
//! [`policy`] decides the TLS level for it (`smtp_tls_security_level`, `smtp_tls_policy_maps`);
//! [`mx`] turns it into addresses through [`crate::dns::Resolver`] (MX by preference, ties
//! shuffled, implicit MX, null MX, NXDOMAIN and DNS failures); [`client`] speaks SMTP to each
//! address in turn until one gives an answer for the recipients, over a [`stream::Stream`]
//! that STARTTLS (`starttls.rs`) turns from TCP into TLS; [`wire`] holds the pure pieces
//! (reply parsing, DATA encoding). When every server of the destination failed temporarily,
//! the `smtp_fallback_relay` next hops are tried the same way. One [`Outcome`] per recipient
//! comes back to qmgr, which logs, defers and bounces; this module never touches the queue.
//!
//! # What is implemented
//! - ESMTP with EHLO, falling back to HELO when EHLO gets a 5xx; PIPELINING (MAIL, RCPTs and
//!   DATA in one write); SIZE (a message larger than the announced limit bounces with 5.3.4
//!   before MAIL FROM, and `SIZE=` is sent); 8BITMIME (`BODY=8BITMIME` when the message was
//!   received so and the server offers it); SMTPUTF8 (sent when needed and offered; a message
//!   that needs it bounces with 5.6.7 when the server lacks it); DSN pass-through (RET, ENVID,
//!   NOTIFY, ORCPT) when offered.
//! - STARTTLS at levels none, may (default), encrypt, verify, secure, with per-next-hop
//!   `smtp_tls_policy_maps` entries (`level [match=…]`), `smtp_tls_CAfile`/`CApath`, a client
//!   certificate, SNI when `smtp_tls_servername` asks for it, and the TLS protocol and cipher in
//!   the delivery log line (`tls=…`).
//! - `smtp_fallback_relay`, except for mail whose next hop is the relayhost.
//! - SMTP AUTH to relays ([`sasl`]): PLAIN or LOGIN with `smtp_sasl_password_maps` credentials,
//!   never in the clear unless `smtp_sasl_security_options` allows it.
//! - A connection cache ([`cache`]): a session whose transaction ended cleanly is kept for the
//!   next delivery to the same next hop (`smtp_connection_cache_*`, `smtp_connection_reuse_*`).
//! - The loop check: a server whose EHLO reply names our `myhostname` bounces the mail (5.4.6).
//! - Content is sent with CRLF line ends only (bare LF and bare CR become CRLF) and dot-stuffed.
//! - Per-recipient results: a 4xx/5xx to RCPT TO defers/bounces that recipient alone; the reply
//!   to DATA or to the final "." applies to every accepted recipient (LMTP: one final reply
//!   per recipient).
//! - A connection failure, a greeting other than 220, or a conversation that breaks before
//!   MAIL FROM moves on to the next address; when none is left the recipients get the last
//!   failure (`connect to host[addr]:port: Connection refused`, 4.4.1).
//! - Every stage has its Postfix time limit (`smtp_connect_timeout` … `smtp_quit_timeout`,
//!   `smtp_starttls_timeout`).
//!
//! # Not implemented yet
//! DANE and `fingerprint` TLS levels, a persistent TLS session cache (sessions are resumed
//! from rustls's in-memory cache only), `protocols=`/`ciphers=` in the policy table
//! (accepted, ignored: rustls has only TLS 1.2/1.3 with safe suites), certificate CN matching
//! (only subjectAltName is used),
//! 8BITMIME→7bit conversion for servers without 8BITMIME (the message is sent as is, as
//! Postfix does with `disable_mime_output_conversion = yes`), SMTPUTF8 downgrade,
//! `smtp_bind_address`, TLS for LMTP. Per-destination recipient limits,
//! concurrency and dead-destination back-off belong to the queue manager (`qmgr/sites.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use postern_config::Config;
use postern_proto::EnhancedCode;

use crate::transport::{Job, Outcome};

pub mod cache;
pub mod client;
pub mod lmtp;
pub mod mx;
pub mod nexthop;
pub mod policy;
pub mod sasl;
mod starttls;
pub mod stream;
pub mod wire;

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod lmtp_tests;
#[cfg(test)]
mod sasl_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

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
    let msg = match Message::of_job(job, &job.rcpts) {
        Ok(m) => m,
        Err(o) => return vec![o; n],
    };
    let settings = Settings::from_config(&cfg);
    let written = job.route.nexthop.trim();
    let mut last = match try_nexthop(&cfg, &settings, written, &msg).await {
        Ok(outcomes) => return outcomes,
        Err(last) => last,
    };
    // postconf(5) smtp_fallback_relay: only for a destination that is not already the
    // relayhost (mail for the relayhost would otherwise go around the administrator's
    // choice of smarthost), and only after every server failed temporarily.
    let relayhost = cfg.relayhost.trim();
    if relayhost.is_empty() || !written.eq_ignore_ascii_case(relayhost) {
        for fallback in &cfg.delivery.fallback_relay {
            match try_nexthop(&cfg, &settings, fallback.trim(), &msg).await {
                Ok(outcomes) => return outcomes,
                Err(o) => last = o,
            }
        }
    }
    vec![last; n]
}

/// Delivers to the servers of one next hop. `Err` when none could be used and the failure
/// was temporary (a DNS failure, refused connections, 4xx greetings), which is when a
/// fallback relay is worth trying; every other result is final for this delivery.
async fn try_nexthop(
    cfg: &Arc<Config>,
    settings: &Settings,
    written: &str,
    msg: &Message<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let n = msg.rcpts.len();
    let Some(hop) = nexthop::parse(written) else {
        let text = format!(
            "bad next hop \"{written}\" (check relayhost, transport_maps and smtp_fallback_relay)"
        );
        return Ok(vec![
            Outcome::defer(EnhancedCode::new(4, 3, 5), "none", text);
            n
        ]);
    };
    let tls = match policy::plan(cfg, written, &hop) {
        Ok(tls) => tls,
        Err(o) => return Ok(vec![o; n]),
    };
    let secret = match sasl::lookup(cfg, written, &hop) {
        Ok(s) => s,
        Err(o) => return Ok(vec![o; n]),
    };
    let settings = Settings {
        tls,
        cache: cache::Policy::for_nexthop(cfg, written, &settings.helo_name),
        sasl: secret,
        ..settings.clone()
    };
    // A connection kept from the last delivery to this next hop skips DNS, connect, EHLO and
    // STARTTLS; one the server has closed meanwhile falls through to a new connection.
    if let Some(policy) = &settings.cache {
        while let Some(idle) = cache::take(policy) {
            if let Some(outcomes) = client::reuse(&settings, idle, msg).await {
                return Ok(outcomes);
            }
        }
    }
    // Only names need DNS; `[127.0.0.1]:10025` works without a resolver.
    let resolver = match hop.literal() {
        Some(_) => None,
        None => resolver(cfg),
    };
    let families = mx::Families::from_inet_protocols(&cfg.inet_protocols);
    let hosts = match mx::hosts(resolver.as_deref(), &hop, families).await {
        Ok(hosts) => hosts,
        // Postfix: the fallback relay serves destinations that "can't be found" (NXDOMAIN,
        // 5.4.4) or are unreachable; a null MX (5.1.10) is a refusal and is final.
        Err(o) if o.is_deferred() || o.status == EnhancedCode::new(5, 4, 4) => return Err(o),
        Err(o) => return Ok(vec![o; n]),
    };
    let targets: Vec<(String, SocketAddr)> = hosts
        .into_iter()
        .map(|h| (h.name, SocketAddr::new(h.addr, hop.port)))
        .collect();
    try_targets(&settings, &targets, msg).await
}

/// Tries `targets` in order until one server answers for the recipients; when none does,
/// every recipient gets the last failure.
pub async fn deliver_to(
    settings: &Settings,
    targets: &[(String, SocketAddr)],
    msg: &Message<'_>,
) -> Vec<Outcome> {
    match try_targets(settings, targets, msg).await {
        Ok(outcomes) => outcomes,
        Err(last) => vec![last; msg.rcpts.len()],
    }
}

/// `Err` is the last failure when no server could be used.
async fn try_targets(
    settings: &Settings,
    targets: &[(String, SocketAddr)],
    msg: &Message<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let mut last = Outcome::defer(
        EnhancedCode::new(4, 4, 1),
        "none",
        "no mail host to connect to",
    );
    for (name, addr) in targets {
        match client::attempt(settings, name, *addr, msg).await {
            Attempt::Done(outcomes) => return Ok(outcomes),
            Attempt::Next(o) => {
                crate::info!("smtp", "{}: {}", msg.queue_id, o.text);
                last = o;
            }
            Attempt::Plaintext(why) => {
                last = Outcome::defer(EnhancedCode::new(4, 7, 5), "none", why);
            }
        }
    }
    Err(last)
}
