//! Where a recipient address goes: this host (`mydestination`), a domain we relay for
//! (`relay_domains`), or somewhere else — the question behind `reject_unauth_destination` and
//! behind the queue manager's choice of transport.
//!
//! Postfix answers both with trivial-rewrite's address resolver; this is that resolver's address
//! classification, with the same conservative choices:
//!
//! - an address without a domain is qualified with `@$myorigin` first (postconf(5)
//!   `append_at_myorigin`), so `RCPT TO:<bob>` is only local when `$myorigin` is; the RFC 5321
//!   §4.5.1 mailbox `<postmaster>` is always local;
//! - a domain ending in one dot is compared without it (`example.com.`);
//! - sender-specified routing in the local part (`"user@elsewhere"@here`, `user%elsewhere@here`
//!   with `allow_percent_hack`, `elsewhere!user@here` with `swap_bangpath`) is never an
//!   authorized destination, as with Postfix's default `allow_untrusted_routing = no`: such
//!   addresses are the classic way to turn a mail server into an open relay;
//! - address literals (`user@[192.0.2.1]`) are not treated as local: Postfix matches them
//!   against the machine's interface addresses, which Postern does not know yet, and refusing
//!   is the safe side.

use postern_config::Config;

/// The domains this server accepts mail for, derived once per configuration.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    /// `mydestination`, lower case, without trailing dots. Final delivery on this host.
    mydestination: Vec<String>,
    /// `relay_domains`, lower case. An entry `example.com` also matches its subdomains
    /// (Postfix `parent_domain_matches_subdomains` includes `relay_domains`); `.example.com`
    /// matches only subdomains.
    relay_domains: Vec<String>,
    /// `myorigin`, appended to addresses without a domain.
    myorigin: String,
    allow_percent_hack: bool,
    swap_bangpath: bool,
}

/// What an envelope recipient resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Final delivery here (domain in `mydestination`); holds the local part.
    Local(String),
    /// A `relay_domains` domain: we forward it.
    Relay,
    /// Anywhere else, or an address whose routing we refuse to interpret.
    Remote,
}

impl Destinations {
    pub fn new(cfg: &Config) -> Destinations {
        Destinations {
            mydestination: table_free(&cfg.mydestination, "mydestination"),
            relay_domains: table_free(&cfg.relay_domains, "relay_domains"),
            myorigin: normalize_domain(&cfg.myorigin),
            allow_percent_hack: cfg.allow_percent_hack,
            swap_bangpath: cfg.swap_bangpath,
        }
    }

    /// Resolves an envelope recipient (as given in `RCPT TO`, without `<>`).
    pub fn resolve(&self, address: &str) -> Resolved {
        let (local, domain) = split_address(address);
        if domain.is_none() && local.eq_ignore_ascii_case("postmaster") {
            return Resolved::Local(local.to_string());
        }
        if self.is_routed(local) {
            return Resolved::Remote;
        }
        let domain = match domain {
            Some(d) => normalize_domain(d),
            None => self.myorigin.clone(),
        };
        if domain.starts_with('[') {
            return Resolved::Remote;
        }
        if self.is_local_domain(&domain) {
            Resolved::Local(local.to_string())
        } else if self.is_relay_domain(&domain) {
            Resolved::Relay
        } else {
            Resolved::Remote
        }
    }

    /// Postfix `permit_auth_destination`: final delivery here or a relay domain.
    pub fn is_authorized(&self, address: &str) -> bool {
        !matches!(self.resolve(address), Resolved::Remote)
    }

    /// True when `domain` (lower case, no trailing dot) is in `mydestination`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.mydestination.iter().any(|d| d == domain)
    }

    fn is_relay_domain(&self, domain: &str) -> bool {
        self.relay_domains.iter().any(|entry| {
            if let Some(parent) = entry.strip_prefix('.') {
                is_subdomain(domain, parent)
            } else {
                domain == entry || is_subdomain(domain, entry)
            }
        })
    }

    /// Sender-specified routing left in the local part (Postfix `RESOLVE_FLAG_ROUTED`).
    fn is_routed(&self, local: &str) -> bool {
        local.contains('@')
            || (self.allow_percent_hack && local.contains('%'))
            || (self.swap_bangpath && local.contains('!'))
    }
}

/// `sub.example.com` is a subdomain of `example.com`; `example.com` is not.
fn is_subdomain(domain: &str, parent: &str) -> bool {
    domain.len() > parent.len() + 1
        && domain.ends_with(parent)
        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
}

/// Splits at the last `@` outside a quoted local part. The local part keeps its quotes.
pub fn split_address(address: &str) -> (&str, Option<&str>) {
    match address.rfind('@') {
        // `"a@b"` alone: the `@` is inside the quotes, there is no domain.
        Some(at) if !(address.starts_with('"') && address.ends_with('"') && at > 0) => {
            (&address[..at], Some(&address[at + 1..]))
        }
        _ => (address, None),
    }
}

/// Lower case, one trailing dot removed (`Example.COM.` → `example.com`).
pub fn normalize_domain(domain: &str) -> String {
    let d = domain.trim();
    let d = match d.strip_suffix('.') {
        Some(s) if !s.ends_with('.') => s,
        _ => d,
    };
    d.to_ascii_lowercase()
}

/// Drops entries that are lookup tables (`hash:/etc/postfix/relay`) or files (`/etc/…`): they
/// need the maps crate, which does not exist yet. Dropping them means "not our domain" — the
/// safe direction — and the warning tells the admin why mail for those domains is refused.
fn table_free(list: &[String], param: &str) -> Vec<String> {
    list.iter()
        .filter(|entry| {
            let is_table = entry.starts_with('/') || entry.contains(':');
            if is_table {
                crate::warn!(
                    "trivial-rewrite",
                    "{param}: lookup table \"{entry}\" is not supported yet; ignoring it"
                );
            }
            !is_table
        })
        .map(|d| normalize_domain(d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dests() -> Destinations {
        Destinations {
            mydestination: vec!["mx.example.test".into(), "localhost".into()],
            relay_domains: vec!["relay.example".into(), ".sub.example".into()],
            myorigin: "mx.example.test".into(),
            allow_percent_hack: true,
            swap_bangpath: true,
        }
    }

    #[test]
    fn local_relay_and_remote() {
        let d = dests();
        assert_eq!(d.resolve("bob@LocalHost."), Resolved::Local("bob".into()));
        assert_eq!(d.resolve("bob"), Resolved::Local("bob".into()));
        assert_eq!(
            d.resolve("Postmaster"),
            Resolved::Local("Postmaster".into())
        );
        assert_eq!(d.resolve("x@relay.example"), Resolved::Relay);
        assert_eq!(d.resolve("x@deep.relay.example"), Resolved::Relay);
        assert_eq!(d.resolve("x@a.sub.example"), Resolved::Relay);
        assert_eq!(d.resolve("x@sub.example"), Resolved::Remote);
        assert_eq!(d.resolve("x@notrelay.example"), Resolved::Remote);
        assert_eq!(d.resolve("x@elsewhere.example"), Resolved::Remote);
        assert_eq!(d.resolve("x@[127.0.0.1]"), Resolved::Remote);
    }

    #[test]
    fn source_routing_is_never_authorized() {
        let d = dests();
        assert!(!d.is_authorized("\"victim@remote.example\"@localhost"));
        assert!(!d.is_authorized("victim%remote.example@localhost"));
        assert!(!d.is_authorized("remote.example!victim@localhost"));
        let strict = Destinations {
            allow_percent_hack: false,
            swap_bangpath: false,
            ..dests()
        };
        assert!(strict.is_authorized("odd%name@localhost"));
    }

    #[test]
    fn unqualified_addresses_follow_myorigin() {
        let d = Destinations {
            myorigin: "example.org".into(),
            ..dests()
        };
        assert!(!d.is_authorized("bob"));
        assert!(d.is_authorized("postmaster"));
    }

    #[test]
    fn splitting_and_normalizing() {
        assert_eq!(split_address("a@b@c"), ("a@b", Some("c")));
        assert_eq!(split_address("\"a@b\""), ("\"a@b\"", None));
        assert_eq!(split_address("plain"), ("plain", None));
        assert_eq!(normalize_domain("Ex.COM."), "ex.com");
        assert_eq!(normalize_domain("ex.com.."), "ex.com..");
    }
}
