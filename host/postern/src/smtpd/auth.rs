//! AUTH (RFC 4954) for smtpd.

use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::IoError;
use super::session::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The mechanisms EHLO lists after `AUTH` (empty: no AUTH line).
    pub(super) fn auth_mechanisms(&self) -> Vec<String> {
        Vec::new()
    }

    pub(super) async fn auth(&mut self, _arg: String) -> Result<Flow, IoError> {
        self.fail(Reply::new(
            503,
            "5.5.1",
            "Error: authentication not enabled",
        ))
        .await
    }
}
