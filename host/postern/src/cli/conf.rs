//! `postern conf` (postconf(1)): show parameters, edit main.cf, list master.cf services.
//!
//! Values are shown unexpanded (`$myhostname`), as postconf shows them; `-x` expands. Showing
//! works on main.cf's syntax alone, so it still helps when a value is invalid (`postern check`
//! is where values are validated).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use postern_config::{
    edit_main_cf, param_def, param_table, MainCf, DEFAULT_MASTER_CF, EMBEDDED_MAIN_CF,
    EMBEDDED_MASTER_CF,
};

use super::args::{ConfArgs, ConfMode};
use super::{exit, CliError, CliResult, ConfigSource};

pub fn run(args: &ConfArgs, source: &ConfigSource, overrides: &[(String, String)]) -> CliResult {
    match &args.mode {
        ConfMode::Edit(edits) => edit(source, edits),
        ConfMode::Master => master(source, &args.names),
        ConfMode::Defaults => {
            let cf = MainCf::new(Path::new("defaults"));
            show(args, &cf, None, true)
        }
        ConfMode::Effective | ConfMode::Explicit => {
            let mut cf = read_main_cf(source)?;
            for (name, value) in overrides {
                cf.set(name, value);
            }
            if let Some(dir) = &source.dir {
                cf.set_default("config_directory", &dir.display().to_string());
            }
            if args.mode == ConfMode::Explicit {
                explicit(args, &cf)
            } else {
                show(args, &cf, source.dir.as_deref(), false)
            }
        }
    }
}

pub(super) fn read_main_cf(source: &ConfigSource) -> Result<MainCf, CliError> {
    let (text, file) = match &source.dir {
        Some(dir) => {
            let file = dir.join("main.cf");
            match fs::read_to_string(&file) {
                Ok(text) => (text, file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), file),
                Err(e) => {
                    return Err(CliError::from(
                        anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    ))
                }
            }
        }
        None => (
            EMBEDDED_MAIN_CF.to_string(),
            PathBuf::from("embedded main.cf"),
        ),
    };
    MainCf::parse(&text, &file).map_err(|e| CliError::new(exit::CONFIG, anyhow::anyhow!("{e}")))
}

fn line(args: &ConfArgs, name: &str, value: &str) -> String {
    if args.values_only {
        format!("{value}\n")
    } else if value.is_empty() {
        format!("{name} =\n")
    } else {
        format!("{name} = {value}\n")
    }
}

/// The value to print for `name`: explicit, else the default (`config_directory` defaults to
/// the directory in use); expanded with `-x`.
fn value_of(args: &ConfArgs, cf: &MainCf, name: &str, dir: Option<&Path>) -> String {
    if args.expand {
        match cf.expand(name) {
            Ok(v) => return v,
            Err(e) => eprintln!("postern: warning: {e}"),
        }
    }
    if let Some(v) = cf.get_raw(name) {
        return v.to_string();
    }
    if name == "config_directory" {
        if let Some(dir) = dir {
            return dir.display().to_string();
        }
    }
    param_def(name)
        .map(|d| d.default.to_string())
        .unwrap_or_default()
}

/// Effective values (or `-d` defaults) of the named parameters, or of all known ones.
fn show(args: &ConfArgs, cf: &MainCf, dir: Option<&Path>, defaults: bool) -> CliResult {
    let names: Vec<String> = if args.names.is_empty() {
        param_table().iter().map(|d| d.name.to_string()).collect()
    } else {
        args.names.clone()
    };
    let mut out = String::new();
    let mut unknown = 0;
    for name in &names {
        let known = param_def(name).is_some();
        if !known && (defaults || cf.get_raw(name).is_none()) {
            eprintln!("postern: warning: {name}: unknown parameter (postern conf -d lists them)");
            unknown += 1;
            continue;
        }
        out.push_str(&line(args, name, &value_of(args, cf, name, dir)));
    }
    print_out(&out)?;
    Ok(if unknown > 0 { exit::FAILURE } else { exit::OK })
}

/// `-n`: parameters set explicitly (main.cf and `-o`), sorted by name as postconf sorts them.
fn explicit(args: &ConfArgs, cf: &MainCf) -> CliResult {
    let mut set: Vec<(&str, &str)> = cf.explicit().collect();
    set.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (name, raw) in set {
        if !args.names.is_empty() && !args.names.iter().any(|n| n == name) {
            continue;
        }
        let value = if args.expand {
            value_of(args, cf, name, None)
        } else {
            raw.to_string()
        };
        out.push_str(&line(args, name, &value));
    }
    print_out(&out)?;
    Ok(exit::OK)
}

fn print_out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
        .map_err(CliError::from)
}

/// `-e name=value…`: rewrite main.cf in place, atomically (a reader never sees half a file).
fn edit(source: &ConfigSource, edits: &[(String, String)]) -> CliResult {
    let Some(dir) = &source.dir else {
        return Err(CliError::from(anyhow::anyhow!(
            "conf -e edits main.cf, but no configuration directory is in use (running on the \
             embedded defaults); create one and name it with -c DIR or POSTERN_CONFIG_DIR"
        )));
    };
    let file = dir.join("main.cf");
    let (text, mode) = match fs::read_to_string(&file) {
        Ok(text) => {
            let mode = fs::metadata(&file).map(|m| m.permissions().mode()).ok();
            (text, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => {
            return Err(CliError::from(
                anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
            ))
        }
    };
    let mut new = text;
    for (name, value) in edits {
        if param_def(name).is_none() {
            eprintln!(
                "postern: warning: {name} is not a parameter Postern knows; written anyway \
                 (postern conf -d lists the known ones)"
            );
        }
        new = edit_main_cf(&new, name, value);
    }
    write_atomically(&file, new.as_bytes(), mode)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(exit::OK)
}

fn write_atomically(file: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("cf.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if let Some(mode) = mode {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.sync_all()?;
        fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `-M`: master.cf entries as logical lines (continuations joined, comments dropped); with
/// names, only those services.
fn master(source: &ConfigSource, names: &[String]) -> CliResult {
    let text = match &source.dir {
        Some(dir) => {
            let file = dir.join("master.cf");
            match fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_MASTER_CF.to_string(),
                Err(e) => {
                    return Err(CliError::from(
                        anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    ))
                }
            }
        }
        None => EMBEDDED_MASTER_CF.to_string(),
    };
    let mut out = String::new();
    for entry in logical_lines(&text) {
        let service = entry.split_whitespace().next().unwrap_or("");
        if names.is_empty() || names.iter().any(|n| n == service) {
            out.push_str(&entry);
            out.push('\n');
        }
    }
    print_out(&out)?;
    Ok(exit::OK)
}

/// master.cf logical lines: a line starting with whitespace continues the previous one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
        match out.last_mut() {
            Some(last) if raw.starts_with(char::is_whitespace) => {
                last.push(' ');
                last.push_str(&words);
            }
            _ => out.push(words),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(names: &[&str], values_only: bool, expand: bool) -> ConfArgs {
        ConfArgs {
            mode: ConfMode::Effective,
            names: names.iter().map(|s| s.to_string()).collect(),
            values_only,
            expand,
        }
    }

    #[test]
    fn values_explicit_default_and_expanded() {
        let cf = MainCf::parse(
            "myhostname = mx.example.com\nmyorigin = $myhostname\n",
            Path::new("main.cf"),
        )
        .expect("parse");
        let plain = args(&[], false, false);
        assert_eq!(value_of(&plain, &cf, "myorigin", None), "$myhostname");
        assert_eq!(
            value_of(&args(&[], false, true), &cf, "myorigin", None),
            "mx.example.com"
        );
        assert_eq!(value_of(&plain, &cf, "relayhost", None), "");
        assert_eq!(
            value_of(&plain, &cf, "config_directory", Some(Path::new("/srv/p"))),
            "/srv/p"
        );
        assert_eq!(line(&plain, "relayhost", ""), "relayhost =\n");
        assert_eq!(line(&args(&[], true, false), "a", "b"), "b\n");
    }

    #[test]
    fn edit_writes_main_cf_and_keeps_comments() {
        let dir = std::env::temp_dir().join(format!("postern-conf-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("main.cf"), "# mine\nmyhostname = a.example\n").expect("write");
        fs::set_permissions(dir.join("main.cf"), fs::Permissions::from_mode(0o640)).expect("chmod");
        let source = ConfigSource {
            dir: Some(dir.clone()),
            reason: "-c",
        };
        let edits = vec![
            ("myhostname".to_string(), "b.example".to_string()),
            ("relayhost".to_string(), "[smtp.example]:587".to_string()),
        ];
        assert_eq!(edit(&source, &edits).expect("edit"), exit::OK);
        assert_eq!(
            fs::read_to_string(dir.join("main.cf")).expect("read"),
            "# mine\nmyhostname = b.example\nrelayhost = [smtp.example]:587\n"
        );
        let mode = fs::metadata(dir.join("main.cf"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let _ = fs::remove_dir_all(&dir);

        let embedded = ConfigSource {
            dir: None,
            reason: "none",
        };
        let err = edit(&embedded, &edits).expect_err("no dir");
        assert!(format!("{:#}", err.error).contains("no configuration directory"));
    }

    #[test]
    fn master_logical_lines() {
        let text = "# comment\nsmtp inet n - y - - smtpd\n  -o smtpd_tls_security_level=may\n\n\
                    submission inet n - y - - smtpd\n";
        assert_eq!(
            logical_lines(text),
            [
                "smtp inet n - y - - smtpd -o smtpd_tls_security_level=may",
                "submission inet n - y - - smtpd"
            ]
        );
    }
}
