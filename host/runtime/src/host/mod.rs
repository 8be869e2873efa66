//! The store state of one instance and the host imports of the `imports` world.
//!
//! Capabilities are denied by default (ARCHITECTURE §3): every import links, and an ungranted
//! one answers `denied`. `logging`, `config` and `annotations` are here; `dns`, `kv` and
//! `signing` (granted per binding) are in `caps.rs`; the `content` resources in `content.rs`.

mod caps;
mod content;

pub use caps::{BucketHandle, KeyHandle};
pub use content::MessageContent;
pub use content::{BodyHandle, MessageHandle};

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wit_host::{annotations, config, logging, types};
use crate::engine::{Env, LogLevel};
use crate::plugins_toml::Binding;

/// Most entries one transaction may hold, and the longest key and value: a plugin must not be
/// able to grow host memory without bound through annotations.
const MAX_ANNOTATIONS: usize = 256;
const MAX_ANNOTATION_BYTES: usize = 4096;

/// Results plugins record for later plugins of one SMTP transaction (WIT `annotations`).
/// Cheap to clone; clones share the entries. The MTA keeps one per transaction.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    entries: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Annotations {
    pub fn new() -> Annotations {
        Annotations::default()
    }

    /// `(plugin, key, value)` in recording order.
    pub fn entries(&self) -> Vec<(String, String, String)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String, String)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// False when the bounds are reached.
    fn set(&self, plugin: &str, key: String, value: String) -> bool {
        if key.len() > MAX_ANNOTATION_BYTES || value.len() > MAX_ANNOTATION_BYTES {
            return false;
        }
        let mut e = self.lock();
        e.retain(|(p, k, _)| !(p == plugin && *k == key));
        if e.len() >= MAX_ANNOTATIONS {
            return false;
        }
        e.push((plugin.to_string(), key, value));
        true
    }
}

/// What one call brings besides its arguments.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallData {
    /// For log lines.
    pub(crate) queue_id: Option<String>,
    /// Longest body a filter may build (0 = the default cap).
    pub(crate) body_limit: usize,
}

/// Largest replacement body when the caller sets no limit.
const DEFAULT_BODY_LIMIT: usize = 64 << 20;
/// Most resource handles (buckets, keys, builders) one instance may hold at once.
pub(crate) const MAX_HANDLES: usize = 1024;

/// Everything one instance's `Store` holds. Per-call fields are reset by `begin_call`.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) binding: Arc<Binding>,
    pub(crate) env: Arc<Env>,
    pub(crate) annotations: Annotations,
    pub(crate) queue_id: Option<String>,
    /// DNS queries this call may still make.
    pub(crate) dns_left: u32,
    pub(crate) body_limit: usize,
    /// Live resource handles the guest holds.
    pub(crate) handles: usize,
}

impl HostState {
    pub(crate) fn new(binding: Arc<Binding>, env: Arc<Env>, limits: StoreLimits) -> HostState {
        // Deny-all WASI: no preopened directories, no environment, no arguments, no sockets,
        // no name lookups; stdio goes nowhere. Clocks and random stay (std needs them).
        let mut b = WasiCtx::builder();
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if !binding.grants.connect.is_empty() {
            // Outbound TCP to the granted addresses only; the implicit bind of a connecting
            // socket is to the wildcard address and port 0.
            let allowed = binding.grants.connect.clone();
            b.allow_tcp(true).socket_addr_check(move |addr, use_| {
                use wasmtime_wasi::sockets::SocketAddrUse;
                let ok = match use_ {
                    SocketAddrUse::TcpConnect => allowed.contains(&addr),
                    SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                    _ => false,
                };
                Box::pin(async move { ok })
            });
        }
        env.configure_wasi(&mut b);
        HostState {
            wasi: b.build(),
            table: ResourceTable::new(),
            limits,
            dns_left: binding.dns_queries,
            binding,
            env,
            annotations: Annotations::default(),
            queue_id: None,
            body_limit: DEFAULT_BODY_LIMIT,
            handles: 0,
        }
    }

    pub(crate) fn begin_call(&mut self, annotations: Annotations, data: CallData) {
        self.annotations = annotations;
        self.queue_id = data.queue_id;
        self.dns_left = self.binding.dns_queries;
        self.body_limit = if data.body_limit == 0 {
            DEFAULT_BODY_LIMIT
        } else {
            data.body_limit
        };
    }

    pub(crate) fn end_call(&mut self) {
        self.annotations = Annotations::default();
        self.queue_id = None;
    }

    pub(crate) fn warn(&self, message: &str) {
        self.env.log(
            &self.binding.name,
            self.queue_id.as_deref(),
            LogLevel::Warn,
            message,
        );
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl logging::Host for HostState {
    async fn log(&mut self, level: logging::Level, message: String) {
        let level = match level {
            logging::Level::Trace => LogLevel::Trace,
            logging::Level::Debug => LogLevel::Debug,
            logging::Level::Info => LogLevel::Info,
            logging::Level::Warn => LogLevel::Warn,
            logging::Level::Error => LogLevel::Error,
        };
        // One log line per call: a plugin cannot forge further lines of Postern's log.
        let message: String = message
            .chars()
            .take(2048)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.env.log(
            &self.binding.name,
            self.queue_id.as_deref(),
            level,
            &message,
        );
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.binding.config.get(&key).cloned()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        self.binding
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl annotations::Host for HostState {
    async fn set(&mut self, key: String, value: String) {
        if !self.annotations.set(&self.binding.name, key, value) {
            self.warn("annotation dropped: too many or too large");
        }
    }

    async fn get(&mut self, key: String) -> Option<annotations::Annotation> {
        self.annotations
            .lock()
            .iter()
            .rev()
            .find(|(_, k, _)| *k == key)
            .map(|(p, k, v)| annotations::Annotation {
                plugin: p.clone(),
                key: k.clone(),
                value: v.clone(),
            })
    }

    async fn get_all(&mut self) -> Vec<annotations::Annotation> {
        self.annotations
            .lock()
            .iter()
            .map(|(p, k, v)| annotations::Annotation {
                plugin: p.clone(),
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }
}
