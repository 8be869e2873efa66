//! canonical(5) mapping and masquerading of addresses in message headers (`canonical_classes`
//! / `masquerade_classes` `header_sender` and `header_recipient`, Postfix `cleanup_rewrite_*`).
//!
//! Sender headers are `From`, `Sender`, `Errors-To`, `Return-Receipt-To`, `Resent-From`,
//! `Resent-Sender`; recipient headers `To`, `Cc`, `Bcc`, `Apparently-To`, `Reply-To`,
//! `Resent-To`, `Resent-Cc`, `Resent-Bcc`, `Resent-Reply-To` (Postfix header_opts.c).
//!
//! Only the addr-specs change; display names, comments, groups and folding stay byte for byte
//! as they were. An address is found either between `<` and `>` or as the only word of a
//! list item (`bob@example.com (Bob)`). Items Postern cannot read with certainty — no `@`,
//! a source route, an unbalanced quote or bracket, non-UTF-8 text — are left alone: a
//! header that is not rewritten is better than a mangled one.

use postern_maps::LookupError;

use super::headers;
use super::rewrite::Rewriter;

const SENDER: &[&str] = &[
    "from",
    "sender",
    "errors-to",
    "return-receipt-to",
    "resent-from",
    "resent-sender",
];
const RECIPIENT: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "apparently-to",
    "reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-reply-to",
];

/// The content with header addresses rewritten, or `None` when nothing changed.
pub fn apply(rw: &Rewriter<'_>, content: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
    if !rw.rewrites_headers() {
        return Ok(None);
    }
    let split = headers::split(content);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for field in &split.fields {
        let sender = if SENDER.iter().any(|n| field.is(n)) {
            true
        } else if RECIPIENT.iter().any(|n| field.is(n)) {
            false
        } else {
            continue;
        };
        let Ok(raw) = std::str::from_utf8(field.raw) else {
            continue;
        };
        let Some(colon) = raw.find(':') else {
            continue;
        };
        // Byte offset of this field inside `content` (fields borrow from it).
        let base = field.raw.as_ptr() as usize - content.as_ptr() as usize;
        for (start, end) in addresses(&raw[colon + 1..]) {
            let (start, end) = (colon + 1 + start, colon + 1 + end);
            let old = &raw[start..end];
            let new = rw.header(old, sender)?;
            if new != old {
                edits.push((base + start, base + end, new));
            }
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(content.len() + 64);
    let mut pos = 0;
    for (start, end, new) in edits {
        out.extend_from_slice(&content[pos..start]);
        out.extend_from_slice(new.as_bytes());
        pos = end;
    }
    out.extend_from_slice(&content[pos..]);
    Ok(Some(out))
}

/// Byte ranges of the addr-specs in a header value (RFC 5322 §3.4 address-list, read
/// leniently).
pub fn addresses(value: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let (mut quoted, mut comment, mut escaped) = (false, 0usize, false);
    // Current list item: where it starts, an angle-address seen in it, and its words outside
    // comments as (start, end) ranges.
    let mut angle_open: Option<usize> = None;
    let mut angle: Option<(usize, usize)> = None;
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut word_start: Option<usize> = None;
    let mut bad = false;
    let finish = |angle: &mut Option<(usize, usize)>,
                  words: &mut Vec<(usize, usize)>,
                  bad: &mut bool,
                  out: &mut Vec<(usize, usize)>| {
        let chosen = match (angle.take(), words.as_slice()) {
            (Some(a), _) => Some(a),
            (None, [one]) => Some(*one),
            _ => None,
        };
        if let Some((s, e)) = chosen {
            let text = &value[s..e];
            if !*bad && text.contains('@') && !text.starts_with('@') && !text.contains(':') {
                out.push((s, e));
            }
        }
        words.clear();
        *bad = false;
    };
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        if comment > 0 {
            match b {
                b'\\' => escaped = true,
                b'(' => comment += 1,
                b')' => comment -= 1,
                _ => {}
            }
            continue;
        }
        if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        let in_angle = angle_open.is_some();
        let ends_word = matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'(' | b'<' | b',' | b';')
            || (b == b':' && !in_angle)
            || (b == b'>' && in_angle);
        if ends_word {
            if let Some(s) = word_start.take() {
                if !in_angle {
                    words.push((s, i));
                }
            }
        }
        match b {
            b'"' => {
                quoted = true;
                word_start.get_or_insert(i);
            }
            b'(' => comment = 1,
            b'<' if !in_angle => angle_open = Some(i + 1),
            b'>' if in_angle => {
                if let Some(s) = angle_open.take() {
                    let (s, e) = trim(value, s, i);
                    if angle.is_some() {
                        bad = true;
                    }
                    angle = Some((s, e));
                }
            }
            b',' | b';' if !in_angle => finish(&mut angle, &mut words, &mut bad, &mut out),
            // A group's display name (`friends: a@x, b@y;`) is not an address.
            b':' if !in_angle => {
                words.clear();
                angle = None;
            }
            _ if ends_word => {}
            _ => {
                word_start.get_or_insert(i);
            }
        }
    }
    if quoted || comment > 0 || angle_open.is_some() {
        return out;
    }
    if let Some(s) = word_start.take() {
        words.push((s, bytes.len()));
    }
    finish(&mut angle, &mut words, &mut bad, &mut out);
    out
}

fn trim(value: &str, mut s: usize, mut e: usize) -> (usize, usize) {
    let b = value.as_bytes();
    while s < e && b[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_config::Config;

    fn found(value: &str) -> Vec<&str> {
        addresses(value)
            .into_iter()
            .map(|(s, e)| &value[s..e])
            .collect()
    }

    #[test]
    fn finds_addr_specs_only() {
        assert_eq!(found(" joe@example.com\r\n"), vec!["joe@example.com"]);
        assert_eq!(
            found(" \"Doe, Joe\" <joe@example.com>, bob@example.org (Bob, the builder)"),
            vec!["joe@example.com", "bob@example.org"]
        );
        assert_eq!(
            found(" friends: a@x.example,\r\n\tB <b@y.example>;, c@z.example"),
            vec!["a@x.example", "b@y.example", "c@z.example"]
        );
        assert_eq!(found(" undisclosed-recipients:;"), Vec::<&str>::new());
        assert_eq!(found(" Joe Random"), Vec::<&str>::new());
        assert_eq!(
            found(" <@route.example:joe@example.com>"),
            Vec::<&str>::new()
        );
        assert_eq!(found(" \"unbalanced <joe@example.com>"), Vec::<&str>::new());
        assert_eq!(found(" \"x@y\"@example.com"), vec!["\"x@y\"@example.com"]);
    }

    fn cfg(over: &[(&str, &str)]) -> Config {
        let mut all: Vec<(String, String)> = vec![
            ("myhostname".into(), "mail.example.org".into()),
            ("myorigin".into(), "example.org".into()),
        ];
        all.extend(over.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        postern_config::load_with(None, &all).expect("config").main
    }

    #[test]
    fn headers_follow_the_classes() {
        let c = cfg(&[
            (
                "sender_canonical_maps",
                "inline:{ joe@example.org=Joe.Random@example.org }",
            ),
            ("masquerade_domains", "example.net"),
        ]);
        let rw = Rewriter::new(&c).unwrap();
        let msg = b"From: \"Joe\" <joe@example.org>\r\nTo: amy@host.example.net,\r\n \
                    joe@example.org\r\nSubject: joe@example.org\r\n\r\nFrom: joe@example.org\r\n";
        let out = apply(&rw, msg).unwrap().expect("changed");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From: \"Joe\" <Joe.Random@example.org>\r\nTo: amy@example.net,\r\n \
             joe@example.org\r\nSubject: joe@example.org\r\n\r\nFrom: joe@example.org\r\n"
        );
        let c = cfg(&[]);
        let rw = Rewriter::new(&c).unwrap();
        assert!(apply(&rw, msg).unwrap().is_none());
    }
}
