//! The primary header section of a message (RFC 5322 §2.2): where it ends, which fields it has,
//! and the per-field size limit.
//!
//! Header detection follows Postfix's MIME state machine: the header section is every line from
//! the start that is a header field (`name:` with a printable-ASCII name, RFC 5322 §3.6.8) or a
//! continuation of one (a line starting with space or tab, RFC 5322 §2.2.3). It ends at an empty
//! line, at the end of the content, or at the first line that is neither — in the last case
//! there was no separator, and one is inserted when the message is written so that added
//! headers never run into the body (Postfix `non_empty_end_of_header_action`). A message that
//! does not start with a header line has no headers at all.

/// One logical header field: its first line and every continuation line, CRLF included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written (`Message-ID`), without the colon.
    pub name: &'a [u8],
    /// The complete field as it appears in the message.
    pub raw: &'a [u8],
}

impl Field<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The unfolded value after the colon, trimmed (for logging `message-id=`).
    pub fn value(&self) -> String {
        let colon = self
            .raw
            .iter()
            .position(|&b| b == b':')
            .map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&self.raw[colon..]);
        text.split(['\r', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The header section of a message and where its body starts.
#[derive(Debug)]
pub struct Split<'a> {
    pub fields: Vec<Field<'a>>,
    /// Offset of the body: the separating empty line (kept with the body), or the first
    /// non-header line.
    pub body_start: usize,
    /// The header section ended at a non-empty, non-header line: a separator must be added.
    pub needs_separator: bool,
}

/// Splits `content` (CRLF line endings) into header fields and body.
pub fn split(content: &[u8]) -> Split<'_> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    // Start offset of the field being collected.
    let mut field_start = 0;
    let mut pos = 0;
    fn finish<'a>(fields: &mut [Field<'a>], content: &'a [u8], start: usize, end: usize) {
        if let Some(last) = fields.last_mut() {
            last.raw = &content[start..end];
        }
    }
    while pos < content.len() {
        let eol = content[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| pos + i + 1);
        let line = strip_eol(&content[pos..eol]);
        if line.is_empty() {
            finish(&mut fields, content, field_start, pos);
            return Split {
                fields,
                body_start: pos,
                needs_separator: false,
            };
        }
        if matches!(line[0], b' ' | b'\t') && !fields.is_empty() {
            pos = eol;
            continue;
        }
        match header_name(line) {
            Some(name) => {
                finish(&mut fields, content, field_start, pos);
                fields.push(Field { name, raw: &[] });
                field_start = pos;
            }
            None => {
                finish(&mut fields, content, field_start, pos);
                return Split {
                    fields,
                    body_start: pos,
                    needs_separator: true,
                };
            }
        }
        pos = eol;
    }
    finish(&mut fields, content, field_start, pos);
    Split {
        fields,
        body_start: content.len(),
        needs_separator: false,
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `name *WSP ":"` with name made of printable ASCII except `:` (RFC 5322 §3.6.8 ftext; the
/// optional blanks before the colon are RFC 822's obsolete syntax, accepted like Postfix).
fn header_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let mut name = &line[..colon];
    while let Some(rest) = name.strip_suffix(b" ").or_else(|| name.strip_suffix(b"\t")) {
        name = rest;
    }
    let ok = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
    ok.then_some(name)
}

/// Appends `field` to `out`, cut to at most `limit` bytes (postconf(5) `header_size_limit`).
///
/// Postfix's cleanup keeps the first `header_size_limit` bytes of an over-long header and
/// discards the excess (mime_state.c; the message is still accepted). The cut falls after the
/// last complete line that fits, or inside the first line when even that is too long; the
/// result always ends in CRLF. Returns whether anything was cut.
pub fn write_limited(field: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
    if field.len() <= limit {
        out.extend_from_slice(field);
        return false;
    }
    let head = &field[..limit];
    match head.windows(2).rposition(|w| w == b"\r\n") {
        Some(i) if i > 0 => out.extend_from_slice(&head[..i + 2]),
        _ => {
            out.extend_from_slice(head.strip_suffix(b"\r").unwrap_or(head));
            out.extend_from_slice(b"\r\n");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Split<'_>) -> Vec<String> {
        s.fields
            .iter()
            .map(|f| String::from_utf8_lossy(f.name).into_owned())
            .collect()
    }

    #[test]
    fn folded_headers_and_body() {
        let msg = b"Subject: a\r\n b\r\nFrom : x@y\r\n\r\nbody: not a header\r\n";
        let s = split(msg);
        assert_eq!(names(&s), ["Subject", "From"]);
        assert_eq!(s.fields[0].raw, b"Subject: a\r\n b\r\n");
        assert_eq!(s.fields[0].value(), "a b");
        assert_eq!(&msg[s.body_start..], b"\r\nbody: not a header\r\n");
        assert!(!s.needs_separator);
    }

    #[test]
    fn no_headers_at_all() {
        let s = split(b"just text\r\nmore\r\n");
        assert!(s.fields.is_empty());
        assert_eq!(s.body_start, 0);
        assert!(s.needs_separator);
        let s = split(b" leading blank\r\n");
        assert!(s.fields.is_empty());
        let s = split(b"");
        assert!(s.fields.is_empty());
        assert_eq!(s.body_start, 0);
    }

    #[test]
    fn headers_without_blank_line() {
        let msg = b"Subject: x\r\nthis is body\r\n";
        let s = split(msg);
        assert_eq!(names(&s), ["Subject"]);
        assert!(s.needs_separator);
        assert_eq!(&msg[s.body_start..], b"this is body\r\n");
        let s = split(b"Subject: only\r\n");
        assert_eq!(s.fields[0].raw, b"Subject: only\r\n");
        assert_eq!(s.body_start, 15);
    }

    #[test]
    fn limits_cut_on_line_boundaries() {
        let mut out = Vec::new();
        assert!(!write_limited(b"A: 1\r\n", 100, &mut out));
        assert!(write_limited(b"A: 1\r\n 2222\r\n 3333\r\n", 14, &mut out));
        assert!(write_limited(b"B: 0123456789\r\n", 8, &mut out));
        assert_eq!(out, b"A: 1\r\nA: 1\r\n 2222\r\nB: 01234\r\n");
    }
}
