//! Restriction lists: Postfix's `smtpd_relay_restrictions` and `smtpd_recipient_restrictions`
//! (postconf(5), SMTPD_ACCESS_README).
//!
//! A list is parsed once per configuration into [`Restriction`] values ([`Policy::new`]); one
//! function, [`evaluate`], gives the [`Decision`] of one element for the [`Facts`] of a request.
//! Evaluation follows Postfix: elements run in order, the first `Ok` (permit) ends that list,
//! the first `Reject`/`Defer` ends everything, `Dunno` goes on; the end of a list is `Dunno`.
//! At `RCPT TO`, `smtpd_relay_restrictions` runs first, then `smtpd_recipient_restrictions`
//! (`smtpd_relay_before_recipient_restrictions = yes`), then the implicit
//! `reject_unlisted_recipient` (`smtpd_reject_unlisted_recipient = yes`).
//!
//! Later work adds `check_*_access type:table`, `check_policy_service`, `wasm:NAME` and `rhai:`
//! elements: each is a new [`Restriction`] variant plus one arm in [`evaluate`]; the
//! [`BUILTINS`] table is the list of names a reader can scan.

mod local;

use std::net::IpAddr;

use postern_config::{Cidr, Config};
use postern_proto::Reply;

pub use crate::address::{normalize_domain, split_address, Destinations, Resolved};
pub use local::{strip_extension, LocalRecipients};

/// One element of a restriction list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// `permit`
    Permit,
    /// `reject`: `554 5.7.1 … Access denied` (`reject_code`).
    Reject,
    /// `defer`: `450 4.3.2 … Try again later` (`defer_code`).
    Defer,
    /// `permit_mynetworks`: the client address is in `mynetworks`.
    PermitMynetworks,
    /// `permit_sasl_authenticated`: never matches until AUTH exists.
    PermitSaslAuthenticated,
    /// `reject_unauth_destination`: `554 5.7.1 <rcpt>: Relay access denied`.
    RejectUnauthDestination,
    /// `defer_unauth_destination`: `454 4.7.1 <rcpt>: Relay access denied`.
    DeferUnauthDestination,
    /// `reject_non_fqdn_recipient`: `504 5.5.2`.
    RejectNonFqdnRecipient,
    /// `reject_non_fqdn_sender`: `504 5.5.2` (the null sender passes).
    RejectNonFqdnSender,
    /// `reject_unlisted_recipient` (alias `check_recipient_maps`): unknown local users get
    /// `550 5.1.1`.
    RejectUnlistedRecipient,
    /// A name Postern does not implement (yet). Evaluating it logs a warning and defers with
    /// `451 4.3.5 Server configuration error`, as Postfix does for an unknown restriction:
    /// silently skipping a check the admin asked for could let mail through that should not.
    Unknown { name: String, arg: Option<String> },
}

/// Built-in restriction names (case-insensitive, as in Postfix).
pub const BUILTINS: &[(&str, Restriction)] = &[
    ("permit", Restriction::Permit),
    ("reject", Restriction::Reject),
    ("defer", Restriction::Defer),
    ("permit_mynetworks", Restriction::PermitMynetworks),
    (
        "permit_sasl_authenticated",
        Restriction::PermitSaslAuthenticated,
    ),
    (
        "reject_unauth_destination",
        Restriction::RejectUnauthDestination,
    ),
    (
        "defer_unauth_destination",
        Restriction::DeferUnauthDestination,
    ),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
    ),
    ("reject_non_fqdn_sender", Restriction::RejectNonFqdnSender),
    (
        "reject_unlisted_recipient",
        Restriction::RejectUnlistedRecipient,
    ),
    ("check_recipient_maps", Restriction::RejectUnlistedRecipient),
];

/// Elements that stop relaying; Postfix refuses to start unless `smtpd_relay_restrictions` or
/// `smtpd_recipient_restrictions` holds one of them before any `permit` (smtpd_check.c
/// `rcpt_required`). Postern keeps running but defers every recipient (see
/// [`Policy::check_recipient`]): it must never be an open relay.
const RELAY_GUARDS: &[Restriction] = &[
    Restriction::RejectUnauthDestination,
    Restriction::DeferUnauthDestination,
    Restriction::Reject,
    Restriction::Defer,
];

impl Restriction {
    /// Parses a restriction list as the config crate split it. Names that take an argument
    /// (`check_*`, `reject_rbl_client`, …) consume the next item.
    pub fn parse_list(items: &[String]) -> Vec<Restriction> {
        let mut out = Vec::new();
        let mut it = items.iter();
        while let Some(name) = it.next() {
            let known = BUILTINS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, r)| r.clone());
            out.push(known.unwrap_or_else(|| {
                let arg = takes_argument(name).then(|| it.next().cloned()).flatten();
                Restriction::Unknown {
                    name: name.clone(),
                    arg,
                }
            }));
        }
        out
    }
}

fn takes_argument(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n.starts_with("check_") && n != "check_recipient_maps")
        || ["reject_rbl", "reject_rhsbl", "permit_dnswl", "permit_rhswl"]
            .iter()
            .any(|p| n.starts_with(p))
}

/// The result of one restriction or of a whole evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Permit: stop this list (Postfix `OK`).
    Ok,
    /// No opinion: go on with the next element (Postfix `DUNNO`).
    Dunno,
    /// Permanent refusal (5xx).
    Reject(Reply),
    /// Temporary refusal (4xx).
    Defer(Reply),
}

impl Decision {
    /// The reply to send when the request is refused.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Decision::Reject(r) | Decision::Defer(r) => Some(r),
            Decision::Ok | Decision::Dunno => None,
        }
    }

    fn refusal(reply: Reply) -> Decision {
        if reply.is_transient() {
            Decision::Defer(reply)
        } else {
            Decision::Reject(reply)
        }
    }
}

/// What is known about the request being checked.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub client_addr: IpAddr,
    pub client_name: &'a str,
    pub helo: Option<&'a str>,
    /// Envelope sender; `Some("")` is the null sender.
    pub sender: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// SASL login name; always `None` until AUTH is implemented.
    pub sasl_username: Option<&'a str>,
    /// The transaction declared SMTPUTF8 (non-ASCII domains allowed).
    pub smtputf8: bool,
}

/// Restriction lists and the tables they consult, derived once from one configuration epoch.
#[derive(Clone, Debug)]
pub struct Policy {
    relay: Vec<Restriction>,
    recipient: Vec<Restriction>,
    relay_guard: bool,
    mynetworks: Vec<Cidr>,
    destinations: Destinations,
    local_recipients: LocalRecipients,
    recipient_delimiter: String,
}

/// Scratch state of one evaluation (Postfix `recipient_rcptmap_checked`).
#[derive(Default)]
struct Eval {
    rcptmap_checked: bool,
}

impl Policy {
    pub fn new(cfg: &Config) -> Policy {
        let relay = Restriction::parse_list(&cfg.smtpd_relay_restrictions);
        let recipient = Restriction::parse_list(&cfg.smtpd_recipient_restrictions);
        let relay_guard = has_guard(&relay) || has_guard(&recipient);
        Policy {
            relay,
            recipient,
            relay_guard,
            mynetworks: cfg.mynetworks.clone(),
            destinations: Destinations::new(cfg),
            local_recipients: LocalRecipients::parse(&cfg.local_recipient_maps),
            recipient_delimiter: cfg.recipient_delimiter.clone(),
        }
    }

    /// False when neither list can refuse a remote destination (`reject_unauth_destination`,
    /// `defer_unauth_destination`, `reject` or `defer` before any `permit`).
    pub fn has_relay_guard(&self) -> bool {
        self.relay_guard
    }

    /// `mynetworks` membership (also used for connection-limit exemptions).
    pub fn is_mynetworks(&self, addr: IpAddr) -> bool {
        self.mynetworks.iter().any(|c| c.contains(addr))
    }

    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    /// Checks `RCPT TO` (and `VRFY`): relay restrictions, recipient restrictions, then the
    /// implicit unknown-local-user check. Returns `Ok`, `Reject` or `Defer`.
    pub fn check_recipient(&self, facts: &Facts<'_>) -> Decision {
        // Logged once per configuration by smtpd's `Settings::new`; the reject log line of
        // each refused recipient shows the 451.
        if !self.relay_guard {
            return server_error();
        }
        let mut eval = Eval::default();
        for list in [&self.relay, &self.recipient] {
            let d = self.evaluate_list(list, facts, &mut eval);
            if d.reply().is_some() {
                return d;
            }
        }
        if !eval.rcptmap_checked {
            if let Some(rcpt) = facts.recipient {
                let d = self.unlisted_recipient(rcpt);
                if d.reply().is_some() {
                    return d;
                }
            }
        }
        Decision::Ok
    }

    fn evaluate_list(&self, list: &[Restriction], facts: &Facts<'_>, eval: &mut Eval) -> Decision {
        for r in list {
            if *r == Restriction::RejectUnlistedRecipient {
                eval.rcptmap_checked = true;
            }
            match evaluate(self, r, facts) {
                Decision::Dunno => continue,
                other => return other,
            }
        }
        Decision::Dunno
    }

    fn unlisted_recipient(&self, rcpt: &str) -> Decision {
        match self.destinations.resolve(rcpt) {
            Resolved::Local(local) => {
                let user = strip_extension(&local, &self.recipient_delimiter);
                if self.local_recipients.contains(user) {
                    Decision::Dunno
                } else {
                    Decision::Reject(Reply::new(
                        550,
                        "5.1.1",
                        format!(
                            "<{rcpt}>: Recipient address rejected: User unknown in local \
                             recipient table"
                        ),
                    ))
                }
            }
            Resolved::Relay | Resolved::Remote => Decision::Dunno,
        }
    }
}

fn has_guard(list: &[Restriction]) -> bool {
    for r in list {
        if *r == Restriction::Permit {
            return false;
        }
        if RELAY_GUARDS.contains(r) {
            return true;
        }
    }
    false
}

/// `451 4.3.5 Server configuration error` (Postfix `reject_server_error`).
fn server_error() -> Decision {
    Decision::Defer(Reply::new(451, "4.3.5", "Server configuration error"))
}

/// Evaluates one restriction. This is the single place where a restriction's meaning lives.
pub fn evaluate(policy: &Policy, r: &Restriction, facts: &Facts<'_>) -> Decision {
    let rcpt = facts.recipient;
    match r {
        Restriction::Permit => Decision::Ok,
        Restriction::Reject => Decision::Reject(Reply::new(
            554,
            "5.7.1",
            format!(
                "<{}>: {} rejected: Access denied",
                reply_name(facts),
                reply_class(facts)
            ),
        )),
        Restriction::Defer => Decision::Defer(Reply::new(
            450,
            "4.3.2",
            format!(
                "<{}>: {} rejected: Try again later",
                reply_name(facts),
                reply_class(facts)
            ),
        )),
        Restriction::PermitMynetworks => {
            if policy.is_mynetworks(facts.client_addr) {
                Decision::Ok
            } else {
                Decision::Dunno
            }
        }
        Restriction::PermitSaslAuthenticated => match facts.sasl_username {
            Some(_) => Decision::Ok,
            None => Decision::Dunno,
        },
        Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
            let Some(rcpt) = rcpt else {
                return Decision::Dunno;
            };
            if policy.destinations.is_authorized(rcpt) {
                return Decision::Dunno;
            }
            let (code, enh) = match r {
                Restriction::RejectUnauthDestination => (554, "5.7.1"),
                _ => (454, "4.7.1"),
            };
            Decision::refusal(Reply::new(
                code,
                enh,
                format!("<{rcpt}>: Relay access denied"),
            ))
        }
        Restriction::RejectNonFqdnRecipient => match rcpt {
            Some(a) => non_fqdn(a, "Recipient address", facts.smtputf8),
            None => Decision::Dunno,
        },
        Restriction::RejectNonFqdnSender => match facts.sender {
            Some(s) if !s.is_empty() => non_fqdn(s, "Sender address", facts.smtputf8),
            _ => Decision::Dunno,
        },
        Restriction::RejectUnlistedRecipient => match rcpt {
            Some(a) => policy.unlisted_recipient(a),
            None => Decision::Dunno,
        },
        Restriction::Unknown { name, .. } => {
            crate::warn!("smtpd", "unknown smtpd restriction: \"{name}\"");
            server_error()
        }
    }
}

/// The address named in a generic `reject`/`defer` reply (Postfix `reply_name`).
fn reply_name<'a>(facts: &Facts<'a>) -> &'a str {
    facts
        .recipient
        .or(facts.sender)
        .unwrap_or(facts.client_name)
}

fn reply_class(facts: &Facts<'_>) -> &'static str {
    if facts.recipient.is_some() {
        "Recipient address"
    } else if facts.sender.is_some() {
        "Sender address"
    } else {
        "Client host"
    }
}

/// Postfix `reject_non_fqdn_address`: `504 5.5.2 <addr>: … rejected: need fully-qualified
/// address`. Address literals pass; non-ASCII domains only with SMTPUTF8.
fn non_fqdn(address: &str, class: &str, smtputf8: bool) -> Decision {
    let (_, domain) = split_address(address);
    let domain = domain.unwrap_or("");
    if domain.starts_with('[') && domain.ends_with(']') {
        return Decision::Dunno;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if is_fqdn(domain, smtputf8) {
        Decision::Dunno
    } else {
        Decision::Reject(Reply::new(
            504,
            "5.5.2",
            format!("<{address}>: {class} rejected: need fully-qualified address"),
        ))
    }
}

/// A syntactically valid host name with at least two labels (RFC 1035 §2.3.4 lengths; `_` is
/// tolerated as by Postfix's `valid_hostname`).
fn is_fqdn(domain: &str, smtputf8: bool) -> bool {
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

#[cfg(test)]
mod tests;
