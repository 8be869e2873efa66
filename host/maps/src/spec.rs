//! `type:name` table references and the registry that opens them.
//!
//! Built-in types are matched first; anything else is looked up among the openers registered
//! on the [`OpenCtx`], which is how `wasm:NAME` (the plugin runtime) and `rhai:/path.rhai`
//! (the script engine) join without this crate knowing them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{MapError, Table};

/// The table types this crate implements, as `postern map` and errors list them.
pub const BUILTIN_TYPES: &[&str] = &[
    "cidr", "fail", "hash", "inline", "pcre", "regexp", "sqlite", "static", "texthash",
];

/// A parsed `type:name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Lower-case type: `hash`, `regexp`, `wasm`, …
    pub kind: String,
    /// Everything after the first `:` — a path, a plugin name, or `{…}` in-line text.
    pub name: String,
}

impl TableRef {
    /// Parses `type:name`. A `proxy:` prefix is accepted and dropped: Postern has no proxymap(8)
    /// process to go through, tables are opened in-process, and dropping it lets Postfix
    /// configurations (`proxy:unix:passwd.byname`, `proxy:hash:/etc/x`) keep their spelling.
    pub fn parse(spec: &str) -> Result<TableRef, MapError> {
        let spec = spec.trim();
        let Some((kind, name)) = spec.split_once(':') else {
            return Err(MapError::spec(
                spec,
                "not a table reference; expected type:name (example: hash:/etc/postern/access)",
            ));
        };
        if kind.is_empty()
            || !kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(MapError::spec(
                spec,
                "bad table type; expected type:name (example: hash:/etc/postern/access)",
            ));
        }
        if kind.eq_ignore_ascii_case("proxy") {
            return TableRef::parse(name);
        }
        if name.is_empty() {
            return Err(MapError::spec(spec, "missing table name after the ':'"));
        }
        Ok(TableRef {
            kind: kind.to_ascii_lowercase(),
            name: name.to_string(),
        })
    }

    /// The name as a path (for file-based types).
    pub fn path(&self) -> &Path {
        Path::new(&self.name)
    }

    /// True for `type:{…}` in-line contents (Postfix 3.7 for regexp/pcre/cidr).
    pub fn is_inline(&self) -> bool {
        self.name.starts_with('{')
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Opens tables of one registered type.
pub trait TableOpener: Send + Sync {
    fn open(&self, table: &TableRef, ctx: &OpenCtx) -> Result<Arc<dyn Table>, MapError>;
}

impl<F> TableOpener for F
where
    F: Fn(&TableRef, &OpenCtx) -> Result<Arc<dyn Table>, MapError> + Send + Sync,
{
    fn open(&self, table: &TableRef, ctx: &OpenCtx) -> Result<Arc<dyn Table>, MapError> {
        self(table, ctx)
    }
}

/// What opening a table may need besides its name: openers for types this crate does not
/// implement. Cheap to clone (the openers are shared).
#[derive(Clone, Default)]
pub struct OpenCtx {
    openers: BTreeMap<String, Arc<dyn TableOpener>>,
}

impl OpenCtx {
    pub fn new() -> OpenCtx {
        OpenCtx::default()
    }

    /// Adds a table type (`wasm`, `rhai`). Built-in types cannot be replaced: a plugin must not
    /// be able to change what `hash:` means. Returns false (and registers nothing) for those.
    pub fn register(&mut self, kind: &str, opener: Arc<dyn TableOpener>) -> bool {
        let kind = kind.to_ascii_lowercase();
        if BUILTIN_TYPES.contains(&kind.as_str()) {
            return false;
        }
        self.openers.insert(kind, opener);
        true
    }

    /// Every type that can be opened: built-ins and registered ones, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut all: Vec<String> = BUILTIN_TYPES.iter().map(|s| s.to_string()).collect();
        all.extend(self.openers.keys().cloned());
        all.sort();
        all
    }
}

impl fmt::Debug for OpenCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenCtx")
            .field("registered", &self.openers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Opens `type:name`. Fatal problems (unknown type, missing file, bad in-line syntax) are
/// errors; lines a table skips are in [`Table::warnings`].
pub fn open_table(spec: &str, ctx: &OpenCtx) -> Result<Arc<dyn Table>, MapError> {
    let table = TableRef::parse(spec)?;
    open_ref(&table, ctx)
}

pub(crate) fn open_ref(table: &TableRef, ctx: &OpenCtx) -> Result<Arc<dyn Table>, MapError> {
    use crate::{cidr, hashdb, memory, pattern, sqlite};
    Ok(match table.kind.as_str() {
        "inline" => Arc::new(memory::MemoryTable::inline(table)?),
        "static" => Arc::new(memory::StaticTable::open(table)?),
        "fail" => Arc::new(memory::FailTable::open(table)),
        "texthash" => Arc::new(memory::MemoryTable::texthash(table)?),
        "hash" => Arc::new(hashdb::HashTable::open_ref(table)?),
        "regexp" => Arc::new(pattern::PatternTable::open(
            table,
            pattern::Dialect::Regexp,
        )?),
        "pcre" => Arc::new(pattern::PatternTable::open(table, pattern::Dialect::Pcre)?),
        "cidr" => Arc::new(cidr::CidrTable::open(table)?),
        "sqlite" => Arc::new(sqlite::SqliteTable::open(table, ctx)?),
        other => match ctx.openers.get(other) {
            Some(opener) => opener.open(table, ctx)?,
            None => return Err(unsupported(table, ctx)),
        },
    })
}

fn unsupported(table: &TableRef, ctx: &OpenCtx) -> MapError {
    let hint = match table.kind.as_str() {
        "lmdb" | "cdb" | "btree" | "dbm" | "sdbm" => format!(
            "; use hash:{} (built with: postern map build hash:{})",
            table.name, table.name
        ),
        _ => String::new(),
    };
    MapError::spec(
        &table.to_string(),
        format!(
            "unsupported table type \"{}\" (supported: {}){hint}",
            table.kind,
            ctx.types().join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_and_name() {
        let t = TableRef::parse("HASH:/etc/postern/access").unwrap();
        assert_eq!(
            (t.kind.as_str(), t.name.as_str()),
            ("hash", "/etc/postern/access")
        );
        let t = TableRef::parse("inline:{ a=b, c=d }").unwrap();
        assert!(t.is_inline());
        let t = TableRef::parse("proxy:hash:/x").unwrap();
        assert_eq!(t.to_string(), "hash:/x");
        assert!(TableRef::parse("/etc/postern/access").is_err());
        assert!(TableRef::parse("hash:").is_err());
        assert!(TableRef::parse(":x").is_err());
    }

    #[test]
    fn unknown_types_name_the_supported_ones() {
        let err = open_table("lmdb:/etc/x", &OpenCtx::new()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unsupported table type \"lmdb\""), "{text}");
        assert!(text.contains("use hash:/etc/x"), "{text}");
    }

    #[test]
    fn registered_types_open_but_cannot_shadow_builtins() {
        let mut ctx = OpenCtx::new();
        let opener: Arc<dyn TableOpener> = Arc::new(|t: &TableRef, _: &OpenCtx| {
            crate::open_table(&format!("static:{}", t.name), &OpenCtx::new())
        });
        assert!(ctx.register("wasm", opener.clone()));
        assert!(!ctx.register("hash", opener));
        let t = open_table("wasm:greylist", &ctx).unwrap();
        assert_eq!(t.lookup("x").unwrap().as_deref(), Some("greylist"));
        assert!(ctx.types().contains(&"wasm".to_string()));
    }
}
