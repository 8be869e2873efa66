//! Wasm plugins in the daemon: the process's one plugin [`Runtime`] and the set of plugins
//! bound in `$config_directory/plugins.toml` ([`PluginSet`]).
//!
//! Users of a plugin take the current set when they start (a restriction `Policy` when it is
//! built, a table when it is opened, a delivery when it begins), so every session keeps the
//! plugins of the configuration epoch it started in, and `postern reload` gives new work a new
//! set. The set is rebuilt only when `plugins.toml`, one of its components or one of its keys
//! changed on disk (compiling a component costs milliseconds to seconds; compiled components
//! are also cached in `$queue_directory/plugin-cache/`). A plugin's log lines become
//! `postern/plugin[PID]: QUEUEID: NAME: message`.
//!
//! The daemon writes the counters of every plugin to `$queue_directory/pid/plugins.stat` every
//! few seconds; `postern status` prints them ([`write_stats`], [`read_stats`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use postern_config::Config;
use postern_runtime::services::KeyStore;
use postern_runtime::{
    Binding, Bindings, FilterPlugin, LogEvent, LogLevel, LookupPlugin, Options, Plugin,
    PolicyPlugin, Role, Runtime, TransportPlugin,
};

/// The shared runtime, made on first use (it starts the epoch ticker thread and reserves the
/// instance pool, so a server without plugins never pays for it). `cache_dir` of the first
/// caller wins.
pub fn runtime(cache_dir: Option<PathBuf>) -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let log = |e: &LogEvent<'_>| {
                let (name, msg) = (e.plugin, e.message);
                let line = match e.queue_id {
                    Some(id) => format!("{id}: {name}: {msg}"),
                    None => format!("{name}: {msg}"),
                };
                match e.level {
                    LogLevel::Warn | LogLevel::Error => crate::warn!("plugin", "{line}"),
                    LogLevel::Info => crate::info!("plugin", "{line}"),
                    LogLevel::Trace | LogLevel::Debug => {}
                }
            };
            Runtime::with_options(Options {
                log: Arc::new(log),
                cache_dir,
                ..Options::default()
            })
            .map_err(|e| format!("cannot start the plugin runtime: {e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Where compiled components are cached for `cfg`.
pub fn cache_dir(cfg: &Config) -> PathBuf {
    cfg.queue_directory.join("plugin-cache")
}

/// What a `wasm:NAME` policy reference resolves to.
#[derive(Debug)]
pub enum PolicyRef<'a> {
    Ready(&'a PolicyPlugin),
    /// Bound, but its component could not be loaded: the binding's `on_error` applies.
    Broken(&'a Binding),
    /// No `[[plugin]]` with that name (or no policy role).
    Unbound,
}

/// The plugins of one `plugins.toml`, loaded.
#[derive(Debug, Default)]
pub struct PluginSet {
    bindings: Bindings,
    loaded: HashMap<String, Plugin>,
    /// One message per problem, each naming the file (and line) or the plugin.
    pub errors: Vec<String>,
    stamp: Stamp,
}

impl PluginSet {
    pub fn policy(&self, name: &str) -> PolicyRef<'_> {
        if let Some(p) = self.loaded.get(name).and_then(|p| p.policy.as_deref()) {
            return PolicyRef::Ready(p);
        }
        match self.bindings.get(name) {
            Some(b) if b.roles.contains(&Role::Policy) => PolicyRef::Broken(b),
            _ => PolicyRef::Unbound,
        }
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<LookupPlugin>> {
        self.loaded.get(name)?.lookup.clone()
    }

    pub fn filter(&self, name: &str) -> Option<Arc<FilterPlugin>> {
        self.loaded.get(name)?.filter.clone()
    }

    pub fn transport(&self, name: &str) -> Option<Arc<TransportPlugin>> {
        self.loaded.get(name)?.transport.clone()
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Loaded plugins in file order.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.bindings
            .plugins
            .iter()
            .filter_map(|b| self.loaded.get(&b.name))
    }

    /// Reads `plugins.toml` in `dir`, loads its keys and compiles every component
    /// (`postern check` calls this directly and reports `errors`). A missing file is an empty
    /// set.
    pub fn load(dir: &Path, cache_dir: Option<PathBuf>) -> PluginSet {
        let path = dir.join("plugins.toml");
        let stamp = Stamp::of(&path, &Bindings::default());
        let bindings = match Bindings::load(&path) {
            Ok(b) => b,
            Err(e) => {
                return PluginSet {
                    errors: vec![format!("{e:#}")],
                    stamp,
                    ..PluginSet::default()
                }
            }
        };
        let mut set = PluginSet {
            stamp: Stamp::of(&path, &bindings),
            ..PluginSet::default()
        };
        if !bindings.plugins.is_empty() {
            match runtime(cache_dir) {
                Err(e) => set.errors.push(e),
                Ok(rt) => {
                    let (keys, key_errors) = KeyStore::load(&bindings.keys);
                    set.errors.extend(key_errors);
                    for b in &bindings.plugins {
                        match rt.load(b.clone(), &keys) {
                            Ok(p) => {
                                set.loaded.insert(b.name.clone(), p);
                            }
                            Err(e) => set.errors.push(format!("{}: {e:#}", b.origin)),
                        }
                    }
                }
            }
        }
        set.bindings = bindings;
        set
    }
}

/// Modification times of plugins.toml, its components and its keys: the set is reused while
/// they match.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stamp(Vec<(PathBuf, Option<SystemTime>)>);

impl Stamp {
    fn of(toml: &Path, bindings: &Bindings) -> Stamp {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut v = vec![(toml.to_path_buf(), mtime(toml))];
        for b in &bindings.plugins {
            v.push((b.component.clone(), mtime(&b.component)));
        }
        for k in &bindings.keys {
            v.push((k.path.clone(), mtime(&k.path)));
        }
        Stamp(v)
    }
}

/// The set most recently returned by [`for_config`]: what `wasm:` tables and transports use.
static LATEST: RwLock<Option<Arc<PluginSet>>> = RwLock::new(None);

/// The plugin set for `cfg` (from its `config_directory`), reusing the previous one when
/// nothing changed on disk; load problems are logged once per load. Also points the runtime's
/// `dns` import at `cfg`'s resolver.
pub fn for_config(cfg: &Config) -> Arc<PluginSet> {
    static CURRENT: Mutex<Option<(PathBuf, Arc<PluginSet>)>> = Mutex::new(None);
    let Some(dir) = cfg.config_dir.clone() else {
        return Arc::new(PluginSet::default());
    };
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((d, set)) = current.as_ref() {
        if *d == dir && Stamp::of(&dir.join("plugins.toml"), &set.bindings) == set.stamp {
            return set.clone();
        }
    }
    let set = Arc::new(PluginSet::load(&dir, Some(cache_dir(cfg))));
    for e in &set.errors {
        crate::warn!("plugin", "{e}");
    }
    if !set.loaded.is_empty() {
        if let (Ok(rt), Some(resolver)) = (runtime(None), crate::dns::resolver_for(cfg)) {
            rt.set_dns(Arc::new(crate::plugin_dns::PluginDns::new(resolver)));
        }
    }
    *current = Some((dir, set.clone()));
    *LATEST.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
    set
}

/// Makes `set` the current one (`postern check`, which loads a set without `for_config`).
pub fn set_latest(set: Arc<PluginSet>) {
    *LATEST.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
}

/// The current plugin set, if a configuration with plugins was loaded.
pub fn latest() -> Option<Arc<PluginSet>> {
    LATEST.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Path of the counters file the daemon keeps.
pub fn stats_path(queue_dir: &Path) -> PathBuf {
    queue_dir.join("pid").join("plugins.stat")
}

/// Writes one line per plugin of the current set: `name calls errors faults timeouts
/// backed_off instances avg_us max_us policy`. Without plugins nothing is written (a file
/// left by an earlier set is removed).
pub fn write_stats(queue_dir: &Path) {
    let Some(set) = latest() else { return };
    if set.plugins().next().is_none() {
        let _ = std::fs::remove_file(stats_path(queue_dir));
        return;
    }
    let mut text = String::new();
    for p in set.plugins() {
        let s = p.stats();
        let avg = s.total_us.checked_div(s.calls).unwrap_or(0);
        text.push_str(&format!(
            "{} {} {} {} {} {} {} {} {} {}\n",
            p.binding().name,
            s.calls,
            s.errors,
            s.faults,
            s.timeouts,
            s.backed_off,
            s.instances,
            avg,
            s.max_us,
            p.instance_policy()
        ));
    }
    let path = stats_path(queue_dir);
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// The lines of [`write_stats`] as a table for `postern status`, or `None` when there are none.
pub fn read_stats(queue_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stats_path(queue_dir)).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    let mut out = format!(
        "  {:<20} {:>9} {:>7} {:>7} {:>8} {:>10} {:>9} {:>8} {:>8}  {}\n",
        "plugin",
        "calls",
        "errors",
        "faults",
        "timeouts",
        "backed_off",
        "instances",
        "avg_us",
        "max_us",
        "reuse"
    );
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 10 {
            continue;
        }
        out.push_str(&format!(
            "  {:<20} {:>9} {:>7} {:>7} {:>8} {:>10} {:>9} {:>8} {:>8}  {}\n",
            f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
        ));
    }
    Some(out)
}
