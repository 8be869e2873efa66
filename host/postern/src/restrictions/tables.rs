//! The lookup tables restriction lists name (`check_*_access type:table`) and the table lists
//! of recipient validation, opened once per configuration epoch.
//!
//! A table that cannot be opened does not stop smtpd: the element that names it answers
//! `451 4.3.5 Server configuration error` (and the problem is logged), so mail waits in the
//! client's queue until an administrator fixes it instead of being let through or bounced.

use std::collections::HashMap;

use postern_config::Config;
use postern_maps::Tables;

use super::Restriction;

/// Table lists by their `type:name` text.
#[derive(Clone, Debug, Default)]
pub struct TableSet {
    tables: HashMap<String, Result<Tables, String>>,
}

impl TableSet {
    /// Opens `spec` once; later calls return the same tables (or the same error).
    pub fn open(&mut self, spec: &str) -> Result<Tables, String> {
        self.tables
            .entry(spec.to_string())
            .or_insert_with(|| open_list(spec))
            .clone()
    }

    /// True when a table's files changed since it was opened (Postfix smtpd processes exit
    /// and restart for that; Postern rebuilds the policy for new sessions).
    pub fn is_stale(&self) -> bool {
        self.tables
            .values()
            .any(|t| t.as_ref().is_ok_and(Tables::is_stale))
    }

    /// A table opened earlier, or opened now (an access-table result may name a table no list
    /// mentions; it is opened for this lookup only).
    pub fn get(&self, spec: &str) -> Result<Tables, String> {
        match self.tables.get(spec) {
            Some(t) => t.clone(),
            None => open_list(spec),
        }
    }
}

/// Opens a table list, logging what is wrong with it.
pub fn open_list(spec: &str) -> Result<Tables, String> {
    match Tables::open(spec, &crate::scripts::open_ctx()) {
        Ok(t) => {
            for w in t.warnings() {
                crate::warn!("smtpd", "{w}");
            }
            Ok(t)
        }
        Err(e) => {
            crate::warn!("smtpd", "{e}");
            Err(e.to_string())
        }
    }
}

/// Opens a main.cf table-list parameter as the config crate split it; an empty list is `None`.
pub fn open_param(name: &str, items: &[String]) -> Result<Option<Tables>, String> {
    let specs = regroup(items);
    if specs.is_empty() {
        return Ok(None);
    }
    let joined = specs.join(", ");
    open_list(&joined)
        .map(Some)
        .map_err(|e| format!("{name}: {e}"))
}

/// The table of every `check_*_access` element, in every `smtpd_*_restrictions` list and
/// restriction class, with the list (or class) that names it, for `postern check`. The daemon
/// opens the same specs through [`TableSet::open`] when it builds a [`super::Policy`].
pub fn access_tables(cfg: &Config) -> Vec<(String, String)> {
    elements(cfg)
        .into_iter()
        .filter_map(|(place, r)| match r {
            Restriction::Access(_, spec) => Some((place, spec)),
            _ => None,
        })
        .collect()
}

/// The `check_policy_service rhai:/path.rhai` scripts of every list and class, as (where it is
/// named, path), for `postern check`.
pub fn policy_scripts(cfg: &Config) -> Vec<(String, String)> {
    elements(cfg)
        .into_iter()
        .filter_map(|(place, r)| match r {
            Restriction::PolicyService(spec) => {
                spec.strip_prefix("rhai:").map(|p| (place, p.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// Every `check_policy_service wasm:NAME` of `cfg`: `(list or class, NAME)`, for `postern check`.
pub fn plugin_references(cfg: &Config) -> Vec<(String, String)> {
    elements(cfg)
        .into_iter()
        .filter_map(|(place, r)| match r {
            Restriction::PolicyService(spec) => {
                spec.strip_prefix("wasm:").map(|n| (place, n.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// Every element of every restriction list and class, with the list (or class) that names it.
fn elements(cfg: &Config) -> Vec<(String, Restriction)> {
    let classes: Vec<String> = cfg
        .smtpd_restriction_classes
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let mut lists: Vec<(String, &[String])> = [
        ("smtpd_client_restrictions", &cfg.smtpd_client_restrictions),
        ("smtpd_helo_restrictions", &cfg.smtpd_helo_restrictions),
        ("smtpd_sender_restrictions", &cfg.smtpd_sender_restrictions),
        ("smtpd_relay_restrictions", &cfg.smtpd_relay_restrictions),
        (
            "smtpd_recipient_restrictions",
            &cfg.smtpd_recipient_restrictions,
        ),
        ("smtpd_data_restrictions", &cfg.smtpd_data_restrictions),
        (
            "smtpd_end_of_data_restrictions",
            &cfg.smtpd_end_of_data_restrictions,
        ),
    ]
    .into_iter()
    .map(|(name, items)| (name.to_string(), items.as_slice()))
    .collect();
    for (name, items) in &cfg.smtpd_restriction_classes {
        lists.push((format!("restriction class {name}"), items.as_slice()));
    }
    let mut out = Vec::new();
    for (name, items) in lists {
        for r in Restriction::parse_list(items, &classes) {
            out.push((name.clone(), r));
        }
    }
    out
}

/// Puts back together the items of `inline:{ a=1, b=2 }` that splitting a list on commas and
/// white space took apart: `["inline:{", "a=1", "b=2", "}"]` → `["inline:{ a=1, b=2 }"]`.
pub fn regroup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for item in items {
        if depth > 0 {
            if let Some(last) = out.last_mut() {
                let sep = if last.ends_with('{') || item.starts_with('}') {
                    " "
                } else {
                    ", "
                };
                last.push_str(sep);
                last.push_str(item);
            }
        } else {
            out.push(item.clone());
        }
        depth += item.matches('{').count();
        depth = depth.saturating_sub(item.matches('}').count());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &str) -> Vec<String> {
        postern_config::parse_list(v)
    }

    #[test]
    fn inline_tables_are_put_back_together() {
        assert_eq!(
            regroup(&items(
                "check_sender_access inline:{ a@b=REJECT, c=OK } permit"
            )),
            vec![
                "check_sender_access",
                "inline:{ a@b=REJECT, c=OK }",
                "permit"
            ]
        );
        let split: Vec<String> = ["inline:{x=1", "y=2}"].map(String::from).to_vec();
        assert_eq!(regroup(&split), vec!["inline:{x=1, y=2}"]);
    }

    #[test]
    fn access_tables_come_from_every_list_and_class() {
        let cfg = crate::smtpd::testkit::config(&[
            (
                "smtpd_sender_restrictions",
                "check_sender_access hash:/a, permit",
            ),
            ("smtpd_restriction_classes", "strict"),
            ("strict", "check_client_access inline:{ 10=OK }, reject"),
        ]);
        assert_eq!(
            access_tables(&cfg),
            vec![
                (
                    "smtpd_sender_restrictions".to_string(),
                    "hash:/a".to_string()
                ),
                (
                    "restriction class strict".to_string(),
                    "inline:{ 10=OK }".to_string()
                ),
            ]
        );
    }

    #[test]
    fn broken_tables_are_errors_not_empty() {
        let mut set = TableSet::default();
        assert!(set.open("hash:/nonexistent/postern-test").is_err());
        let t = set.open("inline:{ a=1 }").expect("inline");
        assert_eq!(
            t.find("a", postern_maps::Scope::Full),
            Ok(Some("1".to_string()))
        );
    }
}
