//! The rule list shared by `regexp:`, `pcre:` and `cidr:` tables: match rules tried in order,
//! and `if PATTERN` … `endif` blocks (which nest) that skip their body when the pattern does not
//! match. An `if` without `endif` runs to the end of the table and an `endif` without `if` is
//! ignored, each with a warning, as in Postfix.

use crate::Warnings;

pub(crate) enum Op<P, R> {
    /// A pattern and what a match returns.
    Match(P, R),
    /// `if PATTERN`: `endif` is the index of its `endif`, `None` when it has none.
    If(P, Option<usize>),
    Endif,
}

pub(crate) struct Program<P, R> {
    ops: Vec<Op<P, R>>,
    open: Vec<(usize, usize)>,
}

impl<P, R> std::fmt::Debug for Program<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Program({} rules)", self.ops.len())
    }
}

impl<P, R> Program<P, R> {
    pub(crate) fn new() -> Program<P, R> {
        Program {
            ops: Vec::new(),
            open: Vec::new(),
        }
    }

    pub(crate) fn push_match(&mut self, pattern: P, result: R) {
        self.ops.push(Op::Match(pattern, result));
    }

    pub(crate) fn push_if(&mut self, line: usize, pattern: P) {
        self.open.push((self.ops.len(), line));
        self.ops.push(Op::If(pattern, None));
    }

    pub(crate) fn push_endif(&mut self, line: usize, warnings: &mut Warnings) {
        let Some((at, _)) = self.open.pop() else {
            warnings.push(line, "ignoring ENDIF without matching IF");
            return;
        };
        let here = self.ops.len();
        if let Some(Op::If(_, endif)) = self.ops.get_mut(at) {
            *endif = Some(here);
        }
        self.ops.push(Op::Endif);
    }

    /// True when the next rule would be inside an `if` block.
    pub(crate) fn nesting(&self) -> usize {
        self.open.len()
    }

    pub(crate) fn finish(mut self, warnings: &mut Warnings) -> Program<P, R> {
        while let Some((_, line)) = self.open.pop() {
            warnings.push(line, "IF has no matching ENDIF");
        }
        self
    }

    /// Runs the rules: `test` says whether an `if` pattern holds; `hit` returns the result of a
    /// match rule, or `None` when its pattern does not match.
    pub(crate) fn run<T, E>(
        &self,
        mut test: impl FnMut(&P) -> Result<bool, E>,
        mut hit: impl FnMut(&P, &R) -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let mut i = 0;
        while let Some(op) = self.ops.get(i) {
            match op {
                Op::Match(p, r) => {
                    if let Some(found) = hit(p, r)? {
                        return Ok(Some(found));
                    }
                }
                Op::If(p, endif) => {
                    if !test(p)? {
                        match endif {
                            Some(end) => i = *end,
                            None => return Ok(None),
                        }
                    }
                }
                Op::Endif => {}
            }
            i += 1;
        }
        Ok(None)
    }
}

/// Splits `if`/`endif` keywords off a rule line (case-insensitive, as Postfix): returns
/// `Some(("if", rest))`, `Some(("endif", rest))` or `None` for an ordinary rule.
pub(crate) fn keyword(line: &str) -> Option<(&'static str, &str)> {
    let word_end = line
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(line.len());
    let word = &line[..word_end];
    if word.eq_ignore_ascii_case("if") {
        Some(("if", &line[word_end..]))
    } else if word.eq_ignore_ascii_case("endif") {
        Some(("endif", &line[word_end..]))
    } else {
        None
    }
}
