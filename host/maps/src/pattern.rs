//! `regexp:` (regexp_table(5)) and `pcre:` (pcre_table(5)) tables.
//!
//! Rule syntax, flags, `if`/`endif`, `!` negation and `$1`/`${1}`/`$(1)` substitution follow
//! Postfix's `dict_regexp.c`/`dict_pcre.c`, including which broken rules are skipped with a
//! warning (all of them: a bad rule never makes the table unusable).
//!
//! Engines and their known differences from Postfix (docs/maps.md):
//! - `regexp:` uses the `regex` crate (linear time). POSIX ERE picks the leftmost-*longest*
//!   match, `regex` the leftmost-first; only `$n` captures of alternations can differ. Basic
//!   (non-extended) syntax — the `x` flag turned off — is not supported: such a rule is skipped
//!   with a warning.
//! - `pcre:` uses `fancy-regex` (backtracking, so look-around and back-references work) with a
//!   backtracking budget; a lookup that exhausts it is a temporary error rather than Postfix's
//!   silent non-match. `$` matches only at the very end of the key (PCRE's `E` flag is always
//!   on; keys never end in a newline). The `X` flag is accepted and ignored, as with PCRE2.

use crate::list::read_rules;
use crate::rules::{keyword, Program};
use crate::spec::TableRef;
use crate::stamp::Stamps;
use crate::{Kind, LookupError, MapError, Table, Warning, Warnings};

/// Backtracking steps one `pcre:` pattern may take on one key.
const PCRE_BACKTRACK_LIMIT: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Regexp,
    Pcre,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Regexp => "regexp",
            Dialect::Pcre => "pcre",
        }
    }
}

#[derive(Debug)]
enum Engine {
    Posix(regex::Regex),
    Fancy(fancy_regex::Regex),
}

/// One compiled `/pattern/flags`, possibly negated.
#[derive(Debug)]
struct Pattern {
    engine: Engine,
    negate: bool,
    line: usize,
}

/// Captured spans of a positive match: index 0 is the whole match.
type Spans = Vec<Option<(usize, usize)>>;

impl Pattern {
    /// `Some(spans)` when the rule fires (spans empty for negated patterns or when no `$n` is
    /// needed), `None` when it does not.
    fn fire(&self, key: &str, want_spans: bool, spec: &str) -> Result<Option<Spans>, LookupError> {
        let spans = match &self.engine {
            Engine::Posix(re) if !want_spans || self.negate => re.is_match(key).then(Vec::new),
            Engine::Posix(re) => re.captures(key).map(|c| {
                (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect()
            }),
            Engine::Fancy(re) => {
                let result = if !want_spans || self.negate {
                    re.is_match(key).map(|m| m.then(Vec::new))
                } else {
                    re.captures(key).map(|c| {
                        c.map(|c| {
                            (0..c.len())
                                .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                                .collect()
                        })
                    })
                };
                result.map_err(|e| {
                    LookupError::Temporary(format!("{spec}, line {}: {e}", self.line))
                })?
            }
        };
        Ok(match (spans, self.negate) {
            (Some(s), false) => Some(s),
            (None, true) => Some(Vec::new()),
            _ => None,
        })
    }
}

/// One piece of a result template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Group(usize),
}

#[derive(Debug)]
struct MatchRule {
    second: Option<Pattern>,
    template: Vec<Part>,
    max_group: usize,
}

/// A `regexp:` or `pcre:` table.
#[derive(Debug)]
pub(crate) struct PatternTable {
    spec: String,
    program: Program<Pattern, MatchRule>,
    stamps: Option<Stamps>,
    warnings: Vec<Warning>,
}

impl PatternTable {
    /// Opens a file (missing = fatal) or `{ {rule}, … }` in-line rules; broken rules are
    /// skipped with a warning.
    pub(crate) fn open(table: &TableRef, dialect: Dialect) -> Result<PatternTable, MapError> {
        let (text, label, stamps) = read_rules(table)?;
        let mut warnings = Warnings::new(&label);
        let mut program = Program::new();
        for line in crate::text::logical_lines(&text, &mut warnings) {
            parse_rule(dialect, &line.text, line.first, &mut program, &mut warnings);
        }
        let program = program.finish(&mut warnings);
        let mut warnings = warnings.into_vec();
        warnings.sort_by_key(|w| w.line);
        Ok(PatternTable {
            spec: table.to_string(),
            program,
            stamps,
            warnings,
        })
    }
}

impl Table for PatternTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        let spec = self.spec.as_str();
        self.program.run(
            |p| Ok(p.fire(key, false, spec)?.is_some()),
            |p, rule| {
                let Some(spans) = p.fire(key, rule.max_group > 0, spec)? else {
                    return Ok(None);
                };
                if let Some(second) = &rule.second {
                    if second.fire(key, false, spec)?.is_none() {
                        return Ok(None);
                    }
                }
                Ok(Some(expand(&rule.template, key, &spans)))
            },
        )
    }

    fn kind(&self) -> Kind {
        Kind::Pattern
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

fn expand(template: &[Part], key: &str, spans: &Spans) -> String {
    let mut out = String::new();
    for part in template {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Group(n) => {
                if let Some(Some((s, e))) = spans.get(*n) {
                    out.push_str(&key[*s..*e]);
                }
            }
        }
    }
    out
}

fn parse_rule(
    dialect: Dialect,
    line: &str,
    lineno: usize,
    program: &mut Program<Pattern, MatchRule>,
    warnings: &mut Warnings,
) {
    let starts_alnum = line.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !starts_alnum {
        let Some((first, rest)) = take_pattern(dialect, line, lineno, warnings) else {
            return;
        };
        let (second, rest) = if dialect == Dialect::Regexp && rest.starts_with('!') {
            match take_pattern(dialect, rest, lineno, warnings) {
                Some((p, r)) => (Some(p), r),
                None => return,
            }
        } else {
            (None, rest)
        };
        let result = rest.trim();
        if result.is_empty() {
            warnings.push(lineno, "no replacement text: using empty string");
        }
        let Ok(template) = parse_template(result) else {
            warnings.push(lineno, "bad replacement syntax: skipping this rule");
            return;
        };
        let max_group = template
            .iter()
            .filter_map(|p| match p {
                Part::Group(n) => Some(*n),
                Part::Text(_) => None,
            })
            .max()
            .unwrap_or(0);
        if max_group > 0 && first.negate {
            warnings.push(
                lineno,
                "$number found in negative match replacement text: skipping this rule",
            );
            return;
        }
        let Some(first) = first.compile(dialect, lineno, warnings) else {
            return;
        };
        let groups = match &first.engine {
            Engine::Posix(re) => re.captures_len() - 1,
            Engine::Fancy(re) => re.captures_len() - 1,
        };
        if max_group > groups {
            warnings.push(
                lineno,
                format!("out of range replacement index \"{max_group}\": skipping this rule"),
            );
            return;
        }
        let second = match second {
            Some(p) => match p.compile(dialect, lineno, warnings) {
                Some(p) => Some(p),
                None => return,
            },
            None => None,
        };
        program.push_match(
            first,
            MatchRule {
                second,
                template,
                max_group,
            },
        );
        return;
    }
    match keyword(line) {
        Some(("if", rest)) => {
            let Some((pattern, extra)) = take_pattern(dialect, rest.trim_start(), lineno, warnings)
            else {
                return;
            };
            if !extra.trim().is_empty() {
                warnings.push(
                    lineno,
                    format!(
                        "ignoring extra text after IF statement: \"{}\" (do not prepend \
                         whitespace to statements between IF and ENDIF)",
                        extra.trim()
                    ),
                );
            }
            if let Some(p) = pattern.compile(dialect, lineno, warnings) {
                program.push_if(lineno, p);
            }
        }
        Some((_, rest)) => {
            if !rest.trim().is_empty() && program.nesting() > 0 {
                warnings.push(lineno, "ignoring extra text after ENDIF");
            }
            program.push_endif(lineno, warnings);
        }
        None => warnings.push(lineno, "ignoring unrecognized request"),
    }
}

/// A `/pattern/flags` not yet compiled.
struct Source<'a> {
    regex: String,
    flags: &'a str,
    negate: bool,
}

/// Takes `[!…]DELIMpatternDELIMflags` off the front of `text`; returns it and the rest.
fn take_pattern<'a>(
    dialect: Dialect,
    text: &'a str,
    lineno: usize,
    warnings: &mut Warnings,
) -> Option<(Source<'a>, &'a str)> {
    let mut negate = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '!' {
            negate = !negate;
        } else if !c.is_ascii_whitespace() {
            break;
        }
        rest = &rest[c.len_utf8()..];
    }
    let Some(delim) = rest.chars().next() else {
        warnings.push(lineno, "no regexp: skipping this rule");
        return None;
    };
    let body = &rest[delim.len_utf8()..];
    let mut end = None;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            if chars.next().is_none() {
                break;
            }
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let Some(end) = end else {
        warnings.push(
            lineno,
            format!("no closing regexp delimiter \"{delim}\": skipping this rule"),
        );
        return None;
    };
    let regex = body[..end].to_string();
    let after = &body[end + delim.len_utf8()..];
    let stop = |c: char| c.is_ascii_whitespace() || (dialect == Dialect::Regexp && c == '!');
    let flags_end = after.find(stop).unwrap_or(after.len());
    Some((
        Source {
            regex,
            flags: &after[..flags_end],
            negate,
        },
        &after[flags_end..],
    ))
}

impl Source<'_> {
    fn compile(&self, dialect: Dialect, lineno: usize, warnings: &mut Warnings) -> Option<Pattern> {
        // Postfix defaults: regexp = case-insensitive + extended; pcre = caseless + dotall.
        let (mut icase, mut multi, mut dotall, mut extended) = match dialect {
            Dialect::Regexp => (true, false, true, true),
            Dialect::Pcre => (true, false, true, false),
        };
        let (mut anchored, mut ungreedy) = (false, false);
        for flag in self.flags.chars() {
            match (dialect, flag) {
                (_, 'i') => icase = !icase,
                (Dialect::Regexp, 'm') => {
                    // REG_NEWLINE: ^/$ at line ends, and `.` stops at newlines.
                    multi = !multi;
                    dotall = !multi;
                }
                (Dialect::Regexp, 'x') => extended = !extended,
                (Dialect::Pcre, 'm') => multi = !multi,
                (Dialect::Pcre, 's') => dotall = !dotall,
                (Dialect::Pcre, 'x') => extended = !extended,
                (Dialect::Pcre, 'A') => anchored = !anchored,
                (Dialect::Pcre, 'U') => ungreedy = !ungreedy,
                (Dialect::Pcre, 'E' | 'X') => {}
                _ => {
                    warnings.push(
                        lineno,
                        format!("unknown regexp option \"{flag}\": skipping this rule"),
                    );
                    return None;
                }
            }
        }
        let engine = match dialect {
            Dialect::Regexp => {
                if !extended {
                    warnings.push(
                        lineno,
                        "basic regular expressions (flag x) are not supported; write the \
                         pattern as an extended one: skipping this rule",
                    );
                    return None;
                }
                regex::RegexBuilder::new(&self.regex)
                    .case_insensitive(icase)
                    .multi_line(multi)
                    .dot_matches_new_line(dotall)
                    .build()
                    .map(Engine::Posix)
                    .map_err(|e| e.to_string())
            }
            Dialect::Pcre => {
                let mut regex = self.regex.clone();
                if ungreedy {
                    regex = format!("(?U){regex}");
                }
                if anchored {
                    let nl = if extended { "\n" } else { "" };
                    regex = format!("\\A(?:{regex}{nl})");
                }
                fancy_regex::RegexBuilder::new(&regex)
                    .case_insensitive(icase)
                    .multi_line(multi)
                    .dot_matches_new_line(dotall)
                    .ignore_whitespace(extended)
                    .backtrack_limit(PCRE_BACKTRACK_LIMIT)
                    .build()
                    .map(Engine::Fancy)
                    .map_err(|e| e.to_string())
            }
        };
        match engine {
            Ok(engine) => Some(Pattern {
                engine,
                negate: self.negate,
                line: lineno,
            }),
            Err(e) => {
                let first = e.lines().last().unwrap_or("").trim();
                warnings.push(
                    lineno,
                    format!(
                        "bad {} pattern \"{}\": {first}: skipping this rule",
                        dialect.name(),
                        self.regex
                    ),
                );
                None
            }
        }
    }
}

/// Parses a result template as Postfix's `mac_parse` does: `$$` is `$`; `$n`, `${n}` and
/// `$(n)` are capture groups (n ≥ 1); anything else after `$` is an error.
fn parse_template(text: &str) -> Result<Vec<Part>, ()> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        lit.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            lit.push('$');
            rest = r;
            continue;
        }
        let name;
        if let Some(close) = match rest.chars().next() {
            Some('{') => Some('}'),
            Some('(') => Some(')'),
            _ => None,
        } {
            let end = rest.find(close).ok_or(())?;
            name = &rest[1..end];
            rest = &rest[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            name = &rest[..end];
            rest = &rest[end..];
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: usize = name.parse().map_err(|_| ())?;
        if n < 1 {
            return Err(());
        }
        if !lit.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut lit)));
        }
        parts.push(Part::Group(n));
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Text(lit));
    }
    Ok(parts)
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
