//! Lookup tables named by main.cf parameters (`canonical_maps`, `virtual_alias_maps`,
//! `transport_maps`, `alias_maps`, …), opened once and shared by cleanup, the queue manager and
//! the delivery agents.
//!
//! A list is opened the first time it is asked for and kept, keyed by its text; it is opened
//! again when one of its files changed (`Tables::is_stale`, one `stat` per file), so a rebuilt
//! `hash:` table or an edited `regexp:` file takes effect without a restart, as Postfix's
//! daemons notice changed tables. A table that cannot be opened is a lookup error
//! ([`LookupError::Config`]): the caller defers, it never reads that as "not found".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use postern_config::Config;
use postern_maps::{LookupError, Scope, Tables};

type Cache = Mutex<HashMap<String, Arc<Tables>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// The opened tables of a parameter value (a list of `type:name`). An empty list is an empty
/// [`Tables`] (every lookup answers "not found").
pub fn open(list: &[String]) -> Result<Arc<Tables>, LookupError> {
    if list.is_empty() {
        return Ok(Arc::new(Tables::default()));
    }
    let key = list.join(", ");
    if let Ok(cache) = cache().lock() {
        if let Some(t) = cache.get(&key) {
            if !t.is_stale() {
                return Ok(t.clone());
            }
        }
    }
    let tables = Tables::open(&key, &crate::scripts::open_ctx())
        .map_err(|e| LookupError::Config(e.to_string()))?;
    for w in tables.warnings() {
        crate::warn!("cleanup", "{w}");
    }
    let tables = Arc::new(tables);
    if let Ok(mut cache) = cache().lock() {
        cache.insert(key, tables.clone());
    }
    Ok(tables)
}

/// The table-list parameters read outside smtpd (cleanup, the queue manager, the delivery
/// agents), by name. smtpd's own tables (access tables, recipient validation) are opened
/// when it builds its restriction policy.
pub fn params(cfg: &Config) -> [(&'static str, &[String]); 13] {
    [
        ("canonical_maps", &cfg.canonical_maps),
        ("sender_canonical_maps", &cfg.sender_canonical_maps),
        ("recipient_canonical_maps", &cfg.recipient_canonical_maps),
        ("virtual_alias_maps", &cfg.virtual_alias_maps),
        ("alias_maps", &cfg.alias_maps),
        ("transport_maps", &cfg.transport_maps),
        ("virtual_mailbox_maps", &cfg.virtual_mailbox_maps),
        ("header_checks", &cfg.header_checks),
        ("mime_header_checks", &cfg.mime_header_checks),
        ("nested_header_checks", &cfg.nested_header_checks),
        ("body_checks", &cfg.body_checks),
        ("smtp_tls_policy_maps", &cfg.smtp_tls.policy_maps),
        ("smtp_sasl_password_maps", &cfg.smtp_sasl.password_maps),
    ]
}

/// Opens every table of [`params`] at daemon start and reload, so that skipped lines and
/// tables that cannot be opened are logged then, not at the first message that needs them
/// (Postfix's daemons log them when they start, and a reload restarts them). Tables are
/// reopened even when unchanged: a reload is when an administrator reads the log.
pub fn preload(cfg: &Config) {
    if let Ok(mut cache) = cache().lock() {
        cache.clear();
    }
    for (name, list) in params(cfg) {
        if let Err(e) = open(list) {
            crate::warn!("cleanup", "{name}: {e}");
        }
    }
}

/// Postfix `match_list` for a domain list parameter (`virtual_alias_domains`,
/// `virtual_mailbox_domains`): a plain entry matches that domain exactly; a `type:name` entry
/// matches when the table has any value for the domain; `!entry` excludes. The first entry
/// that matches decides.
pub fn domain_listed(list: &[String], domain: &str) -> Result<bool, LookupError> {
    let domain = domain.to_ascii_lowercase();
    for entry in list {
        let (negate, entry) = match entry.strip_prefix('!') {
            Some(e) => (true, e),
            None => (false, entry.as_str()),
        };
        let hit = if entry.contains(':') {
            open(std::slice::from_ref(&entry.to_string()))?
                .find(&domain, Scope::Full)?
                .is_some()
        } else {
            crate::address::normalize_domain(entry) == domain
        };
        if hit {
            return Ok(!negate);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_lists_mix_names_tables_and_exclusions() {
        let list: Vec<String> = ["!bad.example", "Example.COM", "inline:{ v.example=x }"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(domain_listed(&list, "example.com").unwrap());
        assert!(domain_listed(&list, "V.example").unwrap());
        assert!(!domain_listed(&list, "bad.example").unwrap());
        assert!(!domain_listed(&list, "sub.example.com").unwrap());
        let broken = vec!["nosuchtype:/x".to_string()];
        assert!(domain_listed(&broken, "example.com").is_err());
    }
}
