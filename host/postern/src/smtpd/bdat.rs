//! BDAT (RFC 3030 CHUNKING): message content in counted chunks, no dot-stuffing, no
//! end-of-data line. Content is taken exactly as announced, so a chunk can never smuggle a
//! command; the bytes after a chunk are the next command.
//!
//! `smtpd_data_restrictions` run at the first BDAT of a transaction (there is no DATA command);
//! a refusal is that BDAT's reply and the transaction's chunks are discarded as below.
//!
//! After a failed chunk the server keeps reading and discarding the chunks the client has
//! already pipelined, answering each with `551 5.0.0 Discarded …`, until `BDAT … LAST` or RSET
//! (Postfix smtpd.c `skip_bdat`); the client and server stay in step. A chunk that would take
//! the discarded total past 1.5 × `message_size_limit` is not read at all: the session ends.

use postern_proto::{BareNewline, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};
use crate::restrictions::Stage;

/// Message content collected from BDAT chunks.
#[derive(Default)]
pub(super) struct Chunks {
    content: Vec<u8>,
    /// The last byte seen was CR (whether it is bare depends on the next byte).
    prev_cr: bool,
    /// A bare LF or bare CR was seen (tracked only under `smtpd_forbid_bare_newline = reject`:
    /// RFC 3030 §3 requires canonical CRLF text in BDAT too).
    bare: bool,
}

impl Chunks {
    fn push(&mut self, bytes: &[u8], track_bare: bool) {
        if track_bare && !self.bare {
            for &b in bytes {
                if (self.prev_cr && b != b'\n') || (b == b'\n' && !self.prev_cr) {
                    self.bare = true;
                    break;
                }
                self.prev_cr = b == b'\r';
            }
        }
        self.content.extend_from_slice(bytes);
    }

    fn finish(&mut self, track_bare: bool) -> bool {
        if track_bare && self.prev_cr {
            self.bare = true;
        }
        self.bare
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> Result<Flow, IoError> {
        if self.proto.bdat_error {
            let r = Reply::new(
                551,
                "5.0.0",
                format!("Discarded {size} bytes after earlier error"),
            );
            return self.skip_chunk(size, last, r).await;
        }
        let in_progress = self.txn.as_ref().is_some_and(|t| t.bdat.is_some());
        if !in_progress {
            self.proto.data_bytes = 0;
            if let Some(r) = self.recipients_missing() {
                return self.skip_chunk(size, last, r).await;
            }
            if let Some(r) = self.data_restrictions().await {
                if r.closes_connection() {
                    self.reply(r).await?;
                    return Ok(Flow::Close);
                }
                return self.skip_chunk(size, last, r).await;
            }
        }
        // Empty non-final chunks would let a client idle forever (Postfix: null BDAT request).
        if size == 0 && !last {
            let r = Reply::new(551, "5.7.1", "Null BDAT request");
            return self.skip_chunk(size, last, r).await;
        }
        let limit = self.cfg().message_size_limit;
        if limit > 0 && self.proto.data_bytes.saturating_add(size) > limit {
            crate::warn!(
                "smtpd",
                "{}: BDAT request from {} exceeds message size limit",
                self.queue_id_or_noqueue(),
                self.ctx.client.namaddr()
            );
            let r = Reply::new(552, "5.3.4", "Chunk exceeds message size limit");
            return self.skip_chunk(size, last, r).await;
        }

        self.proto.stage = "BDAT";
        let track_bare = self.bare_newline == BareNewline::Reject;
        let mut chunks = self
            .txn
            .as_mut()
            .and_then(|t| t.bdat.take())
            .unwrap_or_default();
        self.io
            .take_exact(size, |b| chunks.push(b, track_bare))
            .await?;
        self.proto.data_bytes += size;
        if !last {
            if let Some(t) = self.txn.as_mut() {
                t.bdat = Some(chunks);
            }
            return self
                .ok(Reply::new(250, "2.0.0", format!("Ok: {size} bytes")))
                .await;
        }
        self.proto.stage = "END-OF-MESSAGE";
        if chunks.finish(track_bare) {
            let r = self.bare_newline_reply();
            self.log_reject("END-OF-MESSAGE", &r, None);
            self.txn = None;
            return self.fail(r).await;
        }
        let total = self.proto.data_bytes;
        self.queue_message(chunks.content, Some(total)).await
    }

    /// `smtpd_data_restrictions` at the first BDAT of a transaction: a BDAT transaction has no
    /// DATA command, so Postfix's `bdat_cmd` runs `smtpd_check_data` here and skips the chunks
    /// of a refused transaction. Replies name the stage as DATA does (`<DATA>: Data command
    /// rejected`); the log line names the command, BDAT.
    async fn data_restrictions(&mut self) -> Option<Reply> {
        let facts = self.facts("BDAT");
        let verdict = self.run_stage(Stage::Data, &facts).await;
        self.merge_actions(verdict.actions);
        let r = verdict.decision.reply()?.clone();
        self.log_reject("BDAT", &r, None);
        Some(r)
    }

    /// Reads and discards a chunk, replies `reply`, and enters (or, at LAST, leaves) the BDAT
    /// error mode.
    async fn skip_chunk(&mut self, size: u64, last: bool, reply: Reply) -> Result<Flow, IoError> {
        let limit = self.cfg().message_size_limit;
        let total = self.proto.data_bytes.saturating_add(size);
        if limit > 0 && total > limit.saturating_add(limit / 2) {
            crate::warn!(
                "smtpd",
                "{}: too much BDAT content -- disabling further input from {}",
                self.queue_id_or_noqueue(),
                self.ctx.client.namaddr()
            );
            self.reply(reply).await?;
            return Ok(Flow::Close);
        }
        self.proto.stage = "BDAT";
        self.io.take_exact(size, |_| {}).await?;
        self.proto.data_bytes = total;
        if last {
            self.txn = None;
            self.proto.bdat_error = false;
            self.proto.stage = "END-OF-MESSAGE";
        } else {
            if let Some(t) = self.txn.as_mut() {
                t.bdat = None;
            }
            self.proto.bdat_error = true;
        }
        self.fail(reply).await
    }
}
