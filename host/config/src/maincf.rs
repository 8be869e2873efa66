//! `main.cf` syntax (postconf(5)): `name = value` logical lines, continuation lines, comments,
//! and in-place editing for `postern conf -e`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{expand, ConfigError, Diagnostic};

/// One logical line: the 1-based number of its first physical line and its joined text.
pub(crate) struct LogicalLine {
    pub line: usize,
    pub text: String,
}

/// Split `text` into logical lines, the way Postfix reads main.cf and master.cf: a line that
/// starts with whitespace continues the previous logical line; blank lines and lines whose first
/// non-whitespace character is `#` are skipped (and do not end a logical line). Continuation
/// lines are joined with a single space. Returns the lines and the line numbers of continuation
/// lines that have no logical line to continue.
pub(crate) fn logical_lines(text: &str) -> (Vec<LogicalLine>, Vec<usize>) {
    let mut lines: Vec<LogicalLine> = Vec::new();
    let mut orphans = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with(char::is_whitespace) {
            match lines.last_mut() {
                Some(last) => {
                    last.text.push(' ');
                    last.text.push_str(trimmed);
                }
                None => orphans.push(i + 1),
            }
        } else {
            lines.push(LogicalLine {
                line: i + 1,
                text: raw.trim_end().to_string(),
            });
        }
    }
    (lines, orphans)
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    value: String,
    file: PathBuf,
    line: usize,
}

/// Raw parsed main.cf: name → (raw value, file, line), in file order.
///
/// Values are stored unexpanded; `$name` references are expanded lazily by [`MainCf::expand`]
/// (postconf(5): "the expansion happens when the value is used"). When a parameter is defined
/// more than once the last definition wins, and it keeps the position of the first one in
/// [`MainCf::explicit`].
#[derive(Clone, Debug, Default)]
pub struct MainCf {
    file: PathBuf,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    runtime_defaults: HashMap<String, String>,
    warnings: Vec<Diagnostic>,
}

impl MainCf {
    /// An empty main.cf (every parameter at its default) attributed to `file`.
    pub fn new(file: &Path) -> MainCf {
        MainCf {
            file: file.to_path_buf(),
            ..MainCf::default()
        }
    }

    /// Parse main.cf syntax only; values are neither expanded nor validated.
    ///
    /// Errors (with file:line): a line without `=`, an empty or whitespace-containing name, or a
    /// continuation line (leading whitespace) before any parameter.
    pub fn parse(text: &str, file: &Path) -> Result<MainCf, ConfigError> {
        let (cf, errors) = MainCf::parse_lenient(text, file);
        if errors.is_empty() {
            Ok(cf)
        } else {
            Err(ConfigError::from_diagnostics(errors))
        }
    }

    /// Parse what can be parsed; return the syntax errors separately.
    pub(crate) fn parse_lenient(text: &str, file: &Path) -> (MainCf, Vec<Diagnostic>) {
        let mut cf = MainCf::new(file);
        let mut errors = Vec::new();
        let (lines, orphans) = logical_lines(text);
        for line in orphans {
            errors.push(
                Diagnostic::new(
                    file,
                    line,
                    "continuation line without a parameter to continue",
                )
                .with_hint(
                    "a line that starts with whitespace continues the previous line; \
                         remove the leading whitespace",
                ),
            );
        }
        for LogicalLine { line, text } in lines {
            let Some((name, value)) = text.split_once('=') else {
                errors.push(
                    Diagnostic::new(file, line, format!("missing '=' in \"{text}\"")).with_hint(
                        "main.cf lines have the form \"name = value\"; \
                         a line that starts with whitespace continues the previous line",
                    ),
                );
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                errors.push(Diagnostic::new(
                    file,
                    line,
                    format!("missing parameter name in \"{text}\""),
                ));
                continue;
            }
            if name.contains(char::is_whitespace) {
                errors.push(
                    Diagnostic::new(file, line, format!("invalid parameter name \"{name}\""))
                        .with_hint("parameter names contain no whitespace; is a '=' missing?"),
                );
                continue;
            }
            if value.contains(" #") || value.contains("\t#") {
                cf.warnings.push(
                    Diagnostic::new(
                        file,
                        line,
                        format!("the value of {name} contains '#'; it is part of the value, not a comment"),
                    )
                    .with_hint("main.cf comments must start at the beginning of a line"),
                );
            }
            cf.set_at(name, value, file, line);
        }
        (cf, errors)
    }

    /// Set (or replace) a parameter, as `-o name=value` or `postern conf -e` would.
    /// Diagnostics about the value point at this MainCf's file without a line number.
    pub fn set(&mut self, name: &str, value: &str) {
        let file = self.file.clone();
        self.set_at(name, value, &file, 0);
    }

    /// Set (or replace) a parameter, recording where the value came from (for diagnostics).
    pub fn set_at(&mut self, name: &str, value: &str, file: &Path, line: usize) {
        let entry = Entry {
            name: name.to_string(),
            value: value.to_string(),
            file: file.to_path_buf(),
            line,
        };
        match self.index.get(name) {
            Some(&i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    *e = entry;
                }
            }
            None => {
                self.index.insert(name.to_string(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Provide a default known only at run time (e.g. `config_directory` = the directory being
    /// loaded). It is used when the parameter is not set, and is not listed by [`explicit`](Self::explicit).
    pub fn set_default(&mut self, name: &str, value: &str) {
        self.runtime_defaults
            .insert(name.to_string(), value.to_string());
    }

    /// The raw (unexpanded) value of an explicitly set parameter.
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.entry(name).map(|e| e.value.as_str())
    }

    /// Where an explicitly set parameter was defined (file, 1-based line; 0 = no line).
    pub fn location(&self, name: &str) -> Option<(&Path, usize)> {
        self.entry(name).map(|e| (e.file.as_path(), e.line))
    }

    /// Explicitly set parameters `(name, raw value)` in file order (for `postern conf -n`).
    pub fn explicit(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
    }

    /// The file this main.cf was read from (or is attributed to).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Non-fatal findings of [`parse`](Self::parse), e.g. a `#` inside a value.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The value of `name` with `$name`, `${name}`, `$(name)`, `${name?value}` and
    /// `${name:value}` expanded recursively, falling back to the built-in default from the
    /// parameter table when `name` is not set. An expansion loop is an error; undefined
    /// parameters expand to the empty string (use [`expand_with`](Self::expand_with) to collect
    /// the warnings).
    pub fn expand(&self, name: &str) -> Result<String, ConfigError> {
        let mut warnings = Vec::new();
        self.expand_with(name, &mut warnings)
    }

    /// Like [`expand`](Self::expand), but records warnings about undefined `$names`.
    pub fn expand_with(
        &self,
        name: &str,
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<String, ConfigError> {
        expand::expand_param(self, name, warnings).map_err(ConfigError::Invalid)
    }

    pub(crate) fn runtime_default(&self, name: &str) -> Option<&str> {
        self.runtime_defaults.get(name).map(String::as_str)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|&i| self.entries.get(i))
    }
}

/// Edit main.cf text for `postern conf -e name=value`, like `postconf -e`: the first definition
/// of `name` (including its continuation lines) is replaced by `name = value`, later
/// definitions are removed (they would override the edit), and the line is appended when
/// `name` is not defined. Comments, blank lines and all other parameters are preserved.
/// Newlines in `value` are replaced by spaces.
pub fn edit_main_cf(text: &str, name: &str, value: &str) -> String {
    let value = value.trim().replace(['\r', '\n'], " ");
    let replacement = format!("{name} = {value}");
    let mut out = String::with_capacity(text.len() + replacement.len() + 2);
    let mut replaced = false;
    // Whether the current logical line is a definition of `name` being dropped.
    let mut dropping = false;
    for physical in text.split_inclusive('\n') {
        let content = physical.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim();
        let is_comment_or_blank = trimmed.is_empty() || trimmed.starts_with('#');
        if is_comment_or_blank {
            out.push_str(physical);
            continue;
        }
        if content.starts_with(char::is_whitespace) {
            if !dropping {
                out.push_str(physical);
            }
            continue;
        }
        let defines = content
            .split_once('=')
            .is_some_and(|(n, _)| n.trim() == name);
        dropping = defines;
        if defines && !replaced {
            replaced = true;
            out.push_str(&replacement);
            out.push_str(&physical[content.len()..]);
            if physical.len() == content.len() {
                out.push('\n');
            }
        } else if !defines {
            out.push_str(physical);
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&replacement);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK_START: &str = "\
# Postfix quick start (BASIC_CONFIGURATION_README)
myhostname = host.example.com
mydomain = example.com
myorigin = $mydomain

mydestination = $myhostname, localhost.$mydomain,
    $mydomain
# a comment between definitions
    # an indented comment
mynetworks = 127.0.0.0/8
  [::1]/128
relayhost =
";

    fn parse(text: &str) -> MainCf {
        MainCf::parse(text, Path::new("main.cf")).unwrap()
    }

    #[test]
    fn quick_start() {
        let cf = parse(QUICK_START);
        assert_eq!(cf.get_raw("myorigin"), Some("$mydomain"));
        assert_eq!(
            cf.get_raw("mydestination"),
            Some("$myhostname, localhost.$mydomain, $mydomain")
        );
        assert_eq!(cf.get_raw("mynetworks"), Some("127.0.0.0/8 [::1]/128"));
        assert_eq!(cf.get_raw("relayhost"), Some(""));
        assert_eq!(cf.location("mynetworks"), Some((Path::new("main.cf"), 10)));
        let names: Vec<&str> = cf.explicit().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "myhostname",
                "mydomain",
                "myorigin",
                "mydestination",
                "mynetworks",
                "relayhost"
            ]
        );
        assert_eq!(cf.expand("myorigin").unwrap(), "example.com");
        assert_eq!(
            cf.expand("mydestination").unwrap(),
            "host.example.com, localhost.example.com, example.com"
        );
    }

    #[test]
    fn continuation_across_comments_and_blank_lines() {
        let cf = parse("smtpd_relay_restrictions = permit_mynetworks,\n# disabled:\n#  reject,\n\n  defer_unauth_destination\n");
        assert_eq!(
            cf.get_raw("smtpd_relay_restrictions"),
            Some("permit_mynetworks, defer_unauth_destination")
        );
    }

    #[test]
    fn last_definition_wins() {
        let cf = parse("a = 1\nb = 2\na = 3\n");
        assert_eq!(cf.get_raw("a"), Some("3"));
        assert_eq!(cf.location("a"), Some((Path::new("main.cf"), 3)));
        let all: Vec<_> = cf.explicit().collect();
        assert_eq!(all, [("a", "3"), ("b", "2")]);
    }

    #[test]
    fn value_may_contain_equals_and_spaces() {
        let cf = parse("smtpd_banner=$myhostname ESMTP a=b\n");
        assert_eq!(cf.get_raw("smtpd_banner"), Some("$myhostname ESMTP a=b"));
    }

    #[test]
    fn syntax_errors_have_file_and_line() {
        let err = MainCf::parse(
            "myhostname = a\nthis is wrong\n",
            Path::new("/etc/postern/main.cf"),
        )
        .unwrap_err();
        let ConfigError::Invalid(d) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(d.line, 2);
        assert!(
            err.to_string()
                .starts_with("/etc/postern/main.cf:2: missing '='"),
            "{err}"
        );

        let err = MainCf::parse("  = x\nfoo bar = 1\n", Path::new("main.cf")).unwrap_err();
        assert_eq!(err.diagnostics().len(), 2, "{err}");
        let ConfigError::Many(ds) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(ds[0].line, 1);
        assert!(ds[0].message.contains("continuation"));
        assert_eq!(ds[1].line, 2);
    }

    #[test]
    fn trailing_comment_warns() {
        let cf = parse("message_size_limit = 1000 # bytes\n");
        assert_eq!(cf.warnings().len(), 1);
        assert_eq!(cf.get_raw("message_size_limit"), Some("1000 # bytes"));
    }

    #[test]
    fn set_and_runtime_defaults() {
        let mut cf = parse("myhostname = a.example\n");
        cf.set("myhostname", "b.example");
        cf.set("relayhost", "[smtp.example]:587");
        assert_eq!(cf.get_raw("myhostname"), Some("b.example"));
        assert_eq!(cf.location("relayhost"), Some((Path::new("main.cf"), 0)));
        cf.set_default("config_directory", "/tmp/x");
        assert_eq!(cf.expand("config_directory").unwrap(), "/tmp/x");
        assert!(cf.explicit().all(|(n, _)| n != "config_directory"));
        assert_eq!(cf.expand("queue_directory").unwrap(), "/var/spool/postern");
    }

    #[test]
    fn edit_replaces_with_continuation_lines() {
        let text = "# top\nmydestination = a,\n    b\n# keep me\n  c\nmyorigin = x\n";
        let out = edit_main_cf(text, "mydestination", "$myhostname, localhost");
        assert_eq!(
            out,
            "# top\nmydestination = $myhostname, localhost\n# keep me\nmyorigin = x\n"
        );
    }

    #[test]
    fn edit_appends_and_removes_duplicates() {
        assert_eq!(edit_main_cf("a = 1", "b", "2"), "a = 1\nb = 2\n");
        assert_eq!(edit_main_cf("", "b", "2"), "b = 2\n");
        let out = edit_main_cf("a = 1\nb = 2\na = 3\n  more\nc = 4\n", "a", "9");
        assert_eq!(out, "a = 9\nb = 2\nc = 4\n");
        // Names are matched exactly, not by prefix.
        let out = edit_main_cf("mynetworks_style = host\n", "mynetworks", "10.0.0.0/8");
        assert_eq!(out, "mynetworks_style = host\nmynetworks = 10.0.0.0/8\n");
        // The result parses back to the new value.
        let cf = parse(&edit_main_cf(QUICK_START, "mynetworks", "10.0.0.0/8"));
        assert_eq!(cf.get_raw("mynetworks"), Some("10.0.0.0/8"));
        assert_eq!(cf.get_raw("relayhost"), Some(""));
    }

    #[test]
    fn edit_keeps_crlf_and_missing_final_newline() {
        assert_eq!(edit_main_cf("a = 1\r\nb = 2", "a", "3"), "a = 3\r\nb = 2");
        assert_eq!(edit_main_cf("a = 1", "a", "3"), "a = 3\n");
    }
}
