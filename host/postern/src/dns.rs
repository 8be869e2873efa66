//! DNS lookups for smtpd: client host names (PTR + forward confirmation) and the DNS-based
//! restrictions (`reject_rbl_client`, `reject_unknown_sender_domain`, …).
//!
//! # Layout
//! [`Resolver`] is the trait the restrictions use; [`Answer`] keeps apart the outcomes that
//! Postfix treats differently: a name that does not exist (NXDOMAIN), a name without records
//! of the type asked for, and a failure to get an answer at all (which must defer, never
//! permit or reject). [`HickoryResolver`] implements it with `hickory-resolver`, asking the
//! servers of `dns_nameservers` (Postern-specific; tests point it at a loopback server) or of
//! `/etc/resolv.conf`, each query bounded by `dns_timeout`. Tests of the restrictions use
//! [`StaticResolver`], a table of recorded answers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType as HRecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use postern_config::Config;

/// The record types smtpd asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Mx,
    Txt,
    Ptr,
}

/// The outcome of one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The records in presentation form: `192.0.2.1`, `2001:db8::1`, `10 mx.example.`, the
    /// TXT strings concatenated, `host.example.` (names end with a dot).
    Records(Vec<String>),
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// The name exists but has no records of this type (NODATA).
    NoRecords,
    /// No usable answer (timeout, SERVFAIL, no server reachable): try again later.
    TempFail(String),
}

impl Answer {
    pub fn records(&self) -> &[String] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }
}

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// An asynchronous DNS resolver.
pub trait Resolver: Send + Sync + fmt::Debug {
    fn lookup<'a>(&'a self, name: &'a str, rtype: RecordType) -> Lookup<'a>;
}

/// `hickory-resolver` with Postern's settings.
pub struct HickoryResolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HickoryResolver {
    /// A resolver for `dns_nameservers` (`ip`, `ip:port`, `[ipv6]:port`; port 53 by default)
    /// or, when that is empty, the system's `/etc/resolv.conf`.
    pub fn new(cfg: &Config) -> Result<HickoryResolver, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.dns_timeout;
        opts.attempts = 2;
        // Blocklist answers change; Postfix relies on the local caching server, not its own.
        opts.cache_size = 0;
        opts.ndots = 0;
        let builder = if cfg.dns_nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("/etc/resolv.conf: {e}"))?
        } else {
            // Only the servers named: /etc/hosts would answer for loopback addresses.
            opts.use_hosts_file = ResolveHosts::Never;
            let mut rc = ResolverConfig::new();
            for ns in &cfg.dns_nameservers {
                let addr = parse_nameserver(ns)
                    .ok_or_else(|| format!("dns_nameservers: bad address \"{ns}\""))?;
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
        };
        Ok(HickoryResolver {
            inner: builder.with_options(opts).build(),
            timeout: cfg.dns_timeout,
        })
    }
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Absolute form of `name` so that no search domain is appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl Resolver for HickoryResolver {
    fn lookup<'a>(&'a self, name: &'a str, rtype: RecordType) -> Lookup<'a> {
        Box::pin(async move {
            let htype = match rtype {
                RecordType::A => HRecordType::A,
                RecordType::Aaaa => HRecordType::AAAA,
                RecordType::Mx => HRecordType::MX,
                RecordType::Txt => HRecordType::TXT,
                RecordType::Ptr => HRecordType::PTR,
            };
            // hickory bounds each attempt; this bounds the whole lookup.
            let limit = self.timeout.saturating_mul(3);
            let result = tokio::time::timeout(limit, self.inner.lookup(fqdn(name), htype)).await;
            let lookup = match result {
                Err(_) => return Answer::TempFail(format!("{name}: timeout")),
                Ok(Err(e)) if e.is_nx_domain() => return Answer::NxDomain,
                Ok(Err(e)) if e.is_no_records_found() => return Answer::NoRecords,
                Ok(Err(e)) => return Answer::TempFail(format!("{name}: {e}")),
                Ok(Ok(l)) => l,
            };
            let records: Vec<String> = lookup.iter().filter_map(present).collect();
            if records.is_empty() {
                Answer::NoRecords
            } else {
                Answer::Records(records)
            }
        })
    }
}

fn present(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::MX(mx) => format!("{} {}", mx.preference(), mx.exchange()),
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        RData::PTR(ptr) => ptr.0.to_string(),
        _ => return None,
    })
}

/// Recorded answers for tests: anything not listed is NXDOMAIN.
#[derive(Debug, Default)]
pub struct StaticResolver {
    answers: HashMap<(String, RecordType), Answer>,
}

impl StaticResolver {
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    /// Adds an answer (the name without the trailing dot, lower case).
    pub fn with(mut self, name: &str, rtype: RecordType, answer: Answer) -> StaticResolver {
        self.answers.insert(
            (name.trim_end_matches('.').to_ascii_lowercase(), rtype),
            answer,
        );
        self
    }
}

impl Resolver for StaticResolver {
    fn lookup<'a>(&'a self, name: &'a str, rtype: RecordType) -> Lookup<'a> {
        let key = (name.trim_end_matches('.').to_ascii_lowercase(), rtype);
        let answer = match self.answers.get(&key) {
            Some(a) => a.clone(),
            None if self.answers.keys().any(|(n, _)| *n == key.0) => Answer::NoRecords,
            None => Answer::NxDomain,
        };
        Box::pin(async move { answer })
    }
}

/// The resolver for a configuration, or `None` (logged) when none can be made: DNS-based
/// checks then defer with a temporary failure.
pub fn resolver_for(cfg: &Config) -> Option<Arc<dyn Resolver>> {
    match HickoryResolver::new(cfg) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            crate::warn!("smtpd", "DNS resolver unavailable: {e}");
            None
        }
    }
}

/// The name under which a DNS list publishes `addr` (`4.3.2.1.zen.example` for 1.2.3.4;
/// nibbles for IPv6, RFC 5782 §2.4).
pub fn reverse_name(addr: IpAddr, domain: &str) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{domain}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str(domain);
            out
        }
    }
}

/// The verified and the unverified client name (Postfix `client_name`,
/// `reverse_client_name`): the PTR name, kept as verified only when one of its addresses is
/// the client's (forward-confirmed). `unknown` when there is none.
pub async fn client_names(resolver: &dyn Resolver, addr: IpAddr) -> (String, String) {
    let unknown = || "unknown".to_string();
    let ptr_name = reverse_name(addr, ptr_zone(addr));
    let ptr = resolver.lookup(&ptr_name, RecordType::Ptr).await;
    let Some(name) = ptr.records().first().cloned() else {
        return (unknown(), unknown());
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let rtype = if addr.is_ipv4() {
        RecordType::A
    } else {
        RecordType::Aaaa
    };
    let forward = resolver.lookup(&name, rtype).await;
    let confirmed = forward
        .records()
        .iter()
        .any(|r| r.parse::<IpAddr>().is_ok_and(|ip| ip == addr));
    if confirmed {
        (name.clone(), name)
    } else {
        (unknown(), name)
    }
}

fn ptr_zone(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "in-addr.arpa"
    } else {
        "ip6.arpa"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(reverse_name(v4, "zen.example"), "1.2.0.192.zen.example");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(reverse_name(v6, "ip6.arpa").starts_with("1.0.0.0.0.0.0.0"));
        assert!(reverse_name(v6, "ip6.arpa").ends_with("8.b.d.0.1.0.0.2.ip6.arpa"));
    }

    #[test]
    fn nameserver_addresses() {
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            "127.0.0.1:5353".parse().ok()
        );
        assert_eq!(parse_nameserver("::1"), "[::1]:53".parse().ok());
        assert_eq!(parse_nameserver("[::1]"), "[::1]:53".parse().ok());
        assert_eq!(parse_nameserver("x"), None);
    }

    #[tokio::test]
    async fn client_names_are_forward_confirmed() {
        let r = StaticResolver::new()
            .with(
                "1.2.0.192.in-addr.arpa",
                RecordType::Ptr,
                Answer::Records(vec!["mail.example.org.".into()]),
            )
            .with(
                "mail.example.org",
                RecordType::A,
                Answer::Records(vec!["192.0.2.1".into()]),
            )
            .with(
                "2.2.0.192.in-addr.arpa",
                RecordType::Ptr,
                Answer::Records(vec!["liar.example.org.".into()]),
            );
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            client_names(&r, ip("192.0.2.1")).await,
            ("mail.example.org".into(), "mail.example.org".into())
        );
        assert_eq!(
            client_names(&r, ip("192.0.2.2")).await,
            ("unknown".into(), "liar.example.org".into())
        );
        assert_eq!(
            client_names(&r, ip("192.0.2.3")).await,
            ("unknown".into(), "unknown".into())
        );
    }
}
