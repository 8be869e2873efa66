//! # Layout
//!
//! `postern-runtime` is the plugin runtime: the only crate that links wasmtime. It owns the
//! engine (component model, async, pooling allocator, epoch interruption driven by a ticker
//! thread), the host side of the `postern:plugin@0.1.0` WIT package in `wit/` at the repo root,
//! and the `plugins.toml` bindings.
//!
//! Data enters as plain Rust values ([`PolicyRequest`]) and leaves as plain Rust values
//! ([`Verdict`], [`PluginError`]); no wasmtime type crosses the crate boundary, so the MTA
//! crate neither sees nor depends on wasmtime.
//!
//! - `engine.rs`: [`Runtime`] — the shared engine, linker and epoch ticker.
//! - `host.rs`: the per-call store state and the host imports (logging, config, annotations;
//!   dns/kv/signing/content answer `denied` — their real backends are not built yet).
//! - `policy.rs`: the `policy` role: [`PolicyPlugin`], its request/verdict types.
//! - `plugins_toml.rs`: `plugins.toml` ([`Bindings`], [`Binding`]).
//!
//! The crate never panics because of a plugin: a trap, a timeout, fuel exhaustion or a
//! memory-limit hit becomes [`PluginError::Temporary`], and the caller applies the binding's
//! `on_error`.

mod engine;
mod host;
mod plugins_toml;
mod policy;

pub use engine::{LogLevel, LogSink, Runtime};
pub use host::Annotations;
pub use plugins_toml::{Binding, Bindings, Grants, OnError, Role};
pub use policy::{
    Action, ClientInfo, Decision, EnhancedCode, PolicyPlugin, PolicyRequest, Protocol, Reply,
    ServerInfo, Stage, TlsInfo, Verdict,
};

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
