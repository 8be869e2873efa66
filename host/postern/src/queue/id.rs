//! Queue IDs: unique, sortable by arrival, safe as file names.
//!
//! Like Postfix's long queue IDs (`enable_long_queue_ids = yes`) the ID encodes the arrival time,
//! so `ls` and `postern queue list` show mail oldest first. Layout: 11 base-32 digits of
//! microseconds since the epoch, then 5 digits mixing the process ID with a per-process counter
//! so that the daemon and concurrent `postern sendmail` processes never collide.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Digits in ascending ASCII order so that string order equals numeric order; no vowels to avoid
/// accidental words (as in Postfix).
const DIGITS: &[u8; 32] = b"0123456789BCDFGHJKLMNPQRSTVWXYZb";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A queue file's name and the key of every log line about that message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

impl QueueId {
    /// A fresh ID; strictly increasing within one process.
    pub fn generate() -> QueueId {
        let micros = crate::time::now_micros();
        let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tail = ((u64::from(crate::log::pid()) & 0x3ff) << 15) | (seq & 0x7fff);
        let mut s = String::with_capacity(16);
        push_base32(&mut s, micros, 11);
        push_base32(&mut s, tail, 5);
        QueueId(s)
    }

    /// Accepts a name found in a spool directory or typed by an admin. Only names Postern could
    /// have generated are accepted, so a stray file or a path like `../x` is never treated as mail.
    pub fn parse(s: &str) -> Option<QueueId> {
        let ok = s.len() == 16 && s.bytes().all(|b| DIGITS.contains(&b));
        ok.then(|| QueueId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Arrival time encoded in the ID (microseconds since the epoch).
    pub fn micros(&self) -> u64 {
        self.0.bytes().take(11).fold(0u64, |acc, b| {
            let d = DIGITS.iter().position(|&x| x == b).unwrap_or(0) as u64;
            (acc << 5) | d
        })
    }
}

fn push_base32(s: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let d = ((value >> (5 * i)) & 31) as usize;
        s.push(DIGITS[d] as char);
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_round_trip() {
        let ids: Vec<QueueId> = (0..2000).map(|_| QueueId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        for id in &ids {
            assert_eq!(QueueId::parse(id.as_str()).as_ref(), Some(id));
        }
        let micros = ids[0].micros();
        assert!(micros.abs_diff(crate::time::now_micros()) < 60_000_000);
    }

    #[test]
    fn parse_refuses_foreign_names() {
        assert!(QueueId::parse("../etc/passwd").is_none());
        assert!(QueueId::parse(".tmp").is_none());
        assert!(QueueId::parse("0123456789BCDFGa").is_none());
    }
}
