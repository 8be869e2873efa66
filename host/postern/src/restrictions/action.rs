//! access(5) actions: the right-hand side of an access table entry, and the action text a
//! policy service returns (SMTPD_POLICY_README: "the same actions as access(5)").
//!
//! Parsing is pure; what an action does to the evaluation lives in `eval.rs`.

use postern_proto::Reply;

/// One parsed access(5) action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `OK`, `RELAY`, or an all-digit value (Postfix's legacy "permit"): permit, stop this list.
    Ok,
    /// `DUNNO`: as if the key had not been found; the next element runs.
    Dunno,
    /// `REJECT [text]`: `access_map_reject_code` (554) and 5.7.1 unless the text starts with an
    /// enhanced code.
    Reject(String),
    /// `DEFER [text]`: `access_map_defer_code` (450) and 4.7.1.
    Defer(String),
    /// `4NN text` / `5NN text`: that exact code; 421 and 521 also end the session.
    Code(u16, String),
    /// `DEFER_IF_REJECT [text]`: a later rejection in this evaluation becomes `450 4.7.1`.
    DeferIfReject(String),
    /// `DEFER_IF_PERMIT [text]`: a permit at the end of this evaluation becomes `450 4.7.1`.
    DeferIfPermit(String),
    /// `HOLD [text]`: queue into hold/; evaluation goes on.
    Hold(String),
    /// `DISCARD [text]`: accept and drop the whole message; the request is permitted.
    Discard(String),
    /// `PREPEND header: value`.
    Prepend(String),
    /// `REDIRECT user@domain`.
    Redirect(String),
    /// `FILTER transport:destination`.
    Filter(String),
    /// `BCC user@domain`.
    Bcc(String),
    /// `WARN [text]`: log only.
    Warn(String),
    /// `INFO [text]`: log only.
    Info(String),
    /// Anything else: a restriction list (built-in names, class names, `check_*` with tables),
    /// evaluated in place of the action.
    Restrictions(String),
}

/// Parses one action value. Keywords are case-insensitive, as in Postfix.
pub fn parse_action(value: &str) -> Action {
    let value = value.trim();
    let (word, text) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], value[i..].trim()),
        None => (value, ""),
    };
    let text = text.to_string();
    let bytes = word.as_bytes();
    if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit) && matches!(bytes[0], b'4' | b'5') {
        if let Ok(code) = word.parse::<u16>() {
            return Action::Code(code, text);
        }
    }
    if !word.is_empty() && bytes.iter().all(u8::is_ascii_digit) && text.is_empty() {
        return Action::Ok;
    }
    match word.to_ascii_uppercase().as_str() {
        "OK" | "RELAY" => Action::Ok,
        "DUNNO" => Action::Dunno,
        "REJECT" => Action::Reject(text),
        "DEFER" => Action::Defer(text),
        "DEFER_IF_REJECT" => Action::DeferIfReject(text),
        "DEFER_IF_PERMIT" => Action::DeferIfPermit(text),
        "HOLD" => Action::Hold(text),
        "DISCARD" => Action::Discard(text),
        "PREPEND" => Action::Prepend(text),
        "REDIRECT" => Action::Redirect(text),
        "FILTER" => Action::Filter(text),
        "BCC" => Action::Bcc(text),
        "WARN" => Action::Warn(text),
        "INFO" => Action::Info(text),
        _ => Action::Restrictions(value.to_string()),
    }
}

/// `code enh <name>: class rejected: text`, where a text that starts with an enhanced status
/// code (`5.7.2 go away`) supplies it (Postfix `dsn_split` + `smtpd_dsn_fix`: the class digit
/// follows the reply code). An empty text is `default_text`.
pub fn refusal_reply(code: u16, name: &str, class: &str, text: &str, default_text: &str) -> Reply {
    let (enh, text) = split_enhanced(code, text);
    let text = if text.is_empty() { default_text } else { text };
    Reply::new(code, &enh, format!("<{name}>: {class} rejected: {text}"))
}

/// The enhanced code at the start of `text` (class forced to match `code`), or x.7.1.
pub fn split_enhanced(code: u16, text: &str) -> (String, &str) {
    let class = if code >= 500 { '5' } else { '4' };
    let (word, rest) = match text.find(' ') {
        Some(i) => (&text[..i], text[i + 1..].trim_start()),
        None => (text, ""),
    };
    let parts: Vec<&str> = word.split('.').collect();
    let is_dsn = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if is_dsn {
        (format!("{class}.{}.{}", parts[1], parts[2]), rest)
    } else {
        (format!("{class}.7.1"), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_codes() {
        assert_eq!(parse_action("OK"), Action::Ok);
        assert_eq!(parse_action("relay"), Action::Ok);
        assert_eq!(parse_action("1234"), Action::Ok);
        assert_eq!(parse_action("dunno"), Action::Dunno);
        assert_eq!(parse_action("REJECT"), Action::Reject(String::new()));
        assert_eq!(
            parse_action("REJECT  go away"),
            Action::Reject("go away".into())
        );
        assert_eq!(
            parse_action("450 4.7.0 later"),
            Action::Code(450, "4.7.0 later".into())
        );
        assert_eq!(
            parse_action("PREPEND X-Seen: yes"),
            Action::Prepend("X-Seen: yes".into())
        );
        assert_eq!(
            parse_action("permit_mynetworks reject"),
            Action::Restrictions("permit_mynetworks reject".into())
        );
        assert_eq!(
            parse_action("600 nope"),
            Action::Restrictions("600 nope".into())
        );
    }

    #[test]
    fn enhanced_codes_follow_the_reply_code() {
        let r = refusal_reply(554, "a@b", "Sender address", "", "Access denied");
        assert_eq!(
            r.to_string(),
            "554 5.7.1 <a@b>: Sender address rejected: Access denied"
        );
        let r = refusal_reply(450, "a@b", "Sender address", "5.1.8 bad domain", "x");
        assert_eq!(
            r.to_string(),
            "450 4.1.8 <a@b>: Sender address rejected: bad domain"
        );
    }
}
