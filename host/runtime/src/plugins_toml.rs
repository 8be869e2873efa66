//! `plugins.toml`: which components run under which names, with which capabilities.
//!
//! ```toml
//! [[plugin]]
//! name = "block-listed"              # used as `check_policy_service wasm:block-listed`
//! component = "block_listed.wasm"    # relative to the directory of plugins.toml
//! roles = ["policy"]
//! grants = ["dns", "kv:greylist", "signing:example.com", "connect:127.0.0.1:11333"]
//! timeout = "50ms"                   # wall-clock limit per call (default 50ms)
//! memory = "16M"                     # linear-memory cap per instance (default 16 MiB)
//! fuel = 10000000                    # optional instruction budget per call
//! on_error = "dunno"                 # dunno (fail open, default) | defer (451 4.3.0)
//! instances = "auto"                 # auto | transaction | pooled | call (see Binding)
//! max_uses = 1000                    # pooled: calls per instance before it is replaced
//! max_age = "5m"                     # pooled: age at which an instance is replaced
//! dns_queries = 20                   # DNS queries one call may make
//! backoff_after = 5                  # consecutive faults before calls fail fast (0 = never)
//! [plugin.config]
//! reject = "a@example.com, b@example.com"
//!
//! [[key]]                            # a signing key the host holds (grant "signing:NAME")
//! name = "example.com"
//! path = "keys/example.com.pem"      # PKCS#8 or PKCS#1 PEM, RSA ≥ 1024 bits or Ed25519
//! selector = "s2026"
//! domain = "example.com"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::services::KeySpec;

/// Default wall-clock limit per call (issue 4: an infinite loop is stopped within ≤ 50 ms).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default linear-memory cap: ample for a Rust policy plugin (~1–2 MiB), small enough that a
/// thousand concurrent calls cannot exhaust the host.
pub const DEFAULT_MEMORY: usize = 16 << 20;
/// Default per-call DNS query budget: SPF's ten DNS-querying terms plus the lookups around
/// them.
pub const DEFAULT_DNS_QUERIES: u32 = 20;
/// Default replacement thresholds of a pooled instance.
pub const DEFAULT_MAX_USES: u32 = 1000;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Consecutive faults (traps, timeouts, limit hits) after which a plugin is backed off.
pub const DEFAULT_BACKOFF_AFTER: u32 = 5;

/// How long an instance lives (`instances = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// `pooled` for components of 4 MiB and more (Python, JS), `transaction` below.
    #[default]
    Auto,
    /// A fresh instance for every call.
    Call,
    /// One instance per SMTP transaction (fresh per call outside a transaction): no state
    /// survives from one message to the next.
    Transaction,
    /// Instances are reused across transactions until `max_uses` calls or `max_age`.
    Pooled,
}

/// Roles a component may serve (WIT worlds). Only `policy` is wired in this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Policy,
    Lookup,
    Filter,
    Transport,
}

/// What a failed call (trap, timeout, memory cap, plugin error) means to the restriction list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Fail open: DUNNO, continue with the next restriction.
    #[default]
    Dunno,
    /// Fail closed: `451 4.3.0`, the client retries later.
    Defer,
}

/// Capabilities granted to one binding; everything else answers `denied`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub dns: bool,
    pub kv: Vec<String>,
    pub signing: Vec<String>,
    /// `connect:IP:PORT` (`connect:[IPv6]:PORT`): outbound TCP connections the plugin may open
    /// through WASI sockets; nothing else (no listening, no UDP, no name lookups).
    pub connect: Vec<std::net::SocketAddr>,
}

/// One `[[plugin]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub name: String,
    pub component: PathBuf,
    pub roles: Vec<Role>,
    pub grants: Grants,
    pub timeout: Duration,
    pub memory: usize,
    pub fuel: Option<u64>,
    pub on_error: OnError,
    pub instances: InstanceMode,
    pub max_uses: u32,
    pub max_age: Duration,
    pub dns_queries: u32,
    /// Consecutive faults after which calls fail fast for a back-off period (1 s, doubling
    /// to 60 s); 0 never backs off.
    pub backoff_after: u32,
    /// The binding's `[plugin.config]` table, read by the plugin through the `config` import.
    pub config: BTreeMap<String, String>,
    /// `file:line` of the entry, for messages about it.
    pub origin: String,
}

impl Binding {
    /// A binding with the defaults, for tests and tools.
    pub fn new(name: &str, component: impl Into<PathBuf>) -> Binding {
        Binding {
            name: name.to_string(),
            component: component.into(),
            roles: vec![Role::Policy],
            grants: Grants::default(),
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
            fuel: None,
            on_error: OnError::Dunno,
            instances: InstanceMode::Auto,
            max_uses: DEFAULT_MAX_USES,
            max_age: DEFAULT_MAX_AGE,
            dns_queries: DEFAULT_DNS_QUERIES,
            backoff_after: DEFAULT_BACKOFF_AFTER,
            config: BTreeMap::new(),
            origin: String::new(),
        }
    }
}

/// All bindings of one `plugins.toml`, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    pub plugins: Vec<Binding>,
    /// `[[key]]` entries: signing keys the host loads and plugins use by handle.
    pub keys: Vec<KeySpec>,
}

impl Bindings {
    /// Reads `path`; a missing file means no plugins.
    pub fn load(path: &Path) -> anyhow::Result<Bindings> {
        match std::fs::read_to_string(path) {
            Ok(text) => Bindings::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Bindings::default()),
            Err(e) => Err(anyhow!("{}: cannot read: {e}", path.display())),
        }
    }

    /// Parses `text`; relative `component` paths are resolved against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Bindings> {
        let file = path.display().to_string();
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("{file}: {}", e.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let lines = entry_lines(text, "[[plugin]]");
        let mut plugins: Vec<Binding> = Vec::new();
        let mut keys: Vec<KeySpec> = Vec::new();
        for (key, value) in &doc {
            if key == "key" {
                keys = parse_keys(value, base, &file, &entry_lines(text, "[[key]]"))?;
                continue;
            }
            if key != "plugin" {
                bail!("{file}: unknown top-level key \"{key}\" (expected [[plugin]] and [[key]] entries)");
            }
            let Some(entries) = value.as_array() else {
                bail!("{file}: \"plugin\" must be an array of tables: write [[plugin]]");
            };
            for (i, entry) in entries.iter().enumerate() {
                let line = lines.get(i).copied().unwrap_or(1);
                let origin = format!("{file}:{line}");
                let b = parse_entry(entry, base, &origin)
                    .map_err(|e| anyhow!("{origin}: [[plugin]] {e}"))?;
                if plugins.iter().any(|p| p.name == b.name) {
                    bail!("{origin}: plugin name \"{}\" is used twice", b.name);
                }
                plugins.push(b);
            }
        }
        for b in &plugins {
            for k in &b.grants.signing {
                if !keys.iter().any(|spec| spec.name == *k) {
                    bail!(
                        "{}: [[plugin]] \"{}\": grant \"signing:{k}\" names no [[key]] entry",
                        b.origin,
                        b.name
                    );
                }
            }
        }
        Ok(Bindings { plugins, keys })
    }

    pub fn get(&self, name: &str) -> Option<&Binding> {
        self.plugins.iter().find(|b| b.name == name)
    }
}

/// Line numbers of the `header` (`[[plugin]]`, `[[key]]`) lines, in order.
fn entry_lines(text: &str, header: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.starts_with(header)
        })
        .map(|(n, _)| n + 1)
        .collect()
}

fn parse_entry(entry: &toml::Value, base: &Path, origin: &str) -> anyhow::Result<Binding> {
    let Some(t) = entry.as_table() else {
        bail!("must be a table");
    };
    let name = match t.get("name") {
        Some(toml::Value::String(s)) if valid_name(s) => s.clone(),
        Some(toml::Value::String(s)) => {
            bail!("name \"{s}\": use letters, digits, '-', '_' and '.' only")
        }
        Some(_) => bail!("name must be a string"),
        None => bail!("has no name"),
    };
    let mut b = Binding::new(&name, PathBuf::new());
    b.origin = origin.to_string();
    let ctx = |what: &str| format!("\"{name}\": {what}");
    let mut component = None;
    for (key, v) in t {
        match key.as_str() {
            "name" => {}
            "component" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| anyhow!("{}", ctx("component must be a path string")))?;
                component = Some(base.join(s));
            }
            "roles" => {
                b.roles = strings(v)
                    .ok_or_else(|| anyhow!("{}", ctx("roles must be a list of strings")))?
                    .iter()
                    .map(|r| match r.as_str() {
                        "policy" => Ok(Role::Policy),
                        "lookup" => Ok(Role::Lookup),
                        "filter" => Ok(Role::Filter),
                        "transport" => Ok(Role::Transport),
                        other => Err(anyhow!(
                            "{}",
                            ctx(&format!(
                                "unknown role \"{other}\" (policy, lookup, filter, transport)"
                            ))
                        )),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "grants" => {
                for g in strings(v)
                    .ok_or_else(|| anyhow!("{}", ctx("grants must be a list of strings")))?
                {
                    match g.split_once(':') {
                        None if g == "dns" => b.grants.dns = true,
                        Some(("kv", bucket)) if !bucket.is_empty() => {
                            b.grants.kv.push(bucket.to_string())
                        }
                        Some(("signing", key)) if !key.is_empty() => {
                            b.grants.signing.push(key.to_string())
                        }
                        Some(("connect", addr)) => match addr.parse() {
                            Ok(a) => b.grants.connect.push(a),
                            Err(_) => bail!(
                                "{}",
                                ctx(&format!(
                                    "grant \"{g}\": expected connect:IP:PORT, e.g. connect:127.0.0.1:11333 or connect:[::1]:11333"
                                ))
                            ),
                        },
                        _ => bail!(
                            "{}",
                            ctx(&format!(
                                "unknown grant \"{g}\" (dns, kv:BUCKET, signing:KEY, connect:IP:PORT)"
                            ))
                        ),
                    }
                }
            }
            "timeout" => {
                let s = v.as_str().ok_or_else(|| {
                    anyhow!("{}", ctx("timeout must be a string such as \"50ms\""))
                })?;
                b.timeout = parse_duration(s).ok_or_else(|| {
                    anyhow!(
                        "{}",
                        ctx(&format!("timeout \"{s}\": expected e.g. \"50ms\", \"2s\""))
                    )
                })?;
            }
            "memory" => {
                b.memory = match v {
                    toml::Value::Integer(n) if *n > 0 => *n as usize,
                    toml::Value::String(s) => parse_size(s).ok_or_else(|| {
                        anyhow!(
                            "{}",
                            ctx(&format!("memory \"{s}\": expected e.g. \"16M\", \"512K\""))
                        )
                    })?,
                    _ => bail!("{}", ctx("memory must be a size such as \"16M\"")),
                };
                if b.memory < 64 << 10 {
                    bail!("{}", ctx("memory must be at least 64K (one wasm page)"));
                }
            }
            "instances" => {
                b.instances = match v.as_str() {
                    Some("auto") => InstanceMode::Auto,
                    Some("call") => InstanceMode::Call,
                    Some("transaction") => InstanceMode::Transaction,
                    Some("pooled") => InstanceMode::Pooled,
                    _ => bail!(
                        "{}",
                        ctx("instances must be \"auto\", \"transaction\", \"pooled\" or \"call\"")
                    ),
                }
            }
            "max_uses" => match v {
                toml::Value::Integer(n) if *n > 0 && *n <= i64::from(u32::MAX) => {
                    b.max_uses = *n as u32
                }
                _ => bail!("{}", ctx("max_uses must be a positive integer")),
            },
            "backoff_after" => match v {
                toml::Value::Integer(n) if *n >= 0 && *n <= i64::from(u32::MAX) => {
                    b.backoff_after = *n as u32
                }
                _ => bail!("{}", ctx("backoff_after must be a non-negative integer")),
            },
            "dns_queries" => match v {
                toml::Value::Integer(n) if *n >= 0 && *n <= 1000 => b.dns_queries = *n as u32,
                _ => bail!("{}", ctx("dns_queries must be an integer from 0 to 1000")),
            },
            "max_age" => {
                let s = v.as_str().unwrap_or_default();
                b.max_age = parse_duration(s).ok_or_else(|| {
                    anyhow!(
                        "{}",
                        ctx("max_age must be a duration string such as \"5m\" or \"30s\"")
                    )
                })?;
            }
            "fuel" => match v {
                toml::Value::Integer(n) if *n > 0 => b.fuel = Some(*n as u64),
                _ => bail!("{}", ctx("fuel must be a positive integer")),
            },
            "on_error" => {
                b.on_error = match v.as_str() {
                    Some("dunno") => OnError::Dunno,
                    Some("defer") => OnError::Defer,
                    _ => bail!("{}", ctx("on_error must be \"dunno\" or \"defer\"")),
                }
            }
            "config" => {
                let Some(table) = v.as_table() else {
                    bail!("{}", ctx("config must be a table: [plugin.config]"));
                };
                for (k, v) in table {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(_)
                        | toml::Value::Float(_)
                        | toml::Value::Boolean(_) => v.to_string(),
                        _ => bail!(
                            "{}",
                            ctx(&format!(
                                "config.{k}: values must be strings, numbers or booleans"
                            ))
                        ),
                    };
                    b.config.insert(k.clone(), v);
                }
            }
            other => bail!("{}", ctx(&format!("unknown key \"{other}\""))),
        }
    }
    b.component = component.ok_or_else(|| anyhow!("{}", ctx("has no component path")))?;
    Ok(b)
}

fn parse_keys(
    value: &toml::Value,
    base: &Path,
    file: &str,
    lines: &[usize],
) -> anyhow::Result<Vec<KeySpec>> {
    let Some(entries) = value.as_array() else {
        bail!("{file}: \"key\" must be an array of tables: write [[key]]");
    };
    let mut keys: Vec<KeySpec> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let origin = format!("{file}:{}", lines.get(i).copied().unwrap_or(1));
        let Some(t) = entry.as_table() else {
            bail!("{origin}: [[key]] must be a table");
        };
        let field = |k: &str| -> anyhow::Result<String> {
            match t.get(k) {
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => bail!("{origin}: [[key]] {k} must be a non-empty string"),
                None => bail!("{origin}: [[key]] has no {k}"),
            }
        };
        if let Some(k) = t
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "path" | "selector" | "domain"))
        {
            bail!("{origin}: [[key]] unknown key \"{k}\" (name, path, selector, domain)");
        }
        let name = field("name")?;
        if !valid_name(&name) {
            bail!("{origin}: [[key]] name \"{name}\": use letters, digits, '-', '_' and '.' only");
        }
        if keys.iter().any(|k| k.name == name) {
            bail!("{origin}: key name \"{name}\" is used twice");
        }
        keys.push(KeySpec {
            path: base.join(field("path")?),
            selector: field("selector")?,
            domain: field("domain")?,
            name,
            origin,
        });
    }
    Ok(keys)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let d = match s[split..].trim() {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: usize = s[..split].parse().ok()?;
    let mult = match s[split..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_binding_with_defaults_and_config() {
        let text = "# plugins\n\n[[plugin]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\n[[plugin]]\nname = \"b\"\ncomponent = \"/x/b.wasm\"\ngrants = [\"dns\", \"kv:grey\"]\ntimeout = \"20ms\"\nmemory = \"4M\"\nfuel = 1000\non_error = \"defer\"\n[plugin.config]\nreject = \"x@y\"\nlimit = 3\n";
        let b = Bindings::parse(text, Path::new("/etc/postern/plugins.toml")).unwrap();
        let a = b.get("a").unwrap();
        assert_eq!(a.component, PathBuf::from("/etc/postern/a.wasm"));
        assert_eq!(
            (a.timeout, a.memory, a.on_error),
            (DEFAULT_TIMEOUT, DEFAULT_MEMORY, OnError::Dunno)
        );
        assert_eq!(a.origin, "/etc/postern/plugins.toml:3");
        let b2 = b.get("b").unwrap();
        assert_eq!(
            b2.grants,
            Grants {
                dns: true,
                kv: vec!["grey".into()],
                signing: vec![],
                connect: vec![]
            }
        );
        assert_eq!(
            (b2.timeout, b2.memory, b2.fuel, b2.on_error),
            (
                Duration::from_millis(20),
                4 << 20,
                Some(1000),
                OnError::Defer
            )
        );
        assert_eq!(b2.config.get("reject").map(String::as_str), Some("x@y"));
        assert_eq!(b2.config.get("limit").map(String::as_str), Some("3"));
    }

    #[test]
    fn errors_name_the_file_line_and_what_to_do() {
        let p = Path::new("plugins.toml");
        let e = Bindings::parse("[[plugin]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\n[[plugin]]\nname = \"b\"\ncomponent = \"b.wasm\"\non_error = \"maybe\"\n", p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugins.toml:5: [[plugin]] \"b\": on_error must be \"dunno\" or \"defer\""
        );
        let e = Bindings::parse("[[plugin]]\nname = \"a\"\n", p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugins.toml:1: [[plugin]] \"a\": has no component path"
        );
        let e = Bindings::parse(
            "[[plugin]]\nname = \"a\"\ncomponent = \"a.wasm\"\ngrants = [\"files\"]\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown grant \"files\""), "{e}");
        let e = Bindings::parse("[[plugin]\n", p).unwrap_err();
        assert!(e.to_string().starts_with("plugins.toml: "), "{e}");
        let e = Bindings::parse(
            "[[plugin]]\nname=\"a\"\ncomponent=\"a\"\n[[plugin]]\nname=\"a\"\ncomponent=\"b\"\n",
            p,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugins.toml:4: plugin name \"a\" is used twice"
        );
    }

    #[test]
    fn keys_instances_and_connect_grants() {
        let p = Path::new("/etc/postern/plugins.toml");
        let text = "[[plugin]]\nname = \"dkim\"\ncomponent = \"d.wasm\"\nroles = [\"filter\"]\n\
                    grants = [\"signing:ex\", \"connect:127.0.0.1:11333\", \"connect:[::1]:25\"]\n\
                    instances = \"pooled\"\nmax_uses = 10\nmax_age = \"30s\"\ndns_queries = 3\n\
                    backoff_after = 0\n\n[[key]]\nname = \"ex\"\npath = \"keys/ex.pem\"\n\
                    selector = \"s1\"\ndomain = \"example.com\"\n";
        let b = Bindings::parse(text, p).unwrap();
        let d = b.get("dkim").unwrap();
        assert_eq!(d.roles, vec![Role::Filter]);
        assert_eq!(
            d.grants.connect,
            vec![
                "127.0.0.1:11333".parse().unwrap(),
                "[::1]:25".parse().unwrap()
            ]
        );
        assert_eq!(
            (
                d.instances,
                d.max_uses,
                d.max_age,
                d.dns_queries,
                d.backoff_after
            ),
            (InstanceMode::Pooled, 10, Duration::from_secs(30), 3, 0)
        );
        assert_eq!(b.keys.len(), 1);
        assert_eq!(b.keys[0].path, PathBuf::from("/etc/postern/keys/ex.pem"));
        assert_eq!(b.keys[0].origin, "/etc/postern/plugins.toml:12");

        let e = Bindings::parse(
            "[[plugin]]\nname = \"a\"\ncomponent = \"a\"\ngrants = [\"signing:nokey\"]\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("names no [[key]] entry"), "{e}");
        let e = Bindings::parse(
            "[[plugin]]\nname = \"a\"\ncomponent = \"a\"\ngrants = [\"connect:example.com:25\"]\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected connect:IP:PORT"), "{e}");
        let e = Bindings::parse(
            "[[plugin]]\nname = \"a\"\ncomponent = \"a\"\ninstances = \"sometimes\"\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("instances must be"), "{e}");
    }
}
