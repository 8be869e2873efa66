//! The built-in checks that need no table of their own, with Postfix's reply codes and texts
//! (smtpd_check.c), and the attribute list of a policy request.

use postern_proto::Reply;

use super::eval::lookup_failure;
use super::{AddrClass, Decision, Facts, Policy};
use crate::address::split_address;

/// `reject_unauth_destination` (`relay_domains_reject_code`, 554 5.7.1) /
/// `defer_unauth_destination` (454 4.7.1): the recipient is not local, virtual or in
/// `relay_domains`. `Ok(None)` = authorized (or no recipient).
pub fn unauth_destination(p: &Policy, f: &Facts, defer: bool) -> Result<Option<Reply>, Decision> {
    let Some(rcpt) = f.recipient.as_deref() else {
        return Ok(None);
    };
    match p.maps.classify(rcpt) {
        Ok(AddrClass::Remote) => {
            let (code, enh) = if defer {
                (454, "4.7.1")
            } else {
                (p.codes.relay_domains, "5.7.1")
            };
            Ok(Some(Reply::new(
                code,
                enh,
                format!("<{rcpt}>: Relay access denied"),
            )))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(lookup_failure(rcpt, &e)),
    }
}

/// Postfix `reject_non_fqdn_address`: `504 5.5.2 <addr>: … rejected: need fully-qualified
/// address`. Address literals pass; non-ASCII domains only with SMTPUTF8.
pub fn non_fqdn(p: &Policy, address: &str, class: &str, smtputf8: bool) -> Option<Reply> {
    let (_, domain) = split_address(address);
    let domain = domain.unwrap_or("");
    if domain.starts_with('[') && domain.ends_with(']') {
        return None;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if is_fqdn(domain, smtputf8) {
        return None;
    }
    Some(Reply::new(
        p.codes.non_fqdn,
        "5.5.2",
        format!("<{address}>: {class} rejected: need fully-qualified address"),
    ))
}

/// `reject_non_fqdn_helo_hostname`: `504 5.5.2 <helo>: Helo command rejected: need
/// fully-qualified hostname`. Address literals pass.
pub fn non_fqdn_helo(p: &Policy, f: &Facts) -> Option<Reply> {
    let helo = f.helo.as_deref()?;
    if is_address_literal(helo) {
        return None;
    }
    let name = helo.strip_suffix('.').unwrap_or(helo);
    if is_fqdn(name, f.smtputf8) {
        return None;
    }
    Some(Reply::new(
        p.codes.non_fqdn,
        "5.5.2",
        format!("<{helo}>: Helo command rejected: need fully-qualified hostname"),
    ))
}

/// `reject_invalid_helo_hostname`: `501 5.5.2 <helo>: Helo command rejected: Invalid name`.
pub fn invalid_helo(p: &Policy, f: &Facts) -> Option<Reply> {
    let helo = f.helo.as_deref()?;
    if is_address_literal(helo) || valid_hostname(helo.strip_suffix('.').unwrap_or(helo)) {
        return None;
    }
    Some(Reply::new(
        p.codes.invalid_hostname,
        "5.5.2",
        format!("<{helo}>: Helo command rejected: Invalid name"),
    ))
}

/// `reject_multi_recipient_bounce`: `550 5.5.3 <name>: class rejected: Multi-recipient
/// bounce` when the null sender has more than one recipient.
pub fn multi_recipient_bounce(f: &Facts, name: &str, class: &str) -> Option<Reply> {
    let already = if f.command == "RCPT" { 0 } else { 1 };
    (f.sender.as_deref() == Some("") && f.recipient_count > already).then(|| {
        Reply::new(
            550,
            "5.5.3",
            format!("<{name}>: {class} rejected: Multi-recipient bounce"),
        )
    })
}

/// `reject_unauth_pipelining`: `503 5.5.0 <name>: class rejected: Improper use of SMTP
/// command pipelining`.
pub fn unauth_pipelining(f: &Facts, name: &str, class: &str) -> Option<Reply> {
    f.unauth_pipelining.then(|| {
        Reply::new(
            503,
            "5.5.0",
            format!("<{name}>: {class} rejected: Improper use of SMTP command pipelining"),
        )
    })
}

fn is_address_literal(name: &str) -> bool {
    name.starts_with('[') && name.ends_with(']')
}

/// Postfix `valid_hostname`: labels of letters, digits, `-` and `_`, not all-numeric.
pub fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A syntactically valid host name with at least two labels (RFC 1035 §2.3.4 lengths; `_` is
/// tolerated as by Postfix's `valid_hostname`).
pub fn is_fqdn(domain: &str, smtputf8: bool) -> bool {
    if domain.is_empty() || domain.len() > 255 || !domain.contains('.') {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || c == '_' || (smtputf8 && !c.is_ascii())
            })
    })
}

/// The request attributes of SMTPD_POLICY_README (Postfix 3.x), in its order. Attributes
/// Postern has no value for (client certificates, the server address) are sent empty, as
/// Postfix does when they do not apply.
pub fn policy_attributes(f: &Facts) -> Vec<(&'static str, String)> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let tls = f.tls.as_ref();
    vec![
        ("request", "smtpd_access_policy".to_string()),
        ("protocol_state", f.command.to_string()),
        (
            "protocol_name",
            if f.esmtp { "ESMTP" } else { "SMTP" }.to_string(),
        ),
        ("helo_name", opt(&f.helo)),
        ("queue_id", opt(&f.queue_id)),
        ("sender", opt(&f.sender)),
        ("recipient", opt(&f.recipient)),
        ("recipient_count", f.recipient_count.to_string()),
        ("client_address", f.client_addr.to_string()),
        ("client_name", f.client_name.clone()),
        ("reverse_client_name", f.reverse_client_name.clone()),
        ("instance", f.instance.clone()),
        ("sasl_method", opt(&f.sasl_method)),
        ("sasl_username", opt(&f.sasl_username)),
        ("sasl_sender", opt(&f.sasl_sender)),
        ("size", f.size.to_string()),
        ("ccert_subject", String::new()),
        ("ccert_issuer", String::new()),
        ("ccert_fingerprint", String::new()),
        ("ccert_pubkey_fingerprint", String::new()),
        (
            "encryption_protocol",
            tls.map(|t| t.protocol.clone()).unwrap_or_default(),
        ),
        (
            "encryption_cipher",
            tls.map(|t| t.cipher.clone()).unwrap_or_default(),
        ),
        ("encryption_keysize", tls.map_or(0, |t| t.bits).to_string()),
        ("etrn_domain", String::new()),
        ("stress", String::new()),
        ("client_port", f.client_port.to_string()),
        ("policy_context", String::new()),
        ("server_address", String::new()),
        ("server_port", String::new()),
        ("compatibility_level", "3.6".to_string()),
        ("mail_version", env!("CARGO_PKG_VERSION").to_string()),
    ]
}
