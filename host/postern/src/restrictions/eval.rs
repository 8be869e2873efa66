//! Running restriction lists for one request (Postfix smtpd_check.c `generic_checks` and
//! `check_table_result`).
//!
//! State that spans the elements of one evaluation lives in [`Eval`]: the pending
//! `DEFER_IF_PERMIT` / `DEFER_IF_REJECT` replies, the `warn_if_reject` flag of the element
//! being run, and the side effects and log notes collected so far. Restriction classes and
//! access-table results that are restriction lists recurse through [`Eval::list`] (boxed, with
//! a depth limit so that a class naming itself ends in `451 4.3.5` instead of a stack overflow).

use std::future::Future;
use std::pin::Pin;

use postern_maps::search;
use postern_maps::{LookupError, Scope, Tables};
use postern_proto::Reply;

use super::action::{parse_action, refusal_reply, Action};
use super::dnsbl::{self, Outcome};
use super::Verdict;
use super::{builtins, AccessCheck, Actions, Decision, Facts, Note, Policy, Restriction, Stage};

type Fut<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// How deep classes and table results may nest.
const MAX_DEPTH: u32 = 50;

/// `451 4.3.5 Server configuration error` (Postfix `reject_server_error`).
pub fn server_error() -> Decision {
    Decision::Defer(Reply::new(451, "4.3.5", "Server configuration error"))
}

/// `451 4.3.0 <name>: Temporary lookup failure` (Postfix `reject_dict_retry`); a table
/// configuration error is a server configuration error.
pub fn lookup_failure(name: &str, err: &LookupError) -> Decision {
    crate::warn!("smtpd", "<{name}>: table lookup problem: {err}");
    match err {
        LookupError::Temporary(_) => Decision::Defer(Reply::new(
            451,
            "4.3.0",
            format!("<{name}>: Temporary lookup failure"),
        )),
        LookupError::Config(_) => server_error(),
    }
}

pub(super) struct Eval<'p> {
    pub policy: &'p Policy,
    pub facts: &'p Facts,
    pub defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
    /// The element being run follows `warn_if_reject`.
    warn: bool,
    pub rcptmap_checked: bool,
    pub sendermap_checked: bool,
    actions: Actions,
    notes: Vec<Note>,
    depth: u32,
}

impl<'p> Eval<'p> {
    pub fn new(policy: &'p Policy, facts: &'p Facts) -> Eval<'p> {
        Eval {
            policy,
            facts,
            defer_if_permit: None,
            defer_if_reject: None,
            warn: false,
            rcptmap_checked: false,
            sendermap_checked: false,
            actions: Actions::default(),
            notes: Vec::new(),
            depth: 0,
        }
    }

    /// The result of the evaluation; "no opinion" at the end is acceptance.
    pub fn finish(self, decision: Decision) -> Verdict {
        let decision = match decision {
            Decision::Dunno => Decision::Ok,
            d => d,
        };
        Verdict {
            decision,
            defer_if_permit: self.defer_if_permit,
            actions: self.actions,
            notes: self.notes,
        }
    }

    /// A permit (or the end of the lists) becomes the pending `DEFER_IF_PERMIT` reply.
    pub fn apply_defer_if_permit(&mut self, decision: Decision) -> Decision {
        match self.defer_if_permit.take() {
            Some(r) if decision.reply().is_none() => Decision::Defer(r),
            _ => decision,
        }
    }

    pub fn note(&mut self, kind: &'static str, text: String) {
        self.notes.push(Note { kind, text });
    }

    /// Every refusal goes through here (Postfix `smtpd_check_reject`): after
    /// `warn_if_reject` it is only logged; a permanent one after `DEFER_IF_REJECT` becomes
    /// that deferral.
    pub fn refuse(&mut self, reply: Reply) -> Decision {
        if self.warn {
            self.note("reject_warning", reply.to_string());
            return Decision::Dunno;
        }
        if reply.is_permanent() {
            if let Some(d) = self.defer_if_reject.clone() {
                return Decision::Defer(d);
            }
        }
        Decision::refusal(reply)
    }

    /// The name and class a stage's generic replies use (`<name>: class rejected: …`).
    fn stage_names(&self, stage: Stage) -> (String, &'static str) {
        let f = self.facts;
        match stage {
            Stage::Client => (f.namaddr(), "Client host"),
            Stage::Helo => (f.helo.clone().unwrap_or_default(), "Helo command"),
            Stage::Sender => (f.sender.clone().unwrap_or_default(), "Sender address"),
            Stage::Recipient => (f.recipient.clone().unwrap_or_default(), "Recipient address"),
            Stage::Data => ("DATA".to_string(), "Data command"),
            Stage::EndOfData => ("END-OF-MESSAGE".to_string(), "End-of-data"),
        }
    }

    pub fn stage_list<'a>(&'a mut self, list: &'a [Restriction], stage: Stage) -> Fut<'a> {
        let (name, class) = self.stage_names(stage);
        self.list(list, name, class)
    }

    /// Runs a list: the first permit or refusal ends it.
    fn list<'a>(
        &'a mut self,
        list: &'a [Restriction],
        name: String,
        class: &'static str,
    ) -> Fut<'a> {
        Box::pin(async move {
            if self.depth >= MAX_DEPTH {
                crate::warn!(
                    "smtpd",
                    "restriction classes or access results nest deeper than {MAX_DEPTH} \
                     levels: is a class naming itself?"
                );
                return server_error();
            }
            self.depth += 1;
            let mut warn_next = false;
            let mut out = Decision::Dunno;
            for r in list {
                if *r == Restriction::WarnIfReject {
                    warn_next = true;
                    continue;
                }
                let outer = self.warn;
                self.warn = outer || warn_next;
                warn_next = false;
                let d = self.element(r, &name, class).await;
                self.warn = outer;
                if d != Decision::Dunno {
                    out = d;
                    break;
                }
            }
            self.depth -= 1;
            out
        })
    }

    /// Evaluates one restriction. This is the single place where a restriction's meaning lives.
    async fn element(&mut self, r: &Restriction, name: &str, class: &'static str) -> Decision {
        let p = self.policy;
        let f = self.facts;
        let refusal = match r {
            Restriction::Permit => return Decision::Ok,
            Restriction::WarnIfReject => return Decision::Dunno,
            Restriction::Reject => Some(Reply::new(
                p.codes.reject,
                "5.7.1",
                format!("<{name}>: {class} rejected: Access denied"),
            )),
            Restriction::Defer => Some(Reply::new(
                p.codes.defer,
                "4.3.2",
                format!("<{name}>: {class} rejected: Try again later"),
            )),
            Restriction::PermitMynetworks => {
                return permit_if(p.is_mynetworks(f.client_addr));
            }
            Restriction::PermitSaslAuthenticated => return permit_if(f.sasl_username.is_some()),
            Restriction::SenderLoginMismatch(check) => {
                match super::login::sender_login_mismatch(p, f, *check) {
                    Ok(reply) => reply,
                    Err(d) => return d,
                }
            }
            Restriction::RejectPlaintextSession => super::login::plaintext_session(f),
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
                let defer = *r == Restriction::DeferUnauthDestination;
                match builtins::unauth_destination(p, f, defer) {
                    Ok(reply) => reply,
                    Err(d) => return d,
                }
            }
            Restriction::PermitAuthDestination => {
                return match builtins::unauth_destination(p, f, false) {
                    Ok(None) if f.recipient.is_some() => Decision::Ok,
                    Ok(_) => Decision::Dunno,
                    Err(d) => d,
                };
            }
            Restriction::RejectNonFqdnRecipient => f
                .recipient
                .as_deref()
                .and_then(|a| builtins::non_fqdn(p, a, "Recipient address", f.smtputf8)),
            Restriction::RejectNonFqdnSender => f
                .sender
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| builtins::non_fqdn(p, s, "Sender address", f.smtputf8)),
            Restriction::RejectNonFqdnHelo => builtins::non_fqdn_helo(p, f),
            Restriction::RejectInvalidHelo => builtins::invalid_helo(p, f),
            Restriction::RejectUnlistedRecipient => {
                self.rcptmap_checked = true;
                return match f.recipient.as_deref() {
                    Some(a) => self.unlisted(a, "Recipient address"),
                    None => Decision::Dunno,
                };
            }
            Restriction::RejectUnlistedSender => {
                self.sendermap_checked = true;
                return match f.sender.as_deref() {
                    Some(a) => self.unlisted(a, "Sender address"),
                    None => Decision::Dunno,
                };
            }
            Restriction::RejectMultiRecipientBounce => {
                builtins::multi_recipient_bounce(f, name, class)
            }
            Restriction::RejectUnauthPipelining => builtins::unauth_pipelining(f, name, class),
            Restriction::Access(check, spec) => return self.access(*check, spec).await,
            Restriction::Class(class_name) => {
                return match p.classes.get(class_name) {
                    Some(list) => self.list(list, name.to_string(), class).await,
                    None => server_error(),
                };
            }
            Restriction::Dns(..)
            | Restriction::RejectUnknownHelo
            | Restriction::RejectUnknownSenderDomain
            | Restriction::RejectUnknownRecipientDomain
            | Restriction::RejectUnknownClient
            | Restriction::RejectUnknownReverseClient => return self.dns(r).await,
            Restriction::PolicyService(spec) => {
                return self.policy_service(spec, name, class).await;
            }
            Restriction::Unknown { name: unknown, .. } => {
                crate::warn!("smtpd", "unknown smtpd restriction: \"{unknown}\"");
                return server_error();
            }
        };
        match refusal {
            Some(reply) => self.refuse(reply),
            None => Decision::Dunno,
        }
    }

    /// The DNS-based elements (`dnsbl.rs`).
    async fn dns(&mut self, r: &Restriction) -> Decision {
        let p = self.policy;
        let f = self.facts;
        let outcome = match (r, p.resolver.as_deref()) {
            (Restriction::RejectUnknownClient, _) => dnsbl::unknown_client(p, f, false),
            (Restriction::RejectUnknownReverseClient, _) => dnsbl::unknown_client(p, f, true),
            (_, None) => {
                crate::warn!("smtpd", "no DNS resolver: {r:?} skipped");
                Outcome::Dunno
            }
            (Restriction::Dns(which, arg), Some(res)) => {
                dnsbl::list_check(p, res, f, *which, arg).await
            }
            (Restriction::RejectUnknownHelo, Some(res)) => dnsbl::unknown_helo(p, res, f).await,
            (Restriction::RejectUnknownSenderDomain, Some(res)) => match f.sender.as_deref() {
                Some(s) => dnsbl::unknown_domain(p, res, s, true).await,
                None => Outcome::Dunno,
            },
            (Restriction::RejectUnknownRecipientDomain, Some(res)) => {
                match f.recipient.as_deref() {
                    Some(a) => dnsbl::unknown_domain(p, res, a, false).await,
                    None => Outcome::Dunno,
                }
            }
            _ => Outcome::Dunno,
        };
        match outcome {
            Outcome::Dunno => Decision::Dunno,
            Outcome::Permit => Decision::Ok,
            Outcome::Refuse(reply) => self.refuse(reply),
            Outcome::DeferIfPermit(reply) => {
                if self.defer_if_permit.is_none() {
                    self.defer_if_permit = Some(reply);
                }
                Decision::Dunno
            }
        }
    }

    /// `reject_unlisted_recipient` / `reject_unlisted_sender`.
    pub fn unlisted(&mut self, address: &str, class: &'static str) -> Decision {
        match self.policy.maps.check(address, class) {
            Ok(None) => Decision::Dunno,
            Ok(Some(reply)) => self.refuse(reply),
            Err(e) => lookup_failure(address, &e),
        }
    }

    /// `check_*_access type:table` (Postfix `check_namadr_access`, `check_mail_access`, …).
    async fn access(&mut self, check: AccessCheck, spec: &str) -> Decision {
        let p = self.policy;
        let f = self.facts;
        let Ok(tables) = p.tables.get(spec) else {
            return server_error();
        };
        let addr = f.client_addr.to_string();
        let (name, class, found) = match check {
            AccessCheck::Client => (
                f.namaddr(),
                "Client host",
                search::access_client(&tables, &f.client_name, &addr, p.parents)
                    .map(|o| o.map(|found| found.value)),
            ),
            AccessCheck::ReverseClient => (
                format!("{}[{}]", f.reverse_client_name, addr),
                "Unverified Client host",
                search::access_client(&tables, &f.reverse_client_name, &addr, p.parents)
                    .map(|o| o.map(|found| found.value)),
            ),
            AccessCheck::Helo => {
                let Some(helo) = f.helo.as_deref() else {
                    return Decision::Dunno;
                };
                let key = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
                let found = search::access_domain(&tables, key.unwrap_or(helo), p.parents)
                    .map(|o| o.map(|found| found.value));
                (helo.to_string(), "Helo command", found)
            }
            AccessCheck::Sender | AccessCheck::Recipient => {
                let (address, class) = match check {
                    AccessCheck::Sender => (f.sender.as_deref(), "Sender address"),
                    _ => (f.recipient.as_deref(), "Recipient address"),
                };
                let Some(address) = address else {
                    return Decision::Dunno;
                };
                (
                    address.to_string(),
                    class,
                    self.address_lookup(&tables, address),
                )
            }
        };
        match found {
            Ok(Some(value)) => self.table_result(&value, &name, class).await,
            Ok(None) => Decision::Dunno,
            Err(e) => lookup_failure(&name, &e),
        }
    }

    fn address_lookup(
        &self,
        tables: &Tables,
        address: &str,
    ) -> Result<Option<String>, LookupError> {
        let p = self.policy;
        if address.is_empty() {
            return tables.find(&p.null_key, Scope::Full);
        }
        let opts = p.maps.address_options();
        Ok(search::access_address(tables, address, opts, p.parents)?.map(|f| f.value))
    }

    /// What an access(5) action (or a policy service's reply) does (Postfix
    /// `check_table_result`).
    pub fn table_result<'a>(
        &'a mut self,
        value: &'a str,
        name: &'a str,
        class: &'static str,
    ) -> Fut<'a> {
        Box::pin(async move {
            let codes = &self.policy.codes;
            let (reject, defer) = (codes.access_reject, codes.access_defer);
            let triggers = |text: &str, what: &str| {
                if text.is_empty() {
                    format!("<{name}>: {class} triggers {what}")
                } else {
                    format!("<{name}>: {class} {text}")
                }
            };
            match parse_action(value) {
                Action::Ok => Decision::Ok,
                Action::Dunno => Decision::Dunno,
                Action::Reject(t) => {
                    self.refuse(refusal_reply(reject, name, class, &t, "Access denied"))
                }
                Action::Defer(t) => {
                    self.refuse(refusal_reply(defer, name, class, &t, "Access denied"))
                }
                Action::Code(code, t) => {
                    self.refuse(refusal_reply(code, name, class, &t, "Access denied"))
                }
                Action::DeferIfReject(t) => {
                    if self.defer_if_reject.is_none() {
                        let r = refusal_reply(defer, name, class, &t, "Service unavailable");
                        self.defer_if_reject = Some(r);
                    }
                    Decision::Dunno
                }
                Action::DeferIfPermit(t) => {
                    if self.defer_if_permit.is_none() {
                        let r = refusal_reply(defer, name, class, &t, "Service unavailable");
                        self.defer_if_permit = Some(r);
                    }
                    Decision::Dunno
                }
                Action::Hold(t) => {
                    let text = triggers(&t, "HOLD action");
                    self.actions.hold = Some(text.clone());
                    self.note("hold", text);
                    Decision::Dunno
                }
                Action::Discard(t) => {
                    let text = triggers(&t, "DISCARD action");
                    self.actions.discard = Some(text.clone());
                    self.note("discard", text);
                    Decision::Ok
                }
                Action::Prepend(header) => {
                    if is_header(&header) {
                        self.actions.prepend.push(header);
                    } else {
                        crate::warn!(
                            "smtpd",
                            "access table entry \"{value}\" requires header: text; ignored"
                        );
                    }
                    Decision::Dunno
                }
                Action::Redirect(addr) | Action::Bcc(addr) if addr.is_empty() => {
                    crate::warn!("smtpd", "access table entry \"{value}\" has no address");
                    Decision::Dunno
                }
                Action::Redirect(addr) => {
                    self.note("redirect", triggers("", &format!("REDIRECT {addr}")));
                    self.actions.redirect = Some(addr);
                    Decision::Dunno
                }
                Action::Bcc(addr) => {
                    self.actions.bcc.push(addr);
                    Decision::Dunno
                }
                Action::Filter(dest) => {
                    if dest.contains(':') {
                        self.note("filter", triggers("", &format!("FILTER {dest}")));
                        self.actions.filter = Some(dest);
                    } else {
                        crate::warn!(
                            "smtpd",
                            "access table entry \"{value}\" needs FILTER transport:destination"
                        );
                    }
                    Decision::Dunno
                }
                Action::Warn(t) => {
                    self.note("warn", triggers(&t, "WARN action"));
                    Decision::Dunno
                }
                Action::Info(t) => {
                    self.note("info", triggers(&t, "INFO action"));
                    Decision::Dunno
                }
                Action::Restrictions(text) => {
                    let names: Vec<String> = self.policy.classes.keys().cloned().collect();
                    let items = postern_config::parse_list(&text);
                    let list = Restriction::parse_list(&items, &names);
                    self.list(&list, name.to_string(), class).await
                }
            }
        })
    }

    /// `check_policy_service SPEC` (SMTPD_POLICY_README): the attributes Postfix 3.x sends,
    /// then the returned action as an access(5) result.
    async fn policy_service(&mut self, spec: &str, name: &str, class: &'static str) -> Decision {
        let attrs = builtins::policy_attributes(self.facts);
        let p = self.policy;
        if let Some(plugin) = spec.strip_prefix("wasm:") {
            let outcome = super::wasm::query(&p.plugins, plugin, self.facts, &p.config).await;
            return self.plugin_result(&outcome, name, class).await;
        }
        if let Some(path) = spec.strip_prefix("rhai:") {
            let action = super::script::query(spec, path, attrs, &p.config).await;
            return self.table_result(&action, name, class).await;
        }
        match super::policy::query(&p.policy_clients, spec, &attrs, &p.config).await {
            Ok(action) => {
                let action = action.trim().to_string();
                self.table_result(&action, name, class).await
            }
            Err(e) => {
                crate::warn!("smtpd", "policy service {spec}: {e}");
                server_error()
            }
        }
    }
}

fn permit_if(cond: bool) -> Decision {
    if cond {
        Decision::Ok
    } else {
        Decision::Dunno
    }
}

/// `Name: value` with a valid RFC 5322 field name.
fn is_header(text: &str) -> bool {
    match text.split_once(':') {
        Some((name, _)) => {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        }
        None => false,
    }
}
