//! DNS lookups a plugin may make (TXT for SPF/DKIM/DMARC, A/AAAA, MX, PTR).
//!
//! [`DnsBackend`] is the seam: the MTA plugs its real stub resolver in behind it, [`NoDns`]
//! answers when none is configured, and [`StaticDns`] serves fixed answers to tests (the
//! recorded-fixture approach of mail-auth's resolver trait), so no test needs the network.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::BoxFuture;

/// Why a lookup produced no records. Mirrors what a resolver can tell apart: the name does
/// not exist (NXDOMAIN), it exists without records of the asked type (NODATA), or the answer
/// could not be had this time (SERVFAIL, timeout) — which a plugin should treat as "try later".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsFailure {
    #[error("no such domain")]
    NoSuchDomain,
    #[error("no records of the requested type")]
    NoRecords,
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
}

/// One MX record (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    pub exchange: String,
}

/// A resolver as the plugin host imports see it. Capability checks (which plugin may resolve
/// at all) happen in the host imports before a call reaches a backend.
pub trait DnsBackend: Send + Sync + std::fmt::Debug {
    /// TXT records of `name`, one `Vec<u8>` per record (its character-strings joined).
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Vec<u8>>, DnsFailure>>;
    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsFailure>>;
    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, DnsFailure>>;
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Mx>, DnsFailure>>;
    /// PTR records of the reverse name of `addr` (`in-addr.arpa` / `ip6.arpa`).
    fn ptr<'a>(&'a self, addr: IpAddr) -> BoxFuture<'a, Result<Vec<String>, DnsFailure>>;
}

const NO_RESOLVER: &str = "no DNS resolver is configured for plugins";

/// No resolver configured: every query → Temporary("no DNS resolver is configured for plugins").
///
/// Temporary rather than NoSuchDomain so that a plugin deciding on DNS (an SPF check, a DNSBL)
/// defers instead of concluding that a domain does not exist.
#[derive(Debug, Default)]
pub struct NoDns;

fn no_resolver<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, DnsFailure>> {
    Box::pin(std::future::ready(Err(DnsFailure::Temporary(
        NO_RESOLVER.to_owned(),
    ))))
}

impl DnsBackend for NoDns {
    fn txt<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Vec<Vec<u8>>, DnsFailure>> {
        no_resolver()
    }
    fn ipv4<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsFailure>> {
        no_resolver()
    }
    fn ipv6<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, DnsFailure>> {
        no_resolver()
    }
    fn mx<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Vec<Mx>, DnsFailure>> {
        no_resolver()
    }
    fn ptr<'a>(&'a self, _addr: IpAddr) -> BoxFuture<'a, Result<Vec<String>, DnsFailure>> {
        no_resolver()
    }
}

/// Records of one name, per type, in the order they were added.
#[derive(Debug, Default, Clone)]
struct Records {
    txt: Vec<Vec<u8>>,
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    mx: Vec<Mx>,
    ptr: Vec<String>,
}

/// Fixed answers (tests, sdk/testing). Builder methods; names compared case-insensitively,
/// trailing dot ignored. A name with no records of any type → NoSuchDomain; a name that has
/// records of another type → NoRecords. `fail(name)` makes every query for it Temporary.
///
/// PTR records live under the reverse name of the address (`4.3.2.1.in-addr.arpa`), as in
/// real DNS: `fail` takes that name, or the address itself as text. Answers come back in the
/// order the records were added (an MX answer is not sorted by preference, just as a real
/// resolver's is not).
#[derive(Debug, Default, Clone)]
pub struct StaticDns {
    names: HashMap<String, Records>,
    failing: HashSet<String>,
}

/// The lookup key of a name: ASCII-lowercased, one trailing dot removed.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The PTR owner name of `addr` (RFC 1035 §3.5, RFC 3596 §2.5).
fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    name.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
                    name.push('.');
                }
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

impl StaticDns {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&mut self, name: &str) -> &mut Records {
        self.names.entry(normalize(name)).or_default()
    }

    /// Adds a TXT record whose text is `value` (one record, however long).
    pub fn txt(mut self, name: &str, value: &str) -> Self {
        self.records(name).txt.push(value.as_bytes().to_vec());
        self
    }

    pub fn a(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.records(name).a.push(ip);
        self
    }

    pub fn aaaa(mut self, name: &str, ip: Ipv6Addr) -> Self {
        self.records(name).aaaa.push(ip);
        self
    }

    pub fn mx(mut self, name: &str, pref: u16, exchange: &str) -> Self {
        self.records(name).mx.push(Mx {
            preference: pref,
            exchange: exchange.to_owned(),
        });
        self
    }

    pub fn ptr(mut self, ip: IpAddr, name: &str) -> Self {
        self.records(&reverse_name(ip)).ptr.push(name.to_owned());
        self
    }

    /// Every query for `name` (a domain, a reverse name, or an IP address for PTR queries)
    /// answers Temporary, as a SERVFAIL or a timeout would.
    pub fn fail(mut self, name: &str) -> Self {
        let key = match name.parse::<IpAddr>() {
            Ok(ip) => reverse_name(ip),
            Err(_) => normalize(name),
        };
        self.failing.insert(key);
        self
    }

    fn answer<T: Clone>(
        &self,
        name: &str,
        pick: impl Fn(&Records) -> &Vec<T>,
    ) -> Result<Vec<T>, DnsFailure> {
        let key = normalize(name);
        if self.failing.contains(&key) {
            return Err(DnsFailure::Temporary(format!(
                "lookup of {key} failed (StaticDns::fail)"
            )));
        }
        let records = self.names.get(&key).ok_or(DnsFailure::NoSuchDomain)?;
        let found = pick(records);
        if found.is_empty() {
            Err(DnsFailure::NoRecords)
        } else {
            Ok(found.clone())
        }
    }
}

impl DnsBackend for StaticDns {
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Vec<u8>>, DnsFailure>> {
        Box::pin(std::future::ready(self.answer(name, |r| &r.txt)))
    }
    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsFailure>> {
        Box::pin(std::future::ready(self.answer(name, |r| &r.a)))
    }
    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, DnsFailure>> {
        Box::pin(std::future::ready(self.answer(name, |r| &r.aaaa)))
    }
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Mx>, DnsFailure>> {
        Box::pin(std::future::ready(self.answer(name, |r| &r.mx)))
    }
    fn ptr<'a>(&'a self, addr: IpAddr) -> BoxFuture<'a, Result<Vec<String>, DnsFailure>> {
        Box::pin(std::future::ready(
            self.answer(&reverse_name(addr), |r| &r.ptr),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_support::block_on;

    fn fixture() -> StaticDns {
        StaticDns::new()
            .txt("example.com", "v=spf1 -all")
            .txt("Example.COM.", "google-site-verification=x")
            .a("mail.example.com", Ipv4Addr::new(192, 0, 2, 25))
            .a("mail.example.com", Ipv4Addr::new(192, 0, 2, 26))
            .aaaa("mail.example.com", "2001:db8::25".parse().unwrap())
            .mx("example.com", 20, "backup.example.com")
            .mx("example.com", 10, "mail.example.com")
            .ptr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25)), "mail.example.com")
            .ptr("2001:db8::25".parse().unwrap(), "mail6.example.com")
            .a("broken.example", Ipv4Addr::new(192, 0, 2, 1))
            .fail("BROKEN.example.")
            .fail("198.51.100.7")
    }

    #[test]
    fn names_match_case_insensitively_and_ignore_the_trailing_dot() {
        let fixture = fixture();
        let dns: &dyn DnsBackend = &fixture;
        let want = vec![
            b"v=spf1 -all".to_vec(),
            b"google-site-verification=x".to_vec(),
        ];
        assert_eq!(block_on(dns.txt("example.com")), Ok(want.clone()));
        assert_eq!(block_on(dns.txt("EXAMPLE.com.")), Ok(want));
        assert_eq!(
            block_on(dns.ipv4("Mail.Example.Com.")),
            Ok(vec![
                Ipv4Addr::new(192, 0, 2, 25),
                Ipv4Addr::new(192, 0, 2, 26)
            ])
        );
        assert_eq!(
            block_on(dns.ipv6("mail.example.com")),
            Ok(vec!["2001:db8::25".parse::<Ipv6Addr>().unwrap()])
        );
    }

    #[test]
    fn mx_answers_keep_the_order_they_were_added_in() {
        let fixture = fixture();
        let dns: &dyn DnsBackend = &fixture;
        assert_eq!(
            block_on(dns.mx("example.com")),
            Ok(vec![
                Mx {
                    preference: 20,
                    exchange: "backup.example.com".into()
                },
                Mx {
                    preference: 10,
                    exchange: "mail.example.com".into()
                },
            ])
        );
    }

    #[test]
    fn unknown_name_is_nxdomain_and_a_name_without_that_type_is_nodata() {
        let fixture = fixture();
        let dns: &dyn DnsBackend = &fixture;
        assert_eq!(
            block_on(dns.txt("nowhere.example")),
            Err(DnsFailure::NoSuchDomain)
        );
        assert_eq!(
            block_on(dns.mx("mail.example.com")),
            Err(DnsFailure::NoRecords)
        );
        assert_eq!(
            block_on(dns.ipv6("example.com")),
            Err(DnsFailure::NoRecords)
        );
    }

    #[test]
    fn ptr_looks_up_the_reverse_name() {
        let fixture = fixture();
        let dns: &dyn DnsBackend = &fixture;
        assert_eq!(
            block_on(dns.ptr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25)))),
            Ok(vec!["mail.example.com".to_owned()])
        );
        assert_eq!(
            block_on(dns.ptr("2001:db8::25".parse().unwrap())),
            Ok(vec!["mail6.example.com".to_owned()])
        );
        assert_eq!(
            block_on(dns.ptr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)))),
            Err(DnsFailure::NoSuchDomain)
        );
        // The reverse name is an ordinary name: it has PTR records and nothing else.
        assert_eq!(
            block_on(dns.txt("25.2.0.192.in-addr.arpa")),
            Err(DnsFailure::NoRecords)
        );
    }

    #[test]
    fn reverse_names_follow_rfc_1035_and_rfc_3596() {
        assert_eq!(
            reverse_name(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn failing_names_answer_temporary_for_every_type() {
        let fixture = fixture();
        let dns: &dyn DnsBackend = &fixture;
        for result in [
            block_on(dns.ipv4("broken.example")).map(|_| ()),
            block_on(dns.txt("broken.example")).map(|_| ()),
            block_on(dns.mx("Broken.Example.")).map(|_| ()),
            block_on(dns.ptr("198.51.100.7".parse().unwrap())).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(DnsFailure::Temporary(_))),
                "{result:?}"
            );
        }
    }

    #[test]
    fn no_dns_defers_every_query() {
        let want = Err(DnsFailure::Temporary(NO_RESOLVER.to_owned()));
        assert_eq!(
            block_on(NoDns.txt("example.com")),
            want.clone().map(|()| vec![])
        );
        assert_eq!(
            block_on(NoDns.ipv4("example.com")),
            want.clone().map(|()| vec![])
        );
        assert_eq!(
            block_on(NoDns.ipv6("example.com")),
            want.clone().map(|()| vec![])
        );
        assert_eq!(
            block_on(NoDns.mx("example.com")),
            want.clone().map(|()| vec![])
        );
        assert_eq!(
            block_on(NoDns.ptr(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            want.map(|()| vec![])
        );
    }
}
