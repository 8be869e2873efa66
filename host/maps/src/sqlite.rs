//! `sqlite:/path.cf` tables (sqlite_table(5)).
//!
//! The `.cf` file sets `dbpath`, `query` (or the legacy `select_field`/`table`/`where_field`/
//! `additional_conditions`), `result_format`, `domain` and `expansion_limit`. Templates are
//! expanded as Postfix's `db_common_expand`: `%s %u %d %S %U %D %1…%9 %%`, with the key
//! SQL-quoted (`'` doubled, SQLite's `%q`) in queries; a key that lacks what the template needs
//! (`%d` without a domain, `%u` with an empty local part, `%3` with two labels) is not queried
//! and is simply not found. Rows' first columns are formatted with `result_format` and joined
//! with commas; more than `expansion_limit` values is a temporary error.
//!
//! Differences from Postfix: the database is opened read-only, so a wrong `dbpath` is an error
//! when the table is opened (Postfix would create an empty database and fail every query); a
//! query that SQLite cannot prepare is a configuration error for that lookup (Postfix exits).
//! Parameters from main.cf (`sqlite:name` without a path) are not supported.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::spec::{OpenCtx, TableRef};
use crate::stamp::Stamps;
use crate::text::{fold_key, logical_lines, read_source};
use crate::{Kind, LookupError, MapError, Table, Warning, Warnings};

/// What a template needs from the key (`KEY_*`) or from a result value (`VALUE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Needs {
    key_user: bool,
    key_domain: bool,
    value_user: bool,
    value_domain: bool,
    /// Highest `%1`…`%9`.
    parts: usize,
}

/// Checks a template and records what it needs. In the query every letter refers to the key;
/// in `result_format` lower case refers to the result value and upper case to the key.
fn parse_template(template: &str, query: bool, needs: &mut Needs) -> Result<(), String> {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some('%' | 's' | 'S') => {}
            Some('u') if query => needs.key_user = true,
            Some('d') if query => needs.key_domain = true,
            Some('u') => needs.value_user = true,
            Some('d') => needs.value_domain = true,
            Some('U') => needs.key_user = true,
            Some('D') => needs.key_domain = true,
            Some(d @ '1'..='9') => {
                needs.key_domain = true;
                needs.parts = needs.parts.max(d as usize - '0' as usize);
            }
            _ => {
                return Err(format!(
                    "invalid {} template '{template}' (use %s %u %d %S %U %D %1-%9 or %%)",
                    if query { "query" } else { "result" }
                ))
            }
        }
    }
    Ok(())
}

/// Local part and domain of an address-like string (split at the last `@`).
fn split(s: &str) -> (&str, Option<&str>) {
    match s.rfind('@') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

fn sql_quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Expands `template`: for the query `value` is the key and `key` is `None`; for a result,
/// `value` is the column text and `key` the lookup key. `None` = suppressed.
fn expand(template: &str, needs: &Needs, value: &str, key: Option<&str>) -> Option<String> {
    let (vuser, vdomain) = split(value);
    let (kuser, kdomain) = match key {
        Some(k) => split(k),
        None => (vuser, vdomain),
    };
    if key.is_some()
        && ((needs.value_domain && vdomain.is_none_or(str::is_empty))
            || (needs.value_user && vdomain.is_some() && vuser.is_empty()))
    {
        return None;
    }
    if (needs.key_domain && kdomain.is_none_or(str::is_empty))
        || (needs.key_user && kdomain.is_some() && kuser.is_empty())
    {
        return None;
    }
    let labels: Vec<&str> = kdomain.unwrap_or("").split('.').collect();
    if needs.parts > 0
        && (labels.len() < needs.parts || labels[labels.len() - needs.parts..].contains(&""))
    {
        return None;
    }
    let quote = |s: &str| {
        if key.is_none() {
            sql_quote(s)
        } else {
            s.to_string()
        }
    };
    let key_text = key.unwrap_or(value);
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') => out.push_str(&quote(value)),
            Some('u') => out.push_str(&quote(if vdomain.is_some() { vuser } else { value })),
            Some('d') => out.push_str(&quote(vdomain.unwrap_or(""))),
            Some('S') => out.push_str(&quote(key_text)),
            Some('U') => out.push_str(&quote(if kdomain.is_some() { kuser } else { key_text })),
            Some('D') => out.push_str(&quote(kdomain.unwrap_or(""))),
            Some(d @ '1'..='9') => {
                let n = d as usize - '0' as usize;
                out.push_str(&quote(
                    labels
                        .get(labels.len().wrapping_sub(n))
                        .copied()
                        .unwrap_or(""),
                ));
            }
            _ => {}
        }
    }
    Some(out)
}

/// The `domain` parameter: which domains are queried at all.
#[derive(Debug)]
enum DomainItem {
    /// `example.com` (exact) or `.example.com` (subdomains).
    Name(String),
    /// `type:table`: a domain with a value in the table matches.
    Table(Arc<dyn Table>),
}

#[derive(Debug)]
pub(crate) struct SqliteTable {
    spec: String,
    db: Mutex<Connection>,
    query: String,
    result_format: String,
    needs: Needs,
    domain: Option<Vec<DomainItem>>,
    expansion_limit: usize,
    stamps: Stamps,
}

impl SqliteTable {
    pub(crate) fn open(table: &TableRef, ctx: &OpenCtx) -> Result<SqliteTable, MapError> {
        let cf = table.path();
        if table.is_inline() || !(table.name.starts_with('/') || table.name.starts_with('.')) {
            return Err(MapError::spec(
                &table.to_string(),
                "sqlite: needs the path of a .cf file (sqlite:/etc/postern/sqlite-aliases.cf); \
                 parameters in main.cf are not supported",
            ));
        }
        let stamps = Stamps::of(cf);
        let text = read_source(cf)?;
        let file = cf.display().to_string();
        let mut params: Vec<(String, String, usize)> = Vec::new();
        let mut ignored = Warnings::new(&file);
        for line in logical_lines(&text, &mut ignored) {
            let Some((name, value)) = line.text.split_once('=') else {
                return Err(line_error(&file, line.first, "expected name = value"));
            };
            params.push((
                name.trim().to_string(),
                value.trim().to_string(),
                line.first,
            ));
        }
        let get = |name: &str| params.iter().rev().find(|(n, _, _)| n == name);
        let Some((_, dbpath, _)) = get("dbpath").filter(|(_, v, _)| !v.is_empty()) else {
            return Err(line_error(&file, 0, "missing dbpath = /path/to/database"));
        };
        let (query, query_line) = match get("query") {
            Some((_, q, l)) => (q.clone(), *l),
            None => legacy_query(&params).ok_or_else(|| {
                line_error(&file, 0, "missing query = SELECT ... WHERE ... = '%s'")
            })?,
        };
        let mut needs = Needs::default();
        parse_template(&query, true, &mut needs).map_err(|e| line_error(&file, query_line, &e))?;
        let result_format = get("result_format").map_or("%s".to_string(), |(_, v, _)| v.clone());
        if let Some((_, v, l)) = get("result_format") {
            parse_template(v, false, &mut needs).map_err(|e| line_error(&file, *l, &e))?;
        }
        let expansion_limit = match get("expansion_limit") {
            None => 0,
            Some((_, v, l)) => v.parse().map_err(|_| {
                line_error(
                    &file,
                    *l,
                    &format!("expansion_limit: \"{v}\" is not a number"),
                )
            })?,
        };
        let domain = match get("domain") {
            Some((_, v, l)) if !v.is_empty() => Some(parse_domains(v, ctx, &file, *l)?),
            _ => None,
        };
        let dbpath = PathBuf::from(dbpath);
        let db = open_db(&dbpath)?;
        Ok(SqliteTable {
            spec: table.to_string(),
            db: Mutex::new(db),
            query,
            result_format,
            needs,
            domain,
            expansion_limit,
            stamps,
        })
    }

    fn domain_allows(&self, key: &str) -> Result<bool, LookupError> {
        let Some(items) = &self.domain else {
            return Ok(true);
        };
        let (user, Some(domain)) = split(key) else {
            return Ok(false);
        };
        if user.is_empty() {
            return Ok(false);
        }
        for item in items {
            match item {
                DomainItem::Name(n) => {
                    if let Some(parent) = n.strip_prefix('.') {
                        if domain.ends_with(n.as_str()) && domain.len() > parent.len() {
                            return Ok(true);
                        }
                    } else if *n == domain {
                        return Ok(true);
                    }
                }
                DomainItem::Table(t) => {
                    if t.lookup(domain)?.is_some() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

fn line_error(file: &str, line: usize, message: &str) -> MapError {
    MapError::Line {
        file: file.to_string(),
        line,
        message: message.to_string(),
    }
}

fn legacy_query(params: &[(String, String, usize)]) -> Option<(String, usize)> {
    let get = |n: &str| params.iter().rev().find(|(k, _, _)| k == n);
    let (_, select, line) = get("select_field")?;
    let (_, table, _) = get("table")?;
    let (_, field, _) = get("where_field")?;
    let extra = get("additional_conditions").map_or("", |(_, v, _)| v.as_str());
    Some((
        format!("SELECT {select} FROM {table} WHERE {field} = '%s' {extra}")
            .trim_end()
            .to_string(),
        *line,
    ))
}

fn parse_domains(
    value: &str,
    ctx: &OpenCtx,
    file: &str,
    line: usize,
) -> Result<Vec<DomainItem>, MapError> {
    let mut items = Vec::new();
    for item in crate::split_table_list(value) {
        if item.starts_with('/') {
            let text = read_source(Path::new(&item))?;
            for name in text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .flat_map(|l| l.split(|c: char| c == ',' || c.is_ascii_whitespace()))
                .filter(|n| !n.is_empty())
            {
                items.push(DomainItem::Name(fold_key(name)));
            }
        } else if item.contains(':') {
            let table = crate::open_table(&item, ctx)
                .map_err(|e| line_error(file, line, &format!("domain: cannot open {item}: {e}")))?;
            items.push(DomainItem::Table(table));
        } else {
            items.push(DomainItem::Name(fold_key(&item)));
        }
    }
    Ok(items)
}

fn open_db(path: &Path) -> Result<Connection, MapError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags).map_err(|e| MapError::Io {
        path: path.to_path_buf(),
        message: format!("cannot open SQLite database: {e}"),
    })?;
    // A writer holding the lock briefly should not fail mail; a long one is a temporary error.
    let _ = db.busy_timeout(std::time::Duration::from_millis(500));
    Ok(db)
}

impl Table for SqliteTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        let key = fold_key(key);
        if key.contains('\0') || !self.domain_allows(&key)? {
            return Ok(None);
        }
        let Some(query) = expand(&self.query, &self.needs, &key, None) else {
            return Ok(None);
        };
        let db = self
            .db
            .lock()
            .map_err(|_| LookupError::Temporary(format!("{}: connection poisoned", self.spec)))?;
        let mut stmt = db.prepare(&query).map_err(|e| {
            LookupError::Config(format!(
                "{}: SQL prepare failed for \"{query}\": {e}",
                self.spec
            ))
        })?;
        let temp = |e: rusqlite::Error| {
            LookupError::Temporary(format!(
                "{}: SQL step failed for \"{query}\": {e}",
                self.spec
            ))
        };
        let mut rows = stmt.query([]).map_err(temp)?;
        let mut result = String::new();
        let mut count = 0usize;
        while let Some(row) = rows.next().map_err(temp)? {
            let value: Option<String> = match row.get_ref(0).map_err(temp)? {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Some(String::from_utf8_lossy(t).into_owned())
                }
            };
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some(formatted) = expand(&self.result_format, &self.needs, &value, Some(&key))
            else {
                continue;
            };
            count += 1;
            if self.expansion_limit > 0 && count > self.expansion_limit {
                return Err(LookupError::Temporary(format!(
                    "{}: expansion limit exceeded for key '{key}'",
                    self.spec
                )));
            }
            if !result.is_empty() {
                result.push(',');
            }
            result.push_str(&formatted);
        }
        Ok((!result.is_empty()).then_some(result))
    }

    fn kind(&self) -> Kind {
        Kind::Fixed
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    fn is_stale(&self) -> bool {
        self.stamps.changed()
    }

    fn warnings(&self) -> &[Warning] {
        &[]
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
