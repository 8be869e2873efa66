//! HELO and EHLO (RFC 5321 §4.1.1.1): greet, reset any transaction, advertise extensions.

use postern_proto::{ehlo_reply, EhloCaps, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};
use crate::restrictions::Stage;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// `HELO name` → `250 myhostname`. Replies from now on carry no enhanced status codes
    /// (RFC 2034 §3: only clients that used EHLO may receive them).
    pub(super) async fn helo(&mut self, name: String) -> Result<Flow, IoError> {
        if let Some(r) = self.helo_check(&name, false).await {
            return self.refused(r).await;
        }
        self.greeted(name, false);
        let host = self.hostname();
        self.ok(Reply::new(250, "", host)).await
    }

    /// `EHLO name` → the multi-line list of extensions (in Postfix's order).
    pub(super) async fn ehlo(&mut self, name: String) -> Result<Flow, IoError> {
        if let Some(r) = self.helo_check(&name, true).await {
            return self.refused(r).await;
        }
        self.greeted(name, true);
        let starttls = self.starttls_offered();
        let auth = self.auth_mechanisms();
        let cfg = self.cfg();
        let caps = EhloCaps {
            size_limit: cfg.message_size_limit,
            pipelining: true,
            eightbitmime: true,
            smtputf8: cfg.smtputf8_enable,
            enhancedstatuscodes: true,
            dsn: true,
            chunking: true,
            vrfy: !cfg.disable_vrfy_command,
            etrn: true,
            starttls,
            auth,
        };
        let reply = ehlo_reply(&cfg.myhostname, &caps);
        self.ok(reply).await
    }

    /// `smtpd_delay_reject = no`: the HELO restrictions run now; the refusal, if any.
    async fn helo_check(&mut self, name: &str, esmtp: bool) -> Option<Reply> {
        self.proto.helo_verdict = None;
        if self.ctx.settings.policy.delay_reject() {
            return None;
        }
        let mut facts = self.facts(if esmtp { "EHLO" } else { "HELO" });
        facts.helo = Some(name.to_string());
        let v = self.run_stage(Stage::Helo, &facts).await;
        let refusal = v.decision.reply().cloned();
        match &refusal {
            Some(r) => self.log_reject(facts.command, r, None),
            None => self.proto.helo_verdict = Some(v),
        }
        refusal
    }

    /// RFC 5321 §4.1.4: a HELO/EHLO in the middle of a session resets it like RSET.
    fn greeted(&mut self, name: String, esmtp: bool) {
        self.txn = None;
        self.proto.bdat_error = false;
        self.proto.helo = Some(name);
        self.proto.esmtp = esmtp;
        self.proto.enhanced = esmtp;
    }
}
