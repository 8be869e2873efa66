//! DATA-phase decoding (RFC 5321 §4.1.1.4, §4.5.2) with SMTP-smuggling
//! defences (CVE-2023-51764 and relatives).
//!
//! The decoder is a streaming state machine: it is fed whatever chunks the
//! socket delivers, and chunk boundaries may fall anywhere, including between
//! CR and LF or inside the final `CRLF.CRLF`. Feeding the same bytes in any
//! split gives exactly the same content and the same end position.
//!
//! Line endings:
//! - CRLF always ends a line.
//! - A bare LF ends a line too (it is written out as CRLF), but under
//!   [`BareNewline::Reject`] and [`BareNewline::Normalize`] it can never take
//!   part in the end-of-data sequence, and under `Reject` it marks the
//!   message invalid.
//! - A bare CR never ends a line; it is kept as a literal byte (and marks
//!   the message invalid under `Reject`). So `\r.\r` is never an end of data.
//!
//! End of data is the line `.`:
//! - `Allow` (legacy, `smtpd_forbid_bare_newline = no`): `.` followed by LF
//!   or CRLF, at the start of the data or after any line ending. `\n.\n`,
//!   `\n.\r\n` and `\r\n.\n` all end the data.
//! - `Normalize` / `Reject`: only `.` + CRLF whose previous line also ended
//!   in CRLF (or which starts the data). This is the only sequence every
//!   RFC-conforming relay agrees on, so nothing can be smuggled past it.
//!
//! Dot-unstuffing (RFC 5321 §4.5.2): a line that starts with `.` and has
//! other characters loses that first `.`. A lone `.` line that does not end
//! the data (possible only under `Normalize`/`Reject`) is kept as `.`.

use crate::reply::Reply;

/// Postfix 3.9 `smtpd_forbid_bare_newline` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNewline {
    /// `reject` — a bare LF (LF not preceded by CR) or bare CR (CR not
    /// followed by LF) anywhere in the content makes the message invalid (the
    /// caller replies with an error after end-of-data, see
    /// [`bare_newline_reply`]). End of data requires `CRLF.CRLF`.
    Reject,
    /// `normalize` (also `yes`) — a line ending in bare LF is accepted and
    /// stored as if it ended in CRLF, but it can never take part in the
    /// end-of-data sequence: only a "." line that ends in CRLF AND whose
    /// previous line ended in CRLF ends the data. Bare CR stays a literal
    /// byte inside the line.
    Normalize,
    /// `no` — legacy: bare LF is accepted as a line ending everywhere,
    /// including "\n.\n" ending data. Vulnerable to SMTP smuggling.
    Allow,
}

impl BareNewline {
    /// Parses a `smtpd_forbid_bare_newline` value: `reject`, `normalize`,
    /// `yes` (= normalize, Postfix's compatibility alias) or `no`.
    /// Case-insensitive, surrounding whitespace ignored.
    pub fn parse(v: &str) -> Option<Self> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("reject") {
            Some(BareNewline::Reject)
        } else if v.eq_ignore_ascii_case("normalize") || v.eq_ignore_ascii_case("yes") {
            Some(BareNewline::Normalize)
        } else if v.eq_ignore_ascii_case("no") {
            Some(BareNewline::Allow)
        } else {
            None
        }
    }

    /// The canonical spelling (`reject`, `normalize` or `no`).
    pub fn as_str(self) -> &'static str {
        match self {
            BareNewline::Reject => "reject",
            BareNewline::Normalize => "normalize",
            BareNewline::Allow => "no",
        }
    }

    /// True when only `CRLF.CRLF` may end the data.
    fn strict_end(self) -> bool {
        !matches!(self, BareNewline::Allow)
    }
}

/// The reply for a message (or command) refused because of a bare newline
/// under [`BareNewline::Reject`]: Postfix's
/// `550 5.5.2 Error: bare <LF> received` (`smtpd_forbid_bare_newline_reject_code`
/// defaults to 550). Postfix disconnects after sending it; the caller should
/// do the same.
pub fn bare_newline_reply() -> Reply {
    Reply::new(550, "5.5.2", "Error: bare <LF> received")
}

/// Result of [`DataDecoder::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEvent {
    /// All input was consumed; the terminator has not been seen yet.
    NeedMore,
    /// The terminating `.` line was seen. `consumed` bytes of this call's
    /// input (including the terminator) belong to the message; the rest
    /// belongs to the next pipelined command.
    End {
        /// Bytes of the input used, up to and including the final LF.
        consumed: usize,
    },
}

/// Where the decoder is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line; nothing of it seen.
    LineStart,
    /// The line so far is a single `.` (held back: terminator or stuffing?).
    Dot,
    /// The line so far is `.` CR (held back: terminator or stuffed bare CR?).
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, the last byte was a CR (held back: CRLF or bare CR?).
    MiddleCr,
    /// The terminator has been seen.
    Done,
}

/// Streaming decoder for the DATA phase. See the module docs for the exact
/// rules.
#[derive(Clone, Debug)]
pub struct DataDecoder {
    policy: BareNewline,
    state: State,
    /// Whether the previous line ended in CRLF (true at the start: the DATA
    /// command line itself).
    prev_crlf: bool,
    line_len: usize,
    longest: usize,
    saw_bare: bool,
}

impl DataDecoder {
    /// A decoder positioned right after the `354` reply.
    pub fn new(policy: BareNewline) -> Self {
        DataDecoder {
            policy,
            state: State::LineStart,
            prev_crlf: true,
            line_len: 0,
            longest: 0,
            saw_bare: false,
        }
    }

    /// Consume bytes from `input`, appending the decoded content
    /// (dot-unstuffed, every line ending written as CRLF) to `out`. Returns
    /// `End { consumed }` when the terminating line "." has been seen;
    /// `consumed` counts the bytes of `input` used up to and including the
    /// terminator — the remainder belongs to the next pipelined command.
    /// Otherwise all input is consumed and `NeedMore` returned.
    ///
    /// The terminating ".\r\n" and the CRLF before it are part of the
    /// terminator in the RFC 5321 sense, but that CRLF also ends the last
    /// content line, so for input "a\r\n.\r\n" the content is "a\r\n".
    ///
    /// After `End`, further calls consume nothing and return
    /// `End { consumed: 0 }`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> DataEvent {
        if self.state == State::Done {
            return DataEvent::End { consumed: 0 };
        }
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Middle {
                // Fast path: copy a run of ordinary bytes in one go.
                let run = input[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                out.extend_from_slice(&input[i..i + run]);
                self.line_len += run;
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            if self.step(b, out) {
                return DataEvent::End { consumed: i };
            }
        }
        DataEvent::NeedMore
    }

    /// Processes one byte; returns true when it completed the terminator.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::LineStart => {
                if b == b'.' {
                    self.state = State::Dot;
                } else {
                    self.middle(b, out);
                }
            }
            State::Dot => match b {
                b'\r' => self.state = State::DotCr,
                b'\n' => {
                    // ".\n": a lone dot ended by a bare LF.
                    if self.policy == BareNewline::Allow {
                        return self.finish();
                    }
                    self.saw_bare_lf();
                    out.push(b'.');
                    self.line_len = 1;
                    self.end_line(false, out);
                }
                _ => {
                    // RFC 5321 §4.5.2: drop the leading dot, keep the rest.
                    self.state = State::Middle;
                    self.middle(b, out);
                }
            },
            State::DotCr => {
                if b == b'\n' {
                    // ".\r\n"
                    if !self.policy.strict_end() || self.prev_crlf {
                        return self.finish();
                    }
                    // Previous line ended in a bare LF: not a terminator
                    // (this is the "\n.\r\n" smuggling sequence).
                    out.push(b'.');
                    self.line_len = 1;
                    self.end_line(true, out);
                } else {
                    // ".\r" + more: stuffed line whose content starts with a
                    // bare CR. Drop the dot, keep the CR literally.
                    self.bare_cr(out);
                    self.state = State::Middle;
                    self.middle(b, out);
                }
            }
            State::Middle => self.middle(b, out),
            State::MiddleCr => {
                if b == b'\n' {
                    self.end_line(true, out);
                } else {
                    self.bare_cr(out);
                    self.state = State::Middle;
                    self.middle(b, out);
                }
            }
            State::Done => {}
        }
        false
    }

    /// Handles byte `b` inside a line (also the first byte of a line that
    /// does not start with a dot).
    fn middle(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' => self.state = State::MiddleCr,
            b'\n' => {
                self.saw_bare_lf();
                self.end_line(false, out);
            }
            _ => {
                out.push(b);
                self.line_len += 1;
                self.state = State::Middle;
            }
        }
    }

    /// A CR that turned out not to be followed by LF: literal content.
    fn bare_cr(&mut self, out: &mut Vec<u8>) {
        if self.policy == BareNewline::Reject {
            self.saw_bare = true;
        }
        out.push(b'\r');
        self.line_len += 1;
    }

    fn saw_bare_lf(&mut self) {
        if self.policy == BareNewline::Reject {
            self.saw_bare = true;
        }
    }

    /// Ends the current line; content line endings are always CRLF.
    fn end_line(&mut self, crlf: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.longest = self.longest.max(self.line_len);
        self.line_len = 0;
        self.prev_crlf = crlf;
        self.state = State::LineStart;
    }

    fn finish(&mut self) -> bool {
        self.state = State::Done;
        true
    }

    /// Set when a bare LF / bare CR was seen and the policy is Reject.
    pub fn saw_bare_newline(&self) -> bool {
        self.saw_bare
    }

    /// Length in bytes of the longest line seen (decoded: without its line
    /// ending and without a removed stuffing dot). A line still in progress
    /// counts too, so a client sending one endless line is visible here.
    pub fn longest_line(&self) -> usize {
        self.longest.max(self.line_len)
    }

    /// True once the terminator has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests;
