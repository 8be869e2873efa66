//! Postfix's search orders over a [`Tables`] list: which keys are tried, in which order, and
//! which of them fixed tables alone see ([`Scope::Partial`]).
//!
//! Each order is a pure function producing [`Probe`]s (so it can be tested key by key against
//! the manual pages) plus a thin wrapper that runs them with [`Tables::find_first`]: every probe
//! is tried against every table before the next probe, and the first value or the first lookup
//! error ends the search, as in Postfix's `maps_find`.
//!
//! | search | Postfix source | keys |
//! |---|---|---|
//! | [`access_address`] | `check_mail_access` | `user+ext@domain`, `user@domain`, `domain`, parents, `user+ext@`, `user@` |
//! | [`access_domain`] | `check_domain_access` | `host.domain`, parents (not for IP literals) |
//! | [`access_client_address`] | `check_addr_access` | `1.2.3.4`, `1.2.3`, `1.2`, `1` / IPv6 by `:` groups |
//! | [`access_client`] | `check_namadr_access` | the host name order, then the address order |
//! | [`virtual_alias`], [`canonical`], [`relocated`] | `mail_addr_find` (`MA_FIND_DEFAULT`) | `user+ext@domain`, `user@domain`, `user+ext`/`user` (local domains only), `@domain` |
//! | [`transport`] | `transport_lookup` | `user+ext@domain`, `user@domain`, `domain`, parents, `*` |
//!
//! Parents are `example.com` (matches subdomains) or `.example.com`, chosen by
//! `parent_domain_matches_subdomains` ([`ParentStyle::for_feature`]). Address keys are tried in
//! external (quoted) form first and then, when it differs, as given.

pub use crate::address::AddressOptions;
use crate::address::{
    quote_local, split_address_list, split_at_domain, strip_extension, unquote_local,
};
use crate::{LookupError, Scope, Tables};

/// Postfix's default `parent_domain_matches_subdomains`.
pub const DEFAULT_PARENT_DOMAIN_MATCHES_SUBDOMAINS: &str = "debug_peer_list,fast_flush_domains,\
mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps";

/// How a table entry for a domain covers its subdomains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentStyle {
    /// `example.com` matches `example.com` and its subdomains (the feature is listed in
    /// `parent_domain_matches_subdomains`).
    Parent,
    /// `example.com` matches itself only; `.example.com` matches subdomains.
    DotParent,
}

impl ParentStyle {
    /// The style for `feature` (`smtpd_access_maps`, `transport_maps`, …) given the value of
    /// `parent_domain_matches_subdomains`.
    pub fn for_feature(parent_domain_matches_subdomains: &str, feature: &str) -> ParentStyle {
        let listed = parent_domain_matches_subdomains
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|f| f.eq_ignore_ascii_case(feature));
        if listed {
            ParentStyle::Parent
        } else {
            ParentStyle::DotParent
        }
    }
}

/// Which keys an address search tries (Postfix's `MA_FIND_*` flags), in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strategy {
    /// `user+ext@domain`.
    pub full: bool,
    /// `user@domain` (the extension stripped).
    pub no_ext: bool,
    /// `user+ext`, then `user`, when the domain is local.
    pub localpart_if_local: bool,
    /// `user+ext@`, then `user@`, when the domain is local.
    pub localpart_at_if_local: bool,
    /// `@domain`.
    pub at_domain: bool,
    /// `domain`, then its parents in `parents` style when set.
    pub domain: bool,
    pub parents: Option<ParentStyle>,
    /// `user+ext@`, then `user@`, whatever the domain.
    pub localpart_at: bool,
}

impl Strategy {
    /// `MA_FIND_DEFAULT`: virtual(5), canonical(5), relocated(5).
    pub const DEFAULT: Strategy = Strategy {
        full: true,
        no_ext: true,
        localpart_if_local: true,
        localpart_at_if_local: false,
        at_domain: true,
        domain: false,
        parents: None,
        localpart_at: false,
    };

    /// access(5) for sender and recipient addresses.
    pub fn access(parents: ParentStyle) -> Strategy {
        Strategy {
            full: true,
            no_ext: true,
            domain: true,
            parents: Some(parents),
            localpart_at: true,
            ..Strategy::default()
        }
    }

    /// transport(5) before the `*` wildcard.
    pub fn transport(parents: ParentStyle) -> Strategy {
        Strategy {
            full: true,
            no_ext: true,
            domain: true,
            parents: Some(parents),
            ..Strategy::default()
        }
    }
}

/// One key to try, which tables see it, and the extension that was stripped to make it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub key: String,
    pub scope: Scope,
    pub extension: Option<String>,
}

impl Probe {
    fn new(key: String, scope: Scope, extension: Option<&String>) -> Probe {
        Probe {
            key,
            scope,
            extension: extension.cloned(),
        }
    }
}

/// What an address search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    /// The key that matched.
    pub key: String,
    /// The extension stripped to find it (`+foo`), for callers that propagate it.
    pub extension: Option<String>,
}

/// External (quoted) form first, then the internal form when different (Postfix
/// `MA_FORM_EXTERNAL_FIRST`).
fn push_forms(out: &mut Vec<Probe>, key: &str, bare: bool, scope: Scope, ext: Option<&String>) {
    let external = quote_local(key, bare);
    let differs = external != key;
    out.push(Probe::new(external, scope, ext));
    if differs {
        out.push(Probe::new(key.to_string(), scope, ext));
    }
}

/// Parent domains of `domain` in `style`, excluding `domain` itself.
fn parents(domain: &str, style: ParentStyle) -> Vec<String> {
    let mut out = Vec::new();
    let mut name = domain;
    while let Some(dot) = name.get(1..).and_then(|n| n.find('.')).map(|i| i + 1) {
        let next = match style {
            ParentStyle::Parent => &name[dot + 1..],
            ParentStyle::DotParent => &name[dot..],
        };
        if next.is_empty() {
            break;
        }
        out.push(next.to_string());
        name = next;
    }
    out
}

/// The keys an address search tries (Postfix `mail_addr_find_opt`). `is_local(domain)` says
/// whether a domain is `$myorigin`, in `$mydestination`, or an `$inet_interfaces`/
/// `$proxy_interfaces` address literal.
pub fn address_probes(
    address: &str,
    strategy: &Strategy,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
) -> Vec<Probe> {
    let mut out = Vec::new();
    let bare = if strategy.no_ext {
        strip_extension(address, opts)
    } else {
        None
    };
    let ext = bare.as_ref().map(|(_, e)| e);
    if strategy.full {
        push_forms(&mut out, address, false, Scope::Full, None);
    }
    if let Some((stripped, _)) = &bare {
        push_forms(&mut out, stripped, false, Scope::Partial, ext);
    }
    let at = address.rfind('@');
    let local_part_keys = |out: &mut Vec<Probe>, with_at: bool| {
        let Some(at) = at else { return };
        let suffix = if with_at { "@" } else { "" };
        push_forms(
            out,
            &format!("{}{suffix}", &address[..at]),
            !with_at,
            Scope::Partial,
            None,
        );
        if let Some((stripped, _)) = &bare {
            let (user, _) = split_at_domain(stripped);
            push_forms(
                out,
                &format!("{user}{suffix}"),
                !with_at,
                Scope::Partial,
                ext,
            );
        }
    };
    if let Some(at) = at {
        let domain = &address[at + 1..];
        if (strategy.localpart_if_local || strategy.localpart_at_if_local) && is_local(domain) {
            if strategy.localpart_if_local {
                local_part_keys(&mut out, false);
            }
            if strategy.localpart_at_if_local {
                local_part_keys(&mut out, true);
            }
        }
        if strategy.at_domain {
            out.push(Probe::new(address[at..].to_string(), Scope::Partial, None));
        }
        if strategy.domain && !domain.is_empty() {
            out.push(Probe::new(domain.to_string(), Scope::Partial, None));
            if let Some(style) = strategy.parents {
                for p in parents(domain, style) {
                    out.push(Probe::new(p, Scope::Partial, None));
                }
            }
        }
    }
    if strategy.localpart_at {
        local_part_keys(&mut out, true);
    }
    out
}

/// Runs probes; the match carries the probe's key and extension.
pub fn find_probes(tables: &Tables, probes: &[Probe]) -> Result<Option<Found>, LookupError> {
    let keys: Vec<(String, Scope)> = probes.iter().map(|p| (p.key.clone(), p.scope)).collect();
    Ok(tables.find_first(&keys)?.and_then(|(i, value)| {
        probes.get(i).map(|p| Found {
            value,
            key: p.key.clone(),
            extension: p.extension.clone(),
        })
    }))
}

/// An address search with any strategy.
pub fn find_address(
    tables: &Tables,
    address: &str,
    strategy: &Strategy,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<Found>, LookupError> {
    find_probes(tables, &address_probes(address, strategy, opts, is_local))
}

/// access(5) for a sender or recipient address (`check_sender_access`,
/// `check_recipient_access`): `user+ext@domain`, `user@domain`, `domain`, parent domains,
/// `user+ext@`, `user@`. The null sender is looked up by the caller under
/// `smtpd_null_access_lookup_key` (`<>`) with `tables.find(key, Scope::Full)`.
pub fn access_address(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    parents: ParentStyle,
) -> Result<Option<Found>, LookupError> {
    find_address(tables, address, &Strategy::access(parents), opts, &|_| {
        false
    })
}

/// Keys for a host or domain name: the name (every table), then its parents (fixed tables).
/// IP addresses get no parent search.
pub fn domain_probes(name: &str, style: ParentStyle) -> Vec<Probe> {
    let mut out = vec![Probe::new(name.to_string(), Scope::Full, None)];
    if name.parse::<std::net::IpAddr>().is_err() {
        out.extend(
            parents(name, style)
                .into_iter()
                .map(|p| Probe::new(p, Scope::Partial, None)),
        );
    }
    out
}

/// access(5) for a host name or domain (`check_helo_access`, the name half of
/// `check_client_access`, `check_*_ns_access`).
pub fn access_domain(
    tables: &Tables,
    name: &str,
    style: ParentStyle,
) -> Result<Option<Found>, LookupError> {
    find_probes(tables, &domain_probes(name, style))
}

/// Keys for a client IP address: the address, then shorter prefixes: `1.2.3.4`, `1.2.3`,
/// `1.2`, `1`; IPv6 by `:`-separated groups of the address as written (compressed form).
pub fn client_address_probes(address: &str) -> Vec<Probe> {
    let delim = if address.contains(':') { ':' } else { '.' };
    let mut out = vec![Probe::new(address.to_string(), Scope::Full, None)];
    let mut rest = address;
    while let Some(cut) = rest.rfind(delim) {
        rest = &rest[..cut];
        if !rest.is_empty() {
            out.push(Probe::new(rest.to_string(), Scope::Partial, None));
        }
    }
    out
}

/// access(5) for a client IP address.
pub fn access_client_address(tables: &Tables, address: &str) -> Result<Option<Found>, LookupError> {
    find_probes(tables, &client_address_probes(address))
}

/// access(5) for `check_client_access`: the client name (`unknown` when it has none) and its
/// parents, then the address and its prefixes. A pattern table sees the name and the address.
pub fn access_client(
    tables: &Tables,
    name: &str,
    address: &str,
    style: ParentStyle,
) -> Result<Option<Found>, LookupError> {
    let mut probes = domain_probes(name, style);
    probes.extend(client_address_probes(address));
    find_probes(tables, &probes)
}

/// virtual(5) `virtual_alias_maps`: `user+ext@domain`, `user@domain`, `user+ext` and `user`
/// (only when `is_local(domain)`), `@domain`.
pub fn virtual_alias(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<Found>, LookupError> {
    find_address(tables, address, &Strategy::DEFAULT, opts, is_local)
}

/// canonical(5): the same order as virtual(5).
pub fn canonical(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<Found>, LookupError> {
    find_address(tables, address, &Strategy::DEFAULT, opts, is_local)
}

/// relocated(5): the same order as virtual(5); the extension is not used.
pub fn relocated(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<Found>, LookupError> {
    find_address(tables, address, &Strategy::DEFAULT, opts, is_local)
}

/// transport(5): `user+ext@domain`, `user@domain`, `domain`, parents (`.domain` unless
/// `transport_maps` is in `parent_domain_matches_subdomains`), then `*` (every table).
pub fn transport(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    style: ParentStyle,
) -> Result<Option<Found>, LookupError> {
    if address.is_empty() {
        return Ok(None);
    }
    let mut probes = address_probes(address, &Strategy::transport(style), opts, &|_| false);
    probes.push(Probe::new("*".to_string(), Scope::Full, None));
    find_probes(tables, &probes)
}

/// A transport(5) result `transport:nexthop` split at the first `:`. Either part may be empty,
/// meaning "the default" (transport(5) "RESULT FORMAT"); interpreting that is the caller's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportEntry {
    pub transport: String,
    pub nexthop: String,
}

impl TransportEntry {
    pub fn parse(value: &str) -> TransportEntry {
        let (transport, nexthop) = value.split_once(':').unwrap_or((value, ""));
        TransportEntry {
            transport: transport.trim().to_string(),
            nexthop: nexthop.trim().to_string(),
        }
    }
}

/// virtual(5)/canonical(5) address mapping (Postfix `mail_addr_map`): the search, then
/// - a result `@otherdomain` keeps the local part (without the extension that had to be
///   stripped): `@example.com  @example.net` maps `joe@example.com` to `joe@example.net`;
/// - the result is split into addresses (comma-separated, quotes respected);
/// - with `propagate`, the stripped extension is put back into each address
///   (`propagate_unmatched_extensions`).
///
/// Unqualified results are returned as they are; appending `@$myorigin` is the caller's job. A
/// result with no address in it is a temporary error, as in Postfix.
pub fn map_address(
    tables: &Tables,
    address: &str,
    opts: &AddressOptions,
    is_local: &dyn Fn(&str) -> bool,
    propagate: bool,
) -> Result<Option<Vec<String>>, LookupError> {
    let Some(found) = virtual_alias(tables, address, opts, is_local)? else {
        return Ok(None);
    };
    let mut value = found.value.clone();
    if value.starts_with('@') {
        let (mut user, _) = split_at_domain(address);
        if let Some(ext) = &found.extension {
            user = user.strip_suffix(ext.as_str()).unwrap_or(user);
        }
        value = quote_local(&format!("{user}{value}"), false);
    }
    let mut out = Vec::new();
    for item in split_address_list(&value) {
        let mut addr = unquote_local(&item);
        if let (true, Some(ext)) = (propagate, &found.extension) {
            match addr.rfind('@') {
                Some(at) => addr.insert_str(at, ext),
                None => addr.push_str(ext),
            }
        }
        out.push(addr);
    }
    if out.is_empty() {
        return Err(LookupError::Temporary(format!(
            "lookup of {address} returns non-address result \"{}\"",
            found.value
        )));
    }
    Ok(Some(out))
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
