//! Scripted dialogs against [`super::Session`] over in-memory streams, and against
//! [`super::serve`] over loopback TCP.

mod auth;
mod commands;
mod content;
mod restrictions;
mod serve;
mod tls;

use super::testkit::{config, Dialog, TempSpool};

/// A client outside `mynetworks` (TEST-NET-1).
pub const OUTSIDER: &str = "192.0.2.10";
/// A client inside the default `mynetworks`.
pub const LOCALHOST: &str = "127.0.0.1";

pub async fn ehlo_session(overrides: &[(&str, &str)], spool: &TempSpool, addr: &str) -> Dialog {
    let mut d = Dialog::start(config(overrides), spool, addr).await;
    d.cmd("EHLO client.example.org", "250-mx.example.test")
        .await;
    d
}

/// MAIL + one RCPT to user@localhost.
pub async fn envelope(d: &mut Dialog) {
    d.cmd("MAIL FROM:<alice@example.org>", "250 2.1.0 Ok").await;
    d.cmd("RCPT TO:<user@localhost>", "250 2.1.5 Ok").await;
}

pub fn queued_id(reply: &str) -> String {
    reply
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub async fn data_with(policy: &str, addr: &str, payload: &[u8]) -> (String, TempSpool, Dialog) {
    let spool = TempSpool::new("smtpd-bare");
    let mut d = ehlo_session(
        &[
            ("smtpd_forbid_bare_newline", policy),
            ("mynetworks", "127.0.0.0/8"),
        ],
        &spool,
        addr,
    )
    .await;
    envelope(&mut d).await;
    d.cmd("DATA", "354").await;
    d.send(payload).await;
    let r = d.reply().await;
    (r, spool, d)
}
