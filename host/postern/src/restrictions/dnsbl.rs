//! The DNS-based restrictions (Postfix smtpd_check.c `reject_rbl_addr`, `reject_rbl_domain`,
//! `reject_unknown_address`, `reject_unknown_hostname`, `reject_unknown_client`).
//!
//! A DNS failure never permits and never rejects: blocklist lookups that fail count as "not
//! listed" (as in Postfix, a broken list must not block the world), and the "unknown domain"
//! checks turn a failure into `DEFER_IF_PERMIT`.

use std::net::IpAddr;

use postern_proto::Reply;

use super::action::split_enhanced;
use super::{AddrClass, Facts, Policy};
use crate::address::split_address;
use crate::dns::{reverse_name, Answer, RecordType, Resolver};

/// Which list a `reject_rbl_client`-style element consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsList {
    /// `reject_rbl_client`: the reversed client address.
    RblClient,
    /// `reject_rhsbl_client`: the client host name.
    RhsblClient,
    /// `reject_rhsbl_sender`: the sender's domain.
    RhsblSender,
    /// `permit_dnswl_client`: the reversed client address, as an allow list.
    DnswlClient,
}

/// What a DNS check concluded.
pub enum Outcome {
    Dunno,
    Permit,
    Refuse(Reply),
    DeferIfPermit(Reply),
}

/// `domain=filter` → (domain, Some(filter)); the filter is one address (`127.0.0.2`) or a
/// last-octet range/list as in Postfix (`127.0.0.[2..11]`, `127.0.0.[2;4;6]`).
fn split_filter(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((d, f)) => (d, Some(f)),
        None => (arg, None),
    }
}

fn filter_matches(filter: &str, record: &str) -> bool {
    let Some((prefix, set)) = filter.split_once('[') else {
        return filter == record;
    };
    let Some(last) = record.strip_prefix(prefix) else {
        return false;
    };
    let Ok(octet) = last.parse::<u8>() else {
        return false;
    };
    set.trim_end_matches(']')
        .split(';')
        .any(|item| match item.split_once("..") {
            Some((lo, hi)) => match (lo.parse::<u8>(), hi.parse::<u8>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&octet),
                _ => false,
            },
            None => item.parse::<u8>() == Ok(octet),
        })
}

/// Expands `default_rbl_reply` (`$name`, `${name}`, `${name?text}`, `${name:text}`).
fn expand(template: &str, vars: &[(&str, String)]) -> String {
    let get = |n: &str| {
        vars.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(rest);
                return out;
            };
            let inner = &body[..end];
            rest = &body[end + 1..];
            if let Some((name, text)) = inner.split_once('?') {
                if !get(name).is_empty() {
                    out.push_str(&expand(text, vars));
                }
            } else if let Some((name, text)) = inner.split_once(':') {
                if get(name).is_empty() {
                    out.push_str(&expand(text, vars));
                }
            } else {
                out.push_str(get(inner));
            }
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(get(&rest[..len]));
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

/// `reject_rbl_client`, `reject_rhsbl_client`, `reject_rhsbl_sender`, `permit_dnswl_client`.
pub async fn list_check(
    p: &Policy,
    r: &dyn Resolver,
    f: &Facts,
    which: DnsList,
    arg: &str,
) -> Outcome {
    let (domain, filter) = split_filter(arg);
    let (query, class, what) = match which {
        DnsList::RblClient | DnsList::DnswlClient => (
            reverse_name(f.client_addr, domain),
            "Client host",
            f.client_addr.to_string(),
        ),
        DnsList::RhsblClient => {
            if f.client_name == "unknown" {
                return Outcome::Dunno;
            }
            (
                format!("{}.{domain}", f.client_name),
                "Client host",
                f.client_name.clone(),
            )
        }
        DnsList::RhsblSender => {
            let Some(sender) = f.sender.as_deref().filter(|s| !s.is_empty()) else {
                return Outcome::Dunno;
            };
            let Some(sd) = split_address(sender).1.filter(|d| !d.starts_with('[')) else {
                return Outcome::Dunno;
            };
            // postconf(5) default_rbl_reply: $rbl_what is the sender's domain here.
            (format!("{sd}.{domain}"), "Sender address", sd.to_string())
        }
    };
    let answer = r.lookup(&query, RecordType::A).await;
    let listed = match &answer {
        Answer::Records(recs) => recs
            .iter()
            .any(|rec| filter.is_none_or(|f| filter_matches(f, rec))),
        Answer::TempFail(e) => {
            crate::warn!("smtpd", "DNS list lookup {query}: {e}");
            false
        }
        Answer::NxDomain | Answer::NoRecords => false,
    };
    if !listed {
        return Outcome::Dunno;
    }
    if which == DnsList::DnswlClient {
        return Outcome::Permit;
    }
    let reason = r.lookup(&query, RecordType::Txt).await;
    let code = p.codes.maps_rbl;
    let vars = [
        ("rbl_code", code.to_string()),
        ("rbl_class", class.to_string()),
        ("rbl_what", what),
        ("rbl_domain", domain.to_string()),
        (
            "rbl_reason",
            reason.records().first().cloned().unwrap_or_default(),
        ),
        (
            "rbl_txt",
            reason.records().first().cloned().unwrap_or_default(),
        ),
        ("client_address", f.client_addr.to_string()),
        ("client_name", f.client_name.clone()),
        ("helo_name", f.helo.clone().unwrap_or_default()),
        ("sender", f.sender.clone().unwrap_or_default()),
        ("recipient", f.recipient.clone().unwrap_or_default()),
    ];
    let text = expand(&p.rbl_reply, &vars);
    let (code, text) = match text.split_once(' ') {
        Some((c, t)) if c.len() == 3 && c.parse::<u16>().is_ok() => {
            (c.parse::<u16>().unwrap_or(code), t.to_string())
        }
        _ => (code, text),
    };
    let (enh, text) = split_enhanced(code, &text);
    Outcome::Refuse(Reply::new(code, &enh, text))
}

/// Whether a domain has an MX, A or AAAA record. `None`: the DNS could not tell.
async fn domain_exists(r: &dyn Resolver, domain: &str) -> Option<bool> {
    let mut failed = false;
    for rtype in [RecordType::Mx, RecordType::A, RecordType::Aaaa] {
        match r.lookup(domain, rtype).await {
            Answer::Records(_) => return Some(true),
            Answer::NxDomain => return if failed { None } else { Some(false) },
            Answer::NoRecords => {}
            Answer::TempFail(_) => failed = true,
        }
    }
    if failed {
        None
    } else {
        Some(false)
    }
}

/// `reject_unknown_sender_domain` (`450 4.1.8`) / `reject_unknown_recipient_domain`
/// (`450 4.1.2`): the domain has no MX, A or AAAA record.
pub async fn unknown_domain(p: &Policy, r: &dyn Resolver, address: &str, sender: bool) -> Outcome {
    let Some(domain) = split_address(address).1 else {
        return Outcome::Dunno;
    };
    if address.is_empty() || domain.is_empty() || domain.starts_with('[') {
        return Outcome::Dunno;
    }
    // Postfix checks only domains it is not the final destination for.
    if !sender && !matches!(p.maps.classify(address), Ok(AddrClass::Remote)) {
        return Outcome::Dunno;
    }
    let (class, enh) = if sender {
        ("Sender address", "4.1.8")
    } else {
        ("Recipient address", "4.1.2")
    };
    let text = format!("<{address}>: {class} rejected: Domain not found");
    let code = p.codes.unknown_address;
    let enh = if code >= 500 {
        enh.replacen('4', "5", 1)
    } else {
        enh.to_string()
    };
    match domain_exists(r, domain).await {
        Some(true) => Outcome::Dunno,
        Some(false) => Outcome::Refuse(Reply::new(code, &enh, text)),
        None => Outcome::DeferIfPermit(Reply::new(450, &enh.replacen('5', "4", 1), text)),
    }
}

/// `reject_unknown_helo_hostname`: `450 4.7.1 <helo>: Helo command rejected: Host not found`.
pub async fn unknown_helo(p: &Policy, r: &dyn Resolver, f: &Facts) -> Outcome {
    let Some(helo) = f.helo.as_deref() else {
        return Outcome::Dunno;
    };
    if helo.starts_with('[') || helo.parse::<IpAddr>().is_ok() {
        return Outcome::Dunno;
    }
    let text = format!("<{helo}>: Helo command rejected: Host not found");
    let code = p.codes.unknown_hostname;
    let enh = if code >= 500 { "5.7.1" } else { "4.7.1" };
    match domain_exists(r, helo.trim_end_matches('.')).await {
        Some(true) => Outcome::Dunno,
        Some(false) => Outcome::Refuse(Reply::new(code, enh, text)),
        None => Outcome::DeferIfPermit(Reply::new(450, "4.7.1", text)),
    }
}

/// `reject_unknown_client_hostname` / `reject_unknown_reverse_client_hostname` (`450 4.7.25`,
/// RFC 7372 "reverse DNS validation failed").
pub fn unknown_client(p: &Policy, f: &Facts, reverse: bool) -> Outcome {
    let (name, what) = if reverse {
        (&f.reverse_client_name, "reverse hostname")
    } else {
        (&f.client_name, "hostname")
    };
    if name != "unknown" {
        return Outcome::Dunno;
    }
    let code = p.codes.unknown_client;
    let enh = if code >= 500 { "5.7.25" } else { "4.7.25" };
    Outcome::Refuse(Reply::new(
        code,
        enh,
        format!(
            "Client host rejected: cannot find your {what}, [{}]",
            f.client_addr
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_templates() {
        assert!(filter_matches("127.0.0.2", "127.0.0.2"));
        assert!(!filter_matches("127.0.0.2", "127.0.0.3"));
        assert!(filter_matches("127.0.0.[2..11]", "127.0.0.10"));
        assert!(filter_matches("127.0.0.[2;4]", "127.0.0.4"));
        assert!(!filter_matches("127.0.0.[2;4]", "127.0.0.3"));
        let t = "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using \
                 $rbl_domain${rbl_reason?; $rbl_reason}";
        let vars = [
            ("rbl_code", "554".to_string()),
            ("rbl_class", "Client host".to_string()),
            ("rbl_what", "192.0.2.1".to_string()),
            ("rbl_domain", "zen.example".to_string()),
            ("rbl_reason", String::new()),
        ];
        assert_eq!(
            expand(t, &vars),
            "554 Service unavailable; Client host [192.0.2.1] blocked using zen.example"
        );
        let mut vars = vars.to_vec();
        vars[4].1 = "listed".into();
        assert!(expand(t, &vars).ends_with("zen.example; listed"));
    }
}
