//! Scalar value syntax shared by main.cf parameters: times, sizes, booleans, lists, CIDR
//! networks and the `smtpd_forbid_bare_newline` setting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Parse a Postfix time value (postconf(5) "time units"): a non-negative decimal number with an
/// optional one-letter unit `s` (seconds), `m` (minutes), `h` (hours), `d` (days) or `w`
/// (weeks). Without a unit, `default_unit` applies; each parameter has its own default unit
/// (e.g. `d` for `maximal_queue_lifetime`, `s` for `minimal_backoff_time`). Units are lowercase
/// only, as in Postfix. Returns `None` for anything else (negative numbers, unknown units,
/// overflow, or an invalid `default_unit`).
pub fn parse_time(value: &str, default_unit: char) -> Option<Duration> {
    let value = value.trim();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    if number.is_empty() {
        return None;
    }
    let unit = match unit {
        "" => default_unit,
        u if u.chars().count() == 1 => u.chars().next()?,
        _ => return None,
    };
    let multiplier: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let n: u64 = number.parse().ok()?;
    Some(Duration::from_secs(n.checked_mul(multiplier)?))
}

/// Parse a size in bytes: a plain non-negative decimal integer (postconf(5) sizes have no unit
/// suffixes; `10MB` is invalid).
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Parse a Postfix boolean: `yes` or `no`, case-insensitively (as Postfix does).
pub fn parse_bool(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if value.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// Split a Postfix list value: elements are separated by commas and/or whitespace (including
/// newlines from continuation lines); empty elements are dropped. A `{…}` group stays one
/// element, separators and all (Postfix `mystrtokq`): `hash:/a, inline:{ a=b, c=d }` is two
/// elements, the second `inline:{ a=b, c=d }`.
pub fn parse_list(value: &str) -> Vec<String> {
    split_braced(value, |c| c == ',' || c.is_whitespace())
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Tokens separated by `is_sep` characters outside `{…}` groups (Postfix `mystrtokq`); a group
/// stays inside its token, braces included.
pub fn split_braced(value: &str, is_sep: impl Fn(char) -> bool) -> Vec<&str> {
    let mut out = Vec::new();
    let mut level = 0usize;
    let mut start: Option<usize> = None;
    for (i, c) in value.char_indices() {
        if start.is_none() {
            if is_sep(c) {
                continue;
            }
            start = Some(i);
        }
        if c == '{' {
            level += 1;
        } else if c == '}' && level > 0 {
            level -= 1;
        } else if level == 0 && is_sep(c) {
            if let Some(s) = start.take() {
                out.push(&value[s..i]);
            }
        }
    }
    if let Some(s) = start {
        out.push(&value[s..]);
    }
    out
}

/// Parse a `dns_nameservers` entry: an IP address with an optional port, as `192.0.2.1`,
/// `192.0.2.1:5353`, `::1`, `[::1]` or `[::1]:5353`. The port defaults to 53.
pub fn parse_nameserver(value: &str) -> Option<std::net::SocketAddr> {
    let value = value.trim();
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 53));
    }
    if let Ok(sa) = value.parse::<std::net::SocketAddr>() {
        return Some(sa);
    }
    let inner = value.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(IpAddr::V6(ip), 53))
}

/// `smtpd_forbid_bare_newline`: the protocol crate's type, so a parsed value needs no
/// translation. Postern's default is `reject` while Postfix 3.9's is `normalize`: Postern refuses
/// ambiguous line endings from untrusted clients unless configured otherwise.
pub use postern_proto::BareNewline;

/// An IPv4/IPv6 network in CIDR form; a bare address is a /32 or /128.
///
/// Accepts the Postfix `mynetworks` spellings `127.0.0.0/8`, `[::1]/128`, `[fe80::]/10`,
/// `192.168.1.5`, `[::1]`, and also unbracketed IPv6 (`::1/128`). As in Postfix, an address with
/// non-zero host bits (`192.168.1.5/24`) is rejected. Table references (`hash:/path`),
/// `/file/name` patterns and `!` exclusions are not networks; the config loader reports them as
/// invalid values with a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse one network; `None` if it is not a valid CIDR block.
    pub fn parse(s: &str) -> Option<Cidr> {
        Cidr::parse_checked(s).ok()
    }

    /// Parse one network, or explain why it is not one (used for hints).
    pub(crate) fn parse_checked(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr_part, prefix_part) = match s.rsplit_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr_text = addr_part
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr_part);
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("\"{addr_text}\" is not an IP address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_part {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "the prefix length must be a number from 0 to {max}"
                    ))
                }
            },
        };
        let network = mask(addr, prefix);
        if network != addr {
            let shown = match network {
                IpAddr::V4(a) => format!("{a}/{prefix}"),
                IpAddr::V6(a) => format!("[{a}]/{prefix}"),
            };
            return Err(format!(
                "non-null host address bits in \"{s}\", perhaps you should use \"{shown}\" instead"
            ));
        }
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` lies in this network. IPv4-mapped IPv6 clients (`::ffff:1.2.3.4`) match
    /// IPv4 networks, and IPv4 clients match IPv4-mapped IPv6 networks (`[::ffff:127.0.0.0]/104`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self.network {
            IpAddr::V4(_) => {
                let v4 = match ip {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => match a.to_ipv4_mapped() {
                        Some(a) => a,
                        None => return false,
                    },
                };
                mask(IpAddr::V4(v4), self.prefix) == self.network
            }
            IpAddr::V6(_) => {
                let v6 = match ip {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                mask(IpAddr::V6(v6), self.prefix) == self.network
            }
        }
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    /// Postfix style: `127.0.0.0/8`, `[::1]/128`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.network {
            IpAddr::V4(a) => write!(f, "{a}/{}", self.prefix),
            IpAddr::V6(a) => write!(f, "[{a}]/{}", self.prefix),
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("300s", 's'), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("300", 's'), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("5d", 's'), Some(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_time("5", 'd'), Some(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_time("0h", 'h'), Some(Duration::ZERO));
        assert_eq!(parse_time("2w", 's'), Some(Duration::from_secs(1_209_600)));
        assert_eq!(parse_time("10m", 's'), Some(Duration::from_secs(600)));
        assert_eq!(parse_time(" 1h ", 's'), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("-5s", 's'), None);
        assert_eq!(parse_time("5x", 's'), None);
        assert_eq!(parse_time("5 days", 's'), None);
        assert_eq!(parse_time("5D", 's'), None);
        assert_eq!(parse_time("s", 's'), None);
        assert_eq!(parse_time("", 's'), None);
        assert_eq!(parse_time("5", 'q'), None);
        assert_eq!(parse_time("99999999999999999999w", 's'), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10240000"), Some(10_240_000));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("10MB"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("+1"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("yes"), Some(true));
        assert_eq!(parse_bool("NO"), Some(false));
        assert_eq!(parse_bool("true"), None);
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("$myhostname, localhost.$mydomain, $mydomain"),
            vec!["$myhostname", "localhost.$mydomain", "$mydomain"]
        );
        assert_eq!(
            parse_list("permit_mynetworks permit_sasl_authenticated,,\n\tdefer_unauth_destination"),
            vec![
                "permit_mynetworks",
                "permit_sasl_authenticated",
                "defer_unauth_destination"
            ]
        );
        assert!(parse_list("  ,  ").is_empty());
        assert_eq!(
            parse_list("hash:/a, inline:{ a=b, { c = d e } },static:{x y}"),
            ["hash:/a", "inline:{ a=b, { c = d e } }", "static:{x y}"]
        );
        assert_eq!(
            parse_list("check_policy_service { inet:127.0.0.1:9998, timeout=10s }, permit"),
            [
                "check_policy_service",
                "{ inet:127.0.0.1:9998, timeout=10s }",
                "permit"
            ]
        );
    }

    #[test]
    fn bare_newline() {
        assert_eq!(BareNewline::parse("reject"), Some(BareNewline::Reject));
        assert_eq!(
            BareNewline::parse("normalize"),
            Some(BareNewline::Normalize)
        );
        assert_eq!(BareNewline::parse("yes"), Some(BareNewline::Normalize));
        assert_eq!(BareNewline::parse("no"), Some(BareNewline::Allow));
        assert_eq!(BareNewline::parse("maybe"), None);
    }

    #[test]
    fn cidr_parse_and_display() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert_eq!(c.to_string(), "127.0.0.0/8");
        assert_eq!(Cidr::parse("[::1]/128").unwrap().to_string(), "[::1]/128");
        assert_eq!(Cidr::parse("[fe80::]/10").unwrap().prefix_len(), 10);
        assert_eq!(
            Cidr::parse("192.168.1.5").unwrap().to_string(),
            "192.168.1.5/32"
        );
        assert_eq!(Cidr::parse("[::1]").unwrap().prefix_len(), 128);
        assert_eq!(Cidr::parse("::1/128").unwrap().to_string(), "[::1]/128");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix_len(), 0);
        assert!(Cidr::parse("192.168.1.5/24").is_none());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0.0/+8").is_none());
        assert!(Cidr::parse("hash:/etc/postfix/network_table").is_none());
        assert!(Cidr::parse("example.com").is_none());
        let err = Cidr::parse_checked("192.168.1.5/24").unwrap_err();
        assert!(err.contains("192.168.1.0/24"), "{err}");
    }

    #[test]
    fn cidr_contains() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(lo.contains("127.255.0.1".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("[::1]/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        let ll = Cidr::parse("[fe80::]/10").unwrap();
        assert!(ll.contains("fe80::1234".parse().unwrap()));
        assert!(!ll.contains("fec0::1".parse().unwrap()));
        let mapped = Cidr::parse("[::ffff:127.0.0.0]/104").unwrap();
        assert!(mapped.contains("127.0.0.1".parse().unwrap()));
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("203.0.113.9".parse().unwrap()));
        let host = Cidr::parse("192.168.1.5").unwrap();
        assert!(host.contains("192.168.1.5".parse().unwrap()));
        assert!(!host.contains("192.168.1.6".parse().unwrap()));
    }
}
