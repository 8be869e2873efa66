//! The lookup-table part of `postern check`: every table the configuration names is opened as
//! the daemon opens it (`postern_maps::Tables::open` with [`crate::scripts::open_ctx`]), so a broken
//! table is found before the first message needs it.
//!
//! - A skipped line is a warning (`warning: FILE:LINE: …`): Postfix skips it and the rest of the
//!   table works, so it does not fail the check.
//! - A `rhai:` table or `check_policy_service rhai:` script that does not compile is an error
//!   with `PATH:LINE:COLUMN` (tables: `rhai:PATH: LINE:COLUMN: message`).
//! - A table that cannot be opened (missing file, unknown type, `hash:` index never built or
//!   older than its source) is an error: the daemon would answer `451 4.3.5` or defer every
//!   message that needs it, so `check` exits 1.

use std::collections::HashSet;
use std::io::{self, Write};

use postern_config::Config;
use postern_maps::{Tables, Warning};

use crate::restrictions::{access_tables, policy_scripts, regroup};

/// What checking the tables found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReport {
    pub warnings: usize,
    pub errors: usize,
}

/// Every table the configuration names, as (where it is named, `type:name`), each table once
/// (the first place that names it): `*_maps` parameters, content checks, then the
/// `check_*_access` tables of the restriction lists and classes.
pub fn named_tables(cfg: &Config) -> Vec<(String, String)> {
    let mut params: Vec<(&str, &[String])> = crate::cleanup::tables::params(cfg).to_vec();
    params.extend([
        ("local_recipient_maps", cfg.local_recipient_maps.as_slice()),
        ("relocated_maps", cfg.relocated_maps.as_slice()),
        ("relay_recipient_maps", cfg.relay_recipient_maps.as_slice()),
    ]);
    let mut all: Vec<(String, String)> = params
        .into_iter()
        .flat_map(|(name, items)| regroup(items).into_iter().map(|s| (name.to_string(), s)))
        .collect();
    all.extend(access_tables(cfg));
    let mut seen = HashSet::new();
    all.retain(|(_, spec)| seen.insert(spec.clone()));
    all
}

/// `FILE:LINE: message`, the form compilers and linters use, so editors can jump to the line.
fn located(w: &Warning) -> String {
    if w.line == 0 {
        format!("{}: {}", w.file, w.message)
    } else {
        format!("{}:{}: {}", w.file, w.line, w.message)
    }
}

/// Opens every table of `cfg`, printing `warning:` and `error:` lines to `out`.
pub fn check_tables(cfg: &Config, out: &mut dyn Write) -> io::Result<TableReport> {
    let ctx = crate::scripts::open_ctx();
    let mut report = TableReport::default();
    for (place, spec) in named_tables(cfg) {
        match Tables::open(&spec, &ctx) {
            Ok(tables) => {
                for w in tables.warnings() {
                    writeln!(out, "warning: {}", located(&w))?;
                    report.warnings += 1;
                }
            }
            Err(e) => {
                writeln!(out, "error: {place}: {spec}: {e}")?;
                report.errors += 1;
            }
        }
    }
    // Policy scripts are compiled as smtpd compiles them; a syntax error is reported as
    // `PATH:LINE:COLUMN: message`. The daemon would answer the default action (451) instead.
    for (place, path) in policy_scripts(cfg) {
        if let Err(e) = crate::scripts::engine().compile(std::path::Path::new(&path)) {
            writeln!(out, "error: {place}: check_policy_service rhai:{path}: {e}")?;
            report.errors += 1;
        }
    }
    // Filter scripts (`smtpd_milters = rhai:PATH`) must compile and define filter(msg).
    for path in cfg
        .smtpd_milters
        .iter()
        .filter_map(|m| m.strip_prefix("rhai:"))
    {
        let problem = match crate::scripts::engine().compile(std::path::Path::new(path)) {
            Err(e) => Some(e.to_string()),
            Ok(s) if !s.has_fn("filter", 1) => Some("defines no fn filter(msg)".to_string()),
            Ok(_) => None,
        };
        if let Some(p) = problem {
            writeln!(out, "error: smtpd_milters: rhai:{path}: {p}")?;
            report.errors += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_lines_warn_and_missing_tables_fail() {
        let dir = std::env::temp_dir().join(format!("postern-check-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let re = dir.join("header_checks");
        std::fs::write(&re, "/^Subject: ok/ WARN\n/[unclosed/ REJECT\n").expect("write");
        let header_checks = format!("regexp:{}", re.display());
        let access = format!(
            "check_recipient_access hash:{}/access, reject_unauth_destination",
            dir.display()
        );
        let cfg = crate::smtpd::testkit::config(&[
            ("header_checks", &header_checks),
            ("smtpd_recipient_restrictions", &access),
        ]);
        let mut out = Vec::new();
        let report = check_tables(&cfg, &mut out).expect("write");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            report,
            TableReport {
                warnings: 1,
                errors: 1
            },
            "{text}"
        );
        assert!(
            text.contains(&format!("warning: {}:2: ", re.display())),
            "{text}"
        );
        assert!(
            text.contains("error: smtpd_recipient_restrictions: hash:")
                && text.contains("postern map build"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
