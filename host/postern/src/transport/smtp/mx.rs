//! From a next hop to the list of addresses to try, in order (Postfix smtp_addr.c).
//!
//! MX records are sorted by preference, with a random order among equal preferences (RFC 5321
//! §5.1) so load spreads over equal MX hosts. A domain without MX records is its own mail host
//! (the "implicit MX", §5.1). A null MX (`0 .`, RFC 7505) means the domain accepts no mail: the
//! recipient is bounced with 5.1.10 at once. A name that does not exist bounces (5.4.4, as
//! Postfix's "Host or domain name not found"); a DNS failure defers (4.4.3), never bounces.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use postern_proto::EnhancedCode;

use super::nexthop::Nexthop;
use crate::dns::{Answer, RecordType, Resolver};
use crate::transport::Outcome;

/// At most this many addresses are tried per delivery (Postfix `smtp_mx_address_limit` default):
/// a long list of dead hosts would otherwise hold the delivery slot for many connect timeouts.
pub const ADDRESS_LIMIT: usize = 5;

/// One address to connect to, with the name it was found under (for `relay=name[addr]:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub addr: IpAddr,
}

/// Which address families `inet_protocols` allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    pub fn from_inet_protocols(list: &[String]) -> Families {
        let has = |w: &str| list.iter().any(|p| p.eq_ignore_ascii_case(w));
        if list.is_empty() || has("all") {
            return Families {
                ipv4: true,
                ipv6: true,
            };
        }
        Families {
            ipv4: has("ipv4"),
            ipv6: has("ipv6"),
        }
    }

    fn allows(&self, addr: &IpAddr) -> bool {
        match addr {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// The addresses to try for `hop`, best first, or the outcome for every recipient when there
/// is nothing to try. `resolver` may be `None` only when the next hop is an address literal.
pub async fn hosts(
    resolver: Option<&dyn Resolver>,
    hop: &Nexthop,
    families: Families,
) -> Result<Vec<Host>, Outcome> {
    if let Some(addr) = hop.literal() {
        return Ok(vec![Host {
            name: hop.host.clone(),
            addr,
        }]);
    }
    let Some(resolver) = resolver else {
        return Err(defer_dns("DNS resolver unavailable"));
    };
    let names = if hop.mx {
        match resolver.lookup(&hop.host, RecordType::Mx).await {
            Answer::Records(records) => {
                order(&records, random_seed()).map_err(|NullMx| null_mx())?
            }
            Answer::NoRecords => vec![hop.host.clone()],
            Answer::NxDomain => return Err(not_found(&hop.host, "MX")),
            Answer::TempFail(_) => return Err(try_again(&hop.host, "MX")),
        }
    } else {
        vec![hop.host.clone()]
    };
    let mut hosts = Vec::new();
    let mut failure = None;
    for name in &names {
        match addresses(resolver, name, families).await {
            Ok(addrs) => hosts.extend(addrs.into_iter().map(|addr| Host {
                name: name.clone(),
                addr,
            })),
            // Keep the first failure; a temporary one wins over a permanent one, so that a
            // DNS hiccup on one MX host never turns into a bounce.
            Err(o) => match &failure {
                Some(f) if is_temp(f) => {}
                _ if failure.is_none() || is_temp(&o) => failure = Some(o),
                _ => {}
            },
        }
        if hosts.len() >= ADDRESS_LIMIT {
            break;
        }
    }
    hosts.truncate(ADDRESS_LIMIT);
    match (hosts.is_empty(), failure) {
        (false, _) => Ok(hosts),
        (true, Some(f)) => Err(f),
        (true, None) => Err(defer_dns("no usable addresses for the mail hosts")),
    }
}

fn is_temp(o: &Outcome) -> bool {
    o.is_deferred()
}

/// A/AAAA addresses of one host name, as `inet_protocols` allows.
async fn addresses(
    resolver: &dyn Resolver,
    name: &str,
    families: Families,
) -> Result<Vec<IpAddr>, Outcome> {
    let mut out = Vec::new();
    let mut temp = false;
    let mut last = ("A", Answer::NxDomain);
    let mut kinds = Vec::new();
    if families.ipv4 {
        kinds.push((RecordType::A, "A"));
    }
    if families.ipv6 {
        kinds.push((RecordType::Aaaa, "AAAA"));
    }
    for (rtype, label) in kinds {
        let answer = resolver.lookup(name, rtype).await;
        match &answer {
            Answer::Records(r) => out.extend(
                r.iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .filter(|a| families.allows(a)),
            ),
            Answer::TempFail(_) => temp = true,
            _ => {}
        }
        last = (label, answer);
    }
    if !out.is_empty() {
        return Ok(out);
    }
    if temp {
        return Err(try_again(name, last.0));
    }
    Err(not_found(name, last.0))
}

/// The domain publishes a null MX (RFC 7505): it accepts no mail at all.
#[derive(Debug, PartialEq, Eq)]
pub struct NullMx;

/// The MX names of `records` (`"10 mx.example."`) by preference, equal preferences in an order
/// drawn from `seed`, duplicates dropped.
pub fn order(records: &[String], seed: u64) -> Result<Vec<String>, NullMx> {
    let mut mx: Vec<(u16, String)> = records
        .iter()
        .filter_map(|r| {
            let (pref, name) = r.trim().split_once(' ')?;
            Some((pref.parse().ok()?, name.trim().to_string()))
        })
        .collect();
    // RFC 7505 §3: a null MX is the only record; be strict about "." anywhere, as Postfix is.
    if mx.iter().any(|(_, n)| n == "." || n.is_empty()) {
        return Err(NullMx);
    }
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64: only used to break ties between equal preferences.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut keyed: Vec<(u16, u64, String)> = mx
        .drain(..)
        .map(|(p, n)| (p, next(), n.trim_end_matches('.').to_ascii_lowercase()))
        .collect();
    keyed.sort();
    let mut names: Vec<String> = Vec::new();
    for (_, _, n) in keyed {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(names)
}

fn random_seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(crate::time::now_micros() as u128);
    h.finish()
}

fn null_mx() -> Outcome {
    Outcome::bounce(
        EnhancedCode::new(5, 1, 10),
        "none",
        "Recipient address has null MX",
    )
}

fn not_found(name: &str, rtype: &str) -> Outcome {
    Outcome::bounce(
        EnhancedCode::new(5, 4, 4),
        "none",
        format!(
            "Host or domain name not found. Name service error for name={name} type={rtype}: \
             Host not found"
        ),
    )
}

fn try_again(name: &str, rtype: &str) -> Outcome {
    defer_dns(&format!(
        "Host or domain name not found. Name service error for name={name} type={rtype}: \
         Host not found, try again"
    ))
}

fn defer_dns(text: &str) -> Outcome {
    Outcome::defer(EnhancedCode::new(4, 4, 3), "none", text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticResolver;

    fn recs(r: &[&str]) -> Answer {
        Answer::Records(r.iter().map(|s| s.to_string()).collect())
    }

    fn mx_hop(host: &str) -> Nexthop {
        Nexthop {
            host: host.into(),
            port: 25,
            mx: true,
        }
    }

    const ALL: Families = Families {
        ipv4: true,
        ipv6: true,
    };

    #[test]
    fn preference_order_with_shuffled_ties() {
        let records: Vec<String> = ["20 c.example.", "10 a.example.", "10 b.example.", "30 d."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut seen_first = std::collections::HashSet::new();
        for seed in 0..64u64 {
            let names = order(&records, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).unwrap();
            assert_eq!(names.len(), 4);
            assert!(names[..2].contains(&"a.example".to_string()));
            assert!(names[..2].contains(&"b.example".to_string()));
            assert_eq!(names[2], "c.example");
            assert_eq!(names[3], "d");
            seen_first.insert(names[0].clone());
        }
        assert_eq!(seen_first.len(), 2, "equal preferences are never shuffled");
    }

    #[test]
    fn null_mx_is_recognised() {
        assert_eq!(order(&["0 .".to_string()], 1), Err(NullMx));
    }

    #[tokio::test]
    async fn mx_hosts_then_addresses() {
        let r = StaticResolver::new()
            .with(
                "example.org",
                RecordType::Mx,
                recs(&["20 mx2.example.org.", "10 mx1.example.org."]),
            )
            .with("mx1.example.org", RecordType::A, recs(&["192.0.2.1"]))
            .with("mx1.example.org", RecordType::Aaaa, recs(&["2001:db8::1"]))
            .with("mx2.example.org", RecordType::A, recs(&["192.0.2.2"]));
        let hosts = hosts(Some(&r), &mx_hop("example.org"), ALL).await.unwrap();
        let got: Vec<String> = hosts
            .iter()
            .map(|h| format!("{}[{}]", h.name, h.addr))
            .collect();
        assert_eq!(
            got,
            [
                "mx1.example.org[192.0.2.1]",
                "mx1.example.org[2001:db8::1]",
                "mx2.example.org[192.0.2.2]"
            ]
        );
        let v4 = Families {
            ipv4: true,
            ipv6: false,
        };
        let hosts = super::hosts(Some(&r), &mx_hop("example.org"), v4)
            .await
            .unwrap();
        assert_eq!(hosts.len(), 2);
    }

    #[tokio::test]
    async fn no_mx_falls_back_to_the_domain_address() {
        let r = StaticResolver::new().with("example.net", RecordType::A, recs(&["192.0.2.9"]));
        let hosts = hosts(Some(&r), &mx_hop("example.net"), ALL).await.unwrap();
        assert_eq!(hosts[0].name, "example.net");
        assert_eq!(hosts[0].addr.to_string(), "192.0.2.9");
    }

    #[tokio::test]
    async fn dns_failures_bounce_or_defer() {
        let r = StaticResolver::new()
            .with("null.example", RecordType::Mx, recs(&["0 ."]))
            .with(
                "flaky.example",
                RecordType::Mx,
                Answer::TempFail("timeout".into()),
            );
        let o = hosts(Some(&r), &mx_hop("null.example"), ALL)
            .await
            .unwrap_err();
        assert_eq!(
            (o.status.to_string(), o.text.as_str()),
            ("5.1.10".into(), "Recipient address has null MX")
        );
        let o = hosts(Some(&r), &mx_hop("nowhere.example"), ALL)
            .await
            .unwrap_err();
        assert_eq!(o.status.to_string(), "5.4.4");
        assert!(
            o.text.starts_with("Host or domain name not found"),
            "{}",
            o.text
        );
        let o = hosts(Some(&r), &mx_hop("flaky.example"), ALL)
            .await
            .unwrap_err();
        assert_eq!(o.status.to_string(), "4.4.3");
        assert!(o.is_deferred());
    }
}
