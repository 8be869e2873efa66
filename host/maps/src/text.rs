//! The text syntax shared by every file-based table, as postmap(1) reads it:
//!
//! - A logical line starts with non-whitespace text; a line that starts with whitespace
//!   continues it (the newline is dropped, the leading whitespace kept: `abc\n def` is
//!   `abc def`). Empty lines, whitespace-only lines and lines whose first non-whitespace
//!   character is `#` are ignored, also between a line and its continuation (Postfix
//!   `readllines()`).
//! - A logical line that starts with whitespace has nothing to continue: it is skipped with a
//!   warning, as Postfix does.
//! - A trailing `\r` is dropped from every physical line, so files saved with CRLF line ends
//!   read the same (Postfix would keep it in a pattern).
//! - In tables (not aliases): `key whitespace value`; the key ends at the first whitespace
//!   outside double quotes and is kept in its quoted form; the value is trimmed.

use crate::Warnings;

/// One logical line and the physical lines it came from (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    pub text: String,
    pub first: usize,
    pub last: usize,
}

/// Splits `text` into logical lines, warning about text that continues nothing.
pub(crate) fn logical_lines(text: &str, warnings: &mut Warnings) -> Vec<LogicalLine> {
    let mut out: Vec<LogicalLine> = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut orphan = false;
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(|c: char| c.is_ascii_whitespace()) {
            match current.as_mut() {
                Some(cur) if !orphan => {
                    cur.text.push_str(line);
                    cur.last = lineno;
                }
                _ => {
                    if !orphan {
                        let shown: String = line.chars().take(30).collect();
                        let more = if line.chars().count() > 30 { "..." } else { "" };
                        warnings.push(
                            lineno,
                            format!(
                                "logical line must not start with whitespace: \"{shown}{more}\""
                            ),
                        );
                    }
                    orphan = true;
                }
            }
            continue;
        }
        orphan = false;
        if let Some(cur) = current.take() {
            out.push(cur);
        }
        current = Some(LogicalLine {
            text: line.to_string(),
            first: lineno,
            last: lineno,
        });
    }
    out.extend(current);
    out
}

/// One `key value` record of a postmap(1) source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// As written (quotes kept), folded to lower case when the table folds keys.
    pub key: String,
    pub value: String,
    /// The first physical line of the record.
    pub line: usize,
}

/// Parses a postmap(1) source (`key whitespace value` per logical line). Broken lines are
/// skipped with a warning, as postmap does; duplicates are left to the caller, which keeps the
/// first (postmap's default).
pub fn parse_source(text: &str, file: &str, fold: bool) -> (Vec<SourceEntry>, Vec<crate::Warning>) {
    let mut warnings = Warnings::new(file);
    let mut entries = Vec::new();
    for line in logical_lines(text, &mut warnings) {
        if let Some((key, value)) = split_key_value(&line, &mut warnings) {
            entries.push(SourceEntry {
                key: if fold { fold_key(key) } else { key.to_string() },
                value: value.to_string(),
                line: line.first,
            });
        }
    }
    (entries, warnings.into_vec())
}

/// `key whitespace value` (postmap.c): the key ends at the first whitespace outside double
/// quotes; a backslash protects the next character.
fn split_key_value<'a>(
    line: &'a LogicalLine,
    warnings: &mut Warnings,
) -> Option<(&'a str, &'a str)> {
    let text = line.text.as_str();
    let mut in_quotes = false;
    let mut end = text.len();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => break,
            '"' => in_quotes = !in_quotes,
            c if c.is_ascii_whitespace() && !in_quotes => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    if in_quotes {
        warnings.push(
            line.first,
            format!("unbalanced '\"' in '{text}' -- ignoring this line"),
        );
        return None;
    }
    let (key, value) = (&text[..end], text[end..].trim());
    if key.is_empty() || value.is_empty() {
        warnings.push(
            line.first,
            "expected format: key whitespace value -- ignoring this line",
        );
        return None;
    }
    if key.ends_with(':') {
        warnings.push(
            line.first,
            "record is in \"key: value\" format; is this an alias file?",
        );
    }
    Some((key, value))
}

/// Lower-cases a key the way fixed tables fold keys (Postfix `DICT_FLAG_FOLD_FIX`): ASCII
/// quickly, other text with Unicode lower-casing (Postfix uses full case folding when
/// `smtputf8_enable = yes`; the two differ only for a few characters such as `ß`).
pub fn fold_key(key: &str) -> String {
    if key.is_ascii() {
        key.to_ascii_lowercase()
    } else {
        key.to_lowercase()
    }
}

/// Reads a whole source file as UTF-8 (invalid bytes become U+FFFD, as a table key cannot
/// match them anyway).
pub(crate) fn read_source(path: &std::path::Path) -> Result<String, crate::MapError> {
    let bytes = std::fs::read(path).map_err(|e| crate::MapError::io(path, &e))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> (Vec<(String, usize, usize)>, Vec<String>) {
        let mut w = Warnings::new("t");
        let out = logical_lines(text, &mut w)
            .into_iter()
            .map(|l| (l.text, l.first, l.last))
            .collect();
        (out, w.into_vec().iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn logical_lines_follow_readllines() {
        // The cases of Postfix's readlline.c self-test.
        assert_eq!(lines(" abcde\nfghij\n").0, vec![("fghij".into(), 2, 2)]);
        assert_eq!(lines(" #abcde\nfghij\n").0, vec![("fghij".into(), 2, 2)]);
        assert_eq!(lines("abc\n def\n").0, vec![("abc def".into(), 1, 2)]);
        assert_eq!(lines("abc\n #def\n ghi").0, vec![("abc ghi".into(), 1, 3)]);
        assert_eq!(lines("abc\n#def\n ghi").0, vec![("abc ghi".into(), 1, 3)]);
        assert_eq!(lines("abc\n\n ghi").0, vec![("abc ghi".into(), 1, 3)]);
        assert_eq!(lines("abc def").0, vec![("abc def".into(), 1, 1)]);
        assert!(lines("#abc def").0.is_empty());
        assert_eq!(lines("a 1\r\nb 2\r\n").0[1].0, "b 2");
        let (_, warnings) = lines(" orphan\n  more\nkey value\n");
        assert_eq!(
            warnings,
            vec!["t, line 1: logical line must not start with whitespace: \" orphan\""]
        );
    }

    #[test]
    fn key_value_split_keeps_quotes_and_trims() {
        let (entries, warnings) = parse_source(
            "User@Example.COM   OK  \n\"a b\"@x REJECT go away\nlonely\nalias: value\n\"open x\n",
            "access",
            true,
        );
        assert_eq!(entries[0].key, "user@example.com");
        assert_eq!(entries[0].value, "OK");
        assert_eq!(entries[1].key, "\"a b\"@x");
        assert_eq!(entries[1].value, "REJECT go away");
        assert_eq!(entries[2].key, "alias:");
        let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "access, line 3: expected format: key whitespace value -- ignoring this line",
                "access, line 4: record is in \"key: value\" format; is this an alias file?",
                "access, line 5: unbalanced '\"' in '\"open x' -- ignoring this line",
            ]
        );
    }
}
