//! STARTTLS in the smtp client (RFC 3207, Postfix smtp_proto.c and TLS_README "Client-side
//! TLS security levels").
//!
//! After EHLO, at level `may` or higher and when the server offers STARTTLS: `STARTTLS` alone
//! (never pipelined with anything), the handshake within `smtp_starttls_timeout`, the
//! certificate check, and EHLO again over TLS — the first EHLO's keywords are forgotten
//! (§4.2). What goes wrong:
//!
//! | situation | may | encrypt | verify, secure |
//! |---|---|---|---|
//! | STARTTLS not offered | plaintext | next MX, `4.7.4 TLS is required, but was not offered by host …` | same |
//! | STARTTLS refused | plaintext | next MX, `4.7.5 TLS is required, but host … refused to start TLS: …` | same |
//! | handshake fails | reconnect, plaintext | next MX, `4.7.5 Cannot start TLS: handshake failure` | same |
//! | certificate not verified | — | — | next MX, `4.7.5 Server certificate not verified` |

use std::net::Ipv4Addr;

use postern_config::ClientTlsLevel;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::time::timeout;

use super::client::{defer, Attempt, Dialect, Session};
use super::stream::Upgrade;
use super::wire::Caps;
use crate::tls::client::Trust;

impl<S: Upgrade> Session<'_, S> {
    /// Runs STARTTLS when the plan and the server's keywords call for it; the keywords to use
    /// for the rest of the session come back. `Err` ends the session with that result.
    pub(super) async fn starttls(&mut self, caps: Caps, queue_id: &str) -> Result<Caps, Attempt> {
        let s = self.settings;
        let tls = &s.tls;
        let Some(client) = tls.client.clone() else {
            return Ok(caps);
        };
        if tls.level == ClientTlsLevel::None {
            return Ok(caps);
        }
        if !caps.starttls {
            if tls.required() {
                let text = format!("TLS is required, but was not offered by host {}", self.peer);
                self.quit().await;
                return Err(Attempt::Next(defer(4, 7, 4, &self.relay, text)));
            }
            return Ok(caps);
        }
        let reply = match self
            .command("STARTTLS\r\n", s.helo, "sending the STARTTLS command")
            .await
        {
            Ok(r) => r,
            Err(b) => return Err(Attempt::Next(self.broken(b))),
        };
        if reply.code != 220 {
            if tls.required() {
                let text = format!(
                    "TLS is required, but host {} refused to start TLS: {}",
                    self.peer,
                    reply.text()
                );
                self.quit().await;
                return Err(Attempt::Next(defer(4, 7, 5, &self.relay, text)));
            }
            return Ok(caps);
        }
        let Some(io) = self.io.take() else {
            return Err(Attempt::Next(self.broken(super::client::Broken::Lost(
                "sending the STARTTLS command",
            ))));
        };
        // Bytes that arrived with the 220 were sent in plaintext; reading them as if they came
        // over TLS is the STARTTLS command injection flaw (CVE-2011-0411): give up instead.
        if !io.buffer().is_empty() {
            let text = format!("host {} sent data after its reply to STARTTLS", self.peer);
            return Err(Attempt::Next(defer(4, 5, 0, &self.relay, text)));
        }
        // SNI only when smtp_tls_servername asks for it (Postfix's default is none); without
        // it the name only keys rustls's session cache.
        let (config, name) = match tls
            .sni(&self.host)
            .and_then(|n| ServerName::try_from(n).ok())
        {
            Some(sni) => (client.config_sni.clone(), sni),
            None => (
                client.config.clone(),
                ServerName::try_from(self.host.clone())
                    .unwrap_or(ServerName::IpAddress(Ipv4Addr::UNSPECIFIED.into())),
            ),
        };
        let handshake = timeout(tls.timeout, io.into_inner().start_tls(config, name));
        let (stream, hs) = match handshake.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(self.handshake_failed(e.to_string(), queue_id)),
            Err(_) => return Err(self.handshake_failed("timed out".into(), queue_id)),
        };
        self.io = Some(BufReader::new(stream));
        let sum = &hs.summary;
        self.tls = Some(std::sync::Arc::new(sum.clone()));

        let verify = tls.level >= ClientTlsLevel::Verify;
        let trust = if verify {
            client.check(&hs.certs, &tls.names(&self.host))
        } else if tls.loglevel >= 1 {
            client.check(&hs.certs, &[])
        } else {
            Trust::Untrusted(String::new())
        };
        if tls.loglevel >= 1 {
            crate::info!(
                "smtp",
                "{} TLS connection established to {}: {} with cipher {} ({}/{} bits)",
                trust.word(),
                self.relay,
                sum.protocol,
                sum.cipher,
                sum.bits,
                sum.bits
            );
        }
        if verify && trust != Trust::Verified {
            let why = match &trust {
                Trust::Untrusted(why) => format!("untrusted certificate: {why}"),
                _ => format!("certificate names do not match {}", tls.matches.join(", ")),
            };
            crate::info!(
                "smtp",
                "{queue_id}: server certificate verification failed for {}: {why}",
                self.relay
            );
            if let Some(io) = self.io.as_mut() {
                let _ = io.get_mut().shutdown().await;
            }
            let text = "Server certificate not verified".to_string();
            return Err(Attempt::Next(defer(4, 7, 5, &self.relay, text)));
        }

        let (verb, stage) = match s.dialect {
            Dialect::Smtp => ("EHLO", "performing the EHLO handshake"),
            Dialect::Lmtp => ("LHLO", "performing the LHLO handshake"),
        };
        let helo = format!("{verb} {}\r\n", s.helo_name);
        match self.command(&helo, s.helo, stage).await {
            Ok(r) if r.code / 100 == 2 => Ok(Caps::parse(&r)),
            Ok(r) => {
                let o = self.said(&r, verb);
                self.quit().await;
                Err(Attempt::Next(o))
            }
            Err(b) => Err(Attempt::Next(self.broken(b))),
        }
    }

    /// `may` reconnects in plaintext; higher levels move on to the next server.
    fn handshake_failed(&self, why: String, queue_id: &str) -> Attempt {
        if self.settings.tls.level == ClientTlsLevel::May {
            return Attempt::Plaintext(why);
        }
        crate::info!(
            "smtp",
            "{queue_id}: TLS handshake failed with {}: {why}",
            self.relay
        );
        let text = "Cannot start TLS: handshake failure".to_string();
        Attempt::Next(defer(4, 7, 5, &self.relay, text))
    }
}
