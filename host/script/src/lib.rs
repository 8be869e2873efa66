//! # Layout
//!
//! `postern-script` owns Rhai scripts: the sandboxed [`Engine`] (operation, size, call-depth and
//! wall-clock limits; no files, no modules), the compiled-script cache ([`Scripts`], keyed by path
//! and reopened when the file changes) and the two roles a script can play:
//!
//! * **policy** — `fn check(req)`: `req` is a map of the Postfix policy attributes
//!   (`protocol_state`, `sender`, `recipient`, `client_address`, …); the result is an access(5)
//!   action text, exactly what a policy server returns (`DUNNO`, `550 5.7.1 text`, …), so the
//!   caller parses it with the parser it uses for `check_policy_service inet:…`.
//! * **lookup** — `fn lookup(key)`: a string, or `()` for "not found". [`opener`] makes
//!   `rhai:/path.rhai` a [`postern_maps::Table`] of kind Pattern.
//!
//! Data enters as a path and a request (or key) and leaves as text or a [`ScriptError`]. This
//! crate never logs by itself and never decides what a failure means: the caller turns an error
//! into `smtpd_policy_service_default_action` or a temporary lookup failure. A script's own
//! `log(msg)` / `print(msg)` calls go to the [`Logger`] the caller provides.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Scope, AST};

mod table;

pub use table::{opener, RhaiTable};

/// Where a script's `log(msg)`, `print(msg)` and `debug(msg)` go: (script path, message).
pub type Logger = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// What one script call may use. Every limit exists so that a script bug (a loop that never
/// ends, a string that doubles each turn, unbounded recursion) costs one failed call — a
/// temporary failure for that request — and never a stalled or exhausted server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations per call (Engine::set_max_operations). A routing rule needs tens; a
    /// policy with a few hundred list entries a few thousand. 1,000,000 is ≈ 50–100 ms of work.
    pub max_operations: u64,
    /// Wall-clock time per call, checked every 256 operations (`on_progress`). The operation
    /// limit bounds work; this bounds time when the machine is slow or a host function is.
    /// 50 ms is the plugin runtime's default timeout (issue 4): an SMTP client waits for this.
    pub timeout: Duration,
    /// Longest string a script can build, in bytes (64 KiB: longer than any header or reply).
    pub max_string_size: usize,
    /// Most elements in one array (10,000).
    pub max_array_size: usize,
    /// Most entries in one object map (10,000).
    pub max_map_size: usize,
    /// Deepest function-call nesting (32): stops runaway recursion long before the native
    /// stack is at risk.
    pub max_call_levels: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 1_000_000,
            timeout: Duration::from_millis(50),
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_levels: 32,
        }
    }
}

/// Why a script could not give an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// A syntax error, as `path:line:column: message` (the form editors jump to).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Compile {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The script lacks the function its role calls (`check` for policy, `lookup` for tables).
    #[error("{}: no function {name}({args}) in the script", path.display())]
    MissingFunction {
        path: PathBuf,
        name: &'static str,
        args: &'static str,
    },
    /// The script ran past a limit ([`Limits`]): operations, time, sizes, call depth.
    #[error("{}: {message}", path.display())]
    Limit { path: PathBuf, message: String },
    /// The script failed (a runtime error, a `throw`, a wrong result type).
    #[error("{}: {message}", path.display())]
    Runtime { path: PathBuf, message: String },
}

/// Per-thread state of the call being run: `on_progress` and `log` read it. A call runs to
/// completion on the thread that started it (Rhai is synchronous), so a thread-local is exact.
struct Current {
    deadline: Instant,
    path: Arc<str>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Marker value `on_progress` returns when the wall-clock deadline has passed.
const TIMED_OUT: &str = "postern: script deadline passed";

/// Builds the sandboxed engine. Rhai has no file, network or process access of its own; the
/// module resolver is replaced so `import` cannot read files, and `eval` is disabled so that
/// what `postern check` compiled is all that can run.
fn engine(limits: &Limits, logger: Logger) -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_max_operations(limits.max_operations);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(64, 32);
    engine.on_progress(|ops| {
        if ops % 256 != 0 {
            return None;
        }
        let late = CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|c| Instant::now() >= c.deadline)
        });
        late.then(|| Dynamic::from(TIMED_OUT))
    });
    let log = move |msg: &str| {
        let path = CURRENT.with(|c| c.borrow().as_ref().map(|c| c.path.clone()));
        logger(path.as_deref().unwrap_or("rhai"), msg);
    };
    let (l1, l2, l3) = (log.clone(), log.clone(), log);
    engine.register_fn("log", move |msg: &str| l1(msg));
    engine.on_print(move |msg| l2(msg));
    engine.on_debug(move |msg, _, _| l3(msg));
    engine
}

/// One compiled script and the state its top level left (its `const`s), computed once.
pub struct Script {
    path: PathBuf,
    name: Arc<str>,
    ast: AST,
    scope: Scope<'static>,
    stamp: Option<Stamp>,
    engine: Arc<Engine>,
    timeout: Duration,
    /// `fn check(req)` / `fn lookup(key)` / `fn filter(msg)` are defined (looked up once,
    /// not per call).
    has_check: bool,
    has_lookup: bool,
    has_filter: bool,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script").field("path", &self.path).finish()
    }
}

/// A file's identity and size/mtime when it was read: a changed stamp means recompile.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let md = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: md.dev(),
        ino: md.ino(),
        size: md.size(),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec(),
    })
}

impl Script {
    /// True when the file changed (or vanished) since it was compiled.
    pub fn is_stale(&self) -> bool {
        stamp(&self.path) != self.stamp
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the script defines `name` with `arity` parameters.
    pub fn has_fn(&self, name: &str, arity: usize) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == arity)
    }

    /// Policy role: calls `check(req)` with the attributes as a map of strings and returns the
    /// access(5) action text it returned, trimmed. `()` or an empty string is `DUNNO`.
    pub fn check(&self, attrs: &[(&str, String)]) -> Result<String, ScriptError> {
        if !self.has_check {
            return Err(self.missing("check", "req"));
        }
        let mut req = Map::new();
        for (name, value) in attrs {
            req.insert((*name).into(), value.clone().into());
        }
        let out = self.call("check", req)?;
        if out.is_unit() {
            return Ok("DUNNO".to_string());
        }
        match out.into_immutable_string() {
            Ok(s) if s.trim().is_empty() => Ok("DUNNO".to_string()),
            Ok(s) => Ok(s.trim().to_string()),
            Err(kind) => Err(self.runtime(format!(
                "check() must return an action string, returned {kind}"
            ))),
        }
    }

    /// Filter role (`smtpd_milters = rhai:PATH`): calls `filter(msg)` with the message as a
    /// map — `attrs` as strings, `headers` as an array of `[name, value]` pairs, `recipients`
    /// as an array of strings, `body` as text — and returns the action text it returned,
    /// trimmed; `()` or an empty string is `DUNNO`.
    pub fn filter(
        &self,
        attrs: &[(&str, String)],
        recipients: &[String],
        headers: &[(String, String)],
        body: String,
    ) -> Result<String, ScriptError> {
        if !self.has_filter {
            return Err(self.missing("filter", "msg"));
        }
        let mut msg = Map::new();
        for (name, value) in attrs {
            msg.insert((*name).into(), value.clone().into());
        }
        let rcpts: rhai::Array = recipients.iter().map(|r| r.clone().into()).collect();
        msg.insert("recipients".into(), rcpts.into());
        let hdrs: rhai::Array = headers
            .iter()
            .map(|(n, v)| {
                let pair: rhai::Array = vec![n.clone().into(), v.clone().into()];
                pair.into()
            })
            .collect();
        msg.insert("headers".into(), hdrs.into());
        msg.insert("body".into(), body.into());
        let out = self.call("filter", msg)?;
        if out.is_unit() {
            return Ok("DUNNO".to_string());
        }
        match out.into_immutable_string() {
            Ok(s) if s.trim().is_empty() => Ok("DUNNO".to_string()),
            Ok(s) => Ok(s.trim().to_string()),
            Err(kind) => Err(self.runtime(format!(
                "filter() must return an action string, returned {kind}"
            ))),
        }
    }

    /// Lookup role: calls `lookup(key)`; a string is the value, `()` is "not found".
    pub fn lookup(&self, key: &str) -> Result<Option<String>, ScriptError> {
        if !self.has_lookup {
            return Err(self.missing("lookup", "key"));
        }
        let out = self.call("lookup", key.to_string())?;
        if out.is_unit() {
            return Ok(None);
        }
        match out.into_immutable_string() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(kind) => Err(self.runtime(format!(
                "lookup() must return a string or (), returned {kind}"
            ))),
        }
    }

    fn call(&self, name: &str, arg: impl Into<Dynamic>) -> Result<Dynamic, ScriptError> {
        let _guard = Enter::new(self.timeout, self.name.clone());
        // The top level ran once at load; each call gets a copy of what it left, so one call
        // cannot change what the next one sees.
        let mut scope = if self.scope.is_empty() {
            Scope::new()
        } else {
            self.scope.clone()
        };
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        self.engine
            .call_fn_with_options::<Dynamic>(options, &mut scope, &self.ast, name, (arg.into(),))
            .map_err(|e| self.classify(*e))
    }

    fn classify(&self, err: EvalAltResult) -> ScriptError {
        let path = self.path.clone();
        match err {
            EvalAltResult::ErrorTerminated(..) => ScriptError::Limit {
                path,
                message: format!("ran longer than {} ms", self.timeout.as_millis()),
            },
            EvalAltResult::ErrorTooManyOperations(pos) => ScriptError::Limit {
                path,
                message: format!("too many operations (at {pos})"),
            },
            EvalAltResult::ErrorDataTooLarge(what, pos) => ScriptError::Limit {
                path,
                message: format!("{what} too large (at {pos})"),
            },
            EvalAltResult::ErrorStackOverflow(pos) => ScriptError::Limit {
                path,
                message: format!("calls nested too deep (at {pos})"),
            },
            other => ScriptError::Runtime {
                path,
                message: other.to_string(),
            },
        }
    }

    fn missing(&self, name: &'static str, args: &'static str) -> ScriptError {
        ScriptError::MissingFunction {
            path: self.path.clone(),
            name,
            args,
        }
    }

    fn runtime(&self, message: String) -> ScriptError {
        ScriptError::Runtime {
            path: self.path.clone(),
            message,
        }
    }
}

/// Sets the thread's deadline for one call and clears it afterwards (also on unwinding).
struct Enter;

impl Enter {
    fn new(timeout: Duration, path: Arc<str>) -> Enter {
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(Current {
                deadline: Instant::now() + timeout,
                path,
            })
        });
        Enter
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// The engine and every script compiled with it, by path. One per process (or per
/// configuration epoch); share it as `Arc<Scripts>`.
pub struct Scripts {
    engine: Arc<Engine>,
    limits: Limits,
    cache: Mutex<HashMap<PathBuf, Arc<Script>>>,
}

impl fmt::Debug for Scripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripts")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Scripts {
    pub fn new(limits: Limits, logger: Logger) -> Scripts {
        Scripts {
            engine: Arc::new(engine(&limits, logger)),
            limits,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The compiled script at `path`: from the cache while the file is unchanged, compiled
    /// (and its top level run once) otherwise. Compile errors are not cached, so a fixed file
    /// is picked up by the next call.
    pub fn load(&self, path: &Path) -> Result<Arc<Script>, ScriptError> {
        if let Some(s) = self.lock().get(path) {
            if !s.is_stale() {
                return Ok(s.clone());
            }
        }
        let script = Arc::new(self.compile(path)?);
        self.lock().insert(path.to_path_buf(), script.clone());
        Ok(script)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Script>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compiles `path` without the cache (what `postern check` needs).
    pub fn compile(&self, path: &Path) -> Result<Script, ScriptError> {
        // Stamp before reading: a write during the read makes the script stale, not half-read.
        let stamp = stamp(path);
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError::Io {
            path: path.to_path_buf(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            },
        })?;
        let ast = self.engine.compile(&text).map_err(|e| {
            let (line, column) = (e.1.line().unwrap_or(0), e.1.position().unwrap_or(0));
            ScriptError::Compile {
                path: path.to_path_buf(),
                line,
                column,
                message: e.0.to_string(),
            }
        })?;
        let mut script = Script {
            path: path.to_path_buf(),
            name: Arc::from(path.display().to_string()),
            ast,
            scope: Scope::new(),
            stamp,
            engine: self.engine.clone(),
            timeout: self.limits.timeout,
            has_check: false,
            has_lookup: false,
            has_filter: false,
        };
        script.has_check = script.has_fn("check", 1);
        script.has_lookup = script.has_fn("lookup", 1);
        script.has_filter = script.has_fn("filter", 1);
        let mut scope = Scope::new();
        {
            let _guard = Enter::new(self.limits.timeout, script.name.clone());
            self.engine
                .run_ast_with_scope(&mut scope, &script.ast)
                .map_err(|e| script.classify(*e))?;
        }
        script.scope = scope;
        Ok(script)
    }
}

#[cfg(test)]
mod tests;
