//! Per-command statistics for the disconnect log line, in Postfix 3.x's format:
//! `disconnect from name[addr] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4` (successes, then
//! `/total` when some failed). Log analysers (pflogsumm, fail2ban filters) key on it.

/// Commands in Postfix's table order; the last entry counts unknown and malformed commands.
const COMMANDS: [&str; 15] = [
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
    "etrn", "quit", "help", "unknown",
];

/// The statistics name of a command line's verb (before parsing, so malformed commands count
/// against their verb as in Postfix).
pub fn stats_name(line: &[u8]) -> &'static str {
    let verb: Vec<u8> = line
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t'))
        .take_while(|b| !matches!(b, b' ' | b'\t'))
        .map(u8::to_ascii_lowercase)
        .collect();
    COMMANDS[..COMMANDS.len() - 1]
        .iter()
        .find(|c| c.as_bytes() == verb.as_slice())
        .copied()
        .unwrap_or("unknown")
}

pub fn verb_upper(verb: &str) -> &'static str {
    const UPPER: [&str; 15] = [
        "HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY",
        "ETRN", "QUIT", "HELP", "UNKNOWN",
    ];
    COMMANDS
        .iter()
        .position(|c| *c == verb)
        .map_or("UNKNOWN", |i| UPPER[i])
}

/// Per-command success/total counts for the disconnect line (Postfix 3.x
/// `disconnect from … ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`).
#[derive(Default)]
pub struct Stats {
    counts: [(u32, u32); COMMANDS.len()],
}

impl Stats {
    pub fn count(&mut self, name: &str, ok: bool) {
        if let Some(i) = COMMANDS.iter().position(|c| *c == name) {
            self.counts[i].1 += 1;
            if ok {
                self.counts[i].0 += 1;
            }
        }
    }

    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (mut ok, mut total) = (0, 0);
        for (name, &(s, t)) in COMMANDS.iter().zip(self.counts.iter()) {
            if t == 0 {
                continue;
            }
            out.push_str(&format!(" {name}={s}"));
            if s != t {
                out.push_str(&format!("/{t}"));
            }
            ok += s;
            total += t;
        }
        out.push_str(&format!(" commands={ok}"));
        if ok != total || total == 0 {
            out.push_str(&format!("/{total}"));
        }
        out
    }
}
