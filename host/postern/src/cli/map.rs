//! `postern map build|query` (postmap(1)) and `postern alias build` (postalias(1)).
//!
//! - `map build [TYPE:]NAME…` compiles `hash:` sources into `NAME.pdb` (written to a temporary
//!   file and renamed, so a running daemon never reads half an index). A name without a type
//!   is `hash:`, postmap's `default_database_type`. Other types are read directly by the
//!   daemon; `build` opens them to report broken lines and builds nothing.
//! - `map query TYPE:NAME KEY…` prints the value of each key as the table itself answers it
//!   (no search order). `-` reads keys from standard input, one per line. One key prints the
//!   bare value, like `postmap -q`; several print `key<TAB>value` per found key, like
//!   `postmap -q -`.
//! - `alias build [hash:]PATH…` compiles aliases(5) files into `PATH.pdb`; without a path (and
//!   as `newaliases` or `sendmail -bi`) it builds every table of `alias_database`.
//!
//! Exit status: 0 = built / at least one key found; 1 = no key found, or a build failed;
//! 75 = a temporary lookup failure; 78 = the table cannot be opened or is misconfigured.
//! Skipped lines are warnings on standard error, as postmap logs them.

use std::io::{BufRead, Write};

use anyhow::anyhow;
use postern_config::Config;
use postern_maps::aliases::build_aliases;
use postern_maps::{build_hash, open_table, BuildReport, LookupError, TableRef, Warning};

use super::args::UsageError;
use super::{exit, CliError, CliResult};
use crate::restrictions::regroup;

/// `postern map …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapCommand {
    /// `map build [TYPE:]NAME…`
    Build { tables: Vec<String> },
    /// `map query TYPE:NAME KEY…` (`-` = keys from standard input).
    Query { table: String, keys: Vec<String> },
}

/// `postern alias …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasCommand {
    /// `alias build [[TYPE:]PATH…]`; no path = every table of `alias_database`.
    Build { paths: Vec<String> },
}

fn usage(msg: &str) -> UsageError {
    UsageError(msg.to_string())
}

pub(super) fn parse_map(args: &[String]) -> Result<MapCommand, UsageError> {
    let (sub, rest) = args.split_first().ok_or_else(|| {
        usage("map needs a subcommand: build [TYPE:]NAME... or query TYPE:NAME KEY...")
    })?;
    match sub.as_str() {
        "build" => {
            if rest.is_empty() {
                return Err(usage("map build needs a table (example: postern map build hash:/etc/postern/access)"));
            }
            Ok(MapCommand::Build {
                tables: rest.to_vec(),
            })
        }
        "query" | "-q" => match rest {
            [table, keys @ ..] if !keys.is_empty() => Ok(MapCommand::Query {
                table: table.clone(),
                keys: keys.to_vec(),
            }),
            _ => Err(usage(
                "map query needs a table and keys (example: postern map query hash:/etc/postern/access \
                 user@example.com; - reads keys from standard input)",
            )),
        },
        other => Err(usage(&format!(
            "unknown map subcommand \"{other}\" (build, query)"
        ))),
    }
}

pub(super) fn parse_alias(args: &[String]) -> Result<AliasCommand, UsageError> {
    match args.split_first() {
        Some((sub, paths)) if sub == "build" => Ok(AliasCommand::Build {
            paths: paths.to_vec(),
        }),
        Some((other, _)) => Err(usage(&format!(
            "unknown alias subcommand \"{other}\" (build)"
        ))),
        None => Err(usage("alias needs a subcommand: build PATH...")),
    }
}

fn warn(warnings: &[Warning]) {
    for w in warnings {
        eprintln!("postern: warning: {w}");
    }
}

fn report(out: &mut dyn Write, r: &BuildReport) -> std::io::Result<()> {
    warn(&r.warnings);
    writeln!(
        out,
        "postern: built {} ({} entries, {} bytes)",
        r.path.display(),
        r.entries,
        r.bytes
    )
}

pub fn run_map(cmd: &MapCommand) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        MapCommand::Build { tables } => {
            for spec in tables {
                build_one(spec, &mut out)?;
            }
            Ok(exit::OK)
        }
        MapCommand::Query { table, keys } => {
            let from_stdin = keys.len() == 1 && keys[0] == "-";
            let keys = if from_stdin {
                std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| CliError::new(exit::IOERR, anyhow!("reading keys: {e}")))?
            } else {
                keys.clone()
            };
            query(table, &keys, from_stdin || keys.len() > 1, &mut out)
        }
    }
}

pub fn run_alias(cmd: &AliasCommand) -> CliResult {
    let AliasCommand::Build { paths } = cmd;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in paths {
        alias_one(path, &mut out)?;
    }
    Ok(exit::OK)
}

/// `newaliases`, `sendmail -bi`/`-I` and `alias build` without a file: build every table of
/// `alias_database` (postconf(5); Postfix's default is `hash:/etc/aliases`, Postern's is
/// `$alias_maps`), as Postfix's newaliases runs postalias on each.
pub fn run_alias_database(cfg: &Config) -> CliResult {
    let stdout = std::io::stdout();
    alias_database(cfg, &mut stdout.lock())
}

fn alias_database(cfg: &Config, out: &mut dyn Write) -> CliResult {
    let tables = regroup(&cfg.alias_database);
    if tables.is_empty() {
        writeln!(out, "postern: alias_database is empty; nothing to build")
            .map_err(|e| CliError::new(exit::IOERR, e.into()))?;
        return Ok(exit::OK);
    }
    for table in &tables {
        alias_one(table, out)?;
    }
    Ok(exit::OK)
}

/// Builds one aliases(5) table. A name without a type is `hash:` (postalias(1)'s
/// `default_database_type`); other types are read as they are, so they are only opened to
/// report broken lines.
fn alias_one(spec: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let spec = if spec.contains(':') {
        spec.to_string()
    } else {
        format!("hash:{spec}")
    };
    let table = TableRef::parse(&spec).map_err(|e| CliError::new(exit::USAGE, anyhow!("{e}")))?;
    if table.kind != "hash" {
        return nothing_to_build(&spec, &table.kind, out);
    }
    let r =
        build_aliases(table.path()).map_err(|e| CliError::new(exit::FAILURE, anyhow!("{e}")))?;
    report(out, &r).map_err(|e| CliError::new(exit::IOERR, e.into()))
}

fn build_one(spec: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let spec = if spec.contains(':') {
        spec.to_string()
    } else {
        format!("hash:{spec}")
    };
    let table = TableRef::parse(&spec).map_err(|e| CliError::new(exit::USAGE, anyhow!("{e}")))?;
    if table.kind == "hash" {
        let r =
            build_hash(table.path()).map_err(|e| CliError::new(exit::FAILURE, anyhow!("{e}")))?;
        return report(out, &r).map_err(|e| CliError::new(exit::IOERR, e.into()));
    }
    nothing_to_build(&spec, &table.kind, out)
}

/// Opens a table that is read as it is (no index) to report its broken lines.
fn nothing_to_build(spec: &str, kind: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let opened = open_table(spec, &crate::scripts::open_ctx())
        .map_err(|e| CliError::new(exit::CONFIG, anyhow!("{e}")))?;
    warn(opened.warnings());
    writeln!(
        out,
        "postern: {spec}: {kind} tables are read as they are; nothing to build ({} warnings)",
        opened.warnings().len()
    )
    .map_err(|e| CliError::new(exit::IOERR, e.into()))
}

/// Looks up each key; `tabbed` prints `key<TAB>value` lines instead of bare values.
fn query(spec: &str, keys: &[String], tabbed: bool, out: &mut dyn Write) -> CliResult {
    let table = open_table(spec, &crate::scripts::open_ctx())
        .map_err(|e| CliError::new(exit::CONFIG, anyhow!("{e}")))?;
    warn(table.warnings());
    let mut found = false;
    for key in keys {
        match table.lookup(key) {
            Ok(Some(value)) => {
                found = true;
                let line = if tabbed {
                    format!("{key}\t{value}")
                } else {
                    value
                };
                writeln!(out, "{line}").map_err(|e| CliError::new(exit::IOERR, e.into()))?;
            }
            Ok(None) => {}
            Err(e @ LookupError::Temporary(_)) => {
                return Err(CliError::new(exit::TEMPFAIL, anyhow!("{spec}: {key}: {e}")))
            }
            Err(e @ LookupError::Config(_)) => {
                return Err(CliError::new(exit::CONFIG, anyhow!("{spec}: {key}: {e}")))
            }
        }
    }
    Ok(if found { exit::OK } else { exit::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_map_and_alias_commands() {
        assert_eq!(
            parse_map(&args("build hash:/etc/a /etc/b")),
            Ok(MapCommand::Build {
                tables: args("hash:/etc/a /etc/b")
            })
        );
        assert_eq!(
            parse_map(&args("query hash:/etc/a k1 k2")),
            Ok(MapCommand::Query {
                table: "hash:/etc/a".into(),
                keys: args("k1 k2")
            })
        );
        assert!(parse_map(&args("query hash:/etc/a")).is_err());
        assert!(parse_map(&args("build")).is_err());
        assert!(parse_map(&args("frobnicate x")).is_err());
        assert!(parse_map(&[]).is_err());
        assert_eq!(
            parse_alias(&args("build /etc/aliases")),
            Ok(AliasCommand::Build {
                paths: args("/etc/aliases")
            })
        );
        assert_eq!(
            parse_alias(&args("build")),
            Ok(AliasCommand::Build { paths: vec![] })
        );
        assert!(parse_alias(&args("rebuild")).is_err());
    }

    #[test]
    fn build_then_query() {
        let dir = std::env::temp_dir().join(format!("postern-cli-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let src = dir.join("access");
        std::fs::write(&src, "user@example.org OK\nexample.org REJECT\n").expect("write");
        let mut out = Vec::new();
        build_one(&src.display().to_string(), &mut out).expect("build");
        assert!(String::from_utf8_lossy(&out).contains("access.pdb (2 entries"));
        let spec = format!("hash:{}", src.display());
        let mut out = Vec::new();
        let code = query(&spec, &args("EXAMPLE.ORG"), false, &mut out).expect("query");
        assert_eq!(
            (code, String::from_utf8_lossy(&out).as_ref()),
            (exit::OK, "REJECT\n")
        );
        let mut out = Vec::new();
        let code = query(&spec, &args("nobody user@example.org"), true, &mut out).expect("query");
        assert_eq!(code, exit::OK);
        assert_eq!(String::from_utf8_lossy(&out), "user@example.org\tOK\n");
        let code = query(&spec, &args("nobody"), false, &mut Vec::new()).expect("query");
        assert_eq!(code, exit::FAILURE);
        let err = query("fail:x", &args("k"), false, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, exit::TEMPFAIL);
        let err = query("hash:/nonexistent/t", &args("k"), false, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, exit::CONFIG);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn alias_database_builds_every_table() {
        let dir = std::env::temp_dir().join(format!("postern-cli-aliasdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let a = dir.join("aliases");
        let b = dir.join("more");
        std::fs::write(&a, "root: admin\npostmaster: root\n").expect("write");
        std::fs::write(&b, "abuse: admin\n").expect("write");
        let value = format!("hash:{}, {}", a.display(), b.display());
        let cfg = crate::smtpd::testkit::config(&[("alias_database", &value)]);
        let mut out = Vec::new();
        assert_eq!(alias_database(&cfg, &mut out).expect("build"), exit::OK);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("aliases.pdb (2 entries"), "{text}");
        assert!(text.contains("more.pdb (1 entries"), "{text}");
        let spec = format!("hash:{}", a.display());
        let mut out = Vec::new();
        query(&spec, &args("postmaster"), false, &mut out).expect("query");
        assert_eq!(String::from_utf8_lossy(&out), "root\n");

        let cfg = crate::smtpd::testkit::config(&[("alias_database", "")]);
        let mut out = Vec::new();
        assert_eq!(alias_database(&cfg, &mut out).expect("empty"), exit::OK);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "postern: alias_database is empty; nothing to build\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
