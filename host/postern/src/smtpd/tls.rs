//! STARTTLS (RFC 3207) and wrapper-mode TLS for smtpd.

use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether EHLO lists STARTTLS.
    pub(super) fn starttls_offered(&self) -> bool {
        false
    }

    pub(super) async fn starttls(&mut self) -> Result<Flow, IoError> {
        self.fail(Reply::new(502, "5.5.1", "Error: command not implemented"))
            .await
    }
}
