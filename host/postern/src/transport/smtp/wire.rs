//! Pure pieces of the client side of SMTP: reading a server reply (RFC 5321 §4.2), the EHLO
//! keywords the client uses, and encoding message content for DATA (§4.5.2 transparency).

use postern_proto::EnhancedCode;

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 allows 512 octets; servers exceed it).
pub const MAX_REPLY_LINE: u64 = 4096;
/// Most lines in one multi-line reply; more is a misbehaving peer, not a reply.
pub const MAX_REPLY_LINES: usize = 256;

/// A server reply: the three-digit code and the text of each line (without code or CRLF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

/// One reply line split: code, whether more lines follow (`250-`), and the text.
pub fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0])
    {
        return None;
    }
    let code = digits.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, false, "")),
        Some(b' ') => Some((code, false, &line[4..])),
        Some(b'-') => Some((code, true, &line[4..])),
        Some(_) => None,
    }
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The enhanced status code the server gave (RFC 2034), or `class.0.0` for its reply code.
    pub fn status(&self) -> EnhancedCode {
        let class = (self.code / 100) as u8;
        self.given_status()
            .filter(|e| e.class == class)
            .unwrap_or(EnhancedCode::new(class, 0, 0))
    }

    fn given_status(&self) -> Option<EnhancedCode> {
        let first = self.lines.first()?;
        EnhancedCode::parse(first.split(' ').next()?)
    }

    /// The reply on one line, as Postfix logs it: `550 5.1.1 <x@y>: Recipient address rejected`.
    /// Continuation lines drop their repeated enhanced code.
    pub fn text(&self) -> String {
        let given = self.given_status().map(|e| e.to_string());
        let mut out = self.code.to_string();
        for (i, line) in self.lines.iter().enumerate() {
            let line = match (&given, i) {
                (Some(code), 1..) => line
                    .strip_prefix(code.as_str())
                    .map(str::trim_start)
                    .unwrap_or(line),
                _ => line,
            };
            if !line.is_empty() {
                out.push(' ');
                // Never let control characters from a peer into our logs or DSNs.
                out.extend(line.chars().map(|c| if c.is_control() { '?' } else { c }));
            }
        }
        out
    }
}

/// ESMTP extensions the client uses (RFC 5321 §4.1.1.1 EHLO keywords).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub pipelining: bool,
    /// RFC 1870 SIZE: `Some(0)` = offered without a limit.
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    /// RFC 3207 STARTTLS.
    pub starttls: bool,
    /// RFC 4954 AUTH mechanisms, uppercased (also from the old `AUTH=` form).
    pub auth: Vec<String>,
}

impl Caps {
    /// Keywords from the lines after the first of an EHLO reply.
    pub fn parse(reply: &Reply) -> Caps {
        let mut caps = Caps::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eightbitmime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => {
                    for m in words {
                        let m = m.to_ascii_uppercase();
                        if !caps.auth.contains(&m) {
                            caps.auth.push(m);
                        }
                    }
                }
                other => {
                    if let Some(list) = other.strip_prefix("AUTH=") {
                        for m in std::iter::once(list).chain(words) {
                            let m = m.to_ascii_uppercase();
                            if !m.is_empty() && !caps.auth.contains(&m) {
                                caps.auth.push(m);
                            }
                        }
                    }
                }
            }
        }
        caps
    }
}

/// Message content in DATA form: every line ends in CRLF (bare LF and bare CR become CRLF, so
/// no bare newline is ever emitted — the SMTP smuggling class of bugs), a line starting with
/// "." gets another "." (RFC 5321 §4.5.2), and the terminating `.` CRLF is appended.
pub fn encode_data(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                // CRLF is one line end, a lone CR another.
                if content.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_stuffed_and_normalised() {
        assert_eq!(encode_data(b""), b".\r\n");
        assert_eq!(encode_data(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_data(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_data(b"a\rb\r\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(
            encode_data(b".\n..x\r\n.\r\nend\n"),
            b"..\r\n...x\r\n..\r\nend\r\n.\r\n"
        );
        assert_eq!(encode_data(b"x.\n"), b"x.\r\n.\r\n");
        let out = encode_data(b"l1\n\rl2\r\r\n.");
        assert_eq!(out, b"l1\r\n\r\nl2\r\n\r\n..\r\n.\r\n");
        // No bare CR or LF anywhere.
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(out[i - 1], b'\r');
            }
            if b == b'\r' {
                assert_eq!(out[i + 1], b'\n');
            }
        }
    }

    #[test]
    fn ehlo_keywords() {
        let r = Reply {
            code: 250,
            lines: vec![
                "mx.example".into(),
                "pipelining".into(),
                "SIZE 1000".into(),
                "8BITMIME".into(),
                "DSN".into(),
                "starttls".into(),
                "AUTH PLAIN login".into(),
                "AUTH=PLAIN XOAUTH2".into(),
            ],
        };
        let caps = Caps::parse(&r);
        assert!(caps.pipelining && caps.eightbitmime && caps.dsn && !caps.smtputf8);
        assert!(caps.starttls);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(caps.auth, vec!["PLAIN", "LOGIN", "XOAUTH2"]);
    }

    #[test]
    fn reply_lines_and_text() {
        assert_eq!(
            parse_line("250-PIPELINING"),
            Some((250, true, "PIPELINING"))
        );
        assert_eq!(parse_line("250 ok"), Some((250, false, "ok")));
        assert_eq!(parse_line("354"), Some((354, false, "")));
        assert_eq!(parse_line("25x ok"), None);
        assert_eq!(parse_line("250:ok"), None);
        assert_eq!(parse_line("650 ok"), None);
        let r = Reply {
            code: 550,
            lines: vec!["5.1.1 <x@y>: no such".into(), "5.1.1 user here".into()],
        };
        assert_eq!(r.status().to_string(), "5.1.1");
        assert_eq!(r.text(), "550 5.1.1 <x@y>: no such user here");
        let r = Reply {
            code: 451,
            lines: vec!["try later".into()],
        };
        assert_eq!(r.status().to_string(), "4.0.0");
        let r = Reply {
            code: 550,
            lines: vec!["2.0.0 lying".into()],
        };
        assert_eq!(r.status().to_string(), "5.0.0");
    }
}
