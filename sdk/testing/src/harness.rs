//! [`Harness`]: one plugin runtime with fake services, and loading components into it.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::bail;
use postern_runtime::services::{Clock, KeyStore, ManualClock, MemoryKv, SigningKey, StaticDns};
use postern_runtime::{Binding, ComponentInfo, LogEvent, LogLevel, Options, Plugin, Runtime};

/// Where the harness clock starts unless told otherwise: 2026-01-01T00:00:00Z. A fixed start
/// makes anything a plugin derives from the time (timestamps, greylisting windows, kv expiry)
/// the same at every run.
pub const DEFAULT_START: Duration = Duration::from_secs(1_767_225_600);

/// One line a plugin logged through the `logging` import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Binding name.
    pub plugin: String,
    pub level: LogLevel,
    pub message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        write!(f, "{} {level}: {}", self.plugin, self.message)
    }
}

/// The clock the runtime and the kv store read: forwards to whichever [`ManualClock`] the
/// harness holds now, so [`Harness::clock`] may be called before or after loading.
#[derive(Debug)]
struct SwitchClock(RwLock<Arc<ManualClock>>);

impl SwitchClock {
    fn current(&self) -> Arc<ManualClock> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Clock for SwitchClock {
    fn now(&self) -> SystemTime {
        self.current().now()
    }
}

/// A plugin runtime with fake services: DNS answers from a [`StaticDns`] (nothing else
/// resolves: NXDOMAIN), an in-memory kv store, a [`ManualClock`] that drives both kv expiry
/// and the guest's WASI wall clock, signing keys given by the test, and every plugin log line
/// kept for assertions.
///
/// The runtime is made at the first [`load`](Harness::load) and lives as long as the harness:
/// keep the harness alive while you call the plugins it loaded (its epoch ticker is what lets
/// a timeout stop a looping plugin).
pub struct Harness {
    dns: Arc<StaticDns>,
    clock: Arc<SwitchClock>,
    kv: Arc<MemoryKv>,
    keys: KeyStore,
    logs: Arc<Mutex<Vec<LogLine>>>,
    runtime: Mutex<Option<Arc<Runtime>>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("dns", &self.dns)
            .field("clock", &self.clock)
            .field("kv", &self.kv)
            .finish_non_exhaustive()
    }
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    /// No DNS records, an empty kv store, the clock at [`DEFAULT_START`], no keys.
    pub fn new() -> Harness {
        let clock = Arc::new(SwitchClock(RwLock::new(Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + DEFAULT_START,
        )))));
        let kv = Arc::new(MemoryKv::new(clock.clone()));
        Harness {
            dns: Arc::new(StaticDns::new()),
            clock,
            kv,
            keys: KeyStore::default(),
            logs: Arc::new(Mutex::new(Vec::new())),
            runtime: Mutex::new(None),
        }
    }

    /// The answers the `dns` import gets (for plugins granted `dns`). Replaces earlier ones,
    /// also for plugins already loaded.
    pub fn dns(self, dns: StaticDns) -> Harness {
        let dns = Arc::new(dns);
        if let Some(rt) = self.existing_runtime() {
            rt.set_dns(dns.clone());
        }
        Harness { dns, ..self }
    }

    /// The clock behind kv expiry and the guest's wall clock. Keep the `Arc` to move it
    /// (`clock.advance(…)`), or use [`Harness::advance`].
    pub fn clock(self, clock: Arc<ManualClock>) -> Harness {
        *self.clock.0.write().unwrap_or_else(PoisonError::into_inner) = clock;
        self
    }

    /// Makes signing key `name` available to plugins granted `signing:NAME`.
    pub fn key(mut self, name: &str, key: SigningKey) -> Harness {
        self.keys.insert(name, key);
        self
    }

    /// The kv store plugins see, to seed it before a call or assert on it after one
    /// (`harness.kv().get("bucket", "key").await`).
    pub fn kv(&self) -> &Arc<MemoryKv> {
        &self.kv
    }

    /// The clock in use now.
    pub fn manual_clock(&self) -> Arc<ManualClock> {
        self.clock.current()
    }

    /// Moves the clock forward (kv entries expire, the guest sees the later time).
    pub fn advance(&self, by: Duration) {
        self.clock.current().advance(by);
    }

    /// Every line plugins logged so far, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Like [`Harness::logs`], and forgets them.
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn existing_runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The runtime behind this harness (made on first use).
    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        let mut slot = self.runtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rt) = &*slot {
            return Ok(rt.clone());
        }
        let logs = self.logs.clone();
        let rt = Arc::new(Runtime::with_options(Options {
            log: Arc::new(move |e: &LogEvent<'_>| {
                logs.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(LogLine {
                        plugin: e.plugin.to_string(),
                        level: e.level,
                        message: e.message.to_string(),
                    });
            }),
            dns: self.dns.clone(),
            kv: self.kv.clone(),
            clock: self.clock.clone(),
            cache_dir: None,
        })?);
        *slot = Some(rt.clone());
        Ok(rt)
    }

    /// What the component at `path` exports and imports (roles, requested grants).
    pub fn inspect(&self, path: impl AsRef<Path>) -> anyhow::Result<ComponentInfo> {
        self.runtime()?.inspect(path.as_ref())
    }

    /// The binding [`Harness::load`] starts from: named after the file (`policy_rust.wasm` →
    /// `policy_rust`), the roles the component exports, plugins.toml's defaults for the rest
    /// (no grants, 50 ms timeout, 16 MiB memory, `on_error = "dunno"`).
    pub fn binding(&self, path: impl AsRef<Path>) -> anyhow::Result<Binding> {
        let path = path.as_ref();
        let info = self.inspect(path)?;
        let mut b = Binding::new(&binding_name(path), path);
        b.roles = info.roles;
        Ok(b)
    }

    /// Loads the component at `path` for the roles it exports; `edit` may change the binding
    /// first (config, grants, roles, limits), as a `[[plugin]]` entry of plugins.toml would.
    pub fn load(
        &self,
        path: impl AsRef<Path>,
        edit: impl FnOnce(&mut Binding),
    ) -> anyhow::Result<Plugin> {
        let path = path.as_ref();
        let mut b = self.binding(path)?;
        edit(&mut b);
        if b.roles.is_empty() {
            bail!(
                "{} exports no Postern role (postern:plugin/policy, lookup, filter or transport \
                 @0.1.0) and the binding names none",
                path.display()
            );
        }
        self.load_binding(b)
    }

    /// Loads a binding exactly as given (its signing grants see the keys of [`Harness::key`]).
    pub fn load_binding(&self, binding: Binding) -> anyhow::Result<Plugin> {
        self.runtime()?.load(binding, &self.keys)
    }

    /// Loads the keys of `[[key]]` entries (vector files); the first failure is the error.
    pub(crate) fn load_keys(
        &mut self,
        specs: &[postern_runtime::services::KeySpec],
    ) -> anyhow::Result<()> {
        for spec in specs {
            let key = SigningKey::load(spec)?;
            self.keys.insert(&spec.name, key);
        }
        Ok(())
    }
}

/// `dir/policy_rust.wasm` → `policy_rust`; characters plugins.toml does not allow in a name
/// become `-`.
pub(crate) fn binding_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "plugin".to_string()
    } else {
        name
    }
}
