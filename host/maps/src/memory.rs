//! In-memory tables: `inline:{…}`, `texthash:/path`, `static:VALUE` and `fail:NAME`.

use std::collections::HashMap;

use crate::list::{split_braced, strip_braces};
use crate::spec::TableRef;
use crate::stamp::Stamps;
use crate::text::{fold_key, parse_source, read_source};
use crate::{Kind, LookupError, MapError, Table, Warning, Warnings};

/// `inline:` and `texthash:`: keys folded to lower case, values as written.
#[derive(Debug)]
pub(crate) struct MemoryTable {
    spec: String,
    map: HashMap<String, String>,
    stamps: Option<Stamps>,
    warnings: Vec<Warning>,
}

impl MemoryTable {
    /// `inline:{ key=value, { key = text, with commas } }` (Postfix `dict_inline`). Any
    /// syntax error is fatal, as is an empty table; a repeated key takes the later value
    /// (Postfix does no duplicate check here).
    pub(crate) fn inline(table: &TableRef) -> Result<MemoryTable, MapError> {
        let spec = table.to_string();
        let need = "need \"inline:{name=value...}\"";
        let inner = strip_braces(&table.name)
            .map_err(|_| MapError::spec(&spec, format!("bad syntax; {need}")))?;
        let mut map = HashMap::new();
        for item in split_braced(inner, |c| c == ',' || c.is_ascii_whitespace()) {
            let item = if item.starts_with('{') {
                strip_braces(item).map_err(|e| MapError::spec(&spec, format!("{e}; {need}")))?
            } else {
                item
            };
            let (key, value) = split_name_value(item)
                .map_err(|e| MapError::spec(&spec, format!("{e}; {need}")))?;
            map.insert(fold_key(key), value.to_string());
        }
        if map.is_empty() {
            return Err(MapError::spec(&spec, format!("empty table; {need}")));
        }
        Ok(MemoryTable {
            spec,
            map,
            stamps: None,
            warnings: Vec::new(),
        })
    }

    /// `texthash:/path`: a postmap(1) source read into memory, no compile step. A missing
    /// file is fatal; broken lines are skipped with a warning; of duplicate keys the first is
    /// kept with a warning, exactly as `postern map build hash:` does, so switching between
    /// the two types never changes an answer.
    pub(crate) fn texthash(table: &TableRef) -> Result<MemoryTable, MapError> {
        let path = table.path();
        let stamps = Stamps::of(path);
        let text = read_source(path)?;
        let file = path.display().to_string();
        let (entries, warnings) = parse_source(&text, &file, true);
        let mut w = Warnings::new(&file);
        let mut map = HashMap::with_capacity(entries.len());
        for e in entries {
            if map.contains_key(&e.key) {
                w.push(
                    e.line,
                    format!("duplicate entry: \"{}\" (the first one is used)", e.key),
                );
                continue;
            }
            map.insert(e.key, e.value);
        }
        let mut warnings = warnings;
        warnings.extend(w.into_vec());
        warnings.sort_by_key(|w| w.line);
        Ok(MemoryTable {
            spec: table.to_string(),
            map,
            stamps: Some(stamps),
            warnings,
        })
    }
}

impl Table for MemoryTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        Ok(self.map.get(fold_key(key).as_str()).cloned())
    }

    fn kind(&self) -> Kind {
        Kind::Fixed
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    fn is_stale(&self) -> bool {
        self.stamps.as_ref().is_some_and(Stamps::changed)
    }

    fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// `name = value` inside an in-line table (Postfix `split_qnameval`): the name ends at
/// whitespace or `=` outside double quotes.
fn split_name_value(item: &str) -> Result<(&str, &str), String> {
    let item = item.trim_start();
    if item.is_empty() {
        return Err("no key found; expected format: key = value".to_string());
    }
    let mut in_quotes = false;
    let mut end = item.len();
    let mut chars = item.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => break,
            '"' => in_quotes = !in_quotes,
            c if (c.is_ascii_whitespace() || c == '=') && !in_quotes => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err("unbalanced '\"'".to_string());
    }
    let rest = item[end..].trim_start();
    let Some(value) = rest.strip_prefix('=') else {
        return Err("missing '=' after attribute name".to_string());
    };
    Ok((&item[..end], value.trim()))
}

/// `static:VALUE` / `static:{ text with spaces }`: every key has that value.
#[derive(Debug)]
pub(crate) struct StaticTable {
    spec: String,
    value: String,
}

impl StaticTable {
    pub(crate) fn open(table: &TableRef) -> Result<StaticTable, MapError> {
        let spec = table.to_string();
        let value = if table.is_inline() {
            strip_braces(&table.name)
                .map_err(|e| MapError::spec(&spec, format!("bad static:name syntax: {e}")))?
                .to_string()
        } else {
            table.name.clone()
        };
        Ok(StaticTable { spec, value })
    }
}

impl Table for StaticTable {
    fn lookup(&self, _key: &str) -> Result<Option<String>, LookupError> {
        Ok(Some(self.value.clone()))
    }

    fn kind(&self) -> Kind {
        Kind::Fixed
    }

    fn spec(&self) -> &str {
        &self.spec
    }
}

/// `fail:NAME`: every lookup fails temporarily (Postfix 3.0 `dict_fail`), to test that a
/// broken table defers mail instead of letting it through.
#[derive(Debug)]
pub(crate) struct FailTable {
    spec: String,
}

impl FailTable {
    pub(crate) fn open(table: &TableRef) -> FailTable {
        FailTable {
            spec: table.to_string(),
        }
    }
}

impl Table for FailTable {
    fn lookup(&self, _key: &str) -> Result<Option<String>, LookupError> {
        Err(LookupError::Temporary(format!(
            "{}: table lookup failed by design",
            self.spec
        )))
    }

    fn kind(&self) -> Kind {
        Kind::Pattern
    }

    fn spec(&self) -> &str {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use crate::{open_table, OpenCtx};

    fn err(spec: &str) -> String {
        open_table(spec, &OpenCtx::new()).unwrap_err().to_string()
    }

    #[test]
    fn inline_follows_dict_inline() {
        let t = open_table("inline:{ foo=XX, { bAr = lotsa stuff }}", &OpenCtx::new()).unwrap();
        assert_eq!(t.lookup("FOO").unwrap().as_deref(), Some("XX"));
        assert_eq!(t.lookup("bar").unwrap().as_deref(), Some("lotsa stuff"));
        assert_eq!(t.lookup("baz").unwrap(), None);
        // The error cases of Postfix's dict_inline test, in its words.
        assert!(err("inline:{ }").contains("empty table"));
        assert!(err("inline:{ foo = xx }").contains("missing '=' after attribute name"));
        assert!(err("inline:{ foo=xx }x").contains("bad syntax"));
        assert!(err("inline:{ foo=xx x").contains("bad syntax"));
        assert!(err("inline:{ foo=xx {x=y}x}").contains("syntax error after '}' in \"{x=y}x\""));
    }

    #[test]
    fn static_values() {
        let t = open_table("static:{ foo xx }", &OpenCtx::new()).unwrap();
        assert_eq!(t.lookup("anything").unwrap().as_deref(), Some("foo xx"));
        let t = open_table("static:smtp:[relay.example]:587", &OpenCtx::new()).unwrap();
        assert_eq!(
            t.lookup("x").unwrap().as_deref(),
            Some("smtp:[relay.example]:587")
        );
        assert!(err("static:{ foo xx ").contains("missing '}'"));
        assert!(err("static:{ foo xx }x").contains("syntax error after '}'"));
    }
}
