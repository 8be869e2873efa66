//! SMTP AUTH in the smtp client (Postfix `smtp_sasl_*`): logging in to a relay — an ISP's or a
//! mail service's submission server — with a user name and password from
//! `smtp_sasl_password_maps`.
//!
//! The table is looked up with the next hop as written (`[smtp.example.com]:587`), then its
//! host name alone (`smtp.example.com`), as Postfix does; the value is `username:password`.
//! After EHLO (and STARTTLS), when the server offers AUTH, the client logs in with PLAIN
//! (RFC 4616), else LOGIN. Both send the password readable by anyone on the path, so without
//! TLS they are used only when `smtp_sasl_security_options` lacks `noplaintext` (it has it by
//! default); over TLS `smtp_sasl_tls_security_options` decides (default `noanonymous`: allowed).
//! A server that offers no usable mechanism gets the mail without AUTH, as in Postfix (it may
//! still refuse to relay). A refused login defers the mail (Postfix's
//! `smtp_sasl_auth_soft_bounce = yes`) and the next server is tried. The password is never
//! logged.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use postern_config::Config;
use postern_maps::search::{self, Probe};
use postern_proto::EnhancedCode;

use super::client::{defer, Attempt, Session};
use super::nexthop::Nexthop;
use super::stream::Upgrade;
use super::wire::Caps;
use crate::cleanup::tables;
use crate::transport::Outcome;

/// Credentials for one next hop.
#[derive(Clone)]
pub struct Secret {
    pub username: String,
    password: String,
    /// Mechanisms allowed without TLS / over TLS (from the security options).
    plain_in_clear: bool,
    plain_over_tls: bool,
}

/// Never shows the password.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("username", &self.username)
            .field("password", &"(hidden)")
            .finish()
    }
}

impl Secret {
    #[cfg(test)]
    pub fn for_tests(username: &str, password: &str, plain_in_clear: bool) -> Secret {
        Secret {
            username: username.into(),
            password: password.into(),
            plain_in_clear,
            plain_over_tls: true,
        }
    }
}

/// The credentials for `written` (parsed as `hop`), `Ok(None)` when AUTH is off or the table
/// has no entry. `Err` is the deferral for a table that cannot be read.
pub fn lookup(cfg: &Config, written: &str, hop: &Nexthop) -> Result<Option<Arc<Secret>>, Outcome> {
    let s = &cfg.smtp_sasl;
    if !s.auth_enable || s.password_maps.is_empty() {
        return Ok(None);
    }
    let full = |key: &str| Probe {
        key: key.to_string(),
        scope: postern_maps::Scope::Full,
        extension: None,
    };
    let mut probes = vec![full(written)];
    if !hop.host.eq_ignore_ascii_case(written) {
        probes.push(full(&hop.host));
    }
    let found = tables::open(&s.password_maps).and_then(|t| search::find_probes(&t, &probes));
    let value = match found {
        Ok(Some(f)) => f.value,
        Ok(None) => return Ok(None),
        Err(e) => {
            let text = format!("smtp_sasl_password_maps lookup of {written}: {e}");
            crate::warn!("smtp", "{text}");
            return Err(Outcome::defer(EnhancedCode::new(4, 3, 0), "none", text));
        }
    };
    let Some((username, password)) = value.trim().split_once(':') else {
        let text = format!(
            "smtp_sasl_password_maps entry for {written} is not of the form username:password"
        );
        crate::warn!("smtp", "{text}");
        return Err(Outcome::defer(EnhancedCode::new(4, 3, 5), "none", text));
    };
    let no_plain = |opts: &[String]| opts.iter().any(|o| o.eq_ignore_ascii_case("noplaintext"));
    Ok(Some(Arc::new(Secret {
        username: username.to_string(),
        password: password.to_string(),
        plain_in_clear: !no_plain(&s.security_options),
        plain_over_tls: !no_plain(&s.tls_security_options),
    })))
}

impl<S: Upgrade> Session<'_, S> {
    /// Logs in when credentials exist and the server offers a usable mechanism. `Err` is the
    /// attempt's result when the login was refused or the conversation broke.
    pub(super) async fn authenticate(&mut self, caps: &Caps) -> Result<(), Attempt> {
        let Some(secret) = self.settings.sasl.clone() else {
            return Ok(());
        };
        let allowed = if self.tls.is_some() {
            secret.plain_over_tls
        } else {
            secret.plain_in_clear
        };
        let offers = |m: &str| caps.auth.iter().any(|a| a == m);
        let mech = match () {
            _ if !allowed => None,
            _ if offers("PLAIN") => Some("PLAIN"),
            _ if offers("LOGIN") => Some("LOGIN"),
            _ => None,
        };
        let Some(mech) = mech else {
            if !caps.auth.is_empty() && !allowed {
                crate::warn!(
                    "smtp",
                    "not sending the password for {} to {} without TLS \
                     (smtp_sasl_security_options has noplaintext)",
                    secret.username,
                    self.peer
                );
            }
            return Ok(());
        };
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let limit = self.settings.helo;
        let stage = "performing the SASL authentication";
        let reply = if mech == "PLAIN" {
            let mut raw = Vec::new();
            raw.push(0);
            raw.extend_from_slice(secret.username.as_bytes());
            raw.push(0);
            raw.extend_from_slice(secret.password.as_bytes());
            self.command(&format!("AUTH PLAIN {}\r\n", b64(&raw)), limit, stage)
                .await
        } else {
            match self.command("AUTH LOGIN\r\n", limit, stage).await {
                Ok(r) if r.code == 334 => {
                    let line = format!("{}\r\n", b64(secret.username.as_bytes()));
                    match self.command(&line, limit, stage).await {
                        Ok(r) if r.code == 334 => {
                            let line = format!("{}\r\n", b64(secret.password.as_bytes()));
                            self.command(&line, limit, stage).await
                        }
                        other => other,
                    }
                }
                other => other,
            }
        };
        let reply = match reply {
            Ok(r) => r,
            Err(b) => return Err(Attempt::Next(self.broken(b))),
        };
        if reply.code == 235 {
            return Ok(());
        }
        // Postfix: "SASL authentication failed; server X said: 535 …" — soft, so the mail
        // stays queued while the administrator fixes the password.
        let text = format!(
            "SASL authentication failed; server {} said: {}",
            self.peer,
            reply.text()
        );
        crate::warn!("smtp", "{text}");
        self.quit().await;
        let mut o = defer(4, 7, 0, &self.relay, text);
        o.diagnostic = Some(format!("smtp; {}", reply.text()));
        Err(Attempt::Next(o))
    }
}
