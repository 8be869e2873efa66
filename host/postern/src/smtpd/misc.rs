//! The small commands: RSET, NOOP, QUIT, VRFY, HELP, ETRN, and the replies for what Postern
//! does not implement yet (EXPN, STARTTLS, AUTH), all worded as Postfix words them.

use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};
use crate::restrictions::Decision;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// RFC 5321 §4.1.1.5: abort the transaction, keep the greeting.
    pub(super) async fn rset(&mut self) -> Result<Flow, IoError> {
        self.txn = None;
        self.proto.bdat_error = false;
        self.ok(Reply::new(250, "2.0.0", "Ok")).await
    }

    pub(super) async fn noop(&mut self) -> Result<Flow, IoError> {
        self.ok(Reply::new(250, "2.0.0", "Ok")).await
    }

    pub(super) async fn quit(&mut self) -> Result<Flow, IoError> {
        self.reply(Reply::new(221, "2.0.0", "Bye")).await?;
        Ok(Flow::Close)
    }

    /// VRFY answers `252` ("cannot verify, but will accept") for addresses the recipient
    /// restrictions accept, like Postfix: a definite `250` would help address harvesters
    /// (RFC 5321 §3.5.3 allows 252). `disable_vrfy_command = yes` turns it off.
    pub(super) async fn vrfy(&mut self, arg: String) -> Result<Flow, IoError> {
        if self.cfg().disable_vrfy_command {
            return self
                .fail(Reply::new(502, "5.5.1", "VRFY command is disabled"))
                .await;
        }
        // RFC 6531 §3.7.4: "VRFY address SMTPUTF8".
        let (shown, smtputf8) = match arg.rsplit_once([' ', '\t']) {
            Some((a, kw)) if kw.eq_ignore_ascii_case("SMTPUTF8") && self.cfg().smtputf8_enable => {
                (a.trim().to_string(), true)
            }
            _ => (arg.trim().to_string(), false),
        };
        let address = shown
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix('>'))
            .unwrap_or(&shown)
            .to_string();
        if address.is_empty() || address.contains(['<', '>', ' ', '\t']) {
            return self
                .fail(Reply::new(501, "5.1.3", "Bad recipient address syntax"))
                .await;
        }
        if !smtputf8 && !address.is_ascii() {
            let r = Reply::new(
                553,
                "5.6.7",
                "Must declare SMTPUTF8 to send unicode address",
            );
            return self.fail(r).await;
        }
        let mut facts = self.facts("VRFY");
        facts.recipient = Some(address.clone());
        facts.smtputf8 = smtputf8;
        let verdict = self.ctx.settings.policy.check_recipient(&facts, None).await;
        self.log_notes(&facts, &verdict.notes);
        let decision = verdict.decision;
        if let Decision::Reject(r) | Decision::Defer(r) = decision {
            self.log_reject("VRFY", &r, Some(&address));
            return self.fail(r).await;
        }
        self.ok(Reply::new(252, "2.0.0", shown)).await
    }

    /// `214 2.0.0 Commands: …` — the implemented commands, sorted, as Postfix lists them.
    pub(super) async fn help(&mut self) -> Result<Flow, IoError> {
        let text = "Commands: BDAT DATA EHLO ETRN HELO HELP MAIL NOOP QUIT RCPT RSET VRFY";
        self.ok(Reply::new(214, "2.0.0", text)).await
    }

    /// RFC 1985 ETRN: start delivery of deferred mail. Postern has no per-site fast-flush
    /// queue, so any valid request flushes the whole deferred queue. Replies are Postfix's,
    /// which carry no enhanced status codes.
    pub(super) async fn etrn(&mut self, arg: String) -> Result<Flow, IoError> {
        if self.cfg().smtpd_helo_required && self.proto.helo.is_none() {
            return self
                .fail(Reply::new(503, "", "Error: send HELO/EHLO first"))
                .await;
        }
        if self.txn.is_some() {
            let r = Reply::new(503, "", "Error: MAIL transaction in progress");
            return self.fail(r).await;
        }
        if arg.contains([' ', '\t']) {
            return self.fail(Reply::new(500, "", "Syntax: ETRN domain")).await;
        }
        let site = arg.strip_prefix(['@', '#']).unwrap_or(&arg);
        if !valid_etrn_site(site) {
            let r = Reply::new(501, "", "Error: invalid parameter syntax");
            return self.fail(r).await;
        }
        // RFC 1985: retry the mail queued for the site (`@domain`: and its subdomains; Postern
        // includes subdomains for both forms). Other deferred mail keeps its retry time.
        self.ctx.qmgr.flush_site(site);
        self.ok(Reply::new(250, "", "Queuing started")).await
    }

    /// EXPN is not implemented (Postfix neither): it would only help address harvesters.
    pub(super) async fn expn(&mut self) -> Result<Flow, IoError> {
        self.fail(Reply::new(500, "5.5.2", "Error: command not recognized"))
            .await
    }
}

/// A host name or an address literal in brackets.
fn valid_etrn_site(site: &str) -> bool {
    if let Some(lit) = site.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let lit = lit.strip_prefix("IPv6:").unwrap_or(lit);
        return lit.parse::<std::net::IpAddr>().is_ok();
    }
    !site.is_empty()
        && site.len() <= 255
        && site.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
