//! # Layout
//!
//! `postern-plugin-testing` tests Postern plugins natively, without a running MTA: it loads a
//! `.wasm` component into the same runtime the daemon uses (`postern-runtime`), gives it fake
//! DNS answers, an in-memory kv store and a clock that moves only when told, and calls any of
//! its roles. Every plugin's own tests use it, and so does `postern plugin test`.
//!
//! - `harness.rs`: [`Harness`] — the fake services, the runtime, and [`Harness::load`], which
//!   binds a component with the roles it exports (from [`Runtime::inspect`]) unless told
//!   otherwise.
//! - `requests.rs`: request builders ([`policy_request`], [`filter_context`], [`message`],
//!   [`delivery_request`]) with fixed, documented test values, and [`PluginCalls`], one
//!   `async` method per role call on a loaded [`Plugin`].
//! - `vectors.rs`: the test vector file format (`<plugin>.tests.toml`, see README.md),
//!   parsed into cases; `run.rs`: [`run_vectors`], which runs them and returns a [`Report`].
//!
//! Data enters as a component path, a [`Binding`] edit and plain request values; it leaves as
//! the runtime's own result types ([`Verdict`], [`FilterResult`], …) or a [`Report`]. Nothing
//! here touches the network, the file system (beyond reading the component and the vector
//! file) or the real clock: a test that passes once passes every time.
//!
//! ```no_run
//! use postern_plugin_testing::{policy_request, Decision, Harness, PluginCalls, Stage};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let harness = Harness::new();
//! let plugin = harness.load("policy_rust.wasm", |b| {
//!     b.config.insert("reject".into(), "blocked@example.com".into());
//! })?;
//! let verdict = plugin.check(&policy_request(Stage::Rcpt, "blocked@example.com")).await?;
//! assert!(matches!(verdict.decision, Decision::Reject(ref r) if r.code == 550));
//! # Ok(())
//! # }
//! ```

mod harness;
mod requests;
mod run;
mod vectors;

pub use harness::{Harness, LogLine, DEFAULT_START};
pub use requests::{
    client_info, delivery_request, filter_context, message, policy_request, server_info,
    PluginCalls, BODY_LIMIT, CLIENT_ADDRESS, CLIENT_HELO, QUEUE_ID, SENDER,
};
pub use run::{default_vectors_path, run_vectors, run_vectors_async, CaseReport, Report};

// What a plugin test needs, so it depends on this crate alone.
pub use postern_runtime::services::{
    Clock, KvBackend, ManualClock, MemoryKv, SigningKey, StaticDns,
};
pub use postern_runtime::{
    Action, Address, Binding, ClientInfo, ComponentInfo, DeliveryRequest, Disposition, DsnAction,
    EnhancedCode, EnvelopeEdit, FilterContext, FilterResult, HeaderEdit, MessageContent, Phase,
    Plugin, PluginError, PolicyRequest, RecipientStatus, Reply, Role, Runtime, ServerInfo, Stage,
    TableKind, Transaction, Verdict,
};
pub use postern_runtime::{Decision, Protocol};

/// The name plugins.toml uses for a role (`policy`, `lookup`, `filter`, `transport`).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Policy => "policy",
        Role::Lookup => "lookup",
        Role::Filter => "filter",
        Role::Transport => "transport",
    }
}
