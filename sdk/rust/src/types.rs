//! The shared vocabulary (`postern:plugin/types`): one set of Rust types for every role, plus
//! validating constructors for [`EnhancedCode`] and [`Reply`].

pub use crate::bindings::postern::plugin::types::*;

impl EnhancedCode {
    /// Parses an RFC 3463 enhanced status code `class.subject.detail`, e.g. `"5.7.1"`.
    ///
    /// `class` must be 2, 4 or 5; `subject` and `detail` are 1–3 digits each (RFC 3463 §2).
    /// Anything else is a [`PluginError::Config`] that quotes the input, so a code read from
    /// the binding's config is reported where the admin can fix it.
    pub fn parse(s: &str) -> Result<Self, PluginError> {
        let bad = || {
            PluginError::Config(format!(
                "invalid enhanced status code {s:?}: want class.subject.detail, e.g. 5.7.1"
            ))
        };
        let mut parts = s.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number = |p: &str, max_len: usize| -> Option<u16> {
            if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let class = number(class, 1)
            .filter(|c| matches!(c, 2 | 4 | 5))
            .ok_or_else(bad)?;
        let subject = number(subject, 3).ok_or_else(bad)?;
        let detail = number(detail, 3).ok_or_else(bad)?;
        Ok(EnhancedCode {
            class: class as u8,
            subject,
            detail,
        })
    }
}

impl std::fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl Reply {
    /// A one-line reply `code enhanced text`, e.g. `Reply::new(550, "5.7.1", "no thanks")`.
    ///
    /// `code` must be an RFC 5321 §4.2 reply code (2xx–5xx, second digit 0–5); `enhanced` is
    /// parsed with [`EnhancedCode::parse`], or is `""` for no enhanced code. Its class must be
    /// the first digit of `code` (RFC 3463 §3: a 550 cannot carry 4.x.x). Violations are
    /// [`PluginError::Config`]. Add further lines with [`Reply::with_line`].
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Result<Self, PluginError> {
        if !(200..600).contains(&code) || (code / 10) % 10 > 5 {
            return Err(PluginError::Config(format!(
                "invalid SMTP reply code {code}: want 2xx-5xx (RFC 5321 section 4.2)"
            )));
        }
        let enhanced = if enhanced.is_empty() {
            None
        } else {
            let e = EnhancedCode::parse(enhanced)?;
            if u16::from(e.class) != code / 100 {
                return Err(PluginError::Config(format!(
                    "enhanced status code {e} does not match reply code {code}: the class must be {}",
                    code / 100
                )));
            }
            Some(e)
        };
        Ok(Reply {
            code,
            enhanced,
            text: vec![text.into()],
        })
    }

    /// Appends a line: the host sends a multi-line reply (`550-…` then `550 …`).
    #[must_use]
    pub fn with_line(mut self, text: impl Into<String>) -> Self {
        self.text.push(text.into());
        self
    }

    /// Checks that this reply's code is `class`xx, as `what` (a reject, a defer) requires.
    pub(crate) fn require_class(self, class: u16, what: &str) -> Result<Self, PluginError> {
        if self.code / 100 == class {
            Ok(self)
        } else {
            Err(PluginError::Config(format!(
                "a {what} needs a {class}xx reply code, not {}",
                self.code
            )))
        }
    }
}

impl Header {
    /// A header `name: value` (for PREPEND actions and filter edits).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error<T: std::fmt::Debug>(r: Result<T, PluginError>) -> String {
        match r {
            Err(PluginError::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn enhanced_codes_parse_per_rfc_3463() {
        let e = EnhancedCode::parse("5.7.1").unwrap();
        assert_eq!(
            e,
            EnhancedCode {
                class: 5,
                subject: 7,
                detail: 1
            }
        );
        assert_eq!(EnhancedCode::parse("4.7.999").unwrap().detail, 999);
        assert_eq!(e.to_string(), "5.7.1");
        for bad in [
            "", "5.7", "5.7.1.2", "3.0.0", "5.7.1000", "5..1", "5.7.x", " 5.7.1", "+5.7.1",
        ] {
            assert!(
                config_error(EnhancedCode::parse(bad)).contains("invalid enhanced status code"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_reply_and_its_enhanced_code_share_a_class() {
        let r = Reply::new(550, "5.7.1", "no").unwrap().with_line("really");
        assert_eq!(
            r.enhanced,
            Some(EnhancedCode {
                class: 5,
                subject: 7,
                detail: 1
            })
        );
        assert_eq!(r.text, ["no", "really"]);
        assert_eq!(Reply::new(250, "", "ok").unwrap().enhanced, None);
        assert!(config_error(Reply::new(550, "4.7.1", "x")).contains("class must be 5"));
        assert!(config_error(Reply::new(650, "5.7.1", "x")).contains("invalid SMTP reply code 650"));
        assert!(config_error(Reply::new(560, "5.7.1", "x")).contains("560"));
    }
}
