//! HELO and EHLO (RFC 5321 §4.1.1.1): greet, reset any transaction, advertise extensions.

use postern_proto::{ehlo_reply, EhloCaps, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// `HELO name` → `250 myhostname`. Replies from now on carry no enhanced status codes
    /// (RFC 2034 §3: only clients that used EHLO may receive them).
    pub(super) async fn helo(&mut self, name: String) -> Result<Flow, IoError> {
        self.greeted(name, false);
        let host = self.hostname();
        self.ok(Reply::new(250, "", host)).await
    }

    /// `EHLO name` → the multi-line list of extensions (in Postfix's order).
    pub(super) async fn ehlo(&mut self, name: String) -> Result<Flow, IoError> {
        self.greeted(name, true);
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
            starttls: false,
            auth: Vec::new(),
        };
        let reply = ehlo_reply(&cfg.myhostname, &caps);
        self.ok(reply).await
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
