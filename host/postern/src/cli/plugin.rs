//! `postern plugin list|check|test`: what a plugin component exports, imports and asks for,
//! and running its bundled test vectors.
//!
//! - `plugin list` loads `$config_directory/plugins.toml` as `postern check` does and prints,
//!   per binding, the component, its size, the roles bound against those exported, its
//!   imports, the grants it could use against those given, and the instance policy.
//! - `plugin check PATH` inspects one `.wasm` without any configuration and verifies it links
//!   against `postern:plugin@0.1.0`.
//! - `plugin test PATH [VECTORS]` runs a test vector file (sdk/testing/README.md) through
//!   `postern-plugin-testing`: fake DNS, kv and clock, never the network.
//!
//! Exit status: 0 = fine; 1 = a plugin that is not a Postern component, exports no role, does
//! not load, or fails a test case; 78 = plugins.toml or the vector file is unusable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use postern_config::LoadedConfig;
use postern_plugin_testing::{default_vectors_path, role_name, run_vectors};
use postern_runtime::services::KeyStore;
use postern_runtime::{Binding, ComponentInfo, Role, Runtime};

use super::args::UsageError;
use super::{exit, CliError, CliResult, WithCode};

/// `postern plugin …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginCommand {
    /// `plugin list`: the bindings of plugins.toml.
    List,
    /// `plugin check PATH`.
    Check { path: PathBuf },
    /// `plugin test PATH [VECTORS]`; no VECTORS = PATH with `.wasm` replaced by `.tests.toml`.
    Test {
        path: PathBuf,
        vectors: Option<PathBuf>,
    },
}

fn usage(msg: &str) -> UsageError {
    UsageError(msg.to_string())
}

pub(super) fn parse_plugin(args: &[String]) -> Result<PluginCommand, UsageError> {
    let (sub, rest) = args.split_first().ok_or_else(|| {
        usage("plugin needs a subcommand: list, check PATH.wasm, or test PATH.wasm [VECTORS]")
    })?;
    match (sub.as_str(), rest) {
        ("list", []) => Ok(PluginCommand::List),
        ("list", [extra, ..]) => Err(usage(&format!(
            "plugin list takes no arguments (got \"{extra}\")"
        ))),
        ("check", [path]) => Ok(PluginCommand::Check {
            path: PathBuf::from(path),
        }),
        ("check", _) => Err(usage(
            "plugin check takes one component (example: postern plugin check policy.wasm)",
        )),
        ("test", [path]) => Ok(PluginCommand::Test {
            path: PathBuf::from(path),
            vectors: None,
        }),
        ("test", [path, vectors]) => Ok(PluginCommand::Test {
            path: PathBuf::from(path),
            vectors: Some(PathBuf::from(vectors)),
        }),
        ("test", _) => Err(usage(
            "plugin test takes a component and optionally its vectors (example: postern plugin \
             test policy.wasm policy.tests.toml)",
        )),
        (other, _) => Err(usage(&format!(
            "unknown plugin subcommand \"{other}\" (list, check, test)"
        ))),
    }
}

/// Runs `cmd`; `load` reads the configuration (only `list` needs it).
pub fn run(cmd: &PluginCommand, load: &dyn Fn() -> Result<LoadedConfig, CliError>) -> CliResult {
    match cmd {
        PluginCommand::List => list(&load()?),
        PluginCommand::Check { path } => check(path),
        PluginCommand::Test { path, vectors } => test(path, vectors.as_deref()),
    }
}

fn roles_text(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "none".to_string();
    }
    roles
        .iter()
        .map(|r| role_name(*r))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `postern:plugin/logging@0.1.0` → `logging`; other imports (WASI) as they are.
fn split_imports(imports: &[String]) -> (Vec<String>, Vec<String>) {
    let mut postern = Vec::new();
    let mut other = Vec::new();
    for i in imports {
        match i.strip_prefix("postern:plugin/") {
            Some(rest) => postern.push(rest.split('@').next().unwrap_or(rest).to_string()),
            None => other.push(i.clone()),
        }
    }
    (postern, other)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// What a binding was given, in plugins.toml's words.
fn granted(b: &Binding) -> Vec<String> {
    let mut g = Vec::new();
    if b.grants.dns {
        g.push("dns".to_string());
    }
    g.extend(b.grants.kv.iter().map(|k| format!("kv:{k}")));
    g.extend(b.grants.signing.iter().map(|k| format!("signing:{k}")));
    g
}

/// The lines `list` and `check` share: exports, imports, requested grants.
fn print_info(info: &ComponentInfo) {
    let (postern, wasi) = split_imports(&info.imports);
    println!("  exports: {}", list_or_none(&info.exports));
    println!("  imports: {}", list_or_none(&postern));
    println!("  wasi imports: {}", list_or_none(&wasi));
    println!("  requests grants: {}", list_or_none(&info.grants));
}

fn list(loaded: &LoadedConfig) -> CliResult {
    let cfg = &loaded.main;
    let Some(dir) = &cfg.config_dir else {
        println!("postern: no configuration directory (embedded defaults): no plugins.toml");
        return Ok(exit::OK);
    };
    let path = dir.join("plugins.toml");
    if !path.exists() {
        println!("postern: {} does not exist: no plugins", path.display());
        return Ok(exit::OK);
    }
    let cache = crate::plugins::cache_dir(cfg);
    let set = crate::plugins::PluginSet::load(dir, Some(cache.clone()));
    let rt = crate::plugins::runtime(Some(cache)).map_err(|e| anyhow!(e))?;
    let loaded: HashMap<&str, &postern_runtime::Plugin> = set
        .plugins()
        .map(|p| (p.binding().name.as_str(), p))
        .collect();
    let mut errors = set.errors.len();
    for e in &set.errors {
        println!("error: {e}");
    }
    if set.bindings().plugins.is_empty() && errors == 0 {
        println!("postern: {} binds no plugins", path.display());
    }
    for b in &set.bindings().plugins {
        println!("plugin {} ({})", b.name, b.origin);
        let info = rt.inspect(&b.component);
        let size = match &info {
            Ok(i) => format!("{} bytes", i.size),
            Err(_) => "unreadable".to_string(),
        };
        println!("  component: {} ({size})", b.component.display());
        match &info {
            Ok(info) => {
                println!(
                    "  roles: {} (exports: {})",
                    roles_text(&b.roles),
                    roles_text(&info.roles)
                );
                print_info(info);
            }
            Err(e) => {
                println!(
                    "  roles: {} (component not readable: {e:#})",
                    roles_text(&b.roles)
                );
            }
        }
        println!("  granted: {}", list_or_none(&granted(b)));
        match loaded.get(b.name.as_str()) {
            Some(p) => println!("  instances: {}", p.instance_policy()),
            None => {
                println!("  instances: none (not loaded; see the error above)");
                if set.errors.is_empty() {
                    errors += 1;
                }
            }
        }
    }
    Ok(if errors > 0 { exit::FAILURE } else { exit::OK })
}

fn check(path: &Path) -> CliResult {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::new(exit::FAILURE, anyhow!("{}: {e}", path.display())))?;
    // WebAssembly binary header: magic, then version 1 (core module) or a component layer.
    let not_plugin = |why: String| {
        CliError::new(
            exit::FAILURE,
            anyhow!(
                "{} is not a Postern plugin component: {why}",
                path.display()
            ),
        )
    };
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err(not_plugin(
                "it is a core WebAssembly module, not a component (build for wasm32-wasip2, \
                 or wrap it with `wasm-tools component new`)"
                    .to_string(),
            ))
        }
        Some([0, b'a', b's', b'm', ..]) => {}
        _ => return Err(not_plugin("not a WebAssembly file".to_string())),
    }
    let rt = Runtime::new().code(exit::SOFTWARE)?;
    let info = rt.inspect(path).map_err(|e| {
        let why = super::describe(&e);
        not_plugin(why.split_whitespace().collect::<Vec<_>>().join(" "))
    })?;
    println!("component {} ({} bytes)", path.display(), info.size);
    println!("  roles: {}", roles_text(&info.roles));
    print_info(&info);
    if info.roles.is_empty() {
        return Err(CliError::new(
            exit::FAILURE,
            anyhow!(
                "{} exports no Postern role: a plugin exports postern:plugin/policy, lookup, \
                 filter or transport @0.1.0 (see docs/plugins.md)",
                path.display()
            ),
        ));
    }
    // Loading checks what inspecting cannot: that every import links against the host.
    let mut b = Binding::new("check", path);
    b.roles = info.roles.clone();
    rt.load(b, &KeyStore::default()).map_err(|e| {
        CliError::new(
            exit::FAILURE,
            anyhow!("{} does not load: {}", path.display(), super::describe(&e)),
        )
    })?;
    println!(
        "postern: {} is a Postern plugin (roles: {})",
        path.display(),
        roles_text(&info.roles)
    );
    Ok(exit::OK)
}

fn test(path: &Path, vectors: Option<&Path>) -> CliResult {
    let vectors = vectors
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_vectors_path(path));
    if !vectors.exists() {
        return Err(CliError::new(
            exit::CONFIG,
            anyhow!(
                "no test vectors: {} does not exist (write one next to the component, or name \
                 it: postern plugin test PATH.wasm VECTORS; format in sdk/testing/README.md)",
                vectors.display()
            ),
        ));
    }
    if !path.exists() {
        return Err(CliError::new(
            exit::FAILURE,
            anyhow!("{}: no such component", path.display()),
        ));
    }
    let report = run_vectors(path, &vectors).map_err(|e| {
        // A component that does not load fails like a test; a bad vector file is a config error.
        let code = if super::describe(&e).contains(&vectors.display().to_string()) {
            exit::CONFIG
        } else {
            exit::FAILURE
        };
        CliError::new(code, e)
    })?;
    println!(
        "running {} case(s) of {} against {}",
        report.cases.len(),
        vectors.display(),
        path.display()
    );
    print!("{report}");
    Ok(if report.success() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
