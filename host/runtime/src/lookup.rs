//! The `lookup` role: `wasm:NAME` wherever a Postfix `type:name` table can stand.

use std::sync::Arc;

use crate::bindings::lookup::exports::postern::plugin::lookup as wit;
use crate::bindings::lookup::{LookupPlugin as WitLookup, LookupPluginPre};
use crate::host::{CallData, HostState};
use crate::instance::{answered, Core, Instantiate, Prepared};
use crate::plugins_toml::Binding;
use crate::PluginError;

/// Postfix's table families: which keys of a search order the table is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Also asked partial keys (parent domains, `user@`, shorter networks).
    Fixed,
    /// Asked the full key only.
    Pattern,
}

/// A component prepared for the `lookup` role of one binding.
pub struct LookupPlugin {
    prepared: Prepared<LookupPluginPre<HostState>>,
}

impl Instantiate for LookupPluginPre<HostState> {
    type Instance = WitLookup;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut wasmtime::Store<HostState>,
    ) -> impl std::future::Future<Output = wasmtime::Result<WitLookup>> + Send + 'a {
        self.instantiate_async(store)
    }
}

impl std::fmt::Debug for LookupPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupPlugin")
            .field("binding", &self.binding().name)
            .finish_non_exhaustive()
    }
}

impl LookupPlugin {
    pub(crate) fn new(core: Arc<Core>, pre: LookupPluginPre<HostState>) -> LookupPlugin {
        LookupPlugin {
            prepared: Prepared::new(core, pre),
        }
    }

    pub fn binding(&self) -> &Binding {
        &self.prepared.core.binding
    }

    /// Whether `table` is fixed or pattern (asked once, when the table is opened).
    pub async fn describe(&self, table: &str) -> Result<TableKind, PluginError> {
        let answer = self
            .prepared
            .run(
                None,
                CallData::default(),
                async |store, inst: &WitLookup| {
                    inst.postern_plugin_lookup()
                        .call_describe(store, table)
                        .await
                },
            )
            .await?;
        Ok(match answered(&self.prepared.core, answer)? {
            wit::TableKind::Fixed => TableKind::Fixed,
            wit::TableKind::Pattern => TableKind::Pattern,
        })
    }

    /// The value of `key` in `table`, `None` when not found.
    pub async fn get(&self, table: &str, key: &str) -> Result<Option<String>, PluginError> {
        let answer = self
            .prepared
            .run(
                None,
                CallData::default(),
                async |store, inst: &WitLookup| {
                    inst.postern_plugin_lookup()
                        .call_get(store, table, key)
                        .await
                },
            )
            .await?;
        answered(&self.prepared.core, answer)
    }

    /// The first of `keys` found in `table`, as (index, value): one call for a whole search
    /// order.
    pub async fn get_first(
        &self,
        table: &str,
        keys: &[String],
    ) -> Result<Option<(usize, String)>, PluginError> {
        let answer = self
            .prepared
            .run(
                None,
                CallData::default(),
                async |store, inst: &WitLookup| {
                    inst.postern_plugin_lookup()
                        .call_get_first(store, table, keys)
                        .await
                },
            )
            .await?;
        match answered(&self.prepared.core, answer)? {
            None => Ok(None),
            Some((i, v)) if (i as usize) < keys.len() => Ok(Some((i as usize, v))),
            Some((i, _)) => Err(PluginError::Config(format!(
                "get-first returned index {i} for {} keys",
                keys.len()
            ))),
        }
    }

    /// [`LookupPlugin::describe`] for synchronous callers.
    pub fn describe_blocking(&self, table: &str) -> Result<TableKind, PluginError> {
        crate::block::block_on(self.describe(table))?
    }

    /// [`LookupPlugin::get`] for synchronous callers (the table trait of `postern-maps`).
    pub fn get_blocking(&self, table: &str, key: &str) -> Result<Option<String>, PluginError> {
        crate::block::block_on(self.get(table, key))?
    }

    /// [`LookupPlugin::get_first`] for synchronous callers.
    pub fn get_first_blocking(
        &self,
        table: &str,
        keys: &[String],
    ) -> Result<Option<(usize, String)>, PluginError> {
        crate::block::block_on(self.get_first(table, keys))?
    }
}
