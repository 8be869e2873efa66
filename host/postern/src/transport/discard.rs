//! discard(8): pretend delivery succeeded.
//!
//! Used with `default_transport = discard` or `local_transport = discard:text` to drop mail on
//! purpose (test systems, sinks). The next hop, when given, is the text logged in place of
//! `discarded`; the recipient is reported as delivered (`2.0.0`), so no bounce is ever sent.

use super::Outcome;

/// Reports success for one recipient.
pub fn deliver(nexthop: &str) -> Outcome {
    let text = if nexthop.trim().is_empty() {
        "discarded"
    } else {
        nexthop.trim()
    };
    Outcome::sent("none", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discard_reports_success_with_text() {
        let o = deliver("");
        assert!(o.is_sent());
        assert_eq!(
            (o.status.to_string().as_str(), o.text.as_str()),
            ("2.0.0", "discarded")
        );
        assert_eq!(deliver("sink").text, "sink");
    }
}
