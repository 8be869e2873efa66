//! MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction and checks its ESMTP parameters.

use postern_proto::{Body, MailParams, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session, Transaction};
use crate::restrictions::Stage;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn mail(&mut self, from: String, params: MailParams) -> Result<Flow, IoError> {
        if let Some(r) = self.mail_sequence() {
            return self.fail(r).await;
        }
        if let Some(option) = self.unsupported_option(&params) {
            let r = Reply::new(555, "5.5.4", format!("Unsupported option: {option}"));
            return self.fail(r).await;
        }
        // RFC 1870 §6.2: refuse a declared size over the limit before any data is sent.
        let limit = self.cfg().message_size_limit;
        if limit > 0 && params.size.is_some_and(|s| s > limit) {
            let r = Reply::new(552, "5.3.4", "Message size exceeds fixed limit");
            self.log_reject_from("MAIL", &r, Some(&from), None);
            return self.fail(r).await;
        }
        let mut txn = Transaction::new(from, params);
        // smtpd_delay_reject = no: the sender restrictions run now.
        if !self.ctx.settings.policy.delay_reject() {
            let mut facts = self.facts("MAIL");
            facts.sender = Some(txn.sender.clone());
            facts.smtputf8 = txn.params.smtputf8;
            facts.size = txn.params.size.unwrap_or(0);
            let v = self.run_stage(Stage::Sender, &facts).await;
            if let Some(r) = v.decision.reply() {
                let r = r.clone();
                self.log_reject_from("MAIL", &r, Some(&txn.sender), None);
                return self.refused(r).await;
            }
            txn.sender_verdict = Some(v);
        }
        self.txn = Some(txn);
        self.ok(Reply::new(250, "2.1.0", "Ok")).await
    }

    /// State checks that come before syntax checks, in Postfix's order.
    pub(super) fn mail_sequence(&self) -> Option<Reply> {
        // postconf(5) smtpd_helo_required; without it MAIL before HELO is allowed, as in
        // Postfix (RFC 5321 §4.1.4 lets servers be lenient here).
        if self.cfg().smtpd_helo_required && self.proto.helo.is_none() {
            return Some(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.txn.is_some() {
            return Some(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
        }
        if self.proto.bdat_error {
            return Some(Reply::new(503, "5.5.1", "Error: MAIL after BDAT"));
        }
        None
    }

    /// Parameters the syntax allows but this server does not offer (RFC 5321 §4.1.1.11: 555).
    fn unsupported_option(&self, params: &MailParams) -> Option<String> {
        if params.smtputf8 && !self.cfg().smtputf8_enable {
            return Some("SMTPUTF8".to_string());
        }
        // RFC 3030 §3: BINARYMIME needs the BINARYMIME extension, which is not advertised.
        if params.body == Some(Body::BinaryMime) {
            return Some("BODY=BINARYMIME".to_string());
        }
        // RFC 4954 §5: AUTH= belongs to servers that offer AUTH; where AUTH is enabled it is
        // accepted (and, as in Postfix, not trusted for anything).
        if let Some(auth) = params
            .auth
            .as_ref()
            .filter(|_| !self.cfg().sasl.auth_enable)
        {
            return Some(format!("AUTH={auth}"));
        }
        None
    }
}

/// A value unique to each transaction of this process: `pid.time.sequence` in hex, the shape of
/// Postfix's policy `instance` attribute.
fn next_instance() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}.{:x}.{:x}",
        crate::log::pid(),
        crate::time::now_secs(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Transaction {
    pub(super) fn new(sender: String, params: MailParams) -> Transaction {
        Transaction {
            id: None,
            sender,
            params,
            recipients: Vec::new(),
            rcpt_tried: false,
            bdat: None,
            instance: next_instance(),
            started_us: crate::time::now_micros(),
            plugins: postern_runtime::Transaction::new(),
            sender_verdict: None,
            early_merged: false,
            actions: Default::default(),
        }
    }
}
