//! Per-call store state and the host imports of the `imports` world.
//!
//! Capabilities are denied by default (ARCHITECTURE §3): every import links, and an ungranted
//! one answers `denied`. In this slice dns, kv, signing and content have no backend yet, so
//! they answer `denied` (or "not available") even when granted.

use std::sync::{Arc, Mutex};

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::engine::{LogLevel, LogSink};
use crate::plugins_toml::Binding;
use crate::policy::bindings::postern::plugin::{
    annotations, config, content, dns, kv, logging, signing, types,
};

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

/// Everything one call's `Store` holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) binding: Arc<Binding>,
    pub(crate) log: LogSink,
    pub(crate) annotations: Annotations,
}

impl HostState {
    pub(crate) fn new(
        binding: Arc<Binding>,
        log: LogSink,
        annotations: Annotations,
        limits: StoreLimits,
    ) -> HostState {
        // Deny-all WASI: no preopened directories, no environment, no arguments, no sockets,
        // no name lookups; stdio goes nowhere. Clocks and random stay (std needs them).
        let mut b = WasiCtx::builder();
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        HostState {
            wasi: b.build(),
            table: ResourceTable::new(),
            limits,
            binding,
            log,
            annotations,
        }
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
        (self.log)(&self.binding.name, level, &message);
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
            (self.log)(
                &self.binding.name,
                LogLevel::Warn,
                "annotation dropped: too many or too large",
            );
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

// DNS: no resolver is wired into the runtime yet, so a granted plugin gets a temporary error
// (SPF "temperror") and an ungranted one `denied`.
impl dns::Host for HostState {
    async fn lookup_txt(&mut self, _name: String) -> Result<Vec<Vec<u8>>, dns::DnsError> {
        Err(self.dns_unavailable())
    }
    async fn lookup_ipv4(&mut self, _name: String) -> Result<Vec<types::IpAddress>, dns::DnsError> {
        Err(self.dns_unavailable())
    }
    async fn lookup_ipv6(&mut self, _name: String) -> Result<Vec<types::IpAddress>, dns::DnsError> {
        Err(self.dns_unavailable())
    }
    async fn lookup_mx(&mut self, _name: String) -> Result<Vec<dns::MxRecord>, dns::DnsError> {
        Err(self.dns_unavailable())
    }
    async fn lookup_ptr(
        &mut self,
        _address: types::IpAddress,
    ) -> Result<Vec<String>, dns::DnsError> {
        Err(self.dns_unavailable())
    }
}

impl HostState {
    fn dns_unavailable(&self) -> dns::DnsError {
        if self.binding.grants.dns {
            dns::DnsError::Temporary("dns is not available to plugins yet".into())
        } else {
            dns::DnsError::Denied
        }
    }
}

// kv, signing and content: `open` always answers denied, so no handle ever reaches a plugin
// and the methods below are unreachable from a well-typed guest; they still answer safely.
impl kv::Host for HostState {}
impl kv::HostBucket for HostState {
    async fn open(&mut self, _name: String) -> Result<Resource<kv::Bucket>, kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn get(
        &mut self,
        _self_: Resource<kv::Bucket>,
        _key: String,
    ) -> Result<Option<Vec<u8>>, kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn set(
        &mut self,
        _self_: Resource<kv::Bucket>,
        _key: String,
        _value: Vec<u8>,
        _ttl: u32,
    ) -> Result<(), kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn set_if_absent(
        &mut self,
        _self_: Resource<kv::Bucket>,
        _key: String,
        _value: Vec<u8>,
        _ttl: u32,
    ) -> Result<bool, kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn increment(
        &mut self,
        _self_: Resource<kv::Bucket>,
        _key: String,
        _delta: i64,
        _ttl: u32,
    ) -> Result<i64, kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn delete(
        &mut self,
        _self_: Resource<kv::Bucket>,
        _key: String,
    ) -> Result<(), kv::KvError> {
        Err(kv::KvError::Denied)
    }
    async fn drop(&mut self, _rep: Resource<kv::Bucket>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl signing::Host for HostState {}
impl signing::HostSigningKey for HostState {
    async fn open(
        &mut self,
        _name: String,
    ) -> Result<Resource<signing::SigningKey>, signing::SigningError> {
        Err(signing::SigningError::Denied)
    }
    async fn key_algorithm(&mut self, _self_: Resource<signing::SigningKey>) -> signing::Algorithm {
        signing::Algorithm::Ed25519Sha256
    }
    async fn selector(&mut self, _self_: Resource<signing::SigningKey>) -> String {
        String::new()
    }
    async fn domain(&mut self, _self_: Resource<signing::SigningKey>) -> String {
        String::new()
    }
    async fn sign(
        &mut self,
        _self_: Resource<signing::SigningKey>,
        _data: Vec<u8>,
    ) -> Result<Vec<u8>, signing::SigningError> {
        Err(signing::SigningError::Denied)
    }
    async fn drop(&mut self, _rep: Resource<signing::SigningKey>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl content::Host for HostState {}
impl content::HostMessage for HostState {
    async fn size(&mut self, _self_: Resource<content::Message>) -> u64 {
        0
    }
    async fn headers(&mut self, _self_: Resource<content::Message>) -> Vec<types::Header> {
        Vec::new()
    }
    async fn read_body(
        &mut self,
        _self_: Resource<content::Message>,
        _offset: u64,
        _len: u32,
    ) -> Result<Vec<u8>, content::IoError> {
        Err(content::IoError::Failed(
            "no message in the policy role".into(),
        ))
    }
    async fn drop(&mut self, _rep: Resource<content::Message>) -> wasmtime::Result<()> {
        Ok(())
    }
}
impl content::HostBodyBuilder for HostState {
    async fn new(&mut self) -> Resource<content::BodyBuilder> {
        // Never stored: appends fail, and dropping it is a no-op.
        Resource::new_own(0)
    }
    async fn append(
        &mut self,
        _self_: Resource<content::BodyBuilder>,
        _bytes: Vec<u8>,
    ) -> Result<(), content::IoError> {
        Err(content::IoError::Failed(
            "no message in the policy role".into(),
        ))
    }
    async fn drop(&mut self, _rep: Resource<content::BodyBuilder>) -> wasmtime::Result<()> {
        Ok(())
    }
}
