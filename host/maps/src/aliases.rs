//! aliases(5): the source format (`name: value, value`, continuation lines), the compiled
//! index (`postern alias build` = postalias(1)/newaliases, same on-disk format as `hash:`), and
//! the kinds of target a right-hand side holds.
//!
//! Whether `/file` and `|command` targets may be used (`allow_mail_to_files`,
//! `allow_mail_to_commands`) and when `:include:` files are read (at delivery, as the alias
//! owner) is the local delivery agent's decision: this module only says which is which.

use std::path::{Path, PathBuf};

use crate::address::{split_address_list, unquote_local};
use crate::hashdb::{build_hash_entries, copy_mode, db_path, BuildReport};
use crate::text::{fold_key, logical_lines, read_source, SourceEntry};
use crate::{MapError, Warning, Warnings};

/// One alias definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The local name, folded to lower case, quotes kept (`"foo bar"`): the key local(8)
    /// looks up.
    pub name: String,
    /// The right-hand side as written (continuations joined), parsed by [`parse_targets`].
    pub value: String,
    /// First line of the definition.
    pub line: usize,
}

/// One target of an alias (or of a `:include:` file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasTarget {
    /// Forward to this address (unquoted form; may be a bare local name).
    Address(String),
    /// `/file/name`: append to the file (`allow_mail_to_files`).
    File(PathBuf),
    /// `|command`: pipe to the command, given here without the `|`
    /// (`allow_mail_to_commands`).
    Command(String),
    /// `:include:/file`: the file holds more targets, read at delivery time.
    Include(PathBuf),
}

/// Parses an aliases(5) file. Lines that are not `name: value` (Postfix: "need name:value
/// pair") or whose name has a domain are skipped with a warning, as postalias(1) does.
pub fn parse_aliases(text: &str, file: &str) -> (Vec<Alias>, Vec<Warning>) {
    let mut warnings = Warnings::new(file);
    let mut out = Vec::new();
    for line in logical_lines(text, &mut warnings) {
        let Some(colon) = find_unquoted(&line.text, ':') else {
            warnings.push(line.first, "need name:value pair");
            continue;
        };
        let (name, value) = (line.text[..colon].trim(), line.text[colon + 1..].trim());
        if name.is_empty() || value.is_empty() || find_unquoted(name, ',').is_some() {
            warnings.push(line.first, "need name:value pair");
            continue;
        }
        if find_unquoted(name, '@').is_some() || find_unquoted(name, '%').is_some() {
            warnings.push(line.first, "name must be local and have no domain");
            continue;
        }
        out.push(Alias {
            name: fold_key(name),
            value: value.to_string(),
            line: line.first,
        });
    }
    (out, warnings.into_vec())
}

/// The byte offset of the first `c` outside double quotes and `(comments)`.
fn find_unquoted(text: &str, c: char) -> Option<usize> {
    let (mut quoted, mut comment, mut escaped) = (false, 0usize, false);
    for (i, ch) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            ch if ch == c && !quoted && comment == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The targets of a right-hand side: comma-separated, quotes and `(comments)` respected;
/// `"|command with spaces"` and `"/file name"` are quoted as in aliases(5).
pub fn parse_targets(value: &str) -> Vec<AliasTarget> {
    split_address_list(value)
        .into_iter()
        .map(|item| {
            let item = unquote_local(&item);
            if let Some(cmd) = item.strip_prefix('|') {
                AliasTarget::Command(cmd.to_string())
            } else if item.starts_with('/') {
                AliasTarget::File(PathBuf::from(item))
            } else if item.len() >= 9 && item[..9].eq_ignore_ascii_case(":include:") {
                AliasTarget::Include(PathBuf::from(item[9..].trim()))
            } else {
                AliasTarget::Address(item)
            }
        })
        .collect()
}

/// The targets in a `:include:` file: right-hand-side syntax, any number per line, `#`
/// comments and blank lines ignored.
pub fn parse_include(text: &str) -> Vec<AliasTarget> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(parse_targets)
        .collect()
}

/// `postern alias build /etc/aliases`: writes `/etc/aliases.pdb` (the `hash:` format, so
/// `alias_maps = hash:/etc/aliases` reads it). The first of duplicate names is kept with a
/// warning, as postalias does.
pub fn build_aliases(source: &Path) -> Result<BuildReport, MapError> {
    let text = read_source(source)?;
    let file = source.display().to_string();
    let (aliases, mut warnings) = parse_aliases(&text, &file);
    let entries = aliases
        .into_iter()
        .map(|a| SourceEntry {
            key: a.name,
            value: a.value,
            line: a.line,
        })
        .collect();
    let mut report = build_hash_entries(&db_path(source), &file, entries, true)?;
    warnings.append(&mut report.warnings);
    warnings.sort_by_key(|w| w.line);
    report.warnings = warnings;
    copy_mode(source, &report.path);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use crate::{open_table, OpenCtx};

    const ALIASES: &str = "\
# Basic system aliases -- these MUST be present.
MAILER-DAEMON:\tpostmaster
postmaster:\troot

# General redirections for pseudo accounts.
staff: alice, bob,
\tcarol@example.net,
  \"dave smith\"@example.org
archive: /var/mail/archive, \"|/usr/bin/logger -t mail\"
list: :include:/etc/mail/list.members
\"help desk\": help@example.com (the desk)
bad line without colon
user@example.com: nope
: nothing
";

    #[test]
    fn parses_names_continuations_and_kinds() {
        let (aliases, warnings) = parse_aliases(ALIASES, "/etc/aliases");
        let names: Vec<&str> = aliases.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "mailer-daemon",
                "postmaster",
                "staff",
                "archive",
                "list",
                "\"help desk\""
            ]
        );
        assert_eq!(aliases[2].line, 6);
        assert_eq!(
            parse_targets(&aliases[2].value),
            vec![
                AliasTarget::Address("alice".into()),
                AliasTarget::Address("bob".into()),
                AliasTarget::Address("carol@example.net".into()),
                AliasTarget::Address("dave smith@example.org".into()),
            ]
        );
        assert_eq!(
            parse_targets(&aliases[3].value),
            vec![
                AliasTarget::File("/var/mail/archive".into()),
                AliasTarget::Command("/usr/bin/logger -t mail".into()),
            ]
        );
        assert_eq!(
            parse_targets(&aliases[4].value),
            vec![AliasTarget::Include("/etc/mail/list.members".into())]
        );
        assert_eq!(
            parse_targets(&aliases[5].value),
            vec![AliasTarget::Address("help@example.com".into())]
        );
        let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "/etc/aliases, line 12: need name:value pair",
                "/etc/aliases, line 13: name must be local and have no domain",
                "/etc/aliases, line 14: need name:value pair",
            ]
        );
    }

    #[test]
    fn include_files() {
        assert_eq!(
            parse_include("# members\nalice, bob@example.com\n\n  carol\n"),
            vec![
                AliasTarget::Address("alice".into()),
                AliasTarget::Address("bob@example.com".into()),
                AliasTarget::Address("carol".into()),
            ]
        );
    }

    #[test]
    fn build_then_look_up_as_hash() {
        let dir = TempDir::new("aliases");
        let src = dir.write("aliases", &format!("{ALIASES}Staff: duplicate\n"));
        let report = build_aliases(&src).unwrap();
        assert_eq!(report.entries, 6);
        assert!(report
            .warnings
            .last()
            .unwrap()
            .message
            .starts_with("duplicate entry: \"staff\""));
        let t = open_table(&format!("hash:{}", src.display()), &OpenCtx::new()).unwrap();
        assert_eq!(t.lookup("Postmaster").unwrap().as_deref(), Some("root"));
        let staff = t.lookup("staff").unwrap().unwrap();
        assert_eq!(parse_targets(&staff).len(), 4);
        assert_eq!(
            t.lookup("\"Help Desk\"").unwrap().as_deref(),
            Some("help@example.com (the desk)")
        );
    }
}
