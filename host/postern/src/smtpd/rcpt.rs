//! RCPT TO (RFC 5321 §4.1.1.3): recipient limits and the relay/recipient restrictions.

use postern_proto::{RcptParams, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};
use crate::queue::Recipient;
use crate::restrictions::Decision;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn rcpt(&mut self, to: String, params: RcptParams) -> Result<Flow, IoError> {
        if let Some(r) = self.rcpt_sequence() {
            return self.fail(r).await;
        }
        let Some(txn) = self.txn.as_ref() else {
            return self
                .fail(Reply::new(503, "5.5.1", "Error: need MAIL command"))
                .await;
        };
        // postconf(5) smtpd_recipient_limit; RFC 5321 §4.5.3.1.8 says 452 (not 5xx) so that
        // the client sends the remaining recipients in a later transaction.
        if txn.recipients.len() >= self.cfg().smtpd_recipient_limit {
            return self
                .fail(Reply::new(452, "4.5.3", "Error: too many recipients"))
                .await;
        }
        let mut facts = self.facts("RCPT");
        facts.recipient = Some(to.clone());
        let decision = self.check_rcpt(&facts).await;
        if let Decision::Reject(r) | Decision::Defer(r) = decision {
            self.log_reject("RCPT", &r, Some(&to));
            return self.refused(r).await;
        }
        let mut namaddr = self.ctx.client.namaddr();
        // Postfix adds the login to the queue-ID line of an authenticated session.
        if let Some(login) = &self.proto.login {
            namaddr.push_str(&format!(
                ", sasl_method={}, sasl_username={}",
                login.method, login.username
            ));
        }
        let Some(txn) = self.txn.as_mut() else {
            return self
                .fail(Reply::new(503, "5.5.1", "Error: need MAIL command"))
                .await;
        };
        if txn.id.is_none() {
            let id = self.ctx.spool.reserve();
            crate::info!("smtpd", "{}: client={namaddr}", id.id());
            txn.id = Some(id);
        }
        let mut r = Recipient::new(to);
        r.notify = params.notify;
        r.orcpt = params.orcpt;
        txn.recipients.push(r);
        self.ok(Reply::new(250, "2.1.5", "Ok")).await
    }

    /// State checks that come before syntax checks, in Postfix's order.
    pub(super) fn rcpt_sequence(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(t) if t.bdat.is_some() || self.proto.bdat_error => {
                Some(Reply::new(503, "5.5.1", "Error: RCPT after BDAT"))
            }
            Some(_) => None,
        }
    }
}
