//! `wasm:NAME` and `wasm:NAME/TABLE` tables: a lookup-role plugin wherever a Postfix table can
//! stand (`virtual_alias_maps`, `transport_maps`, `check_*_access`, `postern map query`, …).
//!
//! NAME is the `[[plugin]]` binding; the plugin is asked for table TABLE (NAME when absent).
//! Whether the table is fixed or pattern — which keys of a search order it sees — is the
//! plugin's answer to `describe`, asked when the table is opened. A search order goes to the
//! plugin in one `get-first` call. A failed call is a lookup error (451 4.3.0 in smtpd, a
//! deferral elsewhere), never "not found", whatever the binding's `on_error` says.

use std::sync::Arc;

use postern_maps::{Kind, LookupError, MapError, OpenCtx, Table, TableOpener, TableRef};
use postern_runtime::{LookupPlugin, PluginError, TableKind};

#[derive(Debug)]
struct WasmTable {
    spec: String,
    binding: String,
    table: String,
    kind: Kind,
    plugin: Arc<LookupPlugin>,
}

fn lookup_error(spec: &str, e: PluginError) -> LookupError {
    match e {
        PluginError::Temporary(m) => LookupError::Temporary(format!("{spec}: {m}")),
        PluginError::Config(m) => LookupError::Config(format!("{spec}: {m}")),
    }
}

impl Table for WasmTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        self.plugin
            .get_blocking(&self.table, key)
            .map_err(|e| lookup_error(&self.spec, e))
    }

    fn lookup_first(&self, keys: &[String]) -> Result<Option<(usize, String)>, LookupError> {
        self.plugin
            .get_first_blocking(&self.table, keys)
            .map_err(|e| lookup_error(&self.spec, e))
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    /// Stale once a reload loaded the plugin anew (or removed it): the table is reopened.
    fn is_stale(&self) -> bool {
        match crate::plugins::latest().and_then(|s| s.lookup(&self.binding)) {
            Some(p) => !Arc::ptr_eq(&p, &self.plugin),
            None => true,
        }
    }
}

fn open(table: &TableRef, _: &OpenCtx) -> Result<Arc<dyn Table>, MapError> {
    let spec = format!("wasm:{}", table.name);
    let err = |message: String| MapError::Spec {
        spec: spec.clone(),
        message,
    };
    let (binding, name) = match table.name.split_once('/') {
        Some((b, t)) => (b.to_string(), t.to_string()),
        None => (table.name.clone(), table.name.clone()),
    };
    let set = crate::plugins::latest().ok_or_else(|| {
        err("no plugins are loaded (is plugins.toml in config_directory?)".into())
    })?;
    let plugin = set.lookup(&binding).ok_or_else(|| {
        err(format!(
            "no [[plugin]] \"{binding}\" with the lookup role is loaded from plugins.toml"
        ))
    })?;
    let kind = match plugin.describe_blocking(&name) {
        Ok(TableKind::Fixed) => Kind::Fixed,
        Ok(TableKind::Pattern) => Kind::Pattern,
        Err(e) => return Err(err(format!("describe: {e}"))),
    };
    Ok(Arc::new(WasmTable {
        spec,
        binding,
        table: name,
        kind,
        plugin,
    }))
}

/// The opener registered as table type `wasm`.
pub fn opener() -> Arc<dyn TableOpener> {
    Arc::new(open)
}
