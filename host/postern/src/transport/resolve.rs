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
use crate::address::{normalize_domain, split_address, Destinations, Resolved};

/// Where one recipient goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub transport: Transport,
    /// Next hop: a host for smtp, the text for discard/error, `$myhostname` for local.
    pub nexthop: String,
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

/// Chooses the transport and next hop for `rcpt`; `dest` is the address classification of the
/// same configuration (see [`Destinations::new`]).
pub fn resolve(cfg: &Config, dest: &Destinations, rcpt: &str) -> Route {
    let class = dest.resolve(rcpt);
    if let Resolved::Local(_) = class {
        let (transport, hop) = parse_spec(&cfg.local_transport);
        return Route {
            transport,
            nexthop: hop.unwrap_or_else(|| cfg.myhostname.clone()),
        };
    }
    let (transport, hop) = if class == Resolved::Relay {
        // relay_transport is not configurable yet; Postfix's default is `relay`.
        (Transport::Smtp, None)
    } else {
        parse_spec(&cfg.default_transport)
    };
    let domain = match split_address(rcpt) {
        (_, Some(d)) => normalize_domain(d),
        (_, None) => normalize_domain(&cfg.myorigin),
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

    fn route(c: &Config, rcpt: &str) -> Route {
        resolve(c, &Destinations::new(c), rcpt)
    }

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
        let r = route(&c, "bob@LocalHost");
        assert_eq!(r.transport, Transport::Local);
        assert_eq!(r.nexthop, "mail.example.org");
        assert_eq!(route(&c, "bob").transport, Transport::Local);
        assert_eq!(
            route(&c, "bob@mail.example.org.").transport,
            Transport::Local
        );
        assert_eq!(
            route(&c, "bob@localhost.example.org").transport,
            Transport::Local
        );
    }

    #[test]
    fn remote_domains_use_default_transport_and_relayhost() {
        let c = cfg(&[]);
        let r = route(&c, "carol@Example.COM");
        assert_eq!(r.transport, Transport::Smtp);
        assert_eq!(r.nexthop, "example.com");

        let c = cfg(&[("relayhost", "[smarthost.example]:587")]);
        let r = route(&c, "carol@example.com");
        assert_eq!(r.transport, Transport::Smtp);
        assert_eq!(r.nexthop, "[smarthost.example]:587");

        let c = cfg(&[("default_transport", "error:5.7.1 no relaying here")]);
        let r = route(&c, "carol@example.com");
        assert_eq!(r.transport, Transport::Error);
        assert_eq!(r.nexthop, "5.7.1 no relaying here");

        let c = cfg(&[("default_transport", "discard")]);
        assert_eq!(route(&c, "x@example.com").transport, Transport::Discard);
    }

    #[test]
    fn relay_domains_match_subdomains() {
        let c = cfg(&[
            ("relay_domains", "example.net, .sub.example.com"),
            ("default_transport", "discard"),
        ]);
        assert_eq!(route(&c, "a@example.net").transport, Transport::Smtp);
        assert_eq!(route(&c, "a@x.Example.net").transport, Transport::Smtp);
        assert_eq!(route(&c, "a@y.sub.example.com").transport, Transport::Smtp);
        assert_eq!(route(&c, "a@sub.example.com").transport, Transport::Discard);
        assert_eq!(route(&c, "a@badexample.net").transport, Transport::Discard);
    }

    #[test]
    fn local_transport_setting_is_honoured() {
        let c = cfg(&[("local_transport", "discard:local mail is off")]);
        let r = route(&c, "root@localhost");
        assert_eq!(r.transport, Transport::Discard);
        assert_eq!(r.nexthop, "local mail is off");
    }
}
