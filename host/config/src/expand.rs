//! Lazy `$name` expansion (postconf(5) "parameter expansion").
//!
//! Supported forms: `$name`, `${name}`, `$(name)`, `$$` (a literal `$`), `${name?value}`
//! (`value` when `$name` is non-empty), `${name:value}` (`value` when `$name` is empty or
//! undefined), and the Postfix 3.0 forms `${name?{value1}:{value2}}` and `${name:{value}}`.
//! Postfix 3.0 relational expressions (`${{$a} == {b}?...}`) are not supported and are reported
//! as errors. A `$` not followed by a name, `$`, `{` or `(` is kept literally.
//!
//! Expansion is recursive; a parameter that refers back to itself (directly or through others)
//! is an error. An undefined parameter expands to the empty string with a warning.

use std::path::PathBuf;

use crate::params::{default_myhostname, domain_of, param_def, system_hostname};
use crate::{Diagnostic, MainCf};

/// Expand parameter `name` of `cf`, recording undefined-parameter warnings in `warnings`.
pub(crate) fn expand_param(
    cf: &MainCf,
    name: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<String, Diagnostic> {
    let mut ex = Expander {
        cf,
        stack: Vec::new(),
        warnings,
    };
    ex.param(name, true)
}

/// Names referenced as `$name`, `${name...}` or `$(name...)` anywhere in `text` (including
/// inside conditional values). Used to tell user-defined parameters from unknown ones.
pub(crate) fn referenced_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            Some(b'$') => {
                i += 1;
                continue;
            }
            Some(b'{' | b'(') => i += 1,
            _ => {}
        }
        let start = i;
        while i < bytes.len() && is_name_byte(bytes[i]) {
            i += 1;
        }
        if i > start {
            names.push(text[start..i].to_string());
        }
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

enum Lookup {
    /// A raw value that still needs expansion.
    Raw(String),
    /// A final value.
    Literal(String),
    Undefined,
}

struct Expander<'a, 'w> {
    cf: &'a MainCf,
    /// Parameters being expanded, outermost first (for loop detection and attribution).
    stack: Vec<String>,
    warnings: &'w mut Vec<Diagnostic>,
}

impl Expander<'_, '_> {
    fn param(&mut self, name: &str, warn_undefined: bool) -> Result<String, Diagnostic> {
        if let Some(pos) = self.stack.iter().position(|n| n == name) {
            return Err(self.loop_error(pos));
        }
        self.stack.push(name.to_string());
        let result = match self.lookup(name) {
            Ok(Lookup::Raw(raw)) => self.text(&raw),
            Ok(Lookup::Literal(v)) => Ok(v),
            Ok(Lookup::Undefined) => Ok(String::new()),
            Err(e) => Err(e),
        };
        self.stack.pop();
        if warn_undefined && matches!(result, Ok(ref v) if v.is_empty()) && self.is_undefined(name)
        {
            self.warn_undefined(name);
        }
        result
    }

    fn is_undefined(&self, name: &str) -> bool {
        self.cf.get_raw(name).is_none()
            && self.cf.runtime_default(name).is_none()
            && param_def(name).is_none()
    }

    fn lookup(&mut self, name: &str) -> Result<Lookup, Diagnostic> {
        if let Some(raw) = self.cf.get_raw(name) {
            return Ok(Lookup::Raw(raw.to_string()));
        }
        if let Some(raw) = self.cf.runtime_default(name) {
            return Ok(Lookup::Raw(raw.to_string()));
        }
        match name {
            // Postfix: the system host name, plus ".$mydomain" when it has no dot.
            "myhostname" => {
                let domain = match self.cf.get_raw("mydomain") {
                    Some(_) if !system_hostname().contains('.') => {
                        Some(self.param("mydomain", true)?)
                    }
                    _ => None,
                };
                Ok(Lookup::Literal(default_myhostname(domain.as_deref())))
            }
            // Postfix: $myhostname minus its first label, "localdomain" if none.
            "mydomain" => {
                let host = self.param("myhostname", true)?;
                Ok(Lookup::Literal(domain_of(&host)))
            }
            _ => Ok(match param_def(name) {
                Some(def) => Lookup::Raw(def.default.to_string()),
                None => Lookup::Undefined,
            }),
        }
    }

    /// Expand all references in `s`.
    fn text(&mut self, s: &str) -> Result<String, Diagnostic> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.as_bytes().first() {
                Some(b'$') => {
                    out.push('$');
                    rest = &after[1..];
                }
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    let Some(end) = matching(after, open, close) else {
                        return Err(self.error(
                            format!("unbalanced '{}' in \"{s}\"", char::from(open)),
                            "close every ${ with } and every $( with )",
                        ));
                    };
                    let inner = &after[1..end];
                    let expanded = self.expression(inner)?;
                    out.push_str(&expanded);
                    rest = &after[end + 1..];
                }
                Some(&b) if is_name_byte(b) => {
                    let n = after
                        .bytes()
                        .position(|b| !is_name_byte(b))
                        .unwrap_or(after.len());
                    let v = self.param(&after[..n], true)?;
                    out.push_str(&v);
                    rest = &after[n..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expand the inside of `${...}` / `$(...)`.
    fn expression(&mut self, inner: &str) -> Result<String, Diagnostic> {
        let n = inner
            .bytes()
            .position(|b| !is_name_byte(b))
            .unwrap_or(inner.len());
        let (name, op) = inner.split_at(n);
        if name.is_empty() {
            if inner.trim_start().starts_with('{') {
                return Err(self.error(
                    format!("unsupported expression \"${{{inner}}}\""),
                    "Postern does not support Postfix relational expressions such as \
                     ${{$name} == {value} ? {a} : {b}}; write the value directly",
                ));
            }
            return Err(self.error(
                format!("missing parameter name in \"${{{inner}}}\""),
                "write ${name}, ${name?value} or ${name:value}",
            ));
        }
        let Some(kind) = op.chars().next() else {
            return self.param(name, true);
        };
        let body = &op[1..];
        match kind {
            '?' | ':' => {
                let value = self.param(name, false)?;
                let (when_set, when_empty) = self.branches(kind, body)?;
                let chosen = if value.is_empty() {
                    when_empty
                } else {
                    when_set
                };
                self.text(chosen)
            }
            _ => Err(self.error(
                format!("invalid expression \"${{{inner}}}\""),
                "write ${name}, ${name?value} or ${name:value}",
            )),
        }
    }

    /// Split a conditional body into (value if non-empty, value if empty).
    fn branches<'s>(&self, kind: char, body: &'s str) -> Result<(&'s str, &'s str), Diagnostic> {
        let trimmed = body.trim();
        if !trimmed.starts_with('{') {
            return Ok(if kind == '?' { (body, "") } else { ("", body) });
        }
        let bad = || {
            self.error(
                format!("invalid conditional \"{body}\""),
                "write ${name?{value1}:{value2}}, ${name?value} or ${name:value}",
            )
        };
        let end = matching(trimmed, b'{', b'}').ok_or_else(bad)?;
        let first = &trimmed[1..end];
        let rest = trimmed[end + 1..].trim();
        if rest.is_empty() {
            return Ok(if kind == '?' {
                (first, "")
            } else {
                ("", first)
            });
        }
        let second = rest.strip_prefix(':').map(str::trim).ok_or_else(bad)?;
        if kind != '?' || !second.starts_with('{') {
            return Err(bad());
        }
        let end2 = matching(second, b'{', b'}').ok_or_else(bad)?;
        if !second[end2 + 1..].trim().is_empty() {
            return Err(bad());
        }
        Ok((first, &second[1..end2]))
    }

    /// Where the parameter currently being expanded was defined.
    fn location_of(&self, name: Option<&str>) -> (PathBuf, usize) {
        match name.and_then(|n| self.cf.location(n)) {
            Some((file, line)) => (file.to_path_buf(), line),
            None => (self.cf.file().to_path_buf(), 0),
        }
    }

    fn error(&self, message: String, hint: &str) -> Diagnostic {
        let current = self.stack.last().map(String::as_str);
        let (file, line) = self.location_of(current);
        let message = match current {
            Some(n) => format!("in the value of {n}: {message}"),
            None => message,
        };
        Diagnostic::new(&file, line, message).with_hint(hint)
    }

    /// The cycle `stack[pos..]`, reported from its alphabetically first member so that the
    /// same loop gives the same diagnostic whichever parameter was expanded first.
    fn loop_error(&self, pos: usize) -> Diagnostic {
        let cycle = &self.stack[pos..];
        let start = cycle
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.cmp(b.1))
            .map_or(0, |(i, _)| i);
        let mut names: Vec<&str> = cycle[start..]
            .iter()
            .chain(cycle[..start].iter())
            .map(String::as_str)
            .collect();
        let first = names.first().copied();
        if let Some(f) = first {
            names.push(f);
        }
        let (file, line) = self.location_of(first);
        let path = names
            .iter()
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(" -> ");
        Diagnostic::new(&file, line, format!("parameter expansion loop: {path}"))
            .with_hint("a parameter must not refer to itself, directly or through other parameters")
    }

    fn warn_undefined(&mut self, name: &str) {
        let current = self.stack.last().cloned();
        let (file, line) = self.location_of(current.as_deref());
        let message = match &current {
            Some(c) => format!(
                "undefined parameter ${name} in the value of {c} expands to an empty string"
            ),
            None => format!("undefined parameter ${name} expands to an empty string"),
        };
        self.warnings
            .push(Diagnostic::new(&file, line, message).with_hint(format!(
                "define {name} in main.cf, or write $$ for a literal '$'"
            )));
    }
}

/// Index of the bracket closing `s[0]` (which must be `open`), honouring nesting.
fn matching(s: &str, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        if b == open {
            depth += 1;
        } else if b == close {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;
    use std::path::Path;

    fn cf(text: &str) -> MainCf {
        MainCf::parse(text, Path::new("main.cf")).unwrap()
    }

    #[test]
    fn all_reference_forms() {
        let c = cf("myhostname = mx.example.com\na = <$myhostname|${myhostname}|$(myhostname)>\n");
        assert_eq!(
            c.expand("a").unwrap(),
            "<mx.example.com|mx.example.com|mx.example.com>"
        );
        assert_eq!(c.expand("mydomain").unwrap(), "example.com");
    }

    #[test]
    fn recursive_and_defaults() {
        let c = cf("myhostname = mx.example.com\nmydomain = example.com\n");
        assert_eq!(c.expand("myorigin").unwrap(), "mx.example.com");
        assert_eq!(
            c.expand("mydestination").unwrap(),
            "mx.example.com, localhost.example.com, localhost"
        );
        assert_eq!(c.expand("local_transport").unwrap(), "local:mx.example.com");
        assert_eq!(
            c.expand("smtpd_banner").unwrap(),
            "mx.example.com ESMTP Postern"
        );
    }

    #[test]
    fn conditionals() {
        let c = cf("x = set\ne =\nr1 = [${x?yes}][${e?yes}][${nope?yes}]\n\
                    r2 = [${x:no}][${e:no}][${nope:no}]\n\
                    r3 = ${x?{A $x}:{B}} ${e?{A}:{B $x}} ${e:{C}}\n");
        let mut w = Vec::new();
        assert_eq!(c.expand_with("r1", &mut w).unwrap(), "[yes][][]");
        assert_eq!(c.expand_with("r2", &mut w).unwrap(), "[][no][no]");
        assert_eq!(c.expand_with("r3", &mut w).unwrap(), "A set B set C");
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn dollar_dollar_and_lone_dollar() {
        let c = cf("a = cost $$5 and $ alone and $\n");
        assert_eq!(c.expand("a").unwrap(), "cost $5 and $ alone and $");
    }

    #[test]
    fn undefined_warns_with_location() {
        let c = cf("\nsmtpd_banner = $myhostname $nonexistent_thing\nmyhostname = h.example\n");
        let mut w = Vec::new();
        assert_eq!(c.expand_with("smtpd_banner", &mut w).unwrap(), "h.example ");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 2);
        assert!(w[0].message.contains("$nonexistent_thing"), "{}", w[0]);
    }

    #[test]
    fn defined_but_empty_does_not_warn() {
        let c = cf("empty =\na = x$empty${relayhost}\n");
        let mut w = Vec::new();
        assert_eq!(c.expand_with("a", &mut w).unwrap(), "x");
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn loops_are_errors() {
        let c = cf("a = $b\nb = x ${c}\nc = $a\nself = $self\n");
        let err = c.expand("c").unwrap_err();
        let ConfigError::Invalid(d) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(d.message, "parameter expansion loop: $a -> $b -> $c -> $a");
        assert_eq!(d.line, 1);
        assert_eq!(c.expand("a").unwrap_err().to_string(), err.to_string());
        assert!(c.expand("self").is_err());
        // myhostname defaulting through mydomain back to myhostname.
        let c = cf("mydomain = $myhostname\n");
        if !crate::params::system_hostname().contains('.') {
            assert!(c.expand("myhostname").is_err());
        }
    }

    #[test]
    fn syntax_errors() {
        let c = cf("a = ${myhostname\nb = ${{$compatibility_level} < {2} ? {x} : {y}}\nc = ${}\nd = ${x!y}\n");
        for (name, needle) in [
            ("a", "unbalanced"),
            ("b", "unsupported expression"),
            ("c", "missing parameter name"),
            ("d", "invalid expression"),
        ] {
            let e = c.expand(name).unwrap_err().to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }

    #[test]
    fn referenced() {
        assert_eq!(
            referenced_names("$a ${b?$c} $(d) $$e ${f:{$g}}"),
            ["a", "b", "c", "d", "f", "g"]
        );
    }
}
