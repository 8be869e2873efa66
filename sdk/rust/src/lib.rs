//! Write [Postern](https://github.com/) plugins in Rust: sandboxed WebAssembly components built
//! for `wasm32-wasip2` against the WIT package `postern:plugin@0.1.0` (`wit/` at the repository
//! root).
//!
//! A complete policy plugin — it rejects the recipients listed in its config with `550 5.7.1`
//! and answers DUNNO for everyone else (the same code as `examples/policy-rust/`):
//!
//! ```no_run
//! use postern_plugin_sdk::policy::{Guest, PolicyRequest, Verdict};
//! use postern_plugin_sdk::types::PluginError;
//! use postern_plugin_sdk::{config, log};
//!
//! struct RejectListed;
//!
//! impl Guest for RejectListed {
//!     fn check(request: PolicyRequest) -> Result<Verdict, PluginError> {
//!         let Some(rcpt) = request.recipient else {
//!             return Ok(Verdict::dunno());
//!         };
//!         let listed = config::get_list("reject");
//!         if !listed.iter().any(|a| a.eq_ignore_ascii_case(&rcpt.address)) {
//!             return Ok(Verdict::dunno());
//!         }
//!         let text = config::get_or("text", "Recipient refused by policy");
//!         log::info!("reject recipient <{}>: listed", rcpt.address);
//!         Verdict::reject(550, "5.7.1", text)
//!     }
//! }
//!
//! postern_plugin_sdk::export_policy!(RejectListed);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate-type `cdylib`); the
//! `.wasm` in `target/wasm32-wasip2/release/` is already a component. README.md shows the
//! `plugins.toml` binding.
//!
//! # Layout
//!
//! - Host imports, generated once from the `imports` world and shared by every role:
//!   [`types`] (with checked constructors [`types::EnhancedCode::parse`], [`types::Reply::new`]),
//!   [`logging`] (and the friendlier [`log`]), [`config`] (plus [`config::get_list`],
//!   [`config::get_or`]), [`annotations`], [`dns`], [`kv`], [`signing`], [`content`].
//! - One module per role, each generated from its own world (`policy-plugin`, …) with every
//!   import mapped onto the modules above, so `types::Reply` is one Rust type everywhere:
//!   [`policy`], [`lookup`], [`filter`], [`transport`]. Each has a `Guest` trait and an export
//!   macro: [`export_policy!`], [`export_lookup!`], [`export_filter!`], [`export_transport!`].
//! - A component exports only the roles whose macro it invokes: the export half of each
//!   world's type information travels inside its macro (wit-bindgen `pub_export_macro`), so an
//!   unused role adds nothing. Invoke several macros in one crate for a multi-role component
//!   (the `multi-role-plugin` world); see `examples/multi_role.rs`.
//!
//! # Errors
//!
//! SMTP outcomes are values ([`policy::Verdict`], [`filter::FilterResult`]); `Err` is for a
//! plugin that cannot decide. The builders that take codes ([`policy::Verdict::reject`],
//! [`policy::Verdict::defer`], [`types::Reply::new`]) check them and return
//! [`types::PluginError::Config`] on a bad code instead of sending a malformed reply: the host
//! maps that through the binding's `on_error` (DUNNO or 451) and logs the message.
//!
//! This crate does not touch WASI itself; Rust's std in the guest imports `wasi:cli`/`wasi:io`,
//! which the host links with nothing granted.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "imports",
        generate_all,
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::postern::plugin::{annotations, content, dns, kv, logging, signing};

pub mod config;
pub mod filter;
pub mod log;
pub mod lookup;
pub mod policy;
pub mod transport;
pub mod types;
