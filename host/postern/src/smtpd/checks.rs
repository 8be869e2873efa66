//! Where smtpd runs the restriction lists (Postfix smtpd_check.c entry points).
//!
//! With `smtpd_delay_reject = yes` (the default) the client, HELO and sender lists run at each
//! RCPT TO, in that order, before the relay and recipient lists. With `no`, each runs at its
//! own command (connect, HELO/EHLO, MAIL FROM). `DEFER_IF_PERMIT` from those stages is carried
//! to RCPT TO, as in Postfix. Side effects (HOLD, PREPEND, …) are collected into the
//! transaction's [`Actions`] and handed to cleanup with the message.

use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::session::Session;
use crate::queue::Reservation;
use crate::restrictions::{Actions, Decision, Facts, Note, Stage, Verdict};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// What the restrictions see for `command`.
    pub(super) fn facts(&self, command: &'static str) -> Facts {
        let mut f = Facts::new(self.ctx.client.addr);
        f.client_port = self.ctx.client.port;
        f.client_name = self.ctx.client.name.clone();
        f.reverse_client_name = self.ctx.client.reverse_name.clone();
        f.helo = self.proto.helo.clone();
        f.command = command;
        f.esmtp = self.proto.esmtp;
        f.unauth_pipelining = self.proto.unauth_pipelining;
        f.tls = self.proto.tls.clone();
        if let Some(login) = &self.proto.login {
            f.sasl_username = Some(login.username.clone());
            f.sasl_method = Some(login.method.clone());
        }
        if let Some(t) = &self.txn {
            f.sender = Some(t.sender.clone());
            f.smtputf8 = t.params.smtputf8;
            f.recipient_count = t.recipients.len();
            f.queue_id = t.id.as_ref().map(|r| Reservation::id(r).to_string());
            f.instance = t.instance.clone();
            f.plugins = Some(t.plugins.clone());
            f.size = t.params.size.unwrap_or(0);
            f.sasl_sender = t.params.auth.clone();
        }
        f
    }

    /// Runs one stage's list and logs its notes.
    pub(super) async fn run_stage(&self, stage: Stage, facts: &Facts) -> Verdict {
        let verdict = self.ctx.settings.policy.check_stage(stage, facts).await;
        self.log_notes(facts, &verdict.notes);
        verdict
    }

    /// Postfix logs `warn`, `hold`, `discard`, … like reject lines.
    pub(super) fn log_notes(&self, facts: &Facts, notes: &[Note]) {
        for n in notes {
            self.log_event(
                n.kind,
                facts.command,
                &n.text,
                facts.sender.as_deref(),
                facts.recipient.as_deref(),
            );
        }
    }

    /// The client, HELO and sender verdicts for this RCPT. With `smtpd_delay_reject = yes`
    /// they are evaluated now, at every RCPT as in Postfix (a list may look at the recipient),
    /// but their side effects and log notes are taken once per transaction; with `no` they
    /// are the verdicts of connect, HELO and MAIL. `Err(reply)`: one of them refused.
    /// `Ok(carried)`: a pending DEFER_IF_PERMIT.
    pub(super) async fn early_checks(&mut self, facts: &Facts) -> Result<Option<Reply>, Reply> {
        let first = self.txn.as_ref().is_some_and(|t| !t.early_merged);
        let mut verdicts = Vec::new();
        if self.ctx.settings.policy.delay_reject() {
            for stage in [Stage::Client, Stage::Helo, Stage::Sender] {
                let v = self.ctx.settings.policy.check_stage(stage, facts).await;
                if first {
                    self.log_notes(facts, &v.notes);
                }
                let refused = v.decision.reply().is_some();
                verdicts.push(v);
                if refused {
                    break;
                }
            }
        } else {
            let sender = self.txn.as_ref().and_then(|t| t.sender_verdict.as_ref());
            verdicts.extend(
                [
                    self.proto.client_verdict.as_ref(),
                    self.proto.helo_verdict.as_ref(),
                    sender,
                ]
                .into_iter()
                .flatten()
                .cloned(),
            );
        }
        if first {
            if let Some(t) = self.txn.as_mut() {
                t.early_merged = true;
                for v in &verdicts {
                    t.actions.merge(v.actions.clone());
                }
            }
        }
        let mut carried = None;
        for v in verdicts {
            if let Some(r) = v.decision.reply() {
                return Err(r.clone());
            }
            if carried.is_none() {
                carried = v.defer_if_permit;
            }
        }
        Ok(carried)
    }

    /// Checks RCPT TO (or VRFY): the early stages, then the relay and recipient lists.
    /// Actions are merged into the transaction whatever the outcome, as Postfix records them
    /// when the action is met.
    pub(super) async fn check_rcpt(&mut self, facts: &Facts) -> Decision {
        let carried = match self.early_checks(facts).await {
            Ok(c) => c,
            Err(reply) => return Decision::refusal(reply),
        };
        let verdict = self
            .ctx
            .settings
            .policy
            .check_recipient(facts, carried)
            .await;
        self.log_notes(facts, &verdict.notes);
        self.merge_actions(verdict.actions);
        verdict.decision
    }

    pub(super) fn merge_actions(&mut self, actions: Actions) {
        if let Some(t) = self.txn.as_mut() {
            t.actions.merge(actions);
        }
    }
}
