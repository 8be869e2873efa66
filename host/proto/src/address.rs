//! Envelope address syntax for MAIL FROM / RCPT TO (RFC 5321 §4.1.2).
//!
//! ```text
//! Path           = "<" [ A-d-l ":" ] Mailbox ">"
//! A-d-l          = At-domain *( "," At-domain )    ; source route, ignored
//! Mailbox        = Local-part "@" ( Domain / address-literal )
//! Local-part     = Dot-string / Quoted-string
//! ```
//!
//! Deliberate Postfix-style leniencies (Postfix accepts these by default):
//! - a mailbox without `@domain` (RFC 5321 §4.5.1 requires `<postmaster>` to
//!   work; Postfix accepts any bare local part and qualifies it later);
//! - dots anywhere in a dot-string local part (`a..b@x`, `a.@x`), which
//!   some large mobile carriers really use;
//! - `_` in domain labels.
//!
//! Non-ASCII UTF-8 is accepted syntactically in local parts and domain
//! labels; whether SMTPUTF8 (RFC 6531) permits it is checked by the caller.

/// Why the text after `FROM:` / `TO:` could not be split into a path and
/// parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// `<` without a matching `>` (or an unterminated quoted string).
    BadAddress,
    /// Something other than whitespace directly after `>`.
    Junk,
}

/// Splits `<path> params` (or Postfix-lenient `path params` without angle
/// brackets) into the text inside the brackets and the parameter text.
pub(crate) fn split_path(s: &str) -> Result<(&str, &str), SplitError> {
    let Some(inner_start) = s.strip_prefix('<') else {
        // strict_rfc821_envelopes=no: the address is the first word.
        let end = s.find([' ', '\t']).unwrap_or(s.len());
        return Ok((&s[..end], &s[end..]));
    };
    let bytes = inner_start.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            // A second "<" outside quotes can never be valid.
            b'<' if !in_quote => return Err(SplitError::BadAddress),
            b'>' if !in_quote => {
                let rest = &inner_start[i + 1..];
                if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
                    return Err(SplitError::Junk);
                }
                return Ok((&inner_start[..i], rest));
            }
            _ => {}
        }
        i += 1;
    }
    Err(SplitError::BadAddress)
}

/// Validates the contents of a path (without `<>`) and returns the mailbox
/// with any source route removed. `""` (the null path) is returned as `""`.
/// `None` means bad syntax.
pub(crate) fn parse_path_contents(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(String::new());
    }
    let mailbox = strip_source_route(s)?;
    if is_valid_mailbox(mailbox) {
        Some(mailbox.to_string())
    } else {
        None
    }
}

/// RFC 5321 §4.1.2 / Appendix C: `@a,@b:user@d` → `user@d`. Each route
/// domain is validated, then discarded as RFC 5321 §3.3 allows.
fn strip_source_route(s: &str) -> Option<&str> {
    let mut rest = s;
    if !rest.starts_with('@') {
        return Some(rest);
    }
    loop {
        rest = rest.strip_prefix('@')?;
        let end = domain_end(rest);
        let (domain, tail) = rest.split_at(end);
        if !is_valid_domain(domain) {
            return None;
        }
        if let Some(t) = tail.strip_prefix(',') {
            rest = t;
        } else {
            return tail.strip_prefix(':');
        }
    }
}

/// Length of the domain at the start of `s`: up to `,` or `:` outside an
/// address literal.
fn domain_end(s: &str) -> usize {
    if s.starts_with('[') {
        return s.find(']').map_or(s.len(), |i| i + 1);
    }
    s.find([',', ':']).unwrap_or(s.len())
}

/// `Local-part [ "@" domain ]`.
fn is_valid_mailbox(s: &str) -> bool {
    let (local, domain) = if s.starts_with('"') {
        let Some(end) = quoted_string_end(s) else {
            return false;
        };
        let (local, rest) = s.split_at(end);
        match rest.strip_prefix('@') {
            Some(d) => (local, Some(d)),
            None if rest.is_empty() => (local, None),
            None => return false,
        }
    } else {
        match s.split_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (s, None),
        }
    };
    if !s.starts_with('"') && !is_dot_string(local) {
        return false;
    }
    match domain {
        Some(d) => is_valid_domain(d),
        None => true,
    }
}

/// RFC 5321 atext (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531 §3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Dot-string, leniently: atext and dots, at least one atext character.
fn is_dot_string(s: &str) -> bool {
    s.chars().all(|c| c == '.' || is_atext(c)) && s.chars().any(|c| c != '.')
}

/// For `s` starting with `"`, the index just past the closing quote.
/// qtextSMTP is %d32-33 / %d35-91 / %d93-126 (plus UTF-8, RFC 6531);
/// quoted-pairSMTP is `\` followed by %d32-126.
fn quoted_string_end(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(i + 1),
            '\\' => match chars.next() {
                Some((_, q)) if (' '..='~').contains(&q) => {}
                _ => return None,
            },
            ' '..='~' => {}
            c if !c.is_ascii() => {}
            _ => return None,
        }
    }
    None
}

/// `Domain / address-literal`.
fn is_valid_domain(d: &str) -> bool {
    if let Some(lit) = d.strip_prefix('[') {
        // RFC 5321 §4.1.3: dcontent is %d33-90 / %d94-126. The literal's
        // inner syntax (IPv4, IPv6:...) is checked by whoever uses it.
        return match lit.strip_suffix(']') {
            Some(inner) => {
                !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b))
            }
            None => false,
        };
    }
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Option<String> {
        parse_path_contents(s)
    }

    #[test]
    fn split_bracketed_and_bare() {
        assert_eq!(split_path("<a@b> SIZE=1"), Ok(("a@b", " SIZE=1")));
        assert_eq!(split_path("<a@b>"), Ok(("a@b", "")));
        assert_eq!(split_path("<>"), Ok(("", "")));
        assert_eq!(split_path("a@b SIZE=1"), Ok(("a@b", " SIZE=1")));
        assert_eq!(split_path("<a@b>SIZE=1"), Err(SplitError::Junk));
        assert_eq!(split_path("<a@b"), Err(SplitError::BadAddress));
        assert_eq!(split_path("<\"a>b\"@c> X"), Ok(("\"a>b\"@c", " X")));
        assert_eq!(split_path("<\"a\\\">b\"@c>"), Ok(("\"a\\\">b\"@c", "")));
        assert_eq!(split_path("<\"unterminated>"), Err(SplitError::BadAddress));
        assert_eq!(split_path("<<a@b>>"), Err(SplitError::BadAddress));
        assert_eq!(split_path("<\"<\"@b>"), Ok(("\"<\"@b", "")));
    }

    #[test]
    fn ordinary_mailboxes() {
        assert_eq!(
            path("user@example.com").as_deref(),
            Some("user@example.com")
        );
        assert_eq!(
            path("first.last+tag@sub.example.co.uk").as_deref(),
            Some("first.last+tag@sub.example.co.uk")
        );
        assert_eq!(
            path("o'brien@x-y.example").as_deref(),
            Some("o'brien@x-y.example")
        );
        assert_eq!(path("postmaster").as_deref(), Some("postmaster"));
        assert_eq!(path("").as_deref(), Some(""));
    }

    #[test]
    fn lenient_dots_and_underscores() {
        assert!(path("a..b@docomo.ne.jp").is_some());
        assert!(path("foo.@ezweb.ne.jp").is_some());
        assert!(path("user@under_score.example").is_some());
    }

    #[test]
    fn quoted_local_parts_kept_verbatim() {
        assert_eq!(
            path("\"john doe\"@example.com").as_deref(),
            Some("\"john doe\"@example.com")
        );
        assert_eq!(
            path("\"a@b\"@example.com").as_deref(),
            Some("\"a@b\"@example.com")
        );
        assert_eq!(
            path("\"a\\\"b\"@example.com").as_deref(),
            Some("\"a\\\"b\"@example.com")
        );
        assert!(path("\"\"@example.com").is_some());
        assert!(path("\"x\"y@example.com").is_none());
        assert!(path("\"x\tb\"@example.com").is_none());
    }

    #[test]
    fn address_literals() {
        assert!(path("user@[192.0.2.1]").is_some());
        assert!(path("user@[IPv6:2001:db8::1]").is_some());
        assert!(path("user@[]").is_none());
        assert!(path("user@[1.2.3.4").is_none());
        assert!(path("user@[a[b]").is_none());
    }

    #[test]
    fn source_routes_are_stripped() {
        assert_eq!(path("@a,@b:user@d").as_deref(), Some("user@d"));
        assert_eq!(path("@relay.example:user@d").as_deref(), Some("user@d"));
        assert_eq!(path("@[192.0.2.1]:user@d").as_deref(), Some("user@d"));
        assert_eq!(path("@a:postmaster").as_deref(), Some("postmaster"));
        assert!(path("@a").is_none());
        assert!(path("@a,b:user@d").is_none());
        assert!(path("@:user@d").is_none());
        assert!(path("@a:").is_none());
        assert!(path("@a,@b:@c:user@d").is_none());
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "user@",
            "@example.com",
            "user@@example.com",
            "user@exa mple.com",
            "us er@x",
            "user@.example.com",
            "user@example..com",
            "user@example.com.",
            "a<b@c",
            "a>b@c",
            "a,b@c",
            "a;b@c",
            "...@x",
            "a@b@c",
            "user@exa\u{0}mple",
        ] {
            assert_eq!(path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn utf8_is_syntactically_fine() {
        assert!(path("josé@exämple.de").is_some());
        assert!(path("用户@例子.广告").is_some());
    }

    #[test]
    fn overlong_domain_rejected() {
        let d = format!("u@{}.com", "a".repeat(300));
        assert!(path(&d).is_none());
    }
}
