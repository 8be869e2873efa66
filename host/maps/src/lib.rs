//! # Layout
//!
//! `postern-maps` owns Postfix's lookup tables: the [`Table`] trait, the built-in table types,
//! the `type:name` registry ([`open_table`]), ordered table lists ([`Tables`]) and Postfix's
//! search orders over them ([`search`]). It is pure logic plus file reading: no sockets, no
//! async runtime, no logging. Data enters as a `type:name` string (from main.cf) and a lookup key;
//! it leaves as `Ok(Some(value))`, `Ok(None)` (not found) or a [`LookupError`] — the third state
//! that smtpd turns into `451 4.3.0` and never a silent "not found". Problems met while opening a
//! table are returned: fatal ones as [`MapError`], skipped lines as [`Warning`]s on the table
//! ([`Table::warnings`]) for the caller to log, as Postfix logs them.
//!
//! * `spec` — [`TableRef`] (`type:name`), [`OpenCtx`] and the registry [`open_table`]; later
//!   table types (`wasm:NAME`, `rhai:/path.rhai`) plug in through [`OpenCtx::register`].
//! * `list` — [`Tables`], a comma/space separated list looked up in order (Postfix `maps_find`).
//! * `text` — postmap(1) source syntax: logical lines, `key whitespace value`.
//! * `memory` — `inline:`, `static:`, `texthash:` and `fail:`.
//! * `hashdb` — `hash:`: the on-disk index built by `postern map build` (format in docs/maps.md).
//! * `pattern` — `regexp:` and `pcre:` (regexp_table(5), pcre_table(5)); `cidr` — `cidr:`.
//! * `sqlite` — `sqlite:` (sqlite_table(5)).
//! * `address` — local-part quoting, address extensions, address lists.
//! * `search` — access(5), virtual(5), canonical(5), relocated(5) and transport(5) search orders.
//! * `aliases` — aliases(5) source syntax and the parsed kinds of a right-hand side.
//!
//! This crate never decides policy: whether `|command` or `/file` alias targets are allowed, what
//! an access(5) action means, or what to do with a lookup error is the caller's business.

use std::fmt;
use std::path::PathBuf;

pub mod address;
pub mod aliases;
mod cidr;
mod hashdb;
mod list;
mod memory;
mod pattern;
mod rules;
pub mod search;
mod spec;
mod sqlite;
mod stamp;
mod text;

pub use hashdb::{build_hash, build_hash_entries, BuildReport, HashTable, HASH_SUFFIX};
pub use list::{split_table_list, Scope, Tables};
pub use spec::{open_table, OpenCtx, TableOpener, TableRef, BUILTIN_TYPES};
pub use text::{fold_key, parse_source, SourceEntry};

/// Postfix's two table families (`DICT_FLAG_FIXED` / `DICT_FLAG_PATTERN`).
///
/// The search orders ([`search`]) query partial keys (`user@`, `domain`, parent domains, network
/// prefixes) only against fixed tables; a pattern table sees the full key once, because its
/// patterns can express any partial match themselves (regexp_table(5) "TABLE SEARCH ORDER").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Exact keys: `hash:`, `texthash:`, `inline:`, `static:`, `sqlite:`.
    Fixed,
    /// Patterns matched against the whole key: `regexp:`, `pcre:`, `cidr:`.
    Pattern,
}

/// A lookup that could not be answered. Never folded into "not found": Postfix's smtpd answers
/// `451 4.3.0` (and cleanup/qmgr defer) so that a broken table cannot silently let mail through
/// or bounce it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Try again later: a database that is busy or unreachable, a result over
    /// `expansion_limit`, a pattern that exceeded its backtracking budget.
    #[error("temporary lookup failure: {0}")]
    Temporary(String),
    /// The table or its configuration is wrong (an empty result, a bad SQL template, a corrupt
    /// index): retrying will not help until an administrator fixes it, but mail is deferred,
    /// not rejected, meanwhile.
    #[error("table configuration error: {0}")]
    Config(String),
}

/// One table: the only thing the rest of Postern knows about a lookup table. Implementations
/// are immutable after opening and shared between sessions (`Arc<dyn Table>`); a changed source
/// is picked up by opening the table again when [`Table::is_stale`] says so.
///
/// Lookups are synchronous. File-backed tables answer from memory or an mmap'ed index in
/// microseconds; `sqlite:` (and later network tables) may block on I/O, so async callers run
/// those on a blocking thread.
pub trait Table: Send + Sync + fmt::Debug {
    /// The value for `key`, `None` when there is none. Fixed tables fold the key as they were
    /// built (lower case by default); pattern tables see it as given.
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError>;

    /// Fixed or pattern; decides which keys the search orders send to this table.
    fn kind(&self) -> Kind;

    /// The `type:name` the table was opened with, for log lines and errors.
    fn spec(&self) -> &str;

    /// The first of `keys` that has a value, as (index into `keys`, value). A table behind a
    /// round trip (a plugin, a database) overrides this to answer a whole search order at once;
    /// the result must equal trying the keys one by one.
    fn lookup_first(&self, keys: &[String]) -> Result<Option<(usize, String)>, LookupError> {
        for (i, key) in keys.iter().enumerate() {
            if let Some(value) = self.lookup(key)? {
                return Ok(Some((i, value)));
            }
        }
        Ok(None)
    }

    /// True when the files behind the table changed (size, mtime or inode) since it was
    /// opened: the daemon reopens it. Cheap (one `stat` per file), so callers may ask before
    /// every transaction. In-line tables are never stale.
    fn is_stale(&self) -> bool {
        false
    }

    /// Lines skipped while opening, as Postfix skips a broken `regexp:` rule with a warning.
    fn warnings(&self) -> &[Warning] {
        &[]
    }
}

/// A non-fatal problem found while opening or building a table: the line was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Warning {
    /// The file, or the `type:{…}` spec of an in-line table.
    pub file: String,
    /// 1-based line; 0 = not about one line.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}, line {}: {}", self.file, self.line, self.message)
        }
    }
}

/// A table that cannot be opened or built. Every variant says what and where; the per-type
/// rules for what is fatal follow Postfix (docs/maps.md "Errors").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The `type:name` itself is wrong: unknown type, missing name, bad `inline:{…}` syntax.
    #[error("{spec}: {message}")]
    Spec { spec: String, message: String },
    /// A file could not be read or written (Postfix: fatal "open database …").
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// A line that makes the whole table unusable (a `sqlite:` .cf without `dbpath`, say).
    #[error("{file}, line {line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    /// A compiled index that is not one (wrong magic, truncated).
    #[error("{}: {message} (rebuild it with: postern map build)", path.display())]
    Corrupt { path: PathBuf, message: String },
}

impl MapError {
    pub(crate) fn io(path: impl Into<PathBuf>, err: &std::io::Error) -> MapError {
        let path = path.into();
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => err.to_string(),
        };
        MapError::Io { path, message }
    }

    pub(crate) fn spec(spec: &str, message: impl Into<String>) -> MapError {
        MapError::Spec {
            spec: spec.to_string(),
            message: message.into(),
        }
    }
}

/// Warnings collected while parsing a source, with the file name filled in once.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    file: String,
    list: Vec<Warning>,
}

impl Warnings {
    pub(crate) fn new(file: impl Into<String>) -> Warnings {
        Warnings {
            file: file.into(),
            list: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, line: usize, message: impl Into<String>) {
        self.list.push(Warning {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Warning> {
        self.list
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};

    /// A scratch directory removed when dropped.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "postern-maps-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `name` in the directory and returns its path.
        pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).expect("write test file");
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
