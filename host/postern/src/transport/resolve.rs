//! Recipient routing: Postfix trivial-rewrite(8)'s "resolve" step.
//!
//! Address classes, in Postfix's order (ADDRESS_CLASS_README):
//! 1. *local* — the domain is empty or listed in `mydestination` → `local_transport`
//!    (default `local:$myhostname`);
//! 2. *virtual alias* — the domain is in `virtual_alias_domains` but cleanup found no alias
//!    for the address → `error:5.1.1 User unknown in virtual alias table`;
//! 3. *virtual mailbox* — the domain is in `virtual_mailbox_domains` → `virtual_transport`;
//! 4. *relay* — the domain or one of its parents is in `relay_domains` → `relay_transport`
//!    (`relay`, an smtp), next hop `relayhost` when set, else the domain;
//! 5. *default* — anything else → `default_transport` (default `smtp`).
//!
//! `transport_maps` is then
//! searched in transport(5) order (`user+ext@domain`, `user@domain`, `domain`, parent domains as
//! `.domain` unless `transport_maps` is in `parent_domain_matches_subdomains`, then `*`); an
//! empty transport or next hop in the result keeps the class's default. A message with a
//! `filter` record (a `FILTER` action) goes to that `transport:nexthop` whole.
//!
//! Next hop precedence follows postconf(5) `default_transport`: the one written in the transport
//! (`smtp:[mx.example]`), then `relayhost`, then the recipient domain.
//!
//! A lookup error in any table never routes mail somewhere else: the recipient is deferred with
//! `4.3.0` (the error transport with a 4.x.x code defers).

use postern_config::Config;
use postern_maps::search::{self, AddressOptions, ParentStyle, TransportEntry};
use postern_maps::LookupError;

use super::Transport;
use crate::address::{normalize_domain, split_address, Destinations, Resolved};
use crate::cleanup::tables;

/// Where one recipient goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub transport: Transport,
    /// Next hop: a host for smtp, the text for discard/error, `$myhostname` for local.
    pub nexthop: String,
}

impl Route {
    /// A route that defers the recipient because a table could not be read.
    fn lookup_failed(what: &str, e: &LookupError) -> Route {
        crate::warn!("trivial-rewrite", "{what}: {e}");
        Route {
            transport: Transport::Error,
            nexthop: format!("4.3.0 {what}: {e}"),
        }
    }
}

/// Splits a transport setting `name[:nexthop]` (`local:$myhostname`, `error:5.1.1 go away`).
fn parse_spec(spec: &str) -> (Transport, Option<String>) {
    let spec = spec.trim();
    let (t, hop) = match spec.split_once(':') {
        Some((name, hop)) if !hop.is_empty() => (Transport::from_name(name), Some(hop.to_string())),
        Some((name, _)) => (Transport::from_name(name), None),
        None => (Transport::from_name(spec), None),
    };
    plugin_transport(t, hop)
}

/// `wasm:NAME[:nexthop]`: the first part of what follows `wasm:` names the plugin.
fn plugin_transport(t: Transport, hop: Option<String>) -> (Transport, Option<String>) {
    match (&t, hop) {
        (Transport::Unknown(n), Some(rest)) if n.eq_ignore_ascii_case("wasm") => {
            match rest.split_once(':') {
                Some((name, hop)) if !hop.is_empty() => {
                    (Transport::Wasm(name.to_string()), Some(hop.to_string()))
                }
                Some((name, _)) => (Transport::Wasm(name.to_string()), None),
                None => (Transport::Wasm(rest), None),
            }
        }
        (_, hop) => (t, hop),
    }
}

/// Routes one recipient of a message whose envelope carries `filter` (a `FILTER` action):
/// that wins over everything, as Postfix's `content_filter` does.
pub fn route(cfg: &Config, dest: &Destinations, filter: Option<&str>, rcpt: &str) -> Route {
    if let Some(filter) = filter.filter(|f| !f.trim().is_empty()) {
        let (transport, hop) = parse_spec(filter);
        let nexthop = hop.unwrap_or_else(|| recipient_domain(cfg, rcpt));
        return Route { transport, nexthop };
    }
    resolve(cfg, dest, rcpt)
}

fn recipient_domain(cfg: &Config, rcpt: &str) -> String {
    match split_address(rcpt) {
        (_, Some(d)) => normalize_domain(d),
        (_, None) => normalize_domain(&cfg.myorigin),
    }
}

/// Chooses the transport and next hop for `rcpt`; `dest` is the address classification of the
/// same configuration (see [`Destinations::new`]).
pub fn resolve(cfg: &Config, dest: &Destinations, rcpt: &str) -> Route {
    let class = dest.resolve(rcpt);
    let domain = recipient_domain(cfg, rcpt);
    let (transport, hop) = if let Resolved::Local(_) = class {
        let (t, hop) = parse_spec(&cfg.local_transport);
        (t, Some(hop.unwrap_or_else(|| cfg.myhostname.clone())))
    } else {
        match tables::domain_listed(&cfg.virtual_alias_domains, &domain) {
            Ok(true) => {
                return Route {
                    transport: Transport::Error,
                    nexthop: "5.1.1 User unknown in virtual alias table".to_string(),
                }
            }
            Ok(false) => {}
            Err(e) => return Route::lookup_failed("virtual_alias_domains lookup", &e),
        }
        match tables::domain_listed(&cfg.virtual_mailbox_domains, &domain) {
            Ok(true) => parse_spec(&cfg.virtual_transport),
            Ok(false) if class == Resolved::Relay => parse_spec(&cfg.relay_transport),
            Ok(false) => parse_spec(&cfg.default_transport),
            Err(e) => return Route::lookup_failed("virtual_mailbox_domains lookup", &e),
        }
    };
    let (transport, hop) = match transport_map(cfg, rcpt) {
        Ok(Some(entry)) if entry.transport.eq_ignore_ascii_case("wasm") => {
            plugin_transport(Transport::from_name("wasm"), Some(entry.nexthop))
        }
        Ok(Some(entry)) => {
            let t = if entry.transport.is_empty() {
                transport
            } else {
                Transport::from_name(&entry.transport)
            };
            let h = if entry.nexthop.is_empty() {
                hop
            } else {
                Some(entry.nexthop)
            };
            (t, h)
        }
        Ok(None) => (transport, hop),
        Err(e) => return Route::lookup_failed("transport_maps lookup", &e),
    };
    let nexthop = match (&transport, hop) {
        (_, Some(hop)) => hop,
        // discard/error without text: Postfix uses the recipient domain as the text; we keep
        // it empty so the agents print their own wording.
        (Transport::Discard | Transport::Error, None) => String::new(),
        (Transport::Local | Transport::Virtual, None) => cfg.myhostname.clone(),
        (_, None) if !cfg.relayhost.trim().is_empty() => cfg.relayhost.trim().to_string(),
        (_, None) => domain,
    };
    Route { transport, nexthop }
}

/// transport(5) lookup of `rcpt` in `transport_maps`.
fn transport_map(cfg: &Config, rcpt: &str) -> Result<Option<TransportEntry>, LookupError> {
    if cfg.transport_maps.is_empty() {
        return Ok(None);
    }
    let t = tables::open(&cfg.transport_maps)?;
    let style = ParentStyle::for_feature(
        &cfg.parent_domain_matches_subdomains.join(","),
        "transport_maps",
    );
    let opts = AddressOptions {
        recipient_delimiter: cfg.recipient_delimiter.clone(),
        owner_request_special: cfg.owner_request_special,
        ..AddressOptions::default()
    };
    let addr = match split_address(rcpt) {
        (local, Some(d)) => format!("{local}@{}", normalize_domain(d)),
        (local, None) => format!("{local}@{}", normalize_domain(&cfg.myorigin)),
    };
    Ok(search::transport(&t, &addr, &opts, style)?.map(|f| TransportEntry::parse(&f.value)))
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

    #[test]
    fn transport_maps_follow_transport_5() {
        let c = cfg(&[(
            "transport_maps",
            "inline:{ example.com=smtp:bar.example:2025, \
             {.example.com=error:mail for *.example.com is not deliverable}, \
             joe@example.net=lmtp:unix:/run/dovecot/lmtp, example.net=:[gw.example], \
             local.example=local:, sink.example=discard: }",
        )]);
        let r = route(&c, "a@Example.com");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Smtp, "bar.example:2025")
        );
        let r = route(&c, "a@sub.example.com");
        assert_eq!(r.transport, Transport::Error);
        assert_eq!(r.nexthop, "mail for *.example.com is not deliverable");
        let r = route(&c, "joe@example.net");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Lmtp, "unix:/run/dovecot/lmtp")
        );
        let r = route(&c, "amy@example.net");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Smtp, "[gw.example]")
        );
        let r = route(&c, "x@local.example");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Local, "mail.example.org")
        );
        assert_eq!(route(&c, "x@sink.example").transport, Transport::Discard);
        assert_eq!(route(&c, "x@other.example").nexthop, "other.example");

        let c = cfg(&[("transport_maps", "inline:{ *=relay:[smart.example] }")]);
        let r = route(&c, "x@anywhere.example");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Smtp, "[smart.example]")
        );

        let c = cfg(&[("transport_maps", "fail:down")]);
        let r = route(&c, "x@anywhere.example");
        assert_eq!(r.transport, Transport::Error);
        assert!(r.nexthop.starts_with("4.3.0 "), "{}", r.nexthop);
    }

    #[test]
    fn virtual_domains_and_filters() {
        let c = cfg(&[
            ("virtual_alias_domains", "alias.example"),
            ("virtual_mailbox_domains", "vmail.example"),
            (
                "virtual_mailbox_maps",
                "inline:{ a@vmail.example=vmail.example/a/ }",
            ),
        ]);
        let r = route(&c, "x@alias.example");
        assert_eq!(r.transport, Transport::Error);
        assert_eq!(r.nexthop, "5.1.1 User unknown in virtual alias table");
        assert_eq!(route(&c, "a@vmail.example").transport, Transport::Virtual);
        let d = Destinations::new(&c);
        let r = super::route(&c, &d, Some("smtp:[127.0.0.1]:10025"), "bob@localhost");
        assert_eq!(
            (r.transport, r.nexthop.as_str()),
            (Transport::Smtp, "[127.0.0.1]:10025")
        );
    }
}
