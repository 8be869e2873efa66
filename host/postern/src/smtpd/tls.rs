//! STARTTLS (RFC 3207) and wrapper-mode TLS for smtpd, worded and ordered as Postfix smtpd's
//! `starttls_cmd` and `smtpd_start_tls`.
//!
//! Security decisions kept here:
//! - Input the client pipelined after `STARTTLS` is thrown away before the handshake and never
//!   executed inside the TLS session (CVE-2011-0411, the STARTTLS command-injection class).
//! - After the handshake everything learned from the client is forgotten (RFC 3207 §4.2): the
//!   HELO name, any mail transaction, an earlier AUTH. The client must EHLO again.
//! - With `smtpd_tls_security_level = encrypt`, only HELO, EHLO, STARTTLS, NOOP and QUIT are
//!   accepted before TLS (RFC 3207 §4, Postfix's `SMTPD_CMD_FLAG_PRE_TLS` commands).

use postern_config::ServerTlsLevel;
use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{printable, Flow, Session};
use crate::tls::TlsSummary;

/// Commands allowed before STARTTLS when TLS is required (RFC 3207 §4).
const PRE_TLS: [&str; 5] = ["helo", "ehlo", "starttls", "noop", "quit"];

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether EHLO lists STARTTLS: TLS is configured, the certificates loaded, and the session
    /// is not encrypted yet (never on a wrapper-mode service).
    pub(super) fn starttls_offered(&self) -> bool {
        let tls = &self.cfg().smtpd_tls;
        tls.security_level != ServerTlsLevel::None
            && !tls.wrappermode
            && self.proto.tls.is_none()
            && self.ctx.settings.tls.is_some()
    }

    /// `530 5.7.0 Must issue a STARTTLS command first` for a command (by its statistics name)
    /// that `smtpd_tls_security_level = encrypt` does not allow before TLS. Unknown commands get
    /// their usual `500` instead, as in Postfix.
    pub(super) fn tls_required(&self, verb: &str) -> Option<Reply> {
        if self.proto.tls.is_some()
            || self.cfg().smtpd_tls.security_level != ServerTlsLevel::Encrypt
            || verb == "unknown"
            || PRE_TLS.contains(&verb)
        {
            return None;
        }
        Some(Reply::new(
            530,
            "5.7.0",
            "Must issue a STARTTLS command first",
        ))
    }

    /// `STARTTLS` (its argument check, `501 5.5.4 Syntax: STARTTLS`, is the parser's).
    ///
    /// Like Postfix, STARTTLS is allowed during a mail transaction (RFC 3207 does not forbid
    /// it); the transaction is discarded with everything else.
    pub(super) async fn starttls(&mut self) -> Result<Flow, IoError> {
        if self.proto.tls.is_some() {
            let r = Reply::new(554, "5.5.1", "Error: TLS already active");
            return self.fail(r).await;
        }
        let level = self.cfg().smtpd_tls.security_level;
        let acceptor = self.ctx.settings.tls.as_ref().map(|t| t.acceptor().clone());
        let Some(acceptor) = acceptor.filter(|_| self.starttls_offered()) else {
            // Certificates that failed to load are a local problem only when TLS is required;
            // otherwise STARTTLS was never offered.
            let r = if level == ServerTlsLevel::Encrypt && !self.cfg().smtpd_tls.wrappermode {
                Reply::new(454, "4.7.0", "TLS not available due to local problem")
            } else {
                Reply::new(502, "5.5.1", "Error: command not implemented")
            };
            return self.fail(r).await;
        };
        self.send(Reply::new(220, "2.0.0", "Ready to start TLS"))
            .await?;
        self.io.flush().await?;
        let injected = self.io.discard_input();
        if !injected.is_empty() {
            crate::warn!(
                "smtpd",
                "improper command pipelining after STARTTLS from {}: {}",
                self.ctx.client.namaddr(),
                escaped(&injected)
            );
        }
        let timeout = self.cfg().smtpd_tls.starttls_timeout;
        match self.io.start_tls(&acceptor, timeout).await {
            Ok(summary) => {
                self.tls_established(summary);
                Ok(Flow::Ok)
            }
            Err(reason) => {
                self.tls_failed(&reason);
                // The session ends here, before dispatch counts the command.
                self.proto.stats.count("starttls", false);
                Err(IoError::Lost)
            }
        }
    }

    /// Wrapper mode (`smtpd_tls_wrappermode = yes`, port 465): the handshake comes before the
    /// greeting. False when the session must end (already logged).
    pub(super) async fn wrapper_handshake(&mut self) -> bool {
        if !self.cfg().smtpd_tls.wrappermode {
            return true;
        }
        let Some(acceptor) = self.ctx.settings.tls.as_ref().map(|t| t.acceptor().clone()) else {
            crate::warn!(
                "smtpd",
                "Wrapper-mode request dropped from {} for service {}. TLS context \
                 initialization failed. For details see earlier warnings in your logs.",
                self.ctx.client.namaddr(),
                self.ctx.service
            );
            return false;
        };
        let timeout = self.cfg().smtpd_tls.starttls_timeout;
        match self.io.start_tls(&acceptor, timeout).await {
            Ok(summary) => {
                self.tls_established(summary);
                true
            }
            Err(reason) => {
                self.tls_failed(&reason);
                false
            }
        }
    }

    fn tls_established(&mut self, summary: TlsSummary) {
        if self.cfg().smtpd_tls.loglevel >= 1 {
            crate::info!(
                "smtpd",
                "Anonymous TLS connection established from {}: {} with cipher {} ({}/{} bits)",
                self.ctx.client.namaddr(),
                summary.protocol,
                summary.cipher,
                summary.bits,
                summary.bits
            );
        }
        // RFC 3207 §4.2: forget what the client said before; it must greet again.
        self.txn = None;
        self.proto.helo = None;
        self.proto.helo_verdict = None;
        self.proto.bdat_error = false;
        self.proto.login = None;
        self.proto.tls = Some(summary);
    }

    fn tls_failed(&mut self, reason: &str) {
        crate::info!(
            "smtpd",
            "SSL_accept error from {}: {reason}",
            self.ctx.client.namaddr()
        );
    }
}

/// Pipelined input for a log line: at most 100 bytes, CR/LF as `\r\n`, other control bytes
/// as `?` (Postfix's escape of the pending input).
fn escaped(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(100)];
    let mut out = String::new();
    for chunk in shown.split_inclusive(|&b| b == b'\n') {
        let (line, end) = match chunk {
            [rest @ .., b'\r', b'\n'] => (rest, "\\r\\n"),
            [rest @ .., b'\n'] => (rest, "\\n"),
            rest => (rest, ""),
        };
        out.push_str(&printable(line));
        out.push_str(end);
    }
    out
}
