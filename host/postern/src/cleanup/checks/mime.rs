//! The MIME walk content checks need: which lines are headers of which section, which are body
//! lines, and where each body segment starts (Postfix `mime_state.c`, simplified to what
//! header_checks(5) and body_checks need).
//!
//! The walk is one pass over the message with an explicit boundary stack — no recursion, so a
//! hostile message cannot exhaust the call stack, and every line is visited once:
//! - a header section (the primary one, a multipart part's, or an attached message's) is every
//!   line that is a header field or a continuation of one; it ends at an empty line (not itself
//!   visited) or at the first other line, which then belongs to the body;
//! - the section's `Content-Type` decides what follows: `multipart/*` with a boundary pushes
//!   the boundary, `message/rfc822` starts the attached message's header section, anything
//!   else is body text. Parts of `multipart/digest` default to `message/rfc822` (RFC 2046
//!   §5.1.5). A composite type with a `Content-Transfer-Encoding` other than 7bit, 8bit or
//!   binary is not descended into (RFC 2045 §6.4 forbids it; Postfix treats it as text);
//! - a body line `--boundary` of any enclosing multipart starts a new part (closing the inner
//!   ones), `--boundary--` ends that multipart. Boundary lines are body lines (body_checks see
//!   them, as in Postfix) and start a new body segment.
//!
//! Limits follow Postfix: at most [`NESTING_LIMIT`] open multiparts (deeper ones are read as
//! text), and boundaries are compared on their first [`BOUNDARY_LIMIT`] bytes
//! (`mime_nesting_limit`, `mime_boundary_length_limit`).

use std::ops::ControlFlow;

/// postconf(5) `mime_nesting_limit` default.
pub const NESTING_LIMIT: usize = 100;
/// postconf(5) `mime_boundary_length_limit` default.
pub const BOUNDARY_LIMIT: usize = 2048;

/// Which header section a header belongs to (Postfix `MIME_HDR_PRIMARY/MULTIPART/NESTED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The message's own header.
    Primary,
    /// The header of a part of a multipart.
    Part,
    /// The header of an attached `message/rfc822`.
    Nested,
}

/// One thing the walk visits; offsets index the walked content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A logical header: its first line and continuation lines, `start..end` including the
    /// final line ending. `mime` = a MIME header (`Content-*`, `MIME-Version`).
    Header {
        section: Section,
        mime: bool,
        start: usize,
        end: usize,
    },
    /// One body line: text `start..text_end`, line ending up to `end`. `segment_offset` is
    /// where the line starts within its body segment (for `body_checks_size_limit`).
    Body {
        start: usize,
        text_end: usize,
        end: usize,
        segment_offset: u64,
    },
}

/// An open multipart.
struct Frame {
    boundary: Vec<u8>,
    digest: bool,
}

/// What follows a header section.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Text,
    Multipart { boundary: Vec<u8>, digest: bool },
    Message,
}

/// Header-section state: the field being collected and the MIME headers seen so far.
#[derive(Default)]
struct Head {
    field: Option<usize>,
    content_type: Option<(usize, usize)>,
    encoding: Option<(usize, usize)>,
}

/// Visits every header and body line of `content` (CRLF or LF line endings) in order until
/// `visit` breaks.
pub fn walk(content: &[u8], visit: &mut dyn FnMut(Item) -> ControlFlow<()>) {
    let mut stack: Vec<Frame> = Vec::new();
    // `Some(section)` while reading a header section.
    let mut section = Some(Section::Primary);
    let mut head = Head::default();
    // A part without Content-Type is message/rfc822 (inside multipart/digest).
    let mut default_message = false;
    let mut segment_offset = 0u64;
    let mut pos = 0;
    while pos < content.len() {
        let eol = content[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| pos + i + 1);
        let line = strip_eol(&content[pos..eol]);
        if let Some(current) = section {
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            if continuation && head.field.is_some() {
                pos = eol;
                continue;
            }
            if let Some(start) = head.field.take() {
                if finish_field(content, current, start, pos, &mut head, visit).is_break() {
                    return;
                }
            }
            if header_name(line).is_some() {
                head.field = Some(pos);
                pos = eol;
                continue;
            }
            // End of the header section.
            let next = decide(content, &head, default_message, stack.len());
            head = Head::default();
            default_message = false;
            segment_offset = 0;
            section = match next {
                Next::Text => None,
                Next::Multipart { boundary, digest } => {
                    stack.push(Frame { boundary, digest });
                    None
                }
                Next::Message => Some(Section::Nested),
            };
            if line.is_empty() {
                pos = eol;
            }
            // Otherwise the line is read again in the new state: body text, or the start of
            // an attached message's (then empty) header section, which ends at once.
            continue;
        }
        if let Some((index, close)) = boundary_match(&stack, line) {
            segment_offset = 0;
            if close {
                stack.truncate(index);
            } else {
                stack.truncate(index + 1);
                default_message = stack.last().is_some_and(|f| f.digest);
                section = Some(Section::Part);
            }
        }
        let item = Item::Body {
            start: pos,
            text_end: pos + line.len(),
            end: eol,
            segment_offset,
        };
        if visit(item).is_break() {
            return;
        }
        segment_offset = segment_offset.saturating_add((eol - pos) as u64);
        pos = eol;
    }
    if let (Some(current), Some(start)) = (section, head.field) {
        let _ = finish_field(content, current, start, content.len(), &mut head, visit);
    }
}

/// Visits a complete field and remembers the MIME headers that steer the walk.
fn finish_field(
    content: &[u8],
    section: Section,
    start: usize,
    end: usize,
    head: &mut Head,
    visit: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let name = header_name(strip_eol(&content[start..end])).unwrap_or_default();
    if name.eq_ignore_ascii_case(b"content-type") {
        head.content_type = Some((start, end));
    } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
        head.encoding = Some((start, end));
    }
    let mime = is_mime_header(name);
    visit(Item::Header {
        section,
        mime,
        start,
        end,
    })
}

/// `Content-*` and `MIME-Version` (Postfix `HDR_OPT_MIME`).
pub fn is_mime_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"mime-version")
        || name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"content-"))
}

/// The enclosing multipart (index into `stack`) whose boundary `line` is, innermost first, and
/// whether it is the closing delimiter (RFC 2046 §5.1.1).
fn boundary_match(stack: &[Frame], line: &[u8]) -> Option<(usize, bool)> {
    let rest = line.strip_prefix(b"--")?;
    let index = stack.iter().rposition(|f| rest.starts_with(&f.boundary))?;
    let after = &rest[stack[index].boundary.len()..];
    Some((index, after.starts_with(b"--")))
}

fn decide(content: &[u8], head: &Head, default_message: bool, depth: usize) -> Next {
    let Some((start, end)) = head.content_type else {
        return if default_message {
            Next::Message
        } else {
            Next::Text
        };
    };
    let value = field_value(&content[start..end]);
    let (media, params) = value.split_once(';').unwrap_or((&value, ""));
    let media = media.trim().to_ascii_lowercase();
    let composite = media.starts_with("multipart/") || media == "message/rfc822";
    if !composite {
        return Next::Text;
    }
    if let Some((s, e)) = head.encoding {
        let encoding = field_value(&content[s..e]).trim().to_ascii_lowercase();
        if !matches!(encoding.as_str(), "" | "7bit" | "8bit" | "binary") {
            return Next::Text;
        }
    }
    if media == "message/rfc822" {
        return Next::Message;
    }
    if depth >= NESTING_LIMIT {
        return Next::Text;
    }
    match parameter(params, "boundary") {
        Some(b) if !b.is_empty() => {
            let mut boundary = b.into_bytes();
            boundary.truncate(BOUNDARY_LIMIT);
            Next::Multipart {
                boundary,
                digest: media == "multipart/digest",
            }
        }
        _ => Next::Text,
    }
}

/// The unfolded value of a field (after the colon).
fn field_value(raw: &[u8]) -> String {
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&raw[colon..]);
    text.split(['\r', '\n']).collect::<Vec<_>>().join("")
}

/// The value of parameter `name` in `; a=b; c="d e"` (RFC 2045 §5.1: token or quoted-string).
fn parameter(params: &str, name: &str) -> Option<String> {
    let mut chars = params.chars().peekable();
    loop {
        // Skip separators and blanks before the name.
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        chars.peek()?;
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ';')).collect();
        let has_value = chars.next_if_eq(&'=').is_some();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if has_value && chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            // Anything between the closing quote and the next ';' is ignored.
            while chars.next_if(|c| *c != ';').is_some() {}
        } else if has_value {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ';')).collect();
            value = value.trim().to_string();
        }
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
}

pub fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `name *WSP ":"`, name of printable ASCII except `:` (RFC 5322 §3.6.8; Postfix `is_header`).
pub fn header_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let mut name = &line[..colon];
    while let Some(rest) = name.strip_suffix(b" ").or_else(|| name.strip_suffix(b"\t")) {
        name = rest;
    }
    let ok = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, text) of every visited item: "P:", "M:", "N:" headers, "B:" body lines.
    fn items(msg: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(msg.as_bytes(), &mut |item| {
            out.push(match item {
                Item::Header {
                    section,
                    start,
                    end,
                    ..
                } => {
                    let tag = match section {
                        Section::Primary => "P",
                        Section::Part => "M",
                        Section::Nested => "N",
                    };
                    format!("{tag}:{}", &msg[start..end].trim_end())
                }
                Item::Body {
                    start, text_end, ..
                } => format!("B:{}", &msg[start..text_end]),
            });
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn plain_message() {
        let got = items("Subject: a\r\n b\r\nFrom: x\r\n\r\nline 1\r\nline 2\r\n");
        assert_eq!(
            got,
            ["P:Subject: a\r\n b", "P:From: x", "B:line 1", "B:line 2"]
        );
    }

    #[test]
    fn multipart_with_attached_message() {
        let msg = "Subject: s\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed;\r\n boundary=\"outer b\"\r\n\r\n\
            preamble\r\n\
            --outer b\r\nContent-Type: text/plain\r\nX-Part: 1\r\n\r\ntext part\r\n\
            --outer b\r\nContent-Type: message/rfc822\r\n\r\n\
            Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n\
            --outer b--\r\nepilogue\r\n";
        assert_eq!(
            items(msg),
            [
                "P:Subject: s",
                "P:MIME-Version: 1.0",
                "P:Content-Type: multipart/mixed;\r\n boundary=\"outer b\"",
                "B:preamble",
                "B:--outer b",
                "M:Content-Type: text/plain",
                "M:X-Part: 1",
                "B:text part",
                "B:--outer b",
                "M:Content-Type: message/rfc822",
                "N:Subject: inner",
                "N:Content-Type: text/plain",
                "B:inner body",
                "B:--outer b--",
                "B:epilogue",
            ]
        );
    }

    #[test]
    fn nested_multiparts_and_digest() {
        let msg = "Content-Type: multipart/mixed; boundary=a\r\n\r\n\
            --a\r\nContent-Type: multipart/digest; boundary=b\r\n\r\n\
            --b\r\n\r\nSubject: digested\r\n\r\ndigest body\r\n\
            --a--\r\nafter\r\n";
        assert_eq!(
            items(msg),
            [
                "P:Content-Type: multipart/mixed; boundary=a",
                "B:--a",
                "M:Content-Type: multipart/digest; boundary=b",
                "B:--b",
                "N:Subject: digested",
                "B:digest body",
                // Closing the outer multipart closes the inner one too.
                "B:--a--",
                "B:after",
            ]
        );
    }

    #[test]
    fn encoded_composite_is_text() {
        let msg = "Content-Type: multipart/mixed; boundary=a\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n--a\r\nX: y\r\n";
        assert_eq!(items(msg)[2..], ["B:--a", "B:X: y"]);
    }

    #[test]
    fn header_section_without_separator() {
        assert_eq!(items("Subject: x\r\nbody\r\n"), ["P:Subject: x", "B:body"]);
        assert_eq!(items(" leading\r\n"), ["B: leading"]);
        assert_eq!(items("Subject: last"), ["P:Subject: last"]);
        assert!(items("").is_empty());
    }

    #[test]
    fn segment_offsets_restart_at_boundaries() {
        let msg = "Content-Type: multipart/mixed; boundary=a\r\n\r\nxx\r\n--a\r\n\r\n123\r\n45\r\n";
        let mut offsets = Vec::new();
        walk(msg.as_bytes(), &mut |item| {
            if let Item::Body { segment_offset, .. } = item {
                offsets.push(segment_offset);
            }
            ControlFlow::Continue(())
        });
        assert_eq!(offsets, [0, 0, 0, 5]);
    }

    #[test]
    fn hostile_input_never_panics() {
        let deep: String = (0..500)
            .map(|i| {
                format!(
                    "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
                    i + 1
                )
            })
            .collect();
        let msg = format!("Content-Type: multipart/mixed; boundary=b0\r\n\r\n{deep}");
        let n = items(&msg).len();
        assert!(n > 500);
        for msg in [
            "Content-Type: multipart/mixed; boundary=\"\r\n\r\n--\r\n",
            "Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
            "Content-Type: message/rfc822\r\nnot a header\r\n",
            "Content-Type: ;;;=\"\\\r\n\r\n",
            "Content-Type: multipart/x; boundary=\"a\\\r\n\r\n--a\\\r\n",
            ":\r\n\r\n",
            "\r\n\r\n",
        ] {
            items(msg);
        }
    }

    #[test]
    fn parameters() {
        assert_eq!(
            parameter("; boundary=abc", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parameter(" charset=x; BOUNDARY = \"a \\\"b\\\" c\" ; z", "boundary").as_deref(),
            Some("a \"b\" c")
        );
        assert_eq!(parameter("charset=x", "boundary"), None);
        assert_eq!(parameter("boundary", "boundary").as_deref(), Some(""));
    }
}
