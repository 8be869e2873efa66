//! Restriction lists: Postfix's `smtpd_client_restrictions`, `smtpd_helo_restrictions`,
//! `smtpd_sender_restrictions`, `smtpd_relay_restrictions`, `smtpd_recipient_restrictions`,
//! `smtpd_data_restrictions`, `smtpd_end_of_data_restrictions` and `smtpd_restriction_classes`
//! (postconf(5), SMTPD_ACCESS_README, access(5)).
//!
//! # Layout
//! A list is parsed once per configuration into [`Restriction`] values ([`Policy::new`]),
//! with the tables it names opened then (`tables.rs`). `eval.rs` runs lists for one request
//! ([`Facts`]) and gives a [`Verdict`]: the [`Decision`], the side effects for cleanup
//! ([`Actions`]: PREPEND, HOLD, DISCARD, …) and [`Note`]s for smtpd to log. access(5) action
//! texts (from tables and from policy services, `policy.rs`) are parsed in `action.rs`;
//! the built-in checks live in `builtins.rs`, RCPT-time address validation in `recipient.rs`,
//! the checks on the SASL login and the session's encryption in `login.rs`.
//!
//! Evaluation follows Postfix: elements run in order, the first permit (`OK`) ends that list,
//! the first refusal ends everything, `DUNNO` goes on; the end of a list is `DUNNO`. With
//! `smtpd_delay_reject = yes` smtpd runs the client, HELO and sender lists at RCPT TO, before
//! `smtpd_relay_restrictions`, `smtpd_recipient_restrictions` and the implicit
//! `reject_unlisted_recipient` (`smtpd_reject_unlisted_recipient = yes`).
//!
//! Later work adds `wasm:NAME` and `rhai:` elements: each is a new [`Restriction`] variant plus
//! one arm in `eval.rs`; [`BUILTINS`] is the list of names a reader can scan.

mod action;
mod builtins;
mod dnsbl;
mod eval;
mod facts;
mod login;
pub mod policy;
mod recipient;
mod script;
mod tables;
pub(crate) mod wasm;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use postern_config::{Cidr, Config};
use postern_maps::search::ParentStyle;
use postern_proto::Reply;

use crate::dns::Resolver;

pub use crate::address::{normalize_domain, split_address, Destinations, Resolved};
pub use crate::cleanup::Actions;
pub use action::{parse_action, Action};
pub use dnsbl::DnsList;
pub use facts::{Facts, Note, Stage, Verdict};
pub use login::LoginCheck;
pub use recipient::{AddrClass, RecipientMaps};
pub use tables::{access_tables, plugin_references, policy_scripts, regroup};

/// One element of a restriction list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    Permit,
    /// `reject`: `554 5.7.1 <name>: <class> rejected: Access denied` (`reject_code`).
    Reject,
    /// `defer`: `450 4.3.2 … Try again later` (`defer_code`).
    Defer,
    /// `warn_if_reject`: the next element's refusal is only logged (`reject_warning`).
    WarnIfReject,
    PermitMynetworks,
    /// `permit_sasl_authenticated`: the client logged in with AUTH.
    PermitSaslAuthenticated,
    /// `reject_sender_login_mismatch` and its three variants (`smtpd_sender_login_maps`):
    /// `553 5.7.1 <sender>: Sender address rejected: not owned by user NAME` / `not logged in`.
    SenderLoginMismatch(LoginCheck),
    /// `reject_plaintext_session`: `450 4.7.1 Session encryption is required`.
    RejectPlaintextSession,
    /// `reject_unauth_destination`: `554 5.7.1 <rcpt>: Relay access denied`.
    RejectUnauthDestination,
    /// `defer_unauth_destination`: `454 4.7.1 <rcpt>: Relay access denied`.
    DeferUnauthDestination,
    /// `permit_auth_destination`: the recipient is local, virtual or relayed for.
    PermitAuthDestination,
    RejectNonFqdnRecipient,
    RejectNonFqdnSender,
    RejectNonFqdnHelo,
    RejectInvalidHelo,
    /// `reject_unlisted_recipient` (alias `check_recipient_maps`).
    RejectUnlistedRecipient,
    RejectUnlistedSender,
    /// `reject_multi_recipient_bounce`: a null sender with more than one recipient.
    RejectMultiRecipientBounce,
    /// `reject_unauth_pipelining`: commands sent ahead of replies without PIPELINING.
    RejectUnauthPipelining,
    /// `check_*_access type:table`.
    Access(AccessCheck, String),
    /// A name from `smtpd_restriction_classes`.
    Class(String),
    /// `check_policy_service inet:host:port | unix:/path | rhai:/path.rhai`.
    PolicyService(String),
    /// `reject_rbl_client`, `reject_rhsbl_client`, `reject_rhsbl_sender`,
    /// `permit_dnswl_client` with their `domain[=filter]`.
    Dns(DnsList, String),
    RejectUnknownHelo,
    RejectUnknownSenderDomain,
    RejectUnknownRecipientDomain,
    RejectUnknownClient,
    RejectUnknownReverseClient,
    /// A name Postern does not know (or a DNS check not built in yet). Evaluating it logs a
    /// warning and defers with `451 4.3.5 Server configuration error`, as Postfix does for an
    /// unknown restriction: silently skipping a check could let mail through that should not.
    Unknown {
        name: String,
        arg: Option<String>,
    },
}

/// Which request attribute a `check_*_access` element looks up, with which search order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessCheck {
    /// `check_client_access`: client name and parents, then address and its prefixes.
    Client,
    /// `check_reverse_client_hostname_access`: the unverified reverse name.
    ReverseClient,
    /// `check_helo_access`: the HELO name and its parents.
    Helo,
    /// `check_sender_access`: access(5) address order; `<>` is `smtpd_null_access_lookup_key`.
    Sender,
    /// `check_recipient_access`.
    Recipient,
}

/// Built-in restriction names without an argument (case-insensitive, as in Postfix). Kept in
/// sync with `postern_config::RESTRICTION_NAMES`, which `postern check` validates against.
pub const BUILTINS: &[(&str, Restriction)] = &[
    ("permit", Restriction::Permit),
    ("reject", Restriction::Reject),
    ("defer", Restriction::Defer),
    ("warn_if_reject", Restriction::WarnIfReject),
    ("permit_mynetworks", Restriction::PermitMynetworks),
    (
        "permit_sasl_authenticated",
        Restriction::PermitSaslAuthenticated,
    ),
    (
        "reject_sender_login_mismatch",
        Restriction::SenderLoginMismatch(LoginCheck::Any),
    ),
    (
        "reject_authenticated_sender_login_mismatch",
        Restriction::SenderLoginMismatch(LoginCheck::Authenticated),
    ),
    (
        "reject_known_sender_login_mismatch",
        Restriction::SenderLoginMismatch(LoginCheck::Known),
    ),
    (
        "reject_unauthenticated_sender_login_mismatch",
        Restriction::SenderLoginMismatch(LoginCheck::Unauthenticated),
    ),
    (
        "reject_plaintext_session",
        Restriction::RejectPlaintextSession,
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
        "permit_auth_destination",
        Restriction::PermitAuthDestination,
    ),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
    ),
    ("reject_non_fqdn_sender", Restriction::RejectNonFqdnSender),
    (
        "reject_non_fqdn_helo_hostname",
        Restriction::RejectNonFqdnHelo,
    ),
    ("reject_non_fqdn_hostname", Restriction::RejectNonFqdnHelo),
    (
        "reject_invalid_helo_hostname",
        Restriction::RejectInvalidHelo,
    ),
    ("reject_invalid_hostname", Restriction::RejectInvalidHelo),
    (
        "reject_unlisted_recipient",
        Restriction::RejectUnlistedRecipient,
    ),
    ("check_recipient_maps", Restriction::RejectUnlistedRecipient),
    ("reject_unlisted_sender", Restriction::RejectUnlistedSender),
    (
        "reject_multi_recipient_bounce",
        Restriction::RejectMultiRecipientBounce,
    ),
    (
        "reject_unauth_pipelining",
        Restriction::RejectUnauthPipelining,
    ),
    (
        "reject_unknown_helo_hostname",
        Restriction::RejectUnknownHelo,
    ),
    ("reject_unknown_hostname", Restriction::RejectUnknownHelo),
    (
        "reject_unknown_sender_domain",
        Restriction::RejectUnknownSenderDomain,
    ),
    (
        "reject_unknown_recipient_domain",
        Restriction::RejectUnknownRecipientDomain,
    ),
    (
        "reject_unknown_client_hostname",
        Restriction::RejectUnknownClient,
    ),
    ("reject_unknown_client", Restriction::RejectUnknownClient),
    (
        "reject_unknown_reverse_client_hostname",
        Restriction::RejectUnknownReverseClient,
    ),
];

/// DNS list elements (with a `domain[=filter]` argument).
const DNS_LISTS: &[(&str, DnsList)] = &[
    ("reject_rbl_client", DnsList::RblClient),
    ("reject_rhsbl_client", DnsList::RhsblClient),
    ("reject_rhsbl_sender", DnsList::RhsblSender),
    ("permit_dnswl_client", DnsList::DnswlClient),
];

/// Elements with a table argument.
const ACCESS_CHECKS: &[(&str, AccessCheck)] = &[
    ("check_client_access", AccessCheck::Client),
    (
        "check_reverse_client_hostname_access",
        AccessCheck::ReverseClient,
    ),
    ("check_helo_access", AccessCheck::Helo),
    ("check_sender_access", AccessCheck::Sender),
    ("check_recipient_access", AccessCheck::Recipient),
];

/// Elements that stop relaying; Postfix refuses to start unless `smtpd_relay_restrictions` or
/// `smtpd_recipient_restrictions` holds one of them before any `permit` (smtpd_check.c
/// `rcpt_required`). Postern keeps running but defers every recipient: it must never be an
/// open relay.
const RELAY_GUARDS: &[Restriction] = &[
    Restriction::RejectUnauthDestination,
    Restriction::DeferUnauthDestination,
    Restriction::Reject,
    Restriction::Defer,
];

impl Restriction {
    /// Parses a restriction list as the config crate split it. Names that take an argument
    /// (`check_*`, `reject_rbl_client`, …) consume the next item; `classes` are the names in
    /// `smtpd_restriction_classes`.
    pub fn parse_list(items: &[String], classes: &[String]) -> Vec<Restriction> {
        let items = tables::regroup(items);
        let mut out = Vec::new();
        let mut it = items.iter();
        while let Some(name) = it.next() {
            let lower = name.to_ascii_lowercase();
            if let Some((_, r)) = BUILTINS.iter().find(|(n, _)| *n == lower) {
                out.push(r.clone());
            } else if let Some((_, check)) = ACCESS_CHECKS.iter().find(|(n, _)| *n == lower) {
                match it.next() {
                    Some(arg) => out.push(Restriction::Access(*check, arg.clone())),
                    None => out.push(Restriction::Unknown {
                        name: name.clone(),
                        arg: None,
                    }),
                }
            } else if let Some((_, list)) = DNS_LISTS.iter().find(|(n, _)| *n == lower) {
                match it.next() {
                    Some(arg) => out.push(Restriction::Dns(*list, arg.clone())),
                    None => out.push(Restriction::Unknown {
                        name: name.clone(),
                        arg: None,
                    }),
                }
            } else if lower == "check_policy_service" {
                match it.next() {
                    Some(arg) => out.push(Restriction::PolicyService(arg.clone())),
                    None => out.push(Restriction::Unknown {
                        name: name.clone(),
                        arg: None,
                    }),
                }
            } else if classes.iter().any(|c| c == name) {
                out.push(Restriction::Class(name.clone()));
            } else {
                let arg = postern_config::restriction_takes_argument(name)
                    .then(|| it.next().cloned())
                    .flatten();
                out.push(Restriction::Unknown {
                    name: name.clone(),
                    arg,
                });
            }
        }
        out
    }
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

    pub(crate) fn refusal(reply: Reply) -> Decision {
        if reply.is_transient() {
            Decision::Defer(reply)
        } else {
            Decision::Reject(reply)
        }
    }
}

/// The reply codes of the built-in checks (postconf(5) `*_reject_code`).
#[derive(Clone, Debug)]
pub(crate) struct Codes {
    pub reject: u16,
    pub defer: u16,
    pub access_reject: u16,
    pub access_defer: u16,
    pub invalid_hostname: u16,
    pub non_fqdn: u16,
    pub relay_domains: u16,
    pub maps_rbl: u16,
    pub unknown_address: u16,
    pub unknown_hostname: u16,
    pub unknown_client: u16,
}

/// Restriction lists and the tables they consult, derived once from one configuration epoch.
#[derive(Clone, Debug)]
pub struct Policy {
    client: Vec<Restriction>,
    helo: Vec<Restriction>,
    sender: Vec<Restriction>,
    relay: Vec<Restriction>,
    recipient: Vec<Restriction>,
    data: Vec<Restriction>,
    end_of_data: Vec<Restriction>,
    classes: HashMap<String, Vec<Restriction>>,
    tables: tables::TableSet,
    relay_guard: bool,
    mynetworks: Vec<Cidr>,
    maps: RecipientMaps,
    /// `smtpd_sender_login_maps`.
    logins: login::LoginMaps,
    codes: Codes,
    parents: ParentStyle,
    null_key: String,
    delay_reject: bool,
    reject_unlisted_sender: bool,
    reject_unlisted_recipient: bool,
    policy_clients: Arc<policy::PolicyClients>,
    /// Wasm plugins of this configuration epoch (`check_policy_service wasm:NAME`).
    plugins: Arc<crate::plugins::PluginSet>,
    /// `default_rbl_reply`, unexpanded.
    rbl_reply: String,
    /// Made when a list uses DNS or `dns_nameservers` is set; `None` otherwise (or when it
    /// could not be made: DNS elements then find nothing and client names stay `unknown`).
    resolver: Option<Arc<dyn Resolver>>,
    config: Arc<Config>,
}

impl Policy {
    pub fn new(cfg: &Config) -> Policy {
        let class_names: Vec<String> = cfg
            .smtpd_restriction_classes
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let parse = |items: &[String]| Restriction::parse_list(items, &class_names);
        let classes: HashMap<String, Vec<Restriction>> = cfg
            .smtpd_restriction_classes
            .iter()
            .map(|(n, list)| (n.clone(), parse(list)))
            .collect();
        let relay = parse(&cfg.smtpd_relay_restrictions);
        let recipient = parse(&cfg.smtpd_recipient_restrictions);
        let relay_guard = has_guard(&relay) || has_guard(&recipient);
        let mut policy = Policy {
            client: parse(&cfg.smtpd_client_restrictions),
            helo: parse(&cfg.smtpd_helo_restrictions),
            sender: parse(&cfg.smtpd_sender_restrictions),
            relay,
            recipient,
            data: parse(&cfg.smtpd_data_restrictions),
            end_of_data: parse(&cfg.smtpd_end_of_data_restrictions),
            classes,
            tables: tables::TableSet::default(),
            relay_guard,
            mynetworks: cfg.mynetworks.clone(),
            maps: RecipientMaps::new(cfg),
            logins: login::LoginMaps::new(cfg),
            codes: Codes {
                reject: cfg.reject_code,
                defer: cfg.defer_code,
                access_reject: cfg.access_map_reject_code,
                access_defer: cfg.access_map_defer_code,
                invalid_hostname: cfg.invalid_hostname_reject_code,
                non_fqdn: cfg.non_fqdn_reject_code,
                relay_domains: cfg.relay_domains_reject_code,
                maps_rbl: cfg.maps_rbl_reject_code,
                unknown_address: cfg.unknown_address_reject_code,
                unknown_hostname: cfg.unknown_hostname_reject_code,
                unknown_client: cfg.unknown_client_reject_code,
            },
            parents: ParentStyle::for_feature(
                &cfg.parent_domain_matches_subdomains.join(","),
                "smtpd_access_maps",
            ),
            null_key: cfg.smtpd_null_access_lookup_key.clone(),
            delay_reject: cfg.smtpd_delay_reject,
            reject_unlisted_sender: cfg.smtpd_reject_unlisted_sender,
            reject_unlisted_recipient: cfg.smtpd_reject_unlisted_recipient,
            policy_clients: Arc::new(policy::PolicyClients::new()),
            plugins: crate::plugins::for_config(cfg),
            rbl_reply: cfg.default_rbl_reply.clone(),
            resolver: None,
            config: Arc::new(cfg.clone()),
        };
        policy.open_tables();
        if !cfg.dns_nameservers.is_empty() || policy.uses_dns() {
            policy.resolver = crate::dns::resolver_for(cfg);
        }
        policy
    }

    /// [`Policy::new`] with a given resolver (tests use recorded answers).
    pub fn with_resolver(cfg: &Config, resolver: Arc<dyn Resolver>) -> Policy {
        let mut policy = Policy::new(cfg);
        policy.resolver = Some(resolver);
        policy
    }

    /// True when a table the lists or recipient validation use changed on disk: smtpd then
    /// builds a new policy for new sessions (running sessions keep theirs).
    pub fn is_stale(&self) -> bool {
        self.tables.is_stale() || self.maps.is_stale() || self.logins.is_stale()
    }

    /// The plugins of the configuration epoch this policy was built in.
    pub fn plugins(&self) -> &Arc<crate::plugins::PluginSet> {
        &self.plugins
    }

    /// The resolver for DNS checks and client host names, if any.
    pub fn resolver(&self) -> Option<&Arc<dyn Resolver>> {
        self.resolver.as_ref()
    }

    fn all_elements(&self) -> impl Iterator<Item = &Restriction> {
        [
            &self.client,
            &self.helo,
            &self.sender,
            &self.relay,
            &self.recipient,
            &self.data,
            &self.end_of_data,
        ]
        .into_iter()
        .chain(self.classes.values())
        .flatten()
    }

    /// Whether any list has an element that needs DNS (access-table results are not looked
    /// into: set `dns_nameservers` when only those name DNS checks).
    fn uses_dns(&self) -> bool {
        self.all_elements().any(|r| {
            matches!(
                r,
                Restriction::Dns(..)
                    | Restriction::RejectUnknownHelo
                    | Restriction::RejectUnknownSenderDomain
                    | Restriction::RejectUnknownRecipientDomain
                    | Restriction::RejectUnknownClient
                    | Restriction::RejectUnknownReverseClient
                    | Restriction::Access(AccessCheck::Client | AccessCheck::ReverseClient, _)
            )
        })
    }

    /// Opens every table the lists name, so that a broken one is logged at start-up.
    fn open_tables(&mut self) {
        let specs: Vec<String> = self
            .all_elements()
            .filter_map(|r| match r {
                Restriction::Access(_, spec) => Some(spec.clone()),
                _ => None,
            })
            .collect();
        for spec in specs {
            let _ = self.tables.open(&spec);
        }
        let scripts: Vec<&str> = self
            .all_elements()
            .filter_map(|r| match r {
                Restriction::PolicyService(spec) => spec.strip_prefix("rhai:"),
                _ => None,
            })
            .collect();
        for path in scripts {
            if let Err(e) = crate::scripts::engine().load(std::path::Path::new(path)) {
                crate::warn!("smtpd", "policy script: {e}");
            }
        }
    }

    /// False when neither list can refuse a remote destination (`reject_unauth_destination`,
    /// `defer_unauth_destination`, `reject` or `defer` before any `permit`).
    pub fn has_relay_guard(&self) -> bool {
        self.relay_guard
    }

    /// `smtpd_delay_reject`: client, HELO and sender lists wait for RCPT TO.
    pub fn delay_reject(&self) -> bool {
        self.delay_reject
    }

    /// `mynetworks` membership (also used for connection-limit exemptions).
    pub fn is_mynetworks(&self, addr: IpAddr) -> bool {
        self.mynetworks.iter().any(|c| c.contains(addr))
    }

    pub fn destinations(&self) -> &Destinations {
        self.maps.destinations()
    }

    /// Runs one stage's list (client, HELO, sender, data or end of data). For data and end of
    /// data a pending `DEFER_IF_PERMIT` is applied at the end; the earlier stages return it in
    /// [`Verdict::defer_if_permit`] for RCPT TO.
    pub async fn check_stage(&self, stage: Stage, facts: &Facts) -> Verdict {
        let list = match stage {
            Stage::Client => &self.client,
            Stage::Helo => &self.helo,
            Stage::Sender => &self.sender,
            Stage::Data => &self.data,
            Stage::EndOfData => &self.end_of_data,
            Stage::Recipient => return self.check_recipient(facts, None).await,
        };
        let mut ev = eval::Eval::new(self, facts);
        let mut decision = ev.stage_list(list, stage).await;
        if stage == Stage::Sender
            && self.reject_unlisted_sender
            && decision.reply().is_none()
            && !ev.sendermap_checked
        {
            if let Some(sender) = facts.sender.as_deref() {
                let d = ev.unlisted(sender, "Sender address");
                if d.reply().is_some() {
                    decision = d;
                }
            }
        }
        if matches!(stage, Stage::Data | Stage::EndOfData) {
            decision = ev.apply_defer_if_permit(decision);
        }
        ev.finish(decision)
    }

    /// Checks `RCPT TO` (and `VRFY`): relay restrictions, recipient restrictions, the implicit
    /// `reject_unlisted_recipient`, then a `DEFER_IF_PERMIT` from any stage (`carried`: the
    /// one the client/HELO/sender stages left).
    pub async fn check_recipient(&self, facts: &Facts, carried: Option<Reply>) -> Verdict {
        let mut ev = eval::Eval::new(self, facts);
        ev.defer_if_permit = carried;
        if !self.relay_guard {
            // Logged once per configuration by smtpd's `Settings::new`.
            let d = eval::server_error();
            return ev.finish(d);
        }
        let mut decision = Decision::Dunno;
        for list in [&self.relay, &self.recipient] {
            let d = ev.stage_list(list, Stage::Recipient).await;
            if d.reply().is_some() {
                return ev.finish(d);
            }
            decision = d;
        }
        let decision = ev.apply_defer_if_permit(decision);
        if decision.reply().is_some() {
            return ev.finish(decision);
        }
        if self.reject_unlisted_recipient && !ev.rcptmap_checked {
            if let Some(rcpt) = facts.recipient.as_deref() {
                let d = ev.unlisted(rcpt, "Recipient address");
                if d.reply().is_some() {
                    return ev.finish(d);
                }
            }
        }
        ev.finish(decision)
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

#[cfg(test)]
mod tests;
