//! Envelope address rewriting done by cleanup(8): canonical(5) mapping and address
//! masquerading, in Postfix's order (cleanup_addr.c):
//!
//! - sender: `sender_canonical_maps`, then `canonical_maps`, then `masquerade_domains`;
//! - recipient: `recipient_canonical_maps`, then `canonical_maps`, then `masquerade_domains`
//!   (only when `masquerade_classes` has `envelope_recipient`, which Postfix's default lacks),
//!   then virtual alias expansion ([`super::virtual_alias`]).
//!
//! Canonical mapping is one-to-one: a lookup is repeated on its result until it maps an address
//! to itself or finds nothing, at most [`CANONICAL_RECURSION`] times (Postfix
//! `cleanup_map11_internal`); a multi-address result uses the first address with a warning.
//! The classes in `canonical_classes` / `masquerade_classes` decide which of the envelope
//! sender and recipients and of the header addresses ([`super::header_rewrite`]) are
//! rewritten.
//!
//! A lookup error stops the rewriting: cleanup refuses the message with `451 4.3.0` so that the
//! client (or the maildrop pickup) tries again, never queueing mail with an unrewritten address.

use std::sync::Arc;

use postern_config::Config;
use postern_maps::search::{self, AddressOptions};
use postern_maps::{LookupError, Tables};

use super::tables;
use crate::address::normalize_domain;

/// Postfix cleanup's `MAX_RECURSION` for one-to-one maps.
pub const CANONICAL_RECURSION: usize = 10;

/// Tables and settings for one message's rewriting, opened from one configuration.
pub struct Rewriter<'a> {
    cfg: &'a Config,
    pub(super) opts: AddressOptions,
    sender_canonical: Vec<Arc<Tables>>,
    recipient_canonical: Vec<Arc<Tables>>,
    pub(super) virtual_alias: Arc<Tables>,
    canonical_classes: Vec<String>,
    masquerade_classes: Vec<String>,
    pub(super) propagate_canonical: bool,
    pub(super) propagate_virtual: bool,
}

impl<'a> Rewriter<'a> {
    pub fn new(cfg: &'a Config) -> Result<Rewriter<'a>, LookupError> {
        let common = tables::open(&cfg.canonical_maps)?;
        let propagate = |what: &str| {
            cfg.propagate_unmatched_extensions
                .iter()
                .any(|c| c.eq_ignore_ascii_case(what))
        };
        Ok(Rewriter {
            cfg,
            opts: AddressOptions {
                recipient_delimiter: cfg.recipient_delimiter.clone(),
                owner_request_special: cfg.owner_request_special,
                ..AddressOptions::default()
            },
            sender_canonical: vec![tables::open(&cfg.sender_canonical_maps)?, common.clone()],
            recipient_canonical: vec![tables::open(&cfg.recipient_canonical_maps)?, common],
            virtual_alias: tables::open(&cfg.virtual_alias_maps)?,
            canonical_classes: lower(&cfg.canonical_classes),
            masquerade_classes: lower(&cfg.masquerade_classes),
            propagate_canonical: propagate("canonical"),
            propagate_virtual: propagate("virtual"),
        })
    }

    /// Whether `domain` counts as local for the `user` keys of canonical(5)/virtual(5):
    /// `$myorigin` or a `mydestination` domain (Postfix `resolve_local`).
    pub(super) fn is_local(&self, domain: &str) -> bool {
        is_local_domain(self.cfg, domain)
    }

    pub(super) fn qualify(&self, address: &str) -> String {
        super::qualify(self.cfg, address)
    }

    /// The rewritten envelope sender (the null sender is never rewritten).
    pub fn sender(&self, sender: &str) -> Result<String, LookupError> {
        if sender.is_empty() {
            return Ok(String::new());
        }
        self.rewrite(sender, true, "envelope_sender")
    }

    /// The envelope recipient after canonical mapping and masquerading (before virtual alias
    /// expansion).
    pub fn recipient(&self, rcpt: &str) -> Result<String, LookupError> {
        self.rewrite(rcpt, false, "envelope_recipient")
    }

    /// An address in a sender header (`From:`, `Sender:`, …) or, with `sender = false`, a
    /// recipient header (`To:`, `Cc:`, …).
    pub fn header(&self, address: &str, sender: bool) -> Result<String, LookupError> {
        let class = if sender {
            "header_sender"
        } else {
            "header_recipient"
        };
        self.rewrite(address, sender, class)
    }

    /// Whether any header address can change (saves the header scan when none can).
    pub fn rewrites_headers(&self) -> bool {
        let canonical = ["header_sender", "header_recipient"]
            .iter()
            .any(|c| self.has(&self.canonical_classes, c))
            && self
                .sender_canonical
                .iter()
                .chain(&self.recipient_canonical)
                .any(|t| !t.is_empty());
        let masq = ["header_sender", "header_recipient"]
            .iter()
            .any(|c| self.has(&self.masquerade_classes, c))
            && !self.cfg.masquerade_domains.is_empty();
        canonical || masq
    }

    /// Postfix `cleanup_rewrite_sender`/`_recip`: the class's canonical maps (sender- or
    /// recipient-specific first, then `canonical_maps`), then masquerading.
    fn rewrite(&self, address: &str, sender: bool, class: &str) -> Result<String, LookupError> {
        let mut addr = address.to_string();
        if self.has(&self.canonical_classes, class) {
            let maps = if sender {
                &self.sender_canonical
            } else {
                &self.recipient_canonical
            };
            for t in maps {
                addr = self.map11(t, &addr)?;
            }
        }
        if self.has(&self.masquerade_classes, class) {
            addr = masquerade(self.cfg, &addr);
        }
        Ok(addr)
    }

    fn has(&self, classes: &[String], class: &str) -> bool {
        classes.iter().any(|c| c == class)
    }

    /// Postfix `cleanup_map11_internal`.
    fn map11(&self, tables: &Tables, address: &str) -> Result<String, LookupError> {
        if tables.is_empty() {
            return Ok(address.to_string());
        }
        let mut addr = address.to_string();
        for _ in 0..CANONICAL_RECURSION {
            let is_local = |d: &str| self.is_local(d);
            let Some(found) = search::map_address(
                tables,
                &addr,
                &self.opts,
                &is_local,
                self.propagate_canonical,
            )?
            else {
                break;
            };
            if found.len() > 1 {
                crate::warn!(
                    "cleanup",
                    "multi-valued canonical map entry for {addr}; using the first address"
                );
            }
            let Some(first) = found.into_iter().next() else {
                break;
            };
            let next = self.qualify(&first);
            if next.eq_ignore_ascii_case(&addr) {
                break;
            }
            addr = next;
        }
        Ok(addr)
    }
}

/// `$myorigin` or a `mydestination` domain (Postfix `resolve_local`, without the
/// `inet_interfaces` address literals): where a bare `user` key of canonical(5), virtual(5) and
/// aliases(5) applies.
pub fn is_local_domain(cfg: &Config, domain: &str) -> bool {
    let d = normalize_domain(domain);
    d == normalize_domain(&cfg.myorigin)
        || cfg.mydestination.iter().any(|m| normalize_domain(m) == d)
}

fn lower(list: &[String]) -> Vec<String> {
    list.iter().map(|c| c.trim().to_ascii_lowercase()).collect()
}

/// Postfix `cleanup_masquerade_internal`: `user@host.example.com` becomes `user@example.com`
/// when `example.com` is in `masquerade_domains`. The first entry that is the domain itself or
/// one of its parents decides; `!sub.example.com` stops masquerading for that subdomain; local
/// parts in `masquerade_exceptions` (`root`) are never masqueraded.
pub fn masquerade(cfg: &Config, address: &str) -> String {
    if cfg.masquerade_domains.is_empty() {
        return address.to_string();
    }
    let Some(at) = address.rfind('@') else {
        return address.to_string();
    };
    let (local, domain) = (&address[..at], &address[at + 1..]);
    let lower_local = local.to_ascii_lowercase();
    if cfg
        .masquerade_exceptions
        .iter()
        .any(|e| e.to_ascii_lowercase() == lower_local)
    {
        return address.to_string();
    }
    let domain_lc = normalize_domain(domain);
    for entry in &cfg.masquerade_domains {
        let (truncate, masq) = match entry.strip_prefix('!') {
            Some(m) => (false, normalize_domain(m)),
            None => (true, normalize_domain(entry)),
        };
        if masq.is_empty() {
            continue;
        }
        if masq == domain_lc {
            break;
        }
        if domain_lc.len() > masq.len()
            && domain_lc.ends_with(&masq)
            && domain_lc.as_bytes()[domain_lc.len() - masq.len() - 1] == b'.'
        {
            if truncate {
                return format!("{local}@{masq}");
            }
            break;
        }
    }
    address.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(over: &[(&str, &str)]) -> Config {
        let mut all: Vec<(String, String)> = vec![
            ("myhostname".into(), "mail.example.org".into()),
            ("mydomain".into(), "example.org".into()),
            ("myorigin".into(), "example.org".into()),
        ];
        all.extend(over.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        postern_config::load_with(None, &all).expect("config").main
    }

    #[test]
    fn masquerading_follows_postfix() {
        let c = cfg(&[
            ("masquerade_domains", "!sub.example.com, example.com"),
            ("masquerade_exceptions", "root"),
        ]);
        assert_eq!(masquerade(&c, "joe@host.example.com"), "joe@example.com");
        assert_eq!(masquerade(&c, "joe@a.b.Example.com"), "joe@example.com");
        assert_eq!(masquerade(&c, "joe@example.com"), "joe@example.com");
        assert_eq!(
            masquerade(&c, "joe@x.sub.example.com"),
            "joe@x.sub.example.com"
        );
        assert_eq!(
            masquerade(&c, "root@host.example.com"),
            "root@host.example.com"
        );
        assert_eq!(masquerade(&c, "joe@badexample.com"), "joe@badexample.com");
        assert_eq!(masquerade(&c, "joe"), "joe");
    }

    #[test]
    fn canonical_sender_and_recipient_maps() {
        let c = cfg(&[
            (
                "canonical_maps",
                "inline:{ joe@example.org=Joe.Random@example.org }",
            ),
            (
                "sender_canonical_maps",
                "inline:{ @old.example=@new.example, loop@example.org=loop@example.org }",
            ),
            ("recipient_canonical_maps", "inline:{ bob=robert }"),
            ("masquerade_domains", "example.net"),
        ]);
        let r = Rewriter::new(&c).unwrap();
        assert_eq!(
            r.sender("joe@example.org").unwrap(),
            "Joe.Random@example.org"
        );
        assert_eq!(r.sender("amy@old.example").unwrap(), "amy@new.example");
        assert_eq!(r.sender("loop@example.org").unwrap(), "loop@example.org");
        assert_eq!(r.sender("x@host.example.net").unwrap(), "x@example.net");
        assert_eq!(r.sender("").unwrap(), "");
        // Unqualified results get @$myorigin; recipients are not masqueraded by default.
        assert_eq!(
            r.recipient("bob@example.org").unwrap(),
            "robert@example.org"
        );
        assert_eq!(
            r.recipient("x@host.example.net").unwrap(),
            "x@host.example.net"
        );
        assert_eq!(
            r.recipient("joe@example.org").unwrap(),
            "Joe.Random@example.org"
        );
    }

    #[test]
    fn canonical_classes_limit_what_is_rewritten() {
        let c = cfg(&[
            (
                "canonical_maps",
                "inline:{ joe@example.org=jr@example.org }",
            ),
            ("canonical_classes", "envelope_recipient"),
        ]);
        let r = Rewriter::new(&c).unwrap();
        assert_eq!(r.sender("joe@example.org").unwrap(), "joe@example.org");
        assert_eq!(r.recipient("joe@example.org").unwrap(), "jr@example.org");
    }

    #[test]
    fn lookup_errors_are_not_ignored() {
        let c = cfg(&[("canonical_maps", "fail:down")]);
        let r = Rewriter::new(&c).unwrap();
        assert!(r.sender("joe@example.org").is_err());
    }
}
