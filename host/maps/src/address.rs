//! Address pieces the search orders and aliases need: RFC 822 local-part quoting (Postfix
//! `quote_822_local`), address extensions (`strip_addr`/`split_addr`) and splitting an address
//! list on commas (the part of Postfix's `tok822` parser tables and aliases rely on).

/// Options that change how an address is taken apart. Defaults are Postfix's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressOptions {
    /// `recipient_delimiter`: any of these characters starts an extension (`user+ext`); empty
    /// = no extensions.
    pub recipient_delimiter: String,
    /// `owner_request_special` (default yes): with `-` as a delimiter, `owner-list` and
    /// `list-request` are never split.
    pub owner_request_special: bool,
    /// `double_bounce_sender` (default `double-bounce`): never split, like `postmaster` and
    /// `MAILER-DAEMON`.
    pub double_bounce_sender: String,
}

impl Default for AddressOptions {
    fn default() -> AddressOptions {
        AddressOptions {
            recipient_delimiter: String::new(),
            owner_request_special: true,
            double_bounce_sender: "double-bounce".to_string(),
        }
    }
}

impl AddressOptions {
    /// Options with a `recipient_delimiter`, the rest default.
    pub fn with_delimiter(delimiter: &str) -> AddressOptions {
        AddressOptions {
            recipient_delimiter: delimiter.to_string(),
            ..AddressOptions::default()
        }
    }
}

/// `(local part, Some(domain))` split at the last `@`; `(address, None)` without one.
pub fn split_at_domain(address: &str) -> (&str, Option<&str>) {
    match address.rfind('@') {
        Some(at) => (&address[..at], Some(&address[at + 1..])),
        None => (address, None),
    }
}

/// The address without its extension and the extension (delimiter included):
/// `user+foo@example.com` → (`user@example.com`, `+foo`). `None` when there is nothing to strip
/// (Postfix `strip_addr_internal`): no delimiter in the local part, a delimiter first (the
/// result would have an empty local part), or one of the names Postfix never splits.
pub fn strip_extension(address: &str, opts: &AddressOptions) -> Option<(String, String)> {
    let delims = opts.recipient_delimiter.as_str();
    if delims.is_empty() {
        return None;
    }
    let (local, domain) = split_at_domain(address);
    let special = |name: &str| {
        name.eq_ignore_ascii_case("postmaster")
            || name.eq_ignore_ascii_case("mailer-daemon")
            || name.eq_ignore_ascii_case(&opts.double_bounce_sender)
    };
    if special(local) {
        return None;
    }
    if delims.contains('-') && opts.owner_request_special {
        let lower = local.to_ascii_lowercase();
        if lower.starts_with("owner-") || (local.len() > 8 && lower.ends_with("-request")) {
            return None;
        }
    }
    let cut = local.find(|c: char| delims.contains(c))?;
    if cut == 0 {
        return None;
    }
    let extension = local[cut..].to_string();
    let stripped = match domain {
        Some(d) => format!("{}@{d}", &local[..cut]),
        None => local[..cut].to_string(),
    };
    Some((stripped, extension))
}

/// True when `local` is an RFC 822 dot-string that needs no quotes (8-bit text allowed, as
/// Postfix's default `QUOTE_FLAG_8BITCLEAN`).
fn is_dot_string(local: &str) -> bool {
    if local.is_empty() || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    !local.chars().any(|c| {
        c == ' '
            || c.is_ascii_control()
            || matches!(
                c,
                '(' | ')' | '<' | '>' | '@' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
            )
    })
}

/// The external (quoted) form of an address: `"john smith"@example.com` for
/// `john smith@example.com`. With `bare`, the whole string is a local part (it may contain
/// `@`), as for the `user` lookups of virtual(5).
pub fn quote_local(address: &str, bare: bool) -> String {
    let (local, rest) = if bare {
        (address, "")
    } else {
        match address.rfind('@') {
            Some(at) => (&address[..at], &address[at..]),
            None => (address, ""),
        }
    };
    if is_dot_string(local) {
        return address.to_string();
    }
    let mut out = String::with_capacity(address.len() + 4);
    out.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out.push_str(rest);
    out
}

/// The internal (unquoted) form: quotes removed and `\x` escapes resolved.
pub fn unquote_local(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut chars = address.chars();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\\' if in_quotes => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Splits an address list on commas outside double quotes, `(comments)` and `<…>`; comments
/// are dropped, `Name <addr>` becomes `addr`, items are trimmed and empty ones dropped.
/// Items keep their quotes (external form).
pub fn split_address_list(list: &str) -> Vec<String> {
    struct Item {
        text: String,
        angle: Option<String>,
        closed: bool,
    }
    impl Item {
        fn push(&mut self, c: char) {
            match (&mut self.angle, self.closed) {
                (Some(a), false) => a.push(c),
                (Some(_), true) => {}
                (None, _) => self.text.push(c),
            }
        }
        fn take(&mut self, out: &mut Vec<String>) {
            let item = self
                .angle
                .take()
                .unwrap_or_else(|| std::mem::take(&mut self.text));
            let item = item.trim();
            if !item.is_empty() {
                out.push(item.to_string());
            }
            self.text.clear();
            self.closed = false;
        }
    }
    let mut out = Vec::new();
    let mut item = Item {
        text: String::new(),
        angle: None,
        closed: false,
    };
    let (mut in_quotes, mut comment) = (false, 0usize);
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        if in_quotes {
            item.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    item.push(n);
                }
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                item.push(c);
            }
            '(' => comment = 1,
            '<' if item.angle.is_none() => item.angle = Some(String::new()),
            '>' if item.angle.is_some() => item.closed = true,
            ',' => item.take(&mut out),
            c => item.push(c),
        }
    }
    item.take(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_strip_addr() {
        let plus = AddressOptions::with_delimiter("+");
        assert_eq!(
            strip_extension("user+foo@example.com", &plus),
            Some(("user@example.com".into(), "+foo".into()))
        );
        assert_eq!(
            strip_extension("user+foo+bar", &plus),
            Some(("user".into(), "+foo+bar".into()))
        );
        assert_eq!(strip_extension("user@ex+ample.com", &plus), None);
        assert_eq!(strip_extension("+foo@example.com", &plus), None);
        assert_eq!(
            strip_extension("user+foo@x", &AddressOptions::default()),
            None
        );
        let dash = AddressOptions::with_delimiter("-+");
        assert_eq!(strip_extension("owner-list@x", &dash), None);
        assert_eq!(strip_extension("list-request@x", &dash), None);
        assert_eq!(strip_extension("MAILER-DAEMON@x", &dash), None);
        assert_eq!(
            strip_extension("a-b+c@x", &dash),
            Some(("a@x".into(), "-b+c".into()))
        );
    }

    #[test]
    fn quoting_round_trips() {
        assert_eq!(
            quote_local("john.smith@example.com", false),
            "john.smith@example.com"
        );
        assert_eq!(
            quote_local("john smith@example.com", false),
            "\"john smith\"@example.com"
        );
        assert_eq!(quote_local("a\"b@x", false), "\"a\\\"b\"@x");
        assert_eq!(quote_local("a@b", true), "\"a@b\"");
        assert_eq!(quote_local(".x@y", false), "\".x\"@y");
        assert_eq!(unquote_local("\"a\\\"b\"@x"), "a\"b@x");
        assert_eq!(
            unquote_local("\"john smith\"@example.com"),
            "john smith@example.com"
        );
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            split_address_list(" a@x, \"b, c\"@y ,(comment, here) d, Name <e@z>,,"),
            vec!["a@x", "\"b, c\"@y", "d", "e@z"]
        );
    }
}
