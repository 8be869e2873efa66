//! [`Tables`]: a main.cf list of tables (`virtual_alias_maps = hash:/a, regexp:/b`) searched in
//! order, and the `{…}`-aware splitting Postfix uses for such lists and for in-line tables.

use std::sync::Arc;

use crate::spec::{open_ref, OpenCtx, TableRef};
use crate::{Kind, LookupError, MapError, Table, Warning};

/// Which tables a key is sent to (the `flags` argument of Postfix's `maps_find`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The full key: every table, fixed and pattern.
    Full,
    /// A key derived from it (`user@domain` without the extension, `domain`, `user@`, a parent
    /// domain, a network prefix): fixed tables only.
    Partial,
}

impl Scope {
    pub fn applies_to(self, kind: Kind) -> bool {
        self == Scope::Full || kind == Kind::Fixed
    }
}

/// An ordered list of tables. The first table with a value for a key wins; a lookup error
/// stops the search (later tables are not asked), as Postfix's `maps_find` does.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    tables: Vec<Arc<dyn Table>>,
}

impl Tables {
    /// Opens every table of a main.cf value: `type:name` items separated by commas and/or
    /// whitespace; `{…}` groups (in-line tables) are kept whole.
    pub fn open(value: &str, ctx: &OpenCtx) -> Result<Tables, MapError> {
        let mut tables = Vec::new();
        for item in split_table_list(value) {
            tables.push(open_ref(&TableRef::parse(&item)?, ctx)?);
        }
        Ok(Tables { tables })
    }

    pub fn from_tables(tables: Vec<Arc<dyn Table>>) -> Tables {
        Tables { tables }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Table>> {
        self.tables.iter()
    }

    /// True when any table's files changed since it was opened: reopen the list.
    pub fn is_stale(&self) -> bool {
        self.tables.iter().any(|t| t.is_stale())
    }

    /// The warnings of every table, in list order.
    pub fn warnings(&self) -> Vec<Warning> {
        self.tables
            .iter()
            .flat_map(|t| t.warnings().iter().cloned())
            .collect()
    }

    /// Postfix `maps_find`: the value of `key` in the first table (of those `scope` admits) that
    /// has one. An empty key is never looked up. An empty value is a configuration error, as in
    /// Postfix ("should return NO RESULT in case of NOT FOUND"): access(5) and transport(5)
    /// would otherwise read it as an action.
    pub fn find(&self, key: &str, scope: Scope) -> Result<Option<String>, LookupError> {
        if key.is_empty() {
            return Ok(None);
        }
        for table in &self.tables {
            if !scope.applies_to(table.kind()) {
                continue;
            }
            if let Some(value) = table.lookup(key)? {
                return non_empty(table.as_ref(), key, value).map(Some);
            }
        }
        Ok(None)
    }

    /// The first of `probes` (in order) that any table has a value for, as (probe index,
    /// value): each probe is tried against every table it applies to before the next probe,
    /// which is the order Postfix's search orders produce. With a single table the whole
    /// applicable list goes to [`Table::lookup_first`] in one call.
    pub fn find_first(
        &self,
        probes: &[(String, Scope)],
    ) -> Result<Option<(usize, String)>, LookupError> {
        if let [table] = self.tables.as_slice() {
            let (index, keys): (Vec<usize>, Vec<String>) = probes
                .iter()
                .enumerate()
                .filter(|(_, (key, scope))| !key.is_empty() && scope.applies_to(table.kind()))
                .map(|(i, (key, _))| (i, key.clone()))
                .unzip();
            if keys.is_empty() {
                return Ok(None);
            }
            return match table.lookup_first(&keys)? {
                Some((i, value)) => {
                    let probe = index.get(i).copied().ok_or_else(|| {
                        LookupError::Config(format!(
                            "{}: lookup_first returned index {i} of {} keys",
                            table.spec(),
                            keys.len()
                        ))
                    })?;
                    let value = non_empty(table.as_ref(), &keys[i], value)?;
                    Ok(Some((probe, value)))
                }
                None => Ok(None),
            };
        }
        for (i, (key, scope)) in probes.iter().enumerate() {
            if let Some(value) = self.find(key, *scope)? {
                return Ok(Some((i, value)));
            }
        }
        Ok(None)
    }
}

fn non_empty(table: &dyn Table, key: &str, value: String) -> Result<String, LookupError> {
    if value.is_empty() {
        return Err(LookupError::Config(format!(
            "{} lookup of \"{key}\" returns an empty string result (a table should return no \
             result when a key is not found)",
            table.spec()
        )));
    }
    Ok(value)
}

/// Splits a main.cf table list on commas and whitespace, keeping `{…}` groups whole (Postfix
/// `mystrtokq(…, CHARS_COMMA_SP, CHARS_BRACE)`): `hash:/a, inline:{ a=b, c=d }` is two items.
pub fn split_table_list(value: &str) -> Vec<String> {
    split_braced(value, |c| c == ',' || c.is_ascii_whitespace())
        .into_iter()
        .map(str::to_string)
        .collect()
}

pub(crate) use postern_config::split_braced;

/// The text inside a `{…}` group, trimmed (Postfix `extpar(…, EXTPAR_FLAG_STRIP)`); the
/// error says what is wrong in Postfix's words.
pub(crate) fn strip_braces(token: &str) -> Result<&str, String> {
    if !token.starts_with('{') {
        return Err(format!("no '{{' at start of text in \"{token}\""));
    }
    let mut level = 0usize;
    for (i, c) in token.char_indices() {
        match c {
            '{' => level += 1,
            '}' => {
                level -= 1;
                if level == 0 {
                    if i + 1 != token.len() {
                        return Err(format!("syntax error after '}}' in \"{token}\""));
                    }
                    return Ok(token[1..i].trim());
                }
            }
            _ => {}
        }
    }
    Err(format!("missing '}}' in \"{token}\""))
}

/// The rules of an in-line pattern table, `regexp:{ {rule-1}, {rule-2} }` (Postfix 3.7
/// `dict_inline_to_multiline`), as the text of the file they stand for: one rule per line.
pub(crate) fn inline_rules(table: &crate::TableRef) -> Result<String, MapError> {
    let spec = table.to_string();
    let inner = strip_braces(&table.name).map_err(|e| MapError::spec(&spec, e))?;
    let mut text = String::new();
    for item in split_braced(inner, |c| c == ',' || c.is_ascii_whitespace()) {
        text.push_str(strip_braces(item).map_err(|e| MapError::spec(&spec, e))?);
        text.push('\n');
    }
    Ok(text)
}

/// The text of a rule-based table (`regexp:`, `pcre:`, `cidr:`): the file, or the in-line
/// rules; with the label warnings use and the stamps that make the table stale.
pub(crate) fn read_rules(
    table: &crate::TableRef,
) -> Result<(String, String, Option<crate::stamp::Stamps>), MapError> {
    if table.is_inline() {
        return Ok((inline_rules(table)?, table.to_string(), None));
    }
    let path = table.path();
    let stamps = crate::stamp::Stamps::of(path);
    let text = crate::text::read_source(path)?;
    Ok((text, path.display().to_string(), Some(stamps)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_brace_groups() {
        assert_eq!(
            split_table_list("hash:/a, regexp:/b,inline:{ a=b, { c = d e } }  static:{x y}"),
            vec![
                "hash:/a",
                "regexp:/b",
                "inline:{ a=b, { c = d e } }",
                "static:{x y}"
            ]
        );
        assert!(split_table_list(" , ").is_empty());
    }

    #[test]
    fn brace_stripping_reports_postfix_errors() {
        assert_eq!(strip_braces("{ a b }"), Ok("a b"));
        assert_eq!(
            strip_braces("{x=y}x"),
            Err("syntax error after '}' in \"{x=y}x\"".to_string())
        );
        assert_eq!(
            strip_braces("{ x"),
            Err("missing '}' in \"{ x\"".to_string())
        );
    }

    #[test]
    fn search_stops_at_first_value_and_at_errors() {
        let ctx = OpenCtx::new();
        let t = Tables::open(
            "inline:{a=1}, inline:{a=2, b=3}, fail:down, inline:{c=4}",
            &ctx,
        )
        .unwrap();
        assert_eq!(t.find("A", Scope::Full).unwrap().as_deref(), Some("1"));
        assert_eq!(t.find("b", Scope::Full).unwrap().as_deref(), Some("3"));
        // fail: is a pattern table (as in Postfix): partial keys skip it…
        assert_eq!(t.find("c", Scope::Partial).unwrap().as_deref(), Some("4"));
        // …and a full key stops there with an error instead of reaching inline:{c=4}.
        assert!(matches!(
            t.find("c", Scope::Full),
            Err(LookupError::Temporary(_))
        ));
        assert_eq!(t.find("", Scope::Full), Ok(None));
    }

    #[test]
    fn empty_results_are_configuration_errors() {
        let t = Tables::open("static:{}", &OpenCtx::new()).unwrap();
        assert!(matches!(
            t.find("x", Scope::Full),
            Err(LookupError::Config(_))
        ));
    }
}
