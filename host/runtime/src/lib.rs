//! # Layout
//!
//! `postern-runtime` is the plugin runtime: the only crate that links wasmtime. It owns the
//! engine (component model, async, pooling allocator, epoch interruption driven by a ticker
//! thread), the host side of the `postern:plugin@0.1.0` WIT package in `wit/` at the repo root,
//! and the `plugins.toml` bindings.
//!
//! Data enters as plain Rust values ([`PolicyRequest`], lookup keys, [`MessageContent`]) and
//! leaves as plain Rust values ([`Verdict`], [`FilterResult`], [`RecipientStatus`],
//! [`PluginError`]); no wasmtime type crosses the crate boundary, so the MTA crate neither sees
//! nor depends on wasmtime.
//!
//! - `engine.rs`: [`Runtime`] — the shared engine, linker, epoch ticker, compile caches (in
//!   memory and on disk, `cache.rs`), and [`Runtime::load`] of a binding into a [`Plugin`].
//! - `instance.rs`: what every role shares — counters ([`PluginStats`]), the crash-loop
//!   breaker, and instance reuse (per call, per [`Transaction`], pooled).
//! - `bindings.rs`: the generated bindings, one set of host imports for every role.
//! - `host/`: the store state and the host imports; capabilities are checked there.
//! - `services/`: the backends behind `dns`, `kv` and `signing` (no wasmtime types).
//! - `policy.rs`, `lookup.rs`, `filter.rs`, `transport.rs`: the four roles.
//! - `types.rs`: values shared by the roles; `plugins_toml.rs`: [`Bindings`], [`Binding`].
//!
//! The crate never panics because of a plugin: a trap, a timeout, fuel exhaustion or a
//! memory-limit hit becomes [`PluginError::Temporary`], and the caller applies the binding's
//! `on_error`.

mod bindings;
mod block;
mod cache;
mod engine;
mod filter;
mod host;
mod instance;
mod lookup;
mod plugins_toml;
mod policy;
pub mod services;
mod transport;
mod types;

pub use engine::{ComponentInfo, EventSink, LogEvent, LogLevel, LogSink, Options, Plugin, Runtime};
pub use filter::{
    Disposition, EnvelopeEdit, FilterCapabilities, FilterContext, FilterPlugin, FilterResult,
    HeaderEdit, Phase,
};
pub use host::{Annotations, MessageContent};
pub use instance::{PluginStats, Transaction};
pub use lookup::{LookupPlugin, TableKind};
pub use plugins_toml::{Binding, Bindings, Grants, InstanceMode, OnError, Role};
pub use policy::{Action, Decision, PolicyPlugin, PolicyRequest, Verdict};
pub use transport::{DeliveryRequest, DsnAction, RecipientStatus, TransportPlugin};
pub use types::{Address, ClientInfo, EnhancedCode, Protocol, Reply, ServerInfo, Stage, TlsInfo};

/// Why a plugin produced no verdict. Both kinds go through the binding's `on_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The call failed this time: trap, timeout, memory cap, fuel, or the plugin said so
    /// (Postfix DICT_ERR_RETRY).
    #[error("temporary plugin error: {0}")]
    Temporary(String),
    /// The plugin finds its configuration unusable (Postfix DICT_ERR_CONFIG).
    #[error("plugin configuration error: {0}")]
    Config(String),
}
