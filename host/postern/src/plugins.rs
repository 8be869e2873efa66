//! Wasm plugins in the daemon: the process's one plugin [`Runtime`] and the set of plugins
//! bound in `$config_directory/plugins.toml` ([`PluginSet`]).
//!
//! A restriction `Policy` takes the current set when it is built ([`for_config`]), so every
//! session keeps the plugins of the configuration epoch it started in, and `postern reload`
//! gives new sessions a new set. The set is rebuilt only when `plugins.toml` or one of its
//! components changed on disk (compiling a component costs milliseconds to seconds). A plugin's
//! log lines become `postern/plugin[PID]: NAME: message`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use postern_config::Config;
use postern_runtime::{Binding, Bindings, LogLevel, PolicyPlugin, Runtime};

/// The shared runtime, made on first use (it starts the epoch ticker thread and reserves the
/// instance pool, so a server without plugins never pays for it).
pub fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::with_log(Arc::new(
                |name: &str, level: LogLevel, msg: &str| match level {
                    LogLevel::Warn | LogLevel::Error => crate::warn!("plugin", "{name}: {msg}"),
                    LogLevel::Info => crate::info!("plugin", "{name}: {msg}"),
                    LogLevel::Trace | LogLevel::Debug => {}
                },
            ))
            .map_err(|e| format!("cannot start the plugin runtime: {e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
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
    policy: HashMap<String, Arc<PolicyPlugin>>,
    /// One message per problem, each naming the file (and line) or the plugin.
    pub errors: Vec<String>,
    stamp: Stamp,
}

impl PluginSet {
    pub fn policy(&self, name: &str) -> PolicyRef<'_> {
        if let Some(p) = self.policy.get(name) {
            return PolicyRef::Ready(p);
        }
        match self.bindings.get(name) {
            Some(b) if b.roles.contains(&postern_runtime::Role::Policy) => PolicyRef::Broken(b),
            _ => PolicyRef::Unbound,
        }
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Reads `plugins.toml` in `dir` and compiles every component (`postern check` calls this
    /// directly and reports `errors`). A missing file is an empty set.
    pub fn load(dir: &Path) -> PluginSet {
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
            match runtime() {
                Err(e) => set.errors.push(e),
                Ok(rt) => {
                    for b in &bindings.plugins {
                        if !b.roles.contains(&postern_runtime::Role::Policy) {
                            set.errors.push(format!(
                                "{}: plugin \"{}\": only the policy role is supported so far",
                                b.origin, b.name
                            ));
                            continue;
                        }
                        match rt.load_policy(b.clone()) {
                            Ok(p) => {
                                set.policy.insert(b.name.clone(), Arc::new(p));
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

/// Modification times of plugins.toml and its components: the set is reused while they match.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stamp(Vec<(PathBuf, Option<SystemTime>)>);

impl Stamp {
    fn of(toml: &Path, bindings: &Bindings) -> Stamp {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut v = vec![(toml.to_path_buf(), mtime(toml))];
        for b in &bindings.plugins {
            v.push((b.component.clone(), mtime(&b.component)));
        }
        Stamp(v)
    }
}

/// The plugin set for `cfg` (from its `config_directory`), reusing the previous one when
/// nothing changed on disk; load problems are logged once per load.
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
    let set = Arc::new(PluginSet::load(&dir));
    for e in &set.errors {
        crate::warn!("plugin", "{e}");
    }
    *current = Some((dir, set.clone()));
    set
}
