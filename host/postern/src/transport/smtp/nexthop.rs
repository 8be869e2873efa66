//! Next-hop syntax of the smtp client (postconf(5) `relayhost`, transport(5) next hops).
//!
//! `domain` and `domain:port` deliver to the MX hosts of `domain`; `[host]` and `[host]:port`
//! suppress the MX lookup and connect to `host`'s own addresses (or to the IP address written
//! inside the brackets, IPv6 with or without Postfix's `ipv6:` prefix). The port is a number or
//! the service name `smtp`; the default is 25.

use std::net::IpAddr;

/// The SMTP port (RFC 5321 §4.5.4.2 names it; Postfix's `smtp` service).
pub const SMTP_PORT: u16 = 25;

/// A parsed next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nexthop {
    /// Host or domain name, lower case, without brackets or a trailing dot; or an IP literal.
    pub host: String,
    pub port: u16,
    /// Look up MX records (no brackets were written).
    pub mx: bool,
}

impl Nexthop {
    /// The IP address when the host is an address literal.
    pub fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Parses `[host]:port`, `[host]`, `host:port` or `host`. `None` for text that is none of these
/// (empty host, bad port, an unclosed bracket).
pub fn parse(text: &str) -> Option<Nexthop> {
    let text = text.trim();
    let (host, port, mx) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        let host = strip_ipv6_prefix(host);
        (host, port, false)
    } else if text.parse::<IpAddr>().is_ok() {
        // A bare IPv6 address would otherwise split at its last colon.
        (text, None, true)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p), true),
            None => (text, None, true),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port = match port {
        None => SMTP_PORT,
        Some(p) if p.eq_ignore_ascii_case("smtp") => SMTP_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
    };
    // An IP address never has MX records.
    let mx = mx && host.parse::<IpAddr>().is_err();
    Some(Nexthop { host, port, mx })
}

fn strip_ipv6_prefix(host: &str) -> &str {
    match host.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => &host[5..],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(host: &str, port: u16, mx: bool) -> Option<Nexthop> {
        Some(Nexthop {
            host: host.into(),
            port,
            mx,
        })
    }

    #[test]
    fn forms() {
        assert_eq!(parse("example.com"), hop("example.com", 25, true));
        assert_eq!(parse("Example.COM."), hop("example.com", 25, true));
        assert_eq!(parse("example.com:2525"), hop("example.com", 2525, true));
        assert_eq!(
            parse("[mail.example.com]"),
            hop("mail.example.com", 25, false)
        );
        assert_eq!(
            parse("[mail.example.com]:587"),
            hop("mail.example.com", 587, false)
        );
        assert_eq!(parse("[127.0.0.1]:10025"), hop("127.0.0.1", 10025, false));
        assert_eq!(
            parse("[ipv6:2001:db8::1]:25"),
            hop("2001:db8::1", 25, false)
        );
        assert_eq!(parse("[::1]"), hop("::1", 25, false));
        assert_eq!(parse("[mx.example]:smtp"), hop("mx.example", 25, false));
        assert_eq!(parse("192.0.2.7"), hop("192.0.2.7", 25, false));
        assert_eq!(
            parse("[127.0.0.1]:10025").and_then(|h| h.literal()),
            "127.0.0.1".parse().ok()
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "", "[]", "[x", "[x]25", "x:0", "x:99999", "x:abc", ":25", "a b",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
