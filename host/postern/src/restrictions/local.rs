//! `local_recipient_maps`: which local parts exist on this host (postconf(5),
//! `smtpd_reject_unlisted_recipient`).
//!
//! Rejecting unknown users at RCPT time matters: accepting them means bouncing later to a sender
//! address that is usually forged (backscatter). Until the maps crate exists only two forms are
//! understood:
//!
//! - empty: every local part is accepted (Postfix's meaning of an empty value);
//! - `inline:{ user1, user2=anything, … }`: the keys are the valid local parts.
//!
//! Any other table is logged once with a warning and treated as empty (accept all) so that a
//! configuration written for Postfix keeps receiving mail instead of rejecting everybody.

use std::collections::HashSet;

/// The parsed `local_recipient_maps`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalRecipients {
    /// No check (empty value, or a table type we cannot read yet).
    #[default]
    AcceptAll,
    /// Known local parts, lower case (Postfix lookups are case-insensitive).
    Listed(HashSet<String>),
}

impl LocalRecipients {
    /// Parses the value as the config crate split it (on commas and whitespace, so
    /// `inline:{a, b}` arrives as `["inline:{a", "b}"]`).
    pub fn parse(items: &[String]) -> LocalRecipients {
        if items.is_empty() {
            return LocalRecipients::AcceptAll;
        }
        let joined = items.join(" ");
        let text = joined.trim();
        let inline = text
            .strip_prefix("inline:{")
            .and_then(|rest| rest.strip_suffix('}'))
            .filter(|body| !body.contains(['{', '}']));
        match inline {
            Some(body) => LocalRecipients::Listed(
                body.split([',', ' ', '\t'])
                    .map(|entry| entry.split_once('=').map_or(entry, |(k, _)| k).trim())
                    .filter(|k| !k.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect(),
            ),
            None => {
                crate::warn!(
                    "smtpd",
                    "local_recipient_maps = {text}: only an empty value and inline:{{…}} are \
                     supported yet; accepting every local recipient"
                );
                LocalRecipients::AcceptAll
            }
        }
    }

    /// Whether `local_part` (with any `recipient_delimiter` extension already removed by the
    /// caller when wanted) is a known user. `postmaster` and `mailer-daemon` always exist, as in
    /// Postfix (RFC 5321 §4.5.1 requires postmaster).
    pub fn contains(&self, local_part: &str) -> bool {
        match self {
            LocalRecipients::AcceptAll => true,
            LocalRecipients::Listed(users) => {
                let lp = local_part.trim_matches('"').to_ascii_lowercase();
                lp == "postmaster" || lp == "mailer-daemon" || users.contains(&lp)
            }
        }
    }
}

/// Strips an address extension: `user+tag` → `user` with delimiter `+` (postconf(5)
/// `recipient_delimiter`, any of the characters given).
pub fn strip_extension<'a>(local_part: &'a str, delimiters: &str) -> &'a str {
    if delimiters.is_empty() {
        return local_part;
    }
    match local_part.find(|c: char| delimiters.contains(c)) {
        Some(i) if i > 0 => &local_part[..i],
        _ => local_part,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &str) -> Vec<String> {
        postern_config::parse_list(v)
    }

    #[test]
    fn empty_accepts_everybody() {
        assert_eq!(LocalRecipients::parse(&[]), LocalRecipients::AcceptAll);
        assert!(LocalRecipients::AcceptAll.contains("anyone"));
    }

    #[test]
    fn inline_keys_are_the_users() {
        let t = LocalRecipients::parse(&items("inline:{ alice, Bob=bob@x , carol }"));
        assert!(t.contains("alice"));
        assert!(t.contains("bob"));
        assert!(t.contains("CAROL"));
        assert!(t.contains("postmaster"));
        assert!(!t.contains("mallory"));
    }

    #[test]
    fn unsupported_tables_accept_all() {
        let t = LocalRecipients::parse(&items("proxy:unix:passwd.byname $alias_maps"));
        assert_eq!(t, LocalRecipients::AcceptAll);
    }

    #[test]
    fn extensions_are_stripped() {
        assert_eq!(strip_extension("bob+news", "+"), "bob");
        assert_eq!(strip_extension("bob-x+y", "+-"), "bob");
        assert_eq!(strip_extension("+bob", "+"), "+bob");
        assert_eq!(strip_extension("bob+x", ""), "bob+x");
    }
}
