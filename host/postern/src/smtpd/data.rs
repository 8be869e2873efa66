//! DATA (RFC 5321 §4.1.1.4) and the end of a message, shared with BDAT: build the envelope and
//! hand the message to cleanup.

use postern_proto::{DataDecoder, DataEvent, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{Deferred, IoError};
use super::session::{Flow, Session};
use crate::cleanup::{self, CleanupError, Protocol};
use crate::queue::{Envelope, Origin};
use crate::restrictions::Stage;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Receives the message after `354`. Only `CRLF.CRLF` ends it under
    /// `smtpd_forbid_bare_newline = normalize|reject` (the SMTP smuggling defence lives in
    /// [`DataDecoder`]); bytes after the terminator stay buffered for the next command.
    ///
    /// The content is held in memory until cleanup has written it: up to `message_size_limit`
    /// bytes per session, and about twice that while cleanup assembles the queue file. With
    /// `message_size_limit = 0` (no limit) a client can make the server hold arbitrarily large
    /// messages — Postfix streams to disk instead; Postern does not yet.
    pub(super) async fn data(&mut self) -> Result<Flow, IoError> {
        if let Some(r) = self.data_sequence() {
            return self.fail(r).await;
        }
        // smtpd_data_restrictions (Postfix smtpd_check_data), before the 354.
        let facts = self.facts("DATA");
        let verdict = self.run_stage(Stage::Data, &facts).await;
        self.merge_actions(verdict.actions);
        if let Some(r) = verdict.decision.reply() {
            let r = r.clone();
            self.log_reject("DATA", &r, None);
            return self.refused(r).await;
        }
        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"))
            .await?;
        self.io.flush().await?;

        let limit = self.cfg().message_size_limit;
        let mut decoder = DataDecoder::new(self.bare_newline);
        let mut content = Vec::new();
        let mut too_big = false;
        self.proto.data_bytes = 0;
        loop {
            if self.io.pending().is_empty() {
                self.io.fill(false).await?;
            }
            let before = content.len();
            let event = decoder.feed(self.io.pending(), &mut content);
            let used = match event {
                DataEvent::NeedMore => self.io.pending().len(),
                DataEvent::End { consumed } => consumed,
            };
            self.io.consume(used);
            self.proto.data_bytes += (content.len() - before) as u64;
            // postconf(5) message_size_limit: keep reading to the end of the data so that the
            // client and server stay in step, but stop keeping the content.
            if limit > 0 && self.proto.data_bytes > limit {
                too_big = true;
                content.clear();
            }
            if matches!(event, DataEvent::End { .. }) {
                break;
            }
        }
        self.proto.stage = "END-OF-MESSAGE";
        if too_big {
            crate::warn!(
                "smtpd",
                "{}: queue file size limit exceeded",
                self.queue_id_or_noqueue()
            );
            self.txn = None;
            return self
                .fail(Reply::new(552, "5.3.4", "Error: message file too big"))
                .await;
        }
        if decoder.saw_bare_newline() {
            let r = self.bare_newline_reply();
            self.log_reject("END-OF-MESSAGE", &r, None);
            self.txn = None;
            return self.fail(r).await;
        }
        self.queue_message(content, None).await
    }

    /// State checks that come before syntax checks, in Postfix's order.
    pub(super) fn data_sequence(&self) -> Option<Reply> {
        if self.proto.bdat_error || self.txn.as_ref().is_some_and(|t| t.bdat.is_some()) {
            return Some(Reply::new(503, "5.5.1", "Error: DATA after BDAT"));
        }
        self.recipients_missing()
    }

    /// Why there is nothing to deliver yet, for DATA and the first BDAT: no transaction or no
    /// RCPT tried → `503 5.5.1 Error: need RCPT command`; every RCPT refused → `554 5.5.1
    /// Error: no valid recipients`. RFC 5321 §3.3 allows either code; the second one tells a
    /// PIPELINING client, which sends DATA before it has seen the RCPT replies (RFC 2920 §3.1),
    /// that its recipients were the problem rather than its command order.
    pub(super) fn recipients_missing(&self) -> Option<Reply> {
        match &self.txn {
            Some(t) if !t.recipients.is_empty() => None,
            Some(t) if t.rcpt_tried => Some(Reply::new(554, "5.5.1", "Error: no valid recipients")),
            _ => Some(Reply::new(503, "5.5.1", "Error: need RCPT command")),
        }
    }

    /// Queues the finished message through cleanup (blocking I/O, so on the blocking pool) and
    /// replies. `bdat_size` selects BDAT's reply wording. The transaction ends either way.
    pub(super) async fn queue_message(
        &mut self,
        content: Vec<u8>,
        bdat_size: Option<u64>,
    ) -> Result<Flow, IoError> {
        // smtpd_end_of_data_restrictions (Postfix smtpd_check_eod), with the message size.
        let mut facts = self.facts("END-OF-MESSAGE");
        facts.size = content.len() as u64;
        let verdict = self.run_stage(Stage::EndOfData, &facts).await;
        self.merge_actions(verdict.actions);
        if let Some(r) = verdict.decision.reply() {
            let r = r.clone();
            self.log_reject("END-OF-MESSAGE", &r, None);
            self.txn = None;
            return self.refused(r).await;
        }
        let Some(txn) = self.txn.take() else {
            return self
                .fail(Reply::new(503, "5.5.1", "Error: need RCPT command"))
                .await;
        };
        let mut actions = txn.actions;
        let plugins = txn.plugins;
        // The reservation stays alive until cleanup has written the message: dropped earlier, its
        // pre-created file could be handed to another transaction.
        let reservation = txn.id.unwrap_or_else(|| self.ctx.spool.reserve());
        let id = reservation.id().clone();
        let qid = id.clone();
        let origin = Origin::Smtp {
            addr: self.ctx.client.addr.to_string(),
            helo: self.proto.helo.clone().unwrap_or_default(),
            name: self.ctx.client.name.clone(),
        };
        let mut env = Envelope::new(id, txn.sender, origin);
        env.arrival_us = txn.started_us;
        env.arrival = txn.started_us / 1_000_000;
        env.ret = txn.params.ret;
        env.envid = txn.params.envid;
        env.body = txn.params.body;
        env.smtputf8 = txn.params.smtputf8;
        env.recipients = txn.recipients;
        let mut content = content;
        if !self.ctx.settings.config.smtpd_milters.is_empty() {
            if let Some(r) = self
                .run_milters(&facts, &plugins, &mut env, &mut content, &mut actions)
                .await
            {
                let namaddr = self.ctx.client.namaddr();
                crate::info!(
                    "smtpd",
                    "{qid}: milter-reject: END-OF-MESSAGE from {namaddr}: {r}"
                );
                drop(reservation);
                return self.fail(r).await;
            }
        }
        let protocol = Protocol {
            esmtp: self.proto.esmtp,
            tls: self.proto.tls.clone(),
            login: self.proto.login.clone(),
        };
        let config = self.ctx.settings.config.clone();
        let spool = self.ctx.spool.clone();
        let work = move || {
            let stored = cleanup::enqueue_full(&config, &spool, env, &content, protocol, &actions);
            drop(reservation);
            stored
        };
        let result = crate::blocking::run(work).await;
        let reply = match result {
            Ok(Ok(stored)) => {
                let env = stored.env;
                let namaddr = self.ctx.client.namaddr();
                // Postfix logs these from cleanup; the client is told the mail was accepted.
                if stored.discarded {
                    crate::info!(
                        "smtpd",
                        "{}: discard: END-OF-MESSAGE from {namaddr}",
                        env.id
                    );
                } else if stored.held {
                    crate::info!("smtpd", "{}: hold: END-OF-MESSAGE from {namaddr}", env.id);
                } else {
                    let (qmgr, id) = (self.ctx.qmgr.clone(), env.id.clone());
                    self.io.defer(Deferred::new(move || qmgr.new_message(id)));
                }
                // A delivered message forgives earlier errors (Postfix smtpd.c).
                self.proto.error_count = 0;
                self.proto.junk_commands = 0;
                let text = match bdat_size {
                    Some(n) => format!("Ok: {n} bytes queued as {}", env.id),
                    None => format!("Ok: queued as {}", env.id),
                };
                return self.ok(Reply::new(250, "2.0.0", text)).await;
            }
            Ok(Err(CleanupError::Rejected(r))) => {
                let namaddr = self.ctx.client.namaddr();
                crate::info!("smtpd", "{qid}: reject: END-OF-MESSAGE from {namaddr}: {r}");
                r
            }
            Ok(Err(CleanupError::Queue(e))) => {
                crate::warn!("smtpd", "{qid}: queue file write error: {e}");
                if e.is_disk_full() {
                    Reply::new(452, "4.3.1", "Insufficient system storage")
                } else {
                    Reply::new(451, "4.3.0", "Error: queue file write error")
                }
            }
            Err(e) => {
                crate::error!("smtpd", "cleanup task failed: {e}");
                Reply::new(451, "4.3.0", "Error: queue file write error")
            }
        };
        self.fail(reply).await
    }
}
