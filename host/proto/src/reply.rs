//! SMTP replies (RFC 5321 §4.2) and enhanced status codes (RFC 3463, RFC 2034).
//!
//! A [`Reply`] is a three-digit code, an optional enhanced status code and
//! one or more text lines. [`Reply::write_to`] produces the exact wire form,
//! including the multi-line `CODE-text` continuation syntax, and guarantees
//! that no bare CR or LF from the text can reach the wire (a reply text that
//! carried client-supplied data must never be able to inject an extra reply
//! line).

use std::fmt;

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.7.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// Subject sub-code (RFC 3463 §3: 1 to 3 digits).
    pub subject: u16,
    /// Detail sub-code (RFC 3463 §3: 1 to 3 digits).
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code from its three parts; no validation is done.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses `"X.Y.Z"`. RFC 3463 §2: class is one of 2, 4, 5; subject and
    /// detail are 1 to 3 digits each (no sign, no surrounding whitespace).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(EnhancedCode {
            class,
            subject: parse_sub(subject)?,
            detail: parse_sub(detail)?,
        })
    }
}

/// One enhanced-code sub-field: 1*3DIGIT (RFC 3463 §2).
fn parse_sub(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply: code, optional enhanced status code, one or more lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// Enhanced status code (RFC 2034), written only when the caller says the
    /// client asked for EHLO and ENHANCEDSTATUSCODES is offered.
    pub enhanced: Option<EnhancedCode>,
    /// Text lines, without the code prefix and without line endings. An
    /// empty vector is written as one line without text.
    pub lines: Vec<String>,
}

impl Reply {
    /// Single-line reply. `enhanced` is a literal like `"2.1.0"`; `""` (or
    /// anything that does not parse as an RFC 3463 code) means none.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: EnhancedCode::parse(enhanced),
            lines: vec![text.into()],
        }
    }

    /// Multi-line reply; same `enhanced` convention as [`Reply::new`].
    pub fn multiline(code: u16, enhanced: &str, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: EnhancedCode::parse(enhanced),
            lines,
        }
    }

    /// 2xx or 3xx (RFC 5321 §4.2.1: positive completion / intermediate).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: transient negative completion.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: permanent negative completion.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// True for 421 and 521: the server closes the connection after sending it
    /// (RFC 5321 §3.8 for 421, RFC 7504 for 521).
    pub fn closes_connection(&self) -> bool {
        self.code == 421 || self.code == 521
    }

    /// Appends the wire form to `out`: every line `CODE-text\r\n` except the
    /// last, `CODE text\r\n` (RFC 5321 §4.2.1). With `with_enhanced` and an
    /// enhanced code present, each line's text starts with `X.Y.Z ` (RFC 2034
    /// §3 puts the code on every line). CR, LF and other control characters
    /// (except TAB) in the text are replaced by spaces, so the output always
    /// has exactly one CRLF per line and nothing else that ends a line.
    pub fn write_to(&self, with_enhanced: bool, out: &mut Vec<u8>) {
        let enhanced = if with_enhanced { self.enhanced } else { None };
        let code = self.code.to_string();
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(code.as_bytes());
            let mut text = String::new();
            if let Some(e) = enhanced {
                text.push_str(&e.to_string());
                if !line.is_empty() {
                    text.push(' ');
                }
            }
            text.push_str(line);
            if i < last {
                out.push(b'-');
            } else if !text.is_empty() || code == "334" {
                // RFC 4954 §4: an empty SASL challenge is still "334 " with its space.
                out.push(b' ');
            }
            // RFC 5321 §4.2: textstring is HT and printable characters; the
            // reply must not be splittable by embedded line breaks.
            out.extend(text.bytes().map(|b| {
                if (b < 0x20 && b != b'\t') || b == 0x7f {
                    b' '
                } else {
                    b
                }
            }));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Wire form as a string (see [`Reply::write_to`]).
    pub fn to_wire(&self, with_enhanced: bool) -> String {
        let mut out = Vec::new();
        self.write_to(with_enhanced, &mut out);
        // Only ASCII bytes were replaced and the rest came from `String`s,
        // so this is valid UTF-8; the lossy form avoids any panic path.
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Display for Reply {
    /// Single-line form for logs: `550 5.1.1 text`, lines joined by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        for line in &self.lines {
            f.write_str(" ")?;
            for c in line.chars() {
                let c = if c == '\r' || c == '\n' { ' ' } else { c };
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sasl_challenge_keeps_its_space() {
        assert_eq!(Reply::new(334, "", "").to_wire(true), "334 \r\n");
        assert_eq!(Reply::new(250, "", "").to_wire(true), "250\r\n");
    }

    #[test]
    fn enhanced_parse_accepts_valid_codes() {
        assert_eq!(
            EnhancedCode::parse("5.7.1"),
            Some(EnhancedCode::new(5, 7, 1))
        );
        assert_eq!(
            EnhancedCode::parse("4.999.123"),
            Some(EnhancedCode::new(4, 999, 123))
        );
        assert_eq!(
            EnhancedCode::parse("2.0.0"),
            Some(EnhancedCode::new(2, 0, 0))
        );
    }

    #[test]
    fn enhanced_parse_rejects_malformed() {
        for bad in [
            "", "3.1.1", "1.0.0", "5.7", "5.7.1.1", "5..1", "5.7.", "5.1000.1", "5.1.1000",
            " 5.1.1", "5.1.1 ", "5.+1.1", "5.-1.1", "55.1.1", "x.y.z", "5.1.1x",
        ] {
            assert_eq!(EnhancedCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn enhanced_display_round_trips() {
        let c = EnhancedCode::new(5, 1, 10);
        assert_eq!(c.to_string(), "5.1.10");
        assert_eq!(EnhancedCode::parse(&c.to_string()), Some(c));
    }

    #[test]
    fn new_parses_enhanced_literal_and_empty_means_none() {
        let r = Reply::new(250, "2.1.0", "Ok");
        assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 1, 0)));
        assert_eq!(Reply::new(250, "", "Ok").enhanced, None);
        assert_eq!(Reply::new(250, "bogus", "Ok").enhanced, None);
    }

    #[test]
    fn single_line_wire_form() {
        let r = Reply::new(550, "5.1.1", "<x@y>: Recipient address rejected");
        assert_eq!(
            r.to_wire(true),
            "550 5.1.1 <x@y>: Recipient address rejected\r\n"
        );
        assert_eq!(
            r.to_wire(false),
            "550 <x@y>: Recipient address rejected\r\n"
        );
    }

    #[test]
    fn multiline_wire_form_puts_enhanced_on_every_line() {
        let r = Reply::multiline(
            550,
            "5.7.1",
            vec!["first".into(), "second".into(), "third".into()],
        );
        assert_eq!(
            r.to_wire(true),
            "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n"
        );
        assert_eq!(r.to_wire(false), "550-first\r\n550-second\r\n550 third\r\n");
    }

    #[test]
    fn empty_text_is_valid_rfc5321_syntax() {
        assert_eq!(Reply::new(250, "", "").to_wire(false), "250\r\n");
        assert_eq!(Reply::new(250, "2.0.0", "").to_wire(true), "250 2.0.0\r\n");
        let none = Reply::multiline(250, "", vec![]);
        assert_eq!(none.to_wire(true), "250\r\n");
        let two = Reply::multiline(250, "", vec![String::new(), "x".into()]);
        assert_eq!(two.to_wire(false), "250-\r\n250 x\r\n");
    }

    #[test]
    fn embedded_newlines_cannot_inject_reply_lines() {
        let r = Reply::new(550, "5.1.1", "<evil\r\n250 ok>\nmore\rx\0y");
        let wire = r.to_wire(true);
        assert_eq!(wire, "550 5.1.1 <evil  250 ok> more x y\r\n");
        assert_eq!(wire.matches("\r\n").count(), 1);
        assert!(!wire[..wire.len() - 2].contains(['\r', '\n']));
    }

    #[test]
    fn utf8_text_survives() {
        let r = Reply::new(250, "", "Grüße");
        assert_eq!(r.to_wire(false), "250 Grüße\r\n");
    }

    #[test]
    fn classification() {
        assert!(Reply::new(250, "", "").is_positive());
        assert!(Reply::new(354, "", "").is_positive());
        assert!(Reply::new(451, "", "").is_transient());
        assert!(Reply::new(554, "", "").is_permanent());
        assert!(!Reply::new(554, "", "").is_positive());
        assert!(Reply::new(421, "4.3.2", "").closes_connection());
        assert!(Reply::new(521, "5.3.2", "").closes_connection());
        assert!(!Reply::new(554, "", "").closes_connection());
        assert!(!Reply::new(221, "", "").closes_connection());
    }

    #[test]
    fn display_is_single_line() {
        let r = Reply::multiline(550, "5.1.1", vec!["a".into(), "b\r\nc".into()]);
        assert_eq!(r.to_string(), "550 5.1.1 a b  c");
        assert_eq!(Reply::new(250, "", "Ok").to_string(), "250 Ok");
    }
}
