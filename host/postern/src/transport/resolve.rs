//! Recipient routing: Postfix trivial-rewrite(8)'s "resolve" step.
//!
//! Address classes, in Postfix's order (ADDRESS_CLASS_README):
//! 1. *local* — the domain is empty or listed in `mydestination` → `local_transport`
//!    (default `local:$myhostname`);
//! 2. *relay* — the domain or one of its parents is in `relay_domains` → `relay` (smtp), next hop
//!    `relayhost` when set, else the domain;
//! 3. *default* — anything else → `default_transport` (default `smtp`).
//!
//! Next hop precedence follows postconf(5) `default_transport`: the one written in the transport
//! (`smtp:[mx.example]`), then `relayhost`, then the recipient domain.
//! `transport_maps`, virtual alias and virtual mailbox domains are not implemented yet.

use postern_config::Config;

use super::Transport;

/// Where one recipient goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub transport: Transport,
    /// Next hop: a host for smtp, the text for discard/error, `$myhostname` for local.
    pub nexthop: String,
}

/// Splits `user@domain` at the last `@`; the domain is lowercased and loses a trailing dot.
/// An address without `@` has an empty domain (a local address, like Postfix's `user`).
pub fn split_address(addr: &str) -> (&str, String) {
    match addr.rfind('@') {
        Some(at) => (
            &addr[..at],
            addr[at + 1..].trim_end_matches('.').to_ascii_lowercase(),
        ),
        None => (addr, String::new()),
    }
}

/// True when `domain` is one of this host's final destinations (`mydestination`, matched
/// case-insensitively; table references such as `hash:…` are not supported here and never
/// match).
pub fn is_local_domain(cfg: &Config, domain: &str) -> bool {
    domain.is_empty()
        || cfg
            .mydestination
            .iter()
            .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
}

/// True when `domain` is in `relay_domains` or is a subdomain of an entry
/// (`parent_domain_matches_subdomains` includes `relay_domains` in Postfix); an entry written
/// `.example.com` matches subdomains only.
pub fn is_relay_domain(cfg: &Config, domain: &str) -> bool {
    cfg.relay_domains.iter().any(|entry| {
        let entry = entry.trim_end_matches('.').to_ascii_lowercase();
        if entry.contains(':') || entry.is_empty() {
            return false;
        }
        if let Some(parent) = entry.strip_prefix('.') {
            return domain.ends_with(&format!(".{parent}"));
        }
        domain == entry || domain.ends_with(&format!(".{entry}"))
    })
}

/// Splits a transport setting `name[:nexthop]` (`local:$myhostname`, `error:5.1.1 go away`).
fn parse_spec(spec: &str) -> (Transport, Option<String>) {
    let spec = spec.trim();
    match spec.split_once(':') {
        Some((name, hop)) if !hop.is_empty() => (Transport::from_name(name), Some(hop.to_string())),
        Some((name, _)) => (Transport::from_name(name), None),
        None => (Transport::from_name(spec), None),
    }
}

/// Chooses the transport and next hop for `rcpt`.
pub fn resolve(cfg: &Config, rcpt: &str) -> Route {
    let (_, domain) = split_address(rcpt);
    if is_local_domain(cfg, &domain) {
        let (transport, hop) = parse_spec(&cfg.local_transport);
        return Route {
            transport,
            nexthop: hop.unwrap_or_else(|| cfg.myhostname.clone()),
        };
    }
    let (transport, hop) = if is_relay_domain(cfg, &domain) {
        // relay_transport is not configurable yet; Postfix's default is `relay`.
        (Transport::Smtp, None)
    } else {
        parse_spec(&cfg.default_transport)
    };
    let nexthop = match (&transport, hop) {
        (_, Some(hop)) => hop,
        // discard/error without text: Postfix uses the recipient domain as the text; we keep
        // it empty so the agents print their own wording.
        (Transport::Discard | Transport::Error, None) => String::new(),
        (_, None) if !cfg.relayhost.trim().is_empty() => cfg.relayhost.trim().to_string(),
        (_, None) => domain,
    };
    Route { transport, nexthop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let mut over: Vec<(String, String)> = vec![
            ("myhostname".into(), "mail.example.org".into()),
            (
                "mydestination".into(),
                "$myhostname, localhost.$mydomain, localhost".into(),
            ),
        ];
        over.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        postern_config::load_with(None, &over).expect("config").main
    }

    #[test]
    fn local_domains_go_to_local_transport() {
        let c = cfg(&[]);
        let r = resolve(&c, "bob@LocalHost");
        assert_eq!(r.transport, Transport::Local);
        assert_eq!(r.nexthop, "mail.example.org");
        assert_eq!(resolve(&c, "bob").transport, Transport::Local);
        assert_eq!(
            resolve(&c, "bob@mail.example.org.").transport,
            Transport::Local
        );
        assert_eq!(
            resolve(&c, "bob@localhost.example.org").transport,
            Transport::Local
        );
    }

    #[test]
    fn remote_domains_use_default_transport_and_relayhost() {
        let c = cfg(&[]);
        let r = resolve(&c, "carol@Example.COM");
        assert_eq!(r.transport, Transport::Smtp);
        assert_eq!(r.nexthop, "example.com");

        let c = cfg(&[("relayhost", "[smarthost.example]:587")]);
        let r = resolve(&c, "carol@example.com");
        assert_eq!(r.transport, Transport::Smtp);
        assert_eq!(r.nexthop, "[smarthost.example]:587");

        let c = cfg(&[("default_transport", "error:5.7.1 no relaying here")]);
        let r = resolve(&c, "carol@example.com");
        assert_eq!(r.transport, Transport::Error);
        assert_eq!(r.nexthop, "5.7.1 no relaying here");

        let c = cfg(&[("default_transport", "discard")]);
        assert_eq!(resolve(&c, "x@example.com").transport, Transport::Discard);
    }

    #[test]
    fn relay_domains_match_subdomains() {
        let c = cfg(&[
            ("relay_domains", "example.net, .sub.example.com"),
            ("default_transport", "discard"),
        ]);
        assert_eq!(resolve(&c, "a@example.net").transport, Transport::Smtp);
        assert_eq!(resolve(&c, "a@x.Example.net").transport, Transport::Smtp);
        assert_eq!(
            resolve(&c, "a@y.sub.example.com").transport,
            Transport::Smtp
        );
        assert_eq!(
            resolve(&c, "a@sub.example.com").transport,
            Transport::Discard
        );
        assert_eq!(
            resolve(&c, "a@badexample.net").transport,
            Transport::Discard
        );
    }

    #[test]
    fn local_transport_setting_is_honoured() {
        let c = cfg(&[("local_transport", "discard:local mail is off")]);
        let r = resolve(&c, "root@localhost");
        assert_eq!(r.transport, Transport::Discard);
        assert_eq!(r.nexthop, "local mail is off");
    }
}
