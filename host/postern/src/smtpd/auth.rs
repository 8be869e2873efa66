//! AUTH (RFC 4954) for smtpd, as Postfix's `smtpd_sasl_proto.c` and `smtpd_sasl_glue.c` do it.
//!
//! smtpd runs the SASL exchange itself — PLAIN (RFC 4616) and LOGIN (the de-facto
//! `334 VXNlcm5hbWU6` / `334 UGFzc3dvcmQ6` dialogue) — and hands the name and password to the
//! epoch's back end (`crate::sasl`). Both mechanisms send the password in the clear, so they
//! are offered only over TLS unless `smtpd_tls_auth_only = no`, and not at all when the
//! applicable `smtpd_sasl_*security_options` say `noplaintext`.
//!
//! Password guessing is damped three ways: every failure waits `smtpd_sasl_failure_delay`
//! before its `535`, counts as a session error (so `smtpd_soft_error_limit` /
//! `smtpd_hard_error_limit` slow down and then end the session), and
//! `smtpd_client_auth_rate_limit` caps AUTH commands per client address across sessions.
//! Log lines name the client, the mechanism and the login name; never the password, and never
//! the base64 the client sent (it holds the password).

use base64::Engine;
use postern_proto::line::LineReader;
use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{IoError, Line};
use super::session::{Flow, Session};
use crate::sasl::{self, AuthContext, AuthResult, Credentials};

/// Longest SASL response line (Postfix `smtpd_sasl_response_limit`, default 12288).
pub const SASL_RESPONSE_LIMIT: usize = 12288;

/// `334 Username:` and `334 Password:` of the LOGIN mechanism.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// How one step of the exchange ended when it did not produce a response.
enum Stop {
    /// A reply was sent; the command is over with this flow.
    Done(Flow),
    Io(IoError),
}

impl From<IoError> for Stop {
    fn from(e: IoError) -> Stop {
        Stop::Io(e)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The mechanisms EHLO lists after `AUTH` (empty: no AUTH line). With
    /// `broken_sasl_auth_clients = yes` the `AUTH=` line is asked for too.
    pub(super) fn auth_mechanisms(&self) -> Vec<String> {
        let mut mechs: Vec<String> = self.offered().iter().map(|m| m.to_string()).collect();
        if !mechs.is_empty() && self.cfg().sasl.broken_clients {
            mechs.push(postern_proto::ehlo::AUTH_EQUALS.to_string());
        }
        mechs
    }

    /// AUTH is switched on for this session (`smtpd_sasl_auth_enable`, a usable back end).
    fn auth_enabled(&self) -> bool {
        self.cfg().sasl.auth_enable && self.ctx.settings.sasl.backend().is_some()
    }

    /// `smtpd_tls_auth_only = yes` and the session is not encrypted.
    fn needs_tls_for_auth(&self) -> bool {
        self.cfg().smtpd_tls.auth_only && self.proto.tls.is_none()
    }

    /// The mechanisms usable now: PLAIN and LOGIN, unless AUTH is off, TLS is required and
    /// missing, or the security options (`smtpd_sasl_tls_security_options` under TLS) forbid
    /// plaintext mechanisms.
    fn offered(&self) -> &'static [&'static str] {
        if !self.auth_enabled() || self.needs_tls_for_auth() {
            return &[];
        }
        let sasl = &self.cfg().sasl;
        let options = if self.proto.tls.is_some() {
            &sasl.tls_security_options
        } else {
            &sasl.security_options
        };
        if options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("noplaintext"))
        {
            return &[];
        }
        &["PLAIN", "LOGIN"]
    }

    pub(super) async fn auth(&mut self, arg: String) -> Result<Flow, IoError> {
        // Postfix's order of checks (smtpd_sasl_auth_cmd), with the rate limit of
        // smtpd_sasl_auth_cmd_wrapper once AUTH is known to be on.
        if self.cfg().smtpd_helo_required && self.proto.helo.is_none() {
            return self
                .fail(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"))
                .await;
        }
        if !self.auth_enabled() {
            return self
                .fail(Reply::new(
                    503,
                    "5.5.1",
                    "Error: authentication not enabled",
                ))
                .await;
        }
        if let Some(r) = self.auth_rate_exceeded() {
            return self.fail(r).await;
        }
        if self.txn.is_some() {
            return self
                .fail(Reply::new(
                    503,
                    "5.5.1",
                    "Error: MAIL transaction in progress",
                ))
                .await;
        }
        if self.needs_tls_for_auth() {
            // RFC 4954 §4.
            return self
                .fail(Reply::new(
                    504,
                    "5.5.4",
                    "Encryption required for requested authentication mechanism",
                ))
                .await;
        }
        if self.proto.login.is_some() {
            return self
                .fail(Reply::new(503, "5.5.1", "Error: already authenticated"))
                .await;
        }
        let words: Vec<&str> = arg.split_ascii_whitespace().collect();
        let (mech, initial) = match words.as_slice() {
            [m] => (m.to_ascii_uppercase(), None),
            [m, r] => (m.to_ascii_uppercase(), Some(r.to_string())),
            _ => {
                return self
                    .fail(Reply::new(501, "5.5.4", "Syntax: AUTH mechanism"))
                    .await;
            }
        };
        let Some(mech) = self.offered().iter().find(|m| **m == mech).copied() else {
            let shown = sasl::printable(&mech);
            return self
                .auth_failed(&shown, "Invalid authentication mechanism", None)
                .await;
        };
        let creds = match self.exchange(mech, initial).await {
            Ok(c) => c,
            Err(Stop::Done(flow)) => return Ok(flow),
            Err(Stop::Io(e)) => return Err(e),
        };
        let creds = match creds {
            Ok(c) => c,
            Err(reason) => return self.auth_failed(mech, reason, None).await,
        };
        let backend = match self.ctx.settings.sasl.backend() {
            Some(b) => b.clone(),
            None => {
                return self
                    .fail(Reply::new(
                        503,
                        "5.5.1",
                        "Error: authentication not enabled",
                    ))
                    .await
            }
        };
        let ctx = AuthContext {
            method: mech.to_string(),
            client_addr: self.ctx.client.addr,
            client_port: self.ctx.client.port,
            secured: self.proto.tls.is_some(),
        };
        // Flush what is queued: the check may take a while (Argon2, a remote Dovecot).
        self.io.flush().await?;
        match backend.verify(&creds, &ctx).await {
            AuthResult::Ok(mut login) => {
                // Postfix printable(): the name goes into logs and headers.
                login.username = login
                    .username
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                self.proto.login = Some(login);
                self.ok(Reply::new(235, "2.7.0", "Authentication successful"))
                    .await
            }
            AuthResult::Failed(reason) => {
                let user = sasl::printable(&creds.username);
                self.auth_failed(mech, &reason, Some(&user)).await
            }
            AuthResult::TempFail(reason) => {
                let reason = sasl::printable(&reason);
                crate::warn!(
                    "smtpd",
                    "{}: SASL {mech} authentication failed: {reason}, sasl_username={}",
                    self.ctx.client.namaddr(),
                    sasl::printable(&creds.username)
                );
                // RFC 4954 §6.
                self.fail(Reply::new(
                    454,
                    "4.7.0",
                    format!("Temporary authentication failure: {reason}"),
                ))
                .await
            }
        }
    }

    /// `smtpd_client_auth_rate_limit`: `450 4.7.1 Error: too many AUTH commands from ADDR`
    /// once the client exceeds it. Clients in `mynetworks` are exempt (Postfix's default
    /// `smtpd_client_event_limit_exceptions = $mynetworks`).
    fn auth_rate_exceeded(&self) -> Option<Reply> {
        let sasl = &self.cfg().sasl;
        let limit = sasl.client_auth_rate_limit;
        let addr = self.ctx.client.addr;
        if limit == 0 || self.ctx.settings.policy.is_mynetworks(addr) {
            return None;
        }
        let rate = sasl::AuthRate::count(&self.ctx.service, addr, sasl.rate_time_unit);
        if rate <= limit {
            return None;
        }
        crate::warn!(
            "smtpd",
            "Too many AUTH commands from {} for service {}",
            self.ctx.client.namaddr(),
            self.ctx.service
        );
        Some(Reply::new(
            450,
            "4.7.1",
            format!("Error: too many AUTH commands from {addr}"),
        ))
    }

    /// A refused AUTH: logged, answered `535 5.7.8` after `smtpd_sasl_failure_delay`, counted
    /// as an error.
    async fn auth_failed(
        &mut self,
        mech: &str,
        reason: &str,
        user: Option<&str>,
    ) -> Result<Flow, IoError> {
        crate::warn!(
            "smtpd",
            "{}: SASL {mech} authentication failed: {reason}, sasl_username={}",
            self.ctx.client.namaddr(),
            user.unwrap_or("(unavailable)")
        );
        let delay = self.cfg().sasl.failure_delay;
        if !delay.is_zero() {
            self.io.flush().await?;
            tokio::time::sleep(delay).await;
        }
        self.fail(Reply::new(
            535,
            "5.7.8",
            format!("Error: authentication failed: {reason}"),
        ))
        .await
    }

    /// Runs the mechanism's exchange up to the credentials. `Ok(Err(reason))`: the client's
    /// data is not a valid response (answered as a failed login).
    async fn exchange(
        &mut self,
        mech: &str,
        initial: Option<String>,
    ) -> Result<Result<Credentials, &'static str>, Stop> {
        let local_domain = self.cfg().sasl.local_domain.clone();
        let qualify = |name: &str| sasl::qualify(name, &local_domain);
        if mech == "PLAIN" {
            let data = match initial {
                Some(r) => self.decode(mech, &r).await?,
                None => self.challenge(mech, "").await?,
            };
            let mut parts = data.split(|&b| b == 0);
            let (Some(authzid), Some(user), Some(password), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Ok(Err("malformed PLAIN response"));
            };
            let (Ok(authzid), Ok(user), Ok(password)) = (
                String::from_utf8(authzid.to_vec()),
                String::from_utf8(user.to_vec()),
                String::from_utf8(password.to_vec()),
            ) else {
                return Ok(Err("malformed PLAIN response"));
            };
            if user.is_empty() {
                return Ok(Err("malformed PLAIN response"));
            }
            let authzid = if authzid.is_empty() {
                authzid
            } else {
                qualify(&authzid)
            };
            return Ok(Ok(Credentials {
                authzid,
                username: qualify(&user),
                password,
            }));
        }
        // LOGIN: some clients send the user name along with the command.
        let user = match initial {
            Some(r) => self.decode(mech, &r).await?,
            None => self.challenge(mech, LOGIN_USERNAME).await?,
        };
        let password = self.challenge(mech, LOGIN_PASSWORD).await?;
        let (Ok(user), Ok(password)) = (String::from_utf8(user), String::from_utf8(password))
        else {
            return Ok(Err("malformed LOGIN response"));
        };
        if user.is_empty() {
            return Ok(Err("malformed LOGIN response"));
        }
        Ok(Ok(Credentials {
            authzid: String::new(),
            username: qualify(&user),
            password,
        }))
    }

    /// Sends `334 <challenge>` and reads the client's response (size-limited, `*` cancels).
    async fn challenge(&mut self, mech: &str, challenge: &str) -> Result<Vec<u8>, Stop> {
        // No enhanced code and no error sleep: this is not a reply to a command.
        self.io
            .queue(&Reply::new(334, "", challenge.to_string()), false);
        let mut reader = LineReader::new(SASL_RESPONSE_LIMIT, self.bare_newline);
        let line = match self.io.read_line(&mut reader).await? {
            Line::Command(l) => l,
            Line::TooLong => {
                crate::warn!(
                    "smtpd",
                    "{}: SASL {mech} authentication failed: response exceeds length limit \
                     of {SASL_RESPONSE_LIMIT} bytes",
                    self.ctx.client.namaddr()
                );
                let r = Reply::new(500, "5.5.6", "SASL response limit exceeded");
                self.reply(r).await?;
                return Err(Stop::Done(Flow::Error));
            }
            Line::BareNewline => {
                self.send(self.bare_newline_reply()).await?;
                return Err(Stop::Done(Flow::Close));
            }
        };
        if line == b"*" {
            crate::warn!(
                "smtpd",
                "{}: SASL {mech} authentication aborted",
                self.ctx.client.namaddr()
            );
            self.reply(Reply::new(501, "5.7.0", "Authentication aborted"))
                .await?;
            return Err(Stop::Done(Flow::Error));
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        self.decode(mech, &text).await
    }

    /// Decodes one base64 response (`=` is the empty response, RFC 4954 §4).
    async fn decode(&mut self, mech: &str, text: &str) -> Result<Vec<u8>, Stop> {
        let text = text.trim();
        if text == "=" {
            return Ok(Vec::new());
        }
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => Ok(bytes),
            Err(_) => {
                crate::warn!(
                    "smtpd",
                    "{}: SASL {mech} authentication failed: malformed base64 response",
                    self.ctx.client.namaddr()
                );
                self.reply(Reply::new(501, "5.5.2", "Cannot decode response"))
                    .await?;
                Err(Stop::Done(Flow::Error))
            }
        }
    }
}
