//! The shared wasmtime engine, the linker with every host import, the epoch ticker, the
//! on-disk compile cache, and loading a binding into a [`Plugin`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::SystemTime;

use anyhow::{anyhow, Context as _};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::host::HostState;
use crate::instance::{Core, Instances, PluginStats};
use crate::plugins_toml::{Binding, InstanceMode, Role};
use crate::services::{
    Clock, DnsBackend, KeyStore, KvBackend, MemoryKv, NoDns, SigningKey, SystemClock,
};
use crate::{FilterPlugin, LookupPlugin, PolicyPlugin, TransportPlugin};

/// How often the ticker advances the engine's epoch. A plugin in a busy loop yields to the
/// executor at the next tick, so this bounds how late a wall-clock timeout can cancel it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes of a freed linear memory, table and fiber stack reset in place rather than returned
/// to the kernel.
const KEEP_RESIDENT: usize = 256 << 10;
/// Freed regions returned to the kernel together.
const DECOMMIT_BATCH: usize = 32;

/// Components at least this large get `instances = "pooled"` under `auto` (Python and JS
/// components are 12–18 MB and cost ~1 ms to instantiate; a Rust plugin is well under 1 MB).
const AUTO_POOL_SIZE: u64 = 4 << 20;

/// Severity of a plugin's log line (WIT `logging.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line a plugin (or the runtime about a plugin) wants logged.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    /// Binding name from plugins.toml.
    pub plugin: &'a str,
    /// The message the call was about, when there is one.
    pub queue_id: Option<&'a str>,
    pub level: LogLevel,
    /// One line, control characters replaced.
    pub message: &'a str,
}

/// Where log lines go: `(binding name, level, message)`.
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;
/// Where log lines go, with the queue ID; the MTA routes them into its own log format.
pub type EventSink = Arc<dyn Fn(&LogEvent<'_>) + Send + Sync>;

/// What the runtime gives plugins besides CPU and memory.
pub struct Options {
    pub log: EventSink,
    /// Resolver behind the `dns` import (default: none, every query is a temporary error).
    pub dns: Arc<dyn DnsBackend>,
    /// Store behind the `kv` import (default: in-process, shared by every plugin).
    pub kv: Arc<dyn KvBackend>,
    /// Clock for kv expiry and the guests' WASI wall clock.
    pub clock: Arc<dyn Clock>,
    /// Where compiled components are cached (created mode 0700 if missing); `None` compiles
    /// every component at every load.
    pub cache_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Options {
            log: Arc::new(|_: &LogEvent<'_>| {}),
            dns: Arc::new(NoDns),
            kv: Arc::new(MemoryKv::new(clock.clone())),
            clock,
            cache_dir: None,
        }
    }
}

/// The process-wide part of every plugin's environment.
struct Shared {
    log: EventSink,
    dns: RwLock<Arc<dyn DnsBackend>>,
    kv: Arc<dyn KvBackend>,
    clock: Arc<dyn Clock>,
}

/// One binding's environment: the shared services and the signing keys granted to it.
pub(crate) struct Env {
    shared: Arc<Shared>,
    keys: Vec<(String, Arc<SigningKey>)>,
}

impl Env {
    pub(crate) fn log(&self, plugin: &str, queue_id: Option<&str>, level: LogLevel, msg: &str) {
        (self.shared.log)(&LogEvent {
            plugin,
            queue_id,
            level,
            message: msg,
        });
    }

    pub(crate) fn dns(&self) -> Arc<dyn DnsBackend> {
        self.shared
            .dns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn kv(&self) -> Arc<dyn KvBackend> {
        self.shared.kv.clone()
    }

    pub(crate) fn key(&self, name: &str) -> Option<Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
    }

    /// The guest's WASI wall clock follows the runtime's clock (a test clock in tests).
    pub(crate) fn configure_wasi(&self, b: &mut wasmtime_wasi::WasiCtxBuilder) {
        b.wall_clock(WallClock(self.shared.clock.clone()));
    }
}

struct WallClock(Arc<dyn Clock>);

impl wasmtime_wasi::HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn now(&self) -> Duration {
        self.0
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// What [`Runtime::inspect`] found in a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Bytes on disk.
    pub size: u64,
    /// Roles it exports (`postern:plugin/policy` …).
    pub roles: Vec<Role>,
    /// Capabilities its imports can use: `dns`, `kv:BUCKET`, `signing:KEY` (a component that
    /// imports an interface may ask for it; without the grant it gets `denied`).
    pub grants: Vec<String>,
    /// Every export and import name, as in the component.
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// A compiled component and the size and mtime of its file when it was compiled.
type Compiled = (u64, Option<SystemTime>, Component);

/// One engine for the whole process; cheap to share (`Arc` it). Dropping it stops the ticker.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<HostState>>,
    shared: Arc<Shared>,
    cache_dir: Option<PathBuf>,
    /// The last component compiled from each path, with the file's size and mtime then:
    /// inspecting and loading, or reloading an unchanged component, compile it once.
    compiled: std::sync::Mutex<HashMap<PathBuf, Compiled>>,
    _ticker: Ticker,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// A loaded binding: the roles its component serves, sharing one set of counters.
pub struct Plugin {
    core: Arc<Core>,
    pub policy: Option<Arc<PolicyPlugin>>,
    pub lookup: Option<Arc<LookupPlugin>>,
    pub filter: Option<Arc<FilterPlugin>>,
    pub transport: Option<Arc<TransportPlugin>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("binding", &self.core.binding.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn binding(&self) -> &Binding {
        &self.core.binding
    }

    pub fn stats(&self) -> PluginStats {
        self.core.stats()
    }

    /// `"transaction"`, `"pooled"` or `"call"`: how instances are reused (after `auto`).
    pub fn instance_policy(&self) -> &'static str {
        match self.core.instances {
            Instances::Call => "call",
            Instances::Transaction => "transaction",
            Instances::Pooled { .. } => "pooled",
        }
    }
}

impl Runtime {
    /// A runtime whose plugin log lines are discarded.
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::with_options(Options::default())
    }

    /// A runtime that sends plugin log lines to `log`.
    pub fn with_log(log: LogSink) -> anyhow::Result<Runtime> {
        Runtime::with_options(Options {
            log: Arc::new(move |e: &LogEvent<'_>| log(e.plugin, e.level, e.message)),
            ..Options::default()
        })
    }

    pub fn with_options(options: Options) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Timeouts: the ticker advances the epoch, a running plugin yields at every tick, and
        // the caller's wall-clock timeout drops the call (TOOLCHAIN traps 8 and 9).
        config.epoch_interruption(true);
        // Fuel is per binding; a binding without `fuel` gets an unlimited tank (≤ 0.15 µs/call).
        config.consume_fuel(true);
        // Instances come from a pre-reserved pool: ~30 µs for a fresh instance instead of ~38,
        // and a bounded number of live instances. An exhausted pool fails the instantiation,
        // which the caller sees as a temporary error.
        let mut pool = PoolingAllocationConfig::default();
        // A freed instance's memory, table and fiber stack are reset in place (memset) up to
        // KEEP_RESIDENT bytes instead of being returned to the kernel with madvise, and what
        // is returned goes in batches: every madvise in a multi-threaded process costs a TLB
        // shoot-down on every core (bench/README.md, Wasm policy on every RCPT).
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT)
            .decommit_batch_size(DECOMMIT_BATCH);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            Engine::new(&config).map_err(|e| anyhow!("cannot create the wasm engine: {e}"))?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        // Rust std in a guest imports wasi:cli/io/clocks/random even for pure logic; they are
        // linked with a deny-all context (no files, env, args or sockets).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::imports::Imports::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;

        if let Some(dir) = &options.cache_dir {
            create_private_dir(dir)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("postern-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("cannot start the epoch ticker thread")?
        };
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            shared: Arc::new(Shared {
                log: options.log,
                dns: RwLock::new(options.dns),
                kv: options.kv,
                clock: options.clock,
            }),
            cache_dir: options.cache_dir,
            compiled: std::sync::Mutex::new(HashMap::new()),
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// Replaces the resolver behind the `dns` import (after a configuration reload).
    pub fn set_dns(&self, dns: Arc<dyn DnsBackend>) {
        *self.shared.dns.write().unwrap_or_else(|e| e.into_inner()) = dns;
    }

    /// Compiles the component at `path`, or loads its compiled form from the cache when the
    /// bytes and the engine match a cached entry. Compiling costs tens of milliseconds for a
    /// small Rust plugin and seconds for Python or JS ones.
    pub fn compile(&self, path: &Path) -> anyhow::Result<Component> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        let memo = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((len, mtime)), Some((l, m, c))) = (stamp, memo.get(path)) {
            if (len, mtime) == (*l, *m) {
                return Ok(c.clone());
            }
        }
        // Compiling takes up to seconds: other loads need not wait for it.
        drop(memo);
        let component = self.compile_file(path)?;
        if let Some((len, mtime)) = stamp {
            let mut memo = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            memo.insert(path.to_path_buf(), (len, mtime, component.clone()));
        }
        Ok(component)
    }

    fn compile_file(&self, path: &Path) -> anyhow::Result<Component> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow!("cannot load component {}: {e}", path.display()))?;
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, &bytes)
                .map_err(|e| anyhow!("cannot compile component {}: {e:#}", path.display()));
        };
        let entry = dir.join(crate::cache::entry_name(&self.engine, &bytes));
        if entry.exists() {
            // SAFETY: the entry was written by `precompile_component` of an engine with the
            // same compatibility hash (part of its name) into a directory only this user can
            // write (created 0700). A damaged entry is caught by wasmtime's header checks and
            // recompiled below.
            match unsafe { Component::deserialize_file(&self.engine, &entry) } {
                Ok(c) => return Ok(c),
                Err(_) => {
                    let _ = std::fs::remove_file(&entry);
                }
            }
        }
        let compiled = self
            .engine
            .precompile_component(&bytes)
            .map_err(|e| anyhow!("cannot compile component {}: {e:#}", path.display()))?;
        // A cache that cannot be written only costs time at the next start.
        let _ = crate::cache::store(&entry, &compiled);
        // SAFETY: `compiled` was produced by this engine just now.
        unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(|e| anyhow!("cannot load compiled component {}: {e:#}", path.display()))
    }

    /// What a component exports and imports, and the roles and grants that follows from
    /// (`postern plugin list|check`). Compiles it (through the cache).
    pub fn inspect(&self, path: &Path) -> anyhow::Result<ComponentInfo> {
        let component = self.compile(path)?;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let interface = |full: &str| -> Option<String> {
            let rest = full.strip_prefix("postern:plugin/")?;
            Some(rest.split('@').next().unwrap_or(rest).to_string())
        };
        let roles = exports
            .iter()
            .filter_map(|e| interface(e))
            .filter_map(|i| match i.as_str() {
                "policy" => Some(Role::Policy),
                "lookup" => Some(Role::Lookup),
                "filter" => Some(Role::Filter),
                "transport" => Some(Role::Transport),
                _ => None,
            })
            .collect();
        let grants = imports
            .iter()
            .filter_map(|i| interface(i))
            .filter_map(|i| match i.as_str() {
                "dns" => Some("dns".to_string()),
                "kv" => Some("kv:BUCKET".to_string()),
                "signing" => Some("signing:KEY".to_string()),
                _ => None,
            })
            .collect();
        Ok(ComponentInfo {
            size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            roles,
            grants,
            exports,
            imports,
        })
    }

    /// Compiles the binding's component and prepares every role it names. `keys` holds the
    /// signing keys of plugins.toml; only those granted to the binding are visible to it.
    pub fn load(&self, binding: Binding, keys: &KeyStore) -> anyhow::Result<Plugin> {
        let component = self
            .compile(&binding.component)
            .map_err(|e| anyhow!("plugin {}: {e}", binding.name))?;
        let instances = match binding.instances {
            InstanceMode::Call => Instances::Call,
            InstanceMode::Transaction => Instances::Transaction,
            InstanceMode::Pooled => Instances::pooled(&binding),
            InstanceMode::Auto => {
                let size = std::fs::metadata(&binding.component)
                    .map(|m| m.len())
                    .unwrap_or(0);
                if size >= AUTO_POOL_SIZE {
                    Instances::pooled(&binding)
                } else {
                    Instances::Transaction
                }
            }
        };
        let env = Arc::new(Env {
            shared: self.shared.clone(),
            keys: binding
                .grants
                .signing
                .iter()
                .filter_map(|name| keys.get(name).map(|k| (name.clone(), k)))
                .collect(),
        });
        let name = binding.name.clone();
        let roles = binding.roles.clone();
        let core = Arc::new(Core::new(
            self.engine.clone(),
            Arc::new(binding),
            env,
            instances,
        ));
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow!("plugin {name}: its imports do not fit postern:plugin@0.1.0: {e:#}")
        })?;
        let role_error = |role: &str, e: wasmtime::Error| {
            anyhow!("plugin {name}: the component does not export the {role} role (postern:plugin/{role}@0.1.0): {e:#}")
        };
        let mut plugin = Plugin {
            core: core.clone(),
            policy: None,
            lookup: None,
            filter: None,
            transport: None,
        };
        for role in roles {
            match role {
                Role::Policy => {
                    let p = bindings::policy::PolicyPluginPre::new(pre.clone())
                        .map_err(|e| role_error("policy", e))?;
                    plugin.policy = Some(Arc::new(PolicyPlugin::new(core.clone(), p)));
                }
                Role::Lookup => {
                    let p = bindings::lookup::LookupPluginPre::new(pre.clone())
                        .map_err(|e| role_error("lookup", e))?;
                    plugin.lookup = Some(Arc::new(LookupPlugin::new(core.clone(), p)));
                }
                Role::Filter => {
                    let p = bindings::filter::FilterPluginPre::new(pre.clone())
                        .map_err(|e| role_error("filter", e))?;
                    plugin.filter = Some(Arc::new(FilterPlugin::new(core.clone(), p)));
                }
                Role::Transport => {
                    let p = bindings::transport::TransportPluginPre::new(pre.clone())
                        .map_err(|e| role_error("transport", e))?;
                    plugin.transport = Some(Arc::new(TransportPlugin::new(core.clone(), p)));
                }
            }
        }
        Ok(plugin)
    }

    /// Loads a binding for its `policy` role only (tools and tests).
    pub fn load_policy(&self, mut binding: Binding) -> anyhow::Result<PolicyPlugin> {
        binding.roles = vec![Role::Policy];
        let name = binding.name.clone();
        let plugin = self.load(binding, &KeyStore::default())?;
        plugin
            .policy
            .and_then(|p| Arc::try_unwrap(p).ok())
            .ok_or_else(|| anyhow!("plugin {name}: no policy role"))
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(anyhow!(
            "cannot create the plugin cache directory {}: {e}",
            dir.display()
        )),
    }
}
