//! RFC 3461 §4 xtext, used by ENVID=, ORCPT= and (RFC 4954 §5) AUTH=.
//!
//! ```text
//! xtext   = *( xchar / hexchar )
//! xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive,
//!           except for "+" and "="
//! hexchar = ASCII "+" immediately followed by two upper case
//!           hexadecimal digits
//! ```

/// Decodes xtext. Returns `None` for characters outside `xchar`, a `+` not
/// followed by two hex digits, or a result that is not valid UTF-8.
///
/// Lower-case hex digits after `+` are accepted (RFC 3461 requires upper
/// case from senders; being liberal here costs nothing).
pub fn decode(s: &str) -> Option<String> {
    decode_with(s, false)
}

/// Like [`decode`], but also passes through raw non-ASCII UTF-8 characters,
/// as RFC 6533 §3 allows in `utf-8-addr-unitext` (ORCPT=utf-8;...).
pub(crate) fn decode_with(s: &str, allow_utf8: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            b'=' => return None,
            33..=126 => out.push(b),
            0x80.. if allow_utf8 => out.push(b),
            _ => return None,
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Encodes `s` as xtext: every byte outside 33..=126, and `+` and `=`,
/// becomes `+XX` with upper-case hex (UTF-8 is encoded byte by byte).
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'+' | b'=' => {}
            33..=126 => {
                out.push(char::from(b));
                continue;
            }
            _ => {}
        }
        out.push('+');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rfc3461_examples() {
        assert_eq!(decode("QQ314159").as_deref(), Some("QQ314159"));
        assert_eq!(
            decode("a+2Bb@example.com").as_deref(),
            Some("a+b@example.com")
        );
        assert_eq!(decode("x+3Dy").as_deref(), Some("x=y"));
        assert_eq!(decode("+20").as_deref(), Some(" "));
        assert_eq!(decode("").as_deref(), Some(""));
    }

    #[test]
    fn accepts_lower_case_hex() {
        assert_eq!(decode("a+2bb").as_deref(), Some("a+b"));
        assert_eq!(decode("+c3+a9").as_deref(), Some("é"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "a+", "a+2", "a+G0", "a+0G", "a b", "a=b", "a\tb", "\u{e9}", "+FF",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decodes_multibyte_utf8_from_hex() {
        assert_eq!(decode("caf+C3+A9").as_deref(), Some("café"));
        assert_eq!(decode("+C3").as_deref(), None); // truncated UTF-8
    }

    #[test]
    fn utf8_passthrough_only_when_allowed() {
        assert_eq!(decode_with("jos\u{e9}@x", true).as_deref(), Some("josé@x"));
        assert_eq!(decode_with("jos\u{e9}@x", false), None);
        assert_eq!(decode_with("a b", true), None);
    }

    #[test]
    fn encode_escapes_specials_and_round_trips() {
        assert_eq!(encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(encode("café"), "caf+C3+A9");
        assert_eq!(encode("\r\n"), "+0D+0A");
        for s in [
            "",
            "plain@example.com",
            "+=+=",
            "tab\there",
            "日本語",
            "~!\u{7f}",
        ] {
            let e = encode(s);
            assert!(e.bytes().all(|b| (33..=126).contains(&b) && b != b'='));
            assert_eq!(decode(&e).as_deref(), Some(s), "{s:?}");
        }
    }
}
