//! Command-line framing for the command phase (RFC 5321 §2.3.8, §4.5.3.1.4).
//!
//! The caller owns the receive buffer and asks [`LineReader::next_line`] for
//! the next complete line at its front. Over-long lines are reported with
//! [`LineError::TooLong`]; the caller then drops the rest of that line,
//! most simply with [`skip_line`], so that pipelined commands after it
//! (RFC 2920) are still seen:
//!
//! ```
//! use postern_proto::line::{skip_line, LineError, LineReader};
//! use postern_proto::BareNewline;
//!
//! let mut reader = LineReader::new(8, BareNewline::Normalize);
//! let mut buf: Vec<u8> = b"NOOP 0123456789\r\nQUIT\r\n".to_vec();
//! let mut skipping = false;
//! let mut lines = Vec::new();
//! loop {
//!     if skipping {
//!         let (n, found) = skip_line(&buf);
//!         buf.drain(..n);
//!         skipping = !found;
//!         if skipping { break; } // read more, keep skipping
//!     }
//!     match reader.next_line(&buf) {
//!         Ok(Some((line, n))) => { lines.push(line.to_vec()); buf.drain(..n); }
//!         Ok(None) => break, // read more from the socket
//!         Err(LineError::TooLong) => { lines.push(b"<too long>".to_vec()); skipping = true; }
//!         Err(LineError::BareNewline) => break, // reply and disconnect
//!     }
//! }
//! assert_eq!(lines, vec![b"<too long>".to_vec(), b"QUIT".to_vec()]);
//! ```

use crate::data::BareNewline;
use crate::reply::Reply;

/// Postfix's default `line_length_limit`.
pub const DEFAULT_MAX_LEN: usize = 2048;

/// Why no line could be taken from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line at the front of the buffer is longer than `max_len`. Reply
    /// with [`too_long_reply`] and drop bytes through the next LF
    /// ([`skip_line`]).
    #[error("command line too long")]
    TooLong,
    /// The line ends in a bare LF and the policy is
    /// [`BareNewline::Reject`]. Reply with
    /// [`crate::data::bare_newline_reply`] and disconnect (Postfix does).
    #[error("bare LF in command line")]
    BareNewline,
}

/// `500 5.5.0 Error: line too long` — the reply for [`LineError::TooLong`]
/// (RFC 5321 §4.5.3.1.4 suggests 500 for an over-long line).
pub fn too_long_reply() -> Reply {
    Reply::new(500, "5.5.0", "Error: line too long")
}

/// Frames command lines out of a receive buffer.
#[derive(Clone, Debug)]
pub struct LineReader {
    max_len: usize,
    policy: BareNewline,
}

impl LineReader {
    /// `max_len`: maximum command line length excluding CRLF (Postfix
    /// `line_length_limit`, [`DEFAULT_MAX_LEN`] by default).
    pub fn new(max_len: usize, policy: BareNewline) -> Self {
        LineReader { max_len, policy }
    }

    /// Try to take one complete line from the front of `buf` (bytes already
    /// read from the socket).
    ///
    /// - `Ok(Some((line, consumed)))`: a complete line, without its CRLF (or
    ///   bare LF); drop `consumed` bytes from the front of `buf`.
    /// - `Ok(None)`: more bytes are needed (`buf` holds no line ending and
    ///   could still become a valid line).
    /// - `Err(TooLong)`: the first line holds more than `max_len` bytes
    ///   (with or without its line ending already in `buf`). Nothing is
    ///   consumed; the caller replies [`too_long_reply`] and discards through
    ///   the next LF ([`skip_line`]).
    /// - `Err(BareNewline)`: the line ends in a bare LF and the policy is
    ///   `Reject`. With `Normalize`/`Allow` such a line is accepted.
    ///
    /// A CR not followed by LF is not a line ending; it stays in the line
    /// (where [`crate::parse_command`] rejects it as a control character).
    /// `Err(TooLong)` takes precedence over `Err(BareNewline)`.
    pub fn next_line<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, LineError> {
        // A valid line needs at most max_len bytes + CR + LF.
        let window = &buf[..buf.len().min(self.max_len.saturating_add(2))];
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            // Still possible: max_len bytes plus a CR waiting for its LF.
            let still_possible = buf.len() <= self.max_len
                || (buf.len() == self.max_len + 1 && buf.last() == Some(&b'\r'));
            return if still_possible {
                Ok(None)
            } else {
                Err(LineError::TooLong)
            };
        };
        let (line, crlf) = match window[..lf].strip_suffix(b"\r") {
            Some(l) => (l, true),
            None => (&window[..lf], false),
        };
        if line.len() > self.max_len {
            return Err(LineError::TooLong);
        }
        if !crlf && self.policy == BareNewline::Reject {
            return Err(LineError::BareNewline);
        }
        Ok(Some((line, lf + 1)))
    }

    /// The configured maximum line length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// Discard helper after [`LineError::TooLong`]: returns `(n, found)`, where
/// `n` bytes at the front of `buf` belong to the over-long line and must be
/// dropped, and `found` says whether its LF was among them. When `found` is
/// false the whole buffer was junk: read more and call again.
pub fn skip_line(buf: &[u8]) -> (usize, bool) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => (lf + 1, true),
        None => (buf.len(), false),
    }
}

#[cfg(test)]
mod tests;
