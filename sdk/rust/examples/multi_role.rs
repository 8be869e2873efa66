//! One component serving two roles (the `multi-role-plugin` world): a policy that defers
//! senders found in a `wasm:` table served by the same component.
//!
//! `cargo build --release --target wasm32-wasip2 --example multi_role`
//! → `target/wasm32-wasip2/release/examples/multi_role.wasm`, exporting both
//! `postern:plugin/policy` and `postern:plugin/lookup`.

// A component only: export names such as `postern:plugin/policy@0.1.0#check` are not valid
// in a host linker's version script, so `cargo test` on the host builds this as an empty crate.
#![cfg(target_arch = "wasm32")]

use postern_plugin_sdk::lookup::{self, TableKind};
use postern_plugin_sdk::policy::{self, Action, PolicyRequest, Verdict};
use postern_plugin_sdk::types::{Header, PluginError, Reply};
use postern_plugin_sdk::{config, log};

/// Senders to slow down, from the binding's `slow = "…"` list.
struct Slow;

impl Slow {
    fn listed(address: &str) -> bool {
        config::get_list("slow")
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
    }
}

impl policy::Guest for Slow {
    fn check(request: PolicyRequest) -> Result<Verdict, PluginError> {
        let sender = request.sender.map(|s| s.address).unwrap_or_default();
        if !Slow::listed(&sender) {
            return Ok(Verdict::dunno().with_action(Action::Prepend(Header::new("X-Slow", "no"))));
        }
        log::warn!("defer sender <{sender}>");
        Verdict::defer(450, "4.7.1", "Try again later")
    }
}

impl lookup::Guest for Slow {
    fn describe(_table: String) -> Result<TableKind, PluginError> {
        Ok(TableKind::Fixed)
    }

    fn get(_table: String, key: String) -> Result<Option<String>, PluginError> {
        // The same `types::Reply` the policy role uses: both roles share one set of types.
        let reply: Reply = Reply::new(450, "4.7.1", "Try again later")?;
        Ok(Slow::listed(&key).then(|| format!("{} {}", reply.code, reply.text[0])))
    }

    fn get_first(table: String, keys: Vec<String>) -> Result<Option<(u32, String)>, PluginError> {
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(value) = Self::get(table.clone(), key)? {
                return Ok(Some((i as u32, value)));
            }
        }
        Ok(None)
    }
}

postern_plugin_sdk::export_policy!(Slow);
postern_plugin_sdk::export_lookup!(Slow);
