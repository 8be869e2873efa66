//! RCPT-time address validation: Postfix's `reject_unlisted_recipient` /
//! `reject_unlisted_sender` (smtpd_check.c `check_rcpt_maps`) and the address classes of
//! trivial-rewrite(8) they depend on.
//!
//! Rejecting unknown users at RCPT time matters: accepting them means bouncing later to a sender
//! address that is usually forged (backscatter). The address class decides which table must
//! list the address:
//!
//! | class | domain is in | table | reply |
//! |---|---|---|---|
//! | local | `mydestination` | `local_recipient_maps` (empty = anyone) | `User unknown in local recipient table` |
//! | virtual alias | `virtual_alias_domains` | `virtual_alias_maps` | `User unknown in virtual alias table` |
//! | virtual mailbox | `virtual_mailbox_domains` | `virtual_mailbox_maps` | `User unknown in virtual mailbox table` |
//! | relay | `relay_domains` | `relay_recipient_maps` (empty = anyone) | `User unknown in relay recipient table` |
//!
//! An address found in `canonical_maps`, `recipient_canonical_maps` or `virtual_alias_maps`
//! is always valid (it is rewritten before delivery). `relocated_maps` is consulted first:
//! `550 5.1.6 <addr>: Recipient address rejected: User has moved to NEW`.

use postern_config::Config;
use postern_maps::search::{self, AddressOptions};
use postern_maps::{LookupError, Scope, Tables};
use postern_proto::Reply;

use super::tables::open_param;
use crate::address::{normalize_domain, split_address, Destinations, Resolved};

/// Where an address is delivered (trivial-rewrite's address classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrClass {
    Local,
    VirtualAlias,
    VirtualMailbox,
    Relay,
    Remote,
}

/// A list of domain names and/or tables of domains (`virtual_alias_domains`, …).
#[derive(Clone, Debug, Default)]
struct DomainList {
    names: Vec<String>,
    tables: Option<Tables>,
}

impl DomainList {
    fn new(name: &str, items: &[String], broken: &mut Vec<String>) -> DomainList {
        let (specs, names): (Vec<String>, Vec<String>) = items
            .iter()
            .cloned()
            .partition(|i| i.contains(':') || i.starts_with('/'));
        let tables = open_param(name, &specs).unwrap_or_else(|e| {
            broken.push(e);
            None
        });
        DomainList {
            names: names.iter().map(|n| normalize_domain(n)).collect(),
            tables,
        }
    }

    fn contains(&self, domain: &str) -> Result<bool, LookupError> {
        if self.names.iter().any(|n| n == domain) {
            return Ok(true);
        }
        match &self.tables {
            Some(t) => Ok(t.find(domain, Scope::Full)?.is_some()),
            None => Ok(false),
        }
    }
}

/// The tables of recipient validation, opened once per configuration.
#[derive(Clone, Debug)]
pub struct RecipientMaps {
    destinations: Destinations,
    local: Option<Tables>,
    rewritten: Vec<Tables>,
    virtual_alias: Option<Tables>,
    valias_domains: DomainList,
    vmailbox: Option<Tables>,
    vmailbox_domains: DomainList,
    relay_recipients: Option<Tables>,
    relocated: Option<Tables>,
    opts: AddressOptions,
    allow_percent_hack: bool,
    swap_bangpath: bool,
    codes: [u16; 4],
    /// Tables that failed to open: every validation answers `451 4.3.5` until fixed.
    broken: Vec<String>,
}

impl RecipientMaps {
    pub fn new(cfg: &Config) -> RecipientMaps {
        let mut broken = Vec::new();
        let mut open = |name: &str, items: &[String]| {
            open_param(name, items).unwrap_or_else(|e| {
                broken.push(e);
                None
            })
        };
        let local = open("local_recipient_maps", &cfg.local_recipient_maps);
        let rewritten = [
            open("recipient_canonical_maps", &cfg.recipient_canonical_maps),
            open("canonical_maps", &cfg.canonical_maps),
        ]
        .into_iter()
        .flatten()
        .collect();
        let virtual_alias = open("virtual_alias_maps", &cfg.virtual_alias_maps);
        let vmailbox = open("virtual_mailbox_maps", &cfg.virtual_mailbox_maps);
        let relay_recipients = open("relay_recipient_maps", &cfg.relay_recipient_maps);
        let relocated = open("relocated_maps", &cfg.relocated_maps);
        let valias_domains = DomainList::new(
            "virtual_alias_domains",
            &cfg.virtual_alias_domains,
            &mut broken,
        );
        let vmailbox_domains = DomainList::new(
            "virtual_mailbox_domains",
            &cfg.virtual_mailbox_domains,
            &mut broken,
        );
        RecipientMaps {
            destinations: Destinations::new(cfg),
            local,
            rewritten,
            virtual_alias,
            valias_domains,
            vmailbox,
            vmailbox_domains,
            relay_recipients,
            relocated,
            opts: AddressOptions {
                recipient_delimiter: cfg.recipient_delimiter.clone(),
                owner_request_special: cfg.owner_request_special,
                ..AddressOptions::default()
            },
            allow_percent_hack: cfg.allow_percent_hack,
            swap_bangpath: cfg.swap_bangpath,
            codes: [
                cfg.unknown_local_recipient_reject_code,
                cfg.unknown_virtual_alias_reject_code,
                cfg.unknown_virtual_mailbox_reject_code,
                cfg.unknown_relay_recipient_reject_code,
            ],
            broken,
        }
    }

    /// True when one of the tables changed on disk.
    pub fn is_stale(&self) -> bool {
        let lists = [
            &self.local,
            &self.virtual_alias,
            &self.vmailbox,
            &self.relay_recipients,
            &self.relocated,
            &self.valias_domains.tables,
            &self.vmailbox_domains.tables,
        ];
        lists.into_iter().flatten().any(Tables::is_stale)
            || self.rewritten.iter().any(Tables::is_stale)
    }

    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    pub fn address_options(&self) -> &AddressOptions {
        &self.opts
    }

    /// The class of `address`, as trivial-rewrite resolves it.
    pub fn classify(&self, address: &str) -> Result<AddrClass, LookupError> {
        let resolved = self.destinations.resolve(address);
        if let Resolved::Local(_) = resolved {
            return Ok(AddrClass::Local);
        }
        let (local, domain) = split_address(address);
        let routed = local.contains('@')
            || (self.allow_percent_hack && local.contains('%'))
            || (self.swap_bangpath && local.contains('!'));
        let Some(domain) = domain.filter(|_| !routed) else {
            return Ok(AddrClass::Remote);
        };
        let domain = normalize_domain(domain);
        if self.valias_domains.contains(&domain)? {
            Ok(AddrClass::VirtualAlias)
        } else if self.vmailbox_domains.contains(&domain)? {
            Ok(AddrClass::VirtualMailbox)
        } else if resolved == Resolved::Relay {
            Ok(AddrClass::Relay)
        } else {
            Ok(AddrClass::Remote)
        }
    }

    fn found(&self, tables: &Tables, address: &str) -> Result<bool, LookupError> {
        let is_local = |d: &str| self.destinations.is_local_domain(&normalize_domain(d));
        Ok(search::virtual_alias(tables, address, &self.opts, &is_local)?.is_some())
    }

    /// `Ok(None)` when `address` may receive mail, else the refusal. `class` is the reply class
    /// (`Recipient address` / `Sender address`).
    pub fn check(&self, address: &str, class: &str) -> Result<Option<Reply>, LookupError> {
        if let Some(e) = self.broken.first() {
            return Err(LookupError::Config(e.clone()));
        }
        if address.is_empty() {
            return Ok(None);
        }
        if let Some(t) = &self.relocated {
            let is_local = |d: &str| self.destinations.is_local_domain(&normalize_domain(d));
            if let Some(f) = search::relocated(t, address, &self.opts, &is_local)? {
                return Ok(Some(Reply::new(
                    550,
                    "5.1.6",
                    format!(
                        "<{address}>: {class} rejected: User has moved to {}",
                        f.value
                    ),
                )));
            }
        }
        let class_of = self.classify(address)?;
        if class_of == AddrClass::Remote {
            return Ok(None);
        }
        for t in self.rewritten.iter().chain(self.virtual_alias.iter()) {
            if self.found(t, address)? {
                return Ok(None);
            }
        }
        let (index, table, what) = match class_of {
            AddrClass::Local => {
                let (lp, _) = split_address(address);
                let lp = lp.trim_matches('"');
                if lp.eq_ignore_ascii_case("postmaster") || lp.eq_ignore_ascii_case("mailer-daemon")
                {
                    return Ok(None);
                }
                (0, self.local.as_ref(), "local recipient")
            }
            AddrClass::VirtualAlias => {
                // Nothing but virtual_alias_maps can make such an address valid.
                (1, None, "virtual alias")
            }
            AddrClass::VirtualMailbox => (2, self.vmailbox.as_ref(), "virtual mailbox"),
            AddrClass::Relay => (3, self.relay_recipients.as_ref(), "relay recipient"),
            AddrClass::Remote => return Ok(None),
        };
        let listed = match (class_of, table) {
            (AddrClass::VirtualAlias, _) => false,
            (AddrClass::VirtualMailbox, None) => false,
            (_, None) => true,
            (_, Some(t)) => self.found(t, address)?,
        };
        if listed {
            return Ok(None);
        }
        Ok(Some(Reply::new(
            self.codes[index],
            "5.1.1",
            format!("<{address}>: {class} rejected: User unknown in {what} table"),
        )))
    }
}
