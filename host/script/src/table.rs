//! `rhai:/path.rhai` as a lookup table: the script's `fn lookup(key)` answers.
//!
//! The table is of kind Pattern (Postfix `DICT_FLAG_PATTERN`): a script sees the full key once,
//! like a `regexp:` table, because it can express any partial match itself. A script error or a
//! limit hit is a temporary lookup failure, never "not found": smtpd answers `451 4.3.0` and
//! cleanup/qmgr defer, as for a database that does not answer.

use std::path::PathBuf;
use std::sync::Arc;

use postern_maps::{Kind, LookupError, MapError, OpenCtx, Table, TableOpener, TableRef};

use crate::{Script, ScriptError, Scripts};

/// One opened `rhai:` table.
#[derive(Debug)]
pub struct RhaiTable {
    spec: String,
    script: Arc<Script>,
}

impl RhaiTable {
    /// Compiles (or takes from the cache) the script; a script without `fn lookup(key)` cannot
    /// be a table.
    pub fn open(scripts: &Scripts, table: &TableRef) -> Result<RhaiTable, MapError> {
        let path = PathBuf::from(&table.name);
        let script = scripts.load(&path).map_err(|e| to_map_error(table, e))?;
        if !script.has_fn("lookup", 1) {
            return Err(MapError::Spec {
                spec: table.to_string(),
                message: "the script has no fn lookup(key)".to_string(),
            });
        }
        Ok(RhaiTable {
            spec: table.to_string(),
            script,
        })
    }
}

fn to_map_error(table: &TableRef, e: ScriptError) -> MapError {
    match e {
        ScriptError::Io { path, message } => MapError::Io { path, message },
        // `rhai:/path.rhai:LINE:COLUMN: message` — the spec, then where in it.
        ScriptError::Compile {
            line,
            column,
            message,
            ..
        } => MapError::Spec {
            spec: table.to_string(),
            message: format!("{line}:{column}: {message}"),
        },
        other => MapError::Spec {
            spec: table.to_string(),
            message: other.to_string(),
        },
    }
}

impl Table for RhaiTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        self.script
            .lookup(key)
            .map_err(|e| LookupError::Temporary(e.to_string()))
    }

    fn kind(&self) -> Kind {
        Kind::Pattern
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    fn is_stale(&self) -> bool {
        self.script.is_stale()
    }
}

/// The opener to register as `ctx.register("rhai", opener(scripts))`.
pub fn opener(scripts: Arc<Scripts>) -> Arc<dyn TableOpener> {
    Arc::new(move |table: &TableRef, _: &OpenCtx| {
        let t: Arc<dyn Table> = Arc::new(RhaiTable::open(&scripts, table)?);
        Ok(t)
    })
}
