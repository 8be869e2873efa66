//! Message headers as `sendmail -t` needs them: find the header fields, unfold them, pull the
//! addresses out of RFC 5322 address lists, and drop `Bcc:`.
//!
//! This is deliberately small: it reads only what decides where a message goes. It is lenient
//! the way Postfix is (unqualified addresses, obsolete routes, stray commas) because the input is
//! whatever a local program wrote.

/// One header field: its name and the byte range it occupies (continuation lines included).
struct Field {
    name: String,
    start: usize,
    end: usize,
}

/// The header fields at the top of `content` (CRLF lines). The header ends at the first empty
/// line or at the first line that is neither a field nor a continuation (Postfix treats such a
/// line as the start of the body).
fn fields(content: &[u8]) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let end = content[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(content.len(), |p| pos + p + 2);
        let line = &content[pos..end];
        let text = line.strip_suffix(b"\r\n").unwrap_or(line);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            match out.last_mut() {
                Some(field) => field.end = end,
                None => break,
            }
        } else {
            let Some(colon) = text.iter().position(|&b| b == b':') else {
                break;
            };
            let name = &text[..colon];
            let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b));
            if !valid {
                break;
            }
            out.push(Field {
                name: String::from_utf8_lossy(name).to_ascii_lowercase(),
                start: pos,
                end,
            });
        }
        pos = end;
    }
    out
}

/// The unfolded value of a field (everything after the colon, continuation lines joined).
fn value(content: &[u8], field: &Field) -> String {
    let raw = &content[field.start..field.end];
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |p| p + 1);
    let text = String::from_utf8_lossy(&raw[colon..]);
    text.replace("\r\n", "")
}

/// True when the header has a field called `name` (case-insensitive).
pub fn has_field(content: &[u8], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    fields(content).iter().any(|f| f.name == name)
}

/// `sendmail -t`: the recipients named in `To:`, `Cc:` and `Bcc:` — or in `Resent-To:`,
/// `Resent-Cc:` and `Resent-Bcc:` when the message has any `Resent-` recipient fields (a
/// re-sent message goes to the re-send recipients, RFC 5322 §3.6.6). `Bcc:` and `Resent-Bcc:`
/// are removed from `content`, since blind-copy recipients must not be visible to the others.
pub fn extract_recipients(content: &mut Vec<u8>) -> Vec<String> {
    let all = fields(content);
    let resent = all
        .iter()
        .any(|f| matches!(f.name.as_str(), "resent-to" | "resent-cc" | "resent-bcc"));
    let wanted: &[&str] = if resent {
        &["resent-to", "resent-cc", "resent-bcc"]
    } else {
        &["to", "cc", "bcc"]
    };
    let mut recipients = Vec::new();
    for field in all.iter().filter(|f| wanted.contains(&f.name.as_str())) {
        recipients.extend(parse_address_list(&value(content, field)));
    }
    // Remove from the end so earlier byte ranges stay valid.
    for field in all
        .iter()
        .rev()
        .filter(|f| f.name == "bcc" || f.name == "resent-bcc")
    {
        content.drain(field.start..field.end);
    }
    recipients
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// An atom, a quoted string (quotes kept) or a domain literal (brackets kept).
    Word(String),
    Special(char),
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => {
                // Comments nest (RFC 5322 §3.2.2) and may hold quoted pairs.
                let mut depth = 1;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '"' => {
                let mut word = String::from('"');
                while let Some(c) = chars.next() {
                    word.push(c);
                    match c {
                        '\\' => {
                            if let Some(next) = chars.next() {
                                word.push(next);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push(Token::Word(word));
            }
            '[' => {
                let mut word = String::from('[');
                for c in chars.by_ref() {
                    word.push(c);
                    if c == ']' {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            '<' | '>' | ',' | ':' | ';' | '@' | '.' => out.push(Token::Special(c)),
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "()<>,:;@.\"[".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    out
}

/// An addr-spec written back from its tokens, without an obsolete source route
/// (`@a,@b:user@c` → `user@c`, RFC 5322 §4.4).
fn addr_spec(tokens: &[Token]) -> String {
    let start = tokens
        .iter()
        .rposition(|t| *t == Token::Special(':'))
        .map_or(0, |p| p + 1);
    let mut s = String::new();
    for t in &tokens[start..] {
        match t {
            Token::Word(w) => s.push_str(w),
            Token::Special(c) => s.push(*c),
        }
    }
    s
}

/// The addresses in an RFC 5322 address list (`To:`/`Cc:` syntax, also used for `sendmail`
/// command-line recipients): `a@x, Name <b@y>, "Last, First" <c@z>, group: d@w, e@v;`.
/// Display names, comments and group names are dropped; empty groups and empty `<>` give
/// nothing. Unqualified addresses are kept as written (cleanup qualifies them).
pub fn parse_address_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut phrase: Vec<Token> = Vec::new();
    let mut angle: Option<String> = None;
    let mut tokens = tokenize(s).into_iter();
    let flush = |phrase: &mut Vec<Token>, angle: &mut Option<String>, out: &mut Vec<String>| {
        let addr = match angle.take() {
            Some(a) => a,
            None => addr_spec(phrase),
        };
        if !addr.is_empty() {
            out.push(addr);
        }
        phrase.clear();
    };
    while let Some(token) = tokens.next() {
        match token {
            Token::Special('<') => {
                let inner: Vec<Token> = tokens
                    .by_ref()
                    .take_while(|t| *t != Token::Special('>'))
                    .collect();
                angle = Some(addr_spec(&inner));
            }
            Token::Special(',') | Token::Special(';') => flush(&mut phrase, &mut angle, &mut out),
            // A colon outside angle brackets ends a group's display name.
            Token::Special(':') => phrase.clear(),
            other => {
                if angle.is_none() {
                    phrase.push(other);
                }
            }
        }
    }
    flush(&mut phrase, &mut angle, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("bob@example.com", &["bob@example.com"]),
            (
                "  bob@example.com , carol@example.org ",
                &["bob@example.com", "carol@example.org"],
            ),
            ("Bob Smith <bob@example.com>", &["bob@example.com"]),
            (
                "\"Smith, Bob\" <bob@example.com>, carol",
                &["bob@example.com", "carol"],
            ),
            ("bob@example.com (Bob (the) Builder)", &["bob@example.com"]),
            ("\"john doe\"@example.com", &["\"john doe\"@example.com"]),
            ("<@relay.example:bob@example.com>", &["bob@example.com"]),
            ("user@[192.0.2.1]", &["user@[192.0.2.1]"]),
            ("undisclosed-recipients:;", &[]),
            (
                "friends: Ann <ann@a.example>, bob@b.example; carol@c.example",
                &["ann@a.example", "bob@b.example", "carol@c.example"],
            ),
            ("a@x,, ,b@y", &["a@x", "b@y"]),
            ("<>", &[]),
            ("Jöran <jöran@exämple.de>", &["jöran@exämple.de"]),
            ("<bob@example.com", &["bob@example.com"]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_address_list(input), *want, "{input}");
        }
    }

    #[test]
    fn extract_unfolds_and_removes_bcc() {
        let mut msg = b"From: me\r\n\
To: Ann <ann@example.com>,\r\n\
\tBob <bob@example.com>\r\n\
Subject: hi\r\n\
CC: carol@example.com\r\n\
Bcc: secret@example.com,\r\n \"Hidden, Person\" <hidden@example.com>\r\n\
X-Note: keep\r\n\
\r\n\
To: not-a-header@example.com\r\n"
            .to_vec();
        let rcpts = extract_recipients(&mut msg);
        assert_eq!(
            rcpts,
            [
                "ann@example.com",
                "bob@example.com",
                "carol@example.com",
                "secret@example.com",
                "hidden@example.com"
            ]
        );
        assert_eq!(
            String::from_utf8_lossy(&msg),
            "From: me\r\nTo: Ann <ann@example.com>,\r\n\tBob <bob@example.com>\r\n\
             Subject: hi\r\nCC: carol@example.com\r\nX-Note: keep\r\n\r\n\
             To: not-a-header@example.com\r\n"
        );
    }

    #[test]
    fn resent_fields_take_precedence() {
        let mut msg = b"To: old@example.com\r\nResent-To: new@example.com\r\n\
Resent-Bcc: quiet@example.com\r\n\r\nbody\r\n"
            .to_vec();
        assert_eq!(
            extract_recipients(&mut msg),
            ["new@example.com", "quiet@example.com"]
        );
        assert!(!has_field(&msg, "resent-bcc"));
        assert!(has_field(&msg, "To"));
    }

    #[test]
    fn header_ends_at_a_non_field_line() {
        // No blank line: the body starts at the first line that is not a header field.
        let mut msg = b"To: a@example.com\r\nhello world\r\nCc: b@example.com\r\n".to_vec();
        assert_eq!(extract_recipients(&mut msg), ["a@example.com"]);
    }
}
