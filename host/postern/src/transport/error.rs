//! error(8): fail every recipient with a fixed text.
//!
//! The next hop is the text, optionally starting with an RFC 3463 code
//! (`error:5.7.1 relaying disabled`). Without a code the status is `5.0.0`, Postfix's default for
//! error(8). A `4.x.x` code defers instead (Postfix's retry(8) behaviour) so an administrator can
//! park mail without losing it.

use postern_proto::EnhancedCode;

use super::Outcome;

/// Reports a permanent (or, with a `4.x.x` code, temporary) failure for one recipient.
pub fn deliver(nexthop: &str) -> Outcome {
    let text = nexthop.trim();
    let (code, text) = match text.split_once(' ') {
        Some((first, rest)) => match EnhancedCode::parse(first) {
            Some(code) => (Some(code), rest.trim()),
            None => (None, text),
        },
        None => (EnhancedCode::parse(text), text),
    };
    let text = if text.is_empty() || code.is_some_and(|c| c.to_string() == text) {
        "mail for this destination is not accepted (error transport)"
    } else {
        text
    };
    match code {
        Some(c) if c.class == 4 => Outcome::defer(c, "none", text),
        Some(c) if c.class == 5 => Outcome::bounce(c, "none", text),
        _ => Outcome::bounce(EnhancedCode::new(5, 0, 0), "none", text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bounces_with_given_text_and_code() {
        let o = deliver("user has moved");
        assert!(o.is_bounced());
        assert_eq!(o.status.to_string(), "5.0.0");
        assert_eq!(o.text, "user has moved");

        let o = deliver("5.1.6 user has moved");
        assert_eq!(o.status.to_string(), "5.1.6");
        assert_eq!(o.text, "user has moved");

        let o = deliver("4.7.0 try later");
        assert!(o.is_deferred());

        let o = deliver("");
        assert!(o.is_bounced());
        assert!(!o.text.is_empty());
    }
}
