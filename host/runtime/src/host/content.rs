//! `content`: the read-only message a filter or transport sees, and the body builder a filter
//! fills to replace the body. The guest reads the body in chunks it asks for; it never gets
//! more than one chunk per call.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::HostState;
use crate::bindings::wit_host::{content, types};

/// Largest chunk one `read-body` call returns.
const MAX_CHUNK: u32 = 1 << 20;

/// A message as a filter or transport sees it: headers (values as received, folded) and the
/// body with CRLF line endings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContent {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl MessageContent {
    /// Splits RFC 5322 text (CRLF or LF line endings) into headers and body. Continuation
    /// lines stay in the value with their line break, as received.
    pub fn parse(text: &[u8]) -> MessageContent {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut rest = text;
        loop {
            let end = rest.iter().position(|&b| b == b'\n');
            let (line, next) = match end {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                rest = next;
                break;
            }
            let text = String::from_utf8_lossy(line);
            if line[0] == b' ' || line[0] == b'\t' {
                if let Some((_, v)) = headers.last_mut() {
                    v.push_str("\r\n");
                    v.push_str(&text);
                    rest = next;
                    if next.is_empty() {
                        break;
                    }
                    continue;
                }
            }
            match text.split_once(':') {
                Some((n, v)) if !n.is_empty() && !n.contains([' ', '\t']) => {
                    headers.push((n.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()));
                }
                // Not a header: the body starts here (no blank line separator).
                _ => break,
            }
            rest = next;
            if next.is_empty() {
                break;
            }
        }
        MessageContent {
            headers,
            body: crlf(rest),
        }
    }

    /// Size in bytes as the guest sees it: `Name: value\r\n` per header, a blank line, body.
    pub fn size(&self) -> u64 {
        let h: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        (h + 2 + self.body.len()) as u64
    }
}

/// `text` with every bare LF turned into CRLF.
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    let mut prev = 0u8;
    for &b in text {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A message handed to the guest for one call (borrowed by the guest, owned by the host).
pub struct MessageHandle {
    pub(crate) msg: Arc<MessageContent>,
}

/// A replacement body under construction.
pub struct BodyHandle {
    pub(crate) bytes: Vec<u8>,
    /// Set once an append went over the limit: the body is unusable.
    pub(crate) overflowed: bool,
}

impl content::Host for HostState {}

impl content::HostMessage for HostState {
    async fn size(&mut self, m: Resource<MessageHandle>) -> u64 {
        self.table.get(&m).map(|h| h.msg.size()).unwrap_or(0)
    }

    async fn headers(&mut self, m: Resource<MessageHandle>) -> Vec<types::Header> {
        self.table
            .get(&m)
            .map(|h| {
                h.msg
                    .headers
                    .iter()
                    .map(|(n, v)| types::Header {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn read_body(
        &mut self,
        m: Resource<MessageHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, content::IoError> {
        let h = self
            .table
            .get(&m)
            .map_err(|e| content::IoError::Failed(e.to_string()))?;
        let body = &h.msg.body;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(body.len());
        let len = len.min(MAX_CHUNK) as usize;
        let end = start.saturating_add(len).min(body.len());
        Ok(body[start..end].to_vec())
    }

    async fn drop(&mut self, m: Resource<MessageHandle>) -> wasmtime::Result<()> {
        // Owned by the host: a guest only ever borrows it, so there is nothing to release.
        let _ = m;
        Ok(())
    }
}

impl content::HostBodyBuilder for HostState {
    async fn new(&mut self) -> wasmtime::Result<Resource<BodyHandle>> {
        self.push(BodyHandle {
            bytes: Vec::new(),
            overflowed: false,
        })
        .map_err(wasmtime::Error::msg)
    }

    async fn append(
        &mut self,
        b: Resource<BodyHandle>,
        bytes: Vec<u8>,
    ) -> Result<(), content::IoError> {
        let limit = self.body_limit;
        let h = self
            .table
            .get_mut(&b)
            .map_err(|e| content::IoError::Failed(e.to_string()))?;
        if h.overflowed || h.bytes.len().saturating_add(bytes.len()) > limit {
            h.overflowed = true;
            return Err(content::IoError::LimitExceeded);
        }
        h.bytes.extend_from_slice(&bytes);
        Ok(())
    }

    async fn drop(&mut self, b: Resource<BodyHandle>) -> wasmtime::Result<()> {
        self.release(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_headers_and_body_and_keeps_folding() {
        let m = MessageContent::parse(b"Subject: hi\r\n there\r\nFrom: a@b\n\nline1\nline2\r\n");
        assert_eq!(
            m.headers,
            vec![
                ("Subject".to_string(), "hi\r\n there".to_string()),
                ("From".to_string(), "a@b".to_string())
            ]
        );
        assert_eq!(m.body, b"line1\r\nline2\r\n");
        // "Subject: hi\r\n there\r\n" 21 + "From: a@b\r\n" 11 + blank line 2 + body 14.
        assert_eq!(m.size(), 48);
    }

    #[test]
    fn parse_without_blank_line_or_headers() {
        let m = MessageContent::parse(b"no header here\r\n");
        assert!(m.headers.is_empty());
        assert_eq!(m.body, b"no header here\r\n");
        let m = MessageContent::parse(b"A: 1\r\n");
        assert_eq!(m.headers.len(), 1);
        assert!(m.body.is_empty());
    }
}
