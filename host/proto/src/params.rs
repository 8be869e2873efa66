//! ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2 `esmtp-param`).
//!
//! MAIL: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531),
//! RET and ENVID (RFC 3461), AUTH (RFC 4954 §5).
//! RCPT: NOTIFY and ORCPT (RFC 3461).
//!
//! Keywords and enumerated values are case-insensitive. Whether the server
//! actually offers an extension (e.g. BODY=BINARYMIME needs CHUNKING,
//! RFC 3030 §3) is for the caller to decide; this module only checks syntax.

use crate::reply::Reply;
use crate::xtext;

/// MAIL FROM parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 SIZE= (declared message size in octets).
    pub size: Option<u64>,
    /// BODY=7BIT|8BITMIME|BINARYMIME (RFC 6152, RFC 3030).
    pub body: Option<Body>,
    /// RFC 6531 SMTPUTF8 (keyword without value).
    pub smtputf8: bool,
    /// RFC 3461 RET=FULL|HDRS.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID=, decoded from xtext.
    pub envid: Option<String>,
    /// RFC 4954 AUTH=, decoded from xtext; the literal `<>` is kept as `<>`.
    pub auth: Option<String>,
}

/// BODY= value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `7BIT`
    SevenBit,
    /// `8BITMIME` (RFC 6152)
    EightBitMime,
    /// `BINARYMIME` (RFC 3030; only valid with BDAT)
    BinaryMime,
}

/// RFC 3461 §4.3 RET= value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Return the full message in a DSN.
    Full,
    /// Return only the headers.
    Hdrs,
}

/// RFC 3461 NOTIFY: NEVER, or any of SUCCESS,FAILURE,DELAY.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// `NEVER`: no DSN at all. Never combined with the others.
    pub never: bool,
    /// `SUCCESS`
    pub success: bool,
    /// `FAILURE`
    pub failure: bool,
    /// `DELAY`
    pub delay: bool,
}

impl Notify {
    /// Parses a NOTIFY value (RFC 3461 §4.1): a comma-separated list,
    /// case-insensitive. `NEVER` cannot be combined with other keywords;
    /// empty items and unknown keywords are rejected. Repeated keywords are
    /// tolerated.
    pub fn parse(s: &str) -> Option<Notify> {
        let mut n = Notify::default();
        let mut count = 0;
        for item in s.split(',') {
            count += 1;
            if item.eq_ignore_ascii_case("NEVER") {
                n.never = true;
            } else if item.eq_ignore_ascii_case("SUCCESS") {
                n.success = true;
            } else if item.eq_ignore_ascii_case("FAILURE") {
                n.failure = true;
            } else if item.eq_ignore_ascii_case("DELAY") {
                n.delay = true;
            } else {
                return None;
            }
        }
        if n.never && count > 1 {
            return None;
        }
        Some(n)
    }

    /// The NOTIFY in force for a recipient: the explicit value, or when
    /// NOTIFY is absent the RFC 3461 §4.1 / Postfix default of FAILURE and
    /// DELAY.
    pub fn effective(explicit: Option<Notify>) -> Notify {
        explicit.unwrap_or(Notify {
            never: false,
            success: false,
            failure: true,
            delay: true,
        })
    }

    /// Wire form, e.g. `"SUCCESS,FAILURE"`. A value with nothing set means
    /// "no notifications" and is written as `"NEVER"`.
    pub fn to_param(&self) -> String {
        let mut parts = Vec::new();
        if !self.never {
            if self.success {
                parts.push("SUCCESS");
            }
            if self.failure {
                parts.push("FAILURE");
            }
            if self.delay {
                parts.push("DELAY");
            }
        }
        if parts.is_empty() {
            return "NEVER".to_string();
        }
        parts.join(",")
    }
}

/// RCPT TO parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// RFC 3461 NOTIFY=; `None` when absent (see [`Notify::effective`]).
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT as (addr-type, decoded address), e.g. ("rfc822", "a@b").
    /// The addr-type is lower-cased.
    pub orcpt: Option<(String, String)>,
}

/// A bad ESMTP parameter. [`ParamError::reply`] gives the SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Keyword not supported with this command (RFC 5321 §4.1.1.11: 555).
    #[error("unsupported option: {0}")]
    Unsupported(String),
    /// The same keyword given twice.
    #[error("duplicate {0} parameter")]
    Duplicate(&'static str),
    /// SIZE= missing or not 1*20DIGIT fitting in 64 bits (RFC 1870 §3).
    #[error("bad SIZE parameter")]
    BadSize,
    /// BODY= not one of 7BIT, 8BITMIME, BINARYMIME.
    #[error("bad BODY parameter")]
    BadBody,
    /// SMTPUTF8 given a value.
    #[error("bad SMTPUTF8 parameter")]
    BadSmtputf8,
    /// RET= not FULL or HDRS.
    #[error("bad RET parameter")]
    BadRet,
    /// ENVID= empty, bad xtext, or decodes to control characters.
    #[error("bad ENVID parameter")]
    BadEnvid,
    /// AUTH= empty, bad xtext, or decodes to control characters.
    #[error("bad AUTH parameter")]
    BadAuth,
    /// NOTIFY= not a valid list.
    #[error("bad NOTIFY parameter")]
    BadNotify,
    /// ORCPT= not `addr-type;xtext`.
    #[error("bad ORCPT parameter")]
    BadOrcpt,
}

impl ParamError {
    /// The SMTP reply for this error (Postfix wording where it has one).
    pub fn reply(&self) -> Reply {
        match self {
            ParamError::Unsupported(name) => {
                Reply::new(555, "5.5.4", format!("Unsupported option: {name}"))
            }
            ParamError::Duplicate(name) => {
                Reply::new(501, "5.5.4", format!("Duplicate {name} parameter"))
            }
            ParamError::BadSize => Reply::new(501, "5.5.4", "Bad message size syntax"),
            ParamError::BadBody => Reply::new(501, "5.5.4", "Bad BODY parameter syntax"),
            ParamError::BadSmtputf8 => Reply::new(501, "5.5.4", "Bad SMTPUTF8 parameter syntax"),
            ParamError::BadRet => Reply::new(501, "5.5.4", "Bad RET parameter syntax"),
            ParamError::BadEnvid => Reply::new(501, "5.5.4", "Bad ENVID parameter syntax"),
            ParamError::BadAuth => Reply::new(501, "5.5.4", "Bad AUTH parameter syntax"),
            ParamError::BadNotify => Reply::new(501, "5.5.4", "Bad NOTIFY parameter syntax"),
            ParamError::BadOrcpt => Reply::new(501, "5.5.4", "Bad ORCPT parameter syntax"),
        }
    }
}

/// Longest keyword echoed back in "Unsupported option:"; hostile clients
/// should not get to make us send kilobytes back.
const MAX_ECHO: usize = 64;

fn unsupported(keyword: &str) -> ParamError {
    let mut end = keyword.len().min(MAX_ECHO);
    while !keyword.is_char_boundary(end) {
        end -= 1;
    }
    ParamError::Unsupported(keyword[..end].to_string())
}

/// Splits `KEYWORD=value` (RFC 5321 §4.1.2 esmtp-param).
fn split_param(token: &str) -> (&str, Option<&str>) {
    match token.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (token, None),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::Duplicate(name));
    }
    *slot = Some(value);
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl MailParams {
    /// Parses the parameters after the MAIL FROM path, separated by spaces
    /// or tabs.
    pub fn parse(args: &str) -> Result<MailParams, ParamError> {
        let mut p = MailParams::default();
        for token in args.split([' ', '\t']).filter(|t| !t.is_empty()) {
            let (key, value) = split_param(token);
            if key.eq_ignore_ascii_case("SIZE") {
                // RFC 1870 §3: size-value ::= 1*20DIGIT
                let v = value
                    .filter(|v| {
                        !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(ParamError::BadSize)?;
                set_once(&mut p.size, v, "SIZE")?;
            } else if key.eq_ignore_ascii_case("BODY") {
                let v = value.ok_or(ParamError::BadBody)?;
                let body = if v.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else if v.eq_ignore_ascii_case("BINARYMIME") {
                    Body::BinaryMime
                } else {
                    return Err(ParamError::BadBody);
                };
                set_once(&mut p.body, body, "BODY")?;
            } else if key.eq_ignore_ascii_case("SMTPUTF8") {
                // RFC 6531 §3.4: the parameter has no value.
                if value.is_some() {
                    return Err(ParamError::BadSmtputf8);
                }
                if p.smtputf8 {
                    return Err(ParamError::Duplicate("SMTPUTF8"));
                }
                p.smtputf8 = true;
            } else if key.eq_ignore_ascii_case("RET") {
                let v = value.ok_or(ParamError::BadRet)?;
                let ret = if v.eq_ignore_ascii_case("FULL") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case("HDRS") {
                    Ret::Hdrs
                } else {
                    return Err(ParamError::BadRet);
                };
                set_once(&mut p.ret, ret, "RET")?;
            } else if key.eq_ignore_ascii_case("ENVID") {
                // RFC 3461 §4.4: ENVID=xtext. Decoded control characters
                // would end up in DSN headers, so they are refused.
                let v = value
                    .filter(|v| !v.is_empty())
                    .and_then(xtext::decode)
                    .filter(|d| !has_control(d))
                    .ok_or(ParamError::BadEnvid)?;
                set_once(&mut p.envid, v, "ENVID")?;
            } else if key.eq_ignore_ascii_case("AUTH") {
                // RFC 4954 §5: AUTH=<mailbox as xtext> or AUTH=<>.
                let v = match value {
                    Some("<>") => "<>".to_string(),
                    Some(v) if !v.is_empty() => xtext::decode(v)
                        .filter(|d| !d.is_empty() && !has_control(d))
                        .ok_or(ParamError::BadAuth)?,
                    _ => return Err(ParamError::BadAuth),
                };
                set_once(&mut p.auth, v, "AUTH")?;
            } else {
                return Err(unsupported(key));
            }
        }
        Ok(p)
    }

    /// Wire form of the parameters, for an SMTP client: e.g.
    /// `" SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=x+2By"` (leading space
    /// included when non-empty, so it can be appended to `MAIL FROM:<...>`).
    pub fn to_wire(&self) -> String {
        let mut s = String::new();
        if let Some(size) = self.size {
            s.push_str(&format!(" SIZE={size}"));
        }
        if let Some(body) = self.body {
            s.push_str(match body {
                Body::SevenBit => " BODY=7BIT",
                Body::EightBitMime => " BODY=8BITMIME",
                Body::BinaryMime => " BODY=BINARYMIME",
            });
        }
        if self.smtputf8 {
            s.push_str(" SMTPUTF8");
        }
        if let Some(ret) = self.ret {
            s.push_str(match ret {
                Ret::Full => " RET=FULL",
                Ret::Hdrs => " RET=HDRS",
            });
        }
        if let Some(envid) = &self.envid {
            s.push_str(&format!(" ENVID={}", xtext::encode(envid)));
        }
        if let Some(auth) = &self.auth {
            if auth == "<>" {
                s.push_str(" AUTH=<>");
            } else {
                s.push_str(&format!(" AUTH={}", xtext::encode(auth)));
            }
        }
        s
    }
}

impl RcptParams {
    /// Parses the parameters after the RCPT TO path. `smtputf8` says the
    /// transaction uses SMTPUTF8, which allows raw UTF-8 in an ORCPT of
    /// addr-type `utf-8` (RFC 6533 §3).
    pub fn parse(args: &str, smtputf8: bool) -> Result<RcptParams, ParamError> {
        let mut p = RcptParams::default();
        for token in args.split([' ', '\t']).filter(|t| !t.is_empty()) {
            let (key, value) = split_param(token);
            if key.eq_ignore_ascii_case("NOTIFY") {
                let n = value.and_then(Notify::parse).ok_or(ParamError::BadNotify)?;
                set_once(&mut p.notify, n, "NOTIFY")?;
            } else if key.eq_ignore_ascii_case("ORCPT") {
                let v = value
                    .and_then(|v| parse_orcpt(v, smtputf8))
                    .ok_or(ParamError::BadOrcpt)?;
                set_once(&mut p.orcpt, v, "ORCPT")?;
            } else {
                return Err(unsupported(key));
            }
        }
        Ok(p)
    }

    /// Wire form for an SMTP client, with a leading space when non-empty:
    /// `" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@example.com"`.
    pub fn to_wire(&self) -> String {
        let mut s = String::new();
        if let Some(n) = self.notify {
            s.push_str(&format!(" NOTIFY={}", n.to_param()));
        }
        if let Some((kind, addr)) = &self.orcpt {
            s.push_str(&format!(" ORCPT={kind};{}", xtext::encode(addr)));
        }
        s
    }
}

/// RFC 3461 §4.2: `ORCPT=addr-type ";" xtext`, addr-type an atom.
fn parse_orcpt(v: &str, smtputf8: bool) -> Option<(String, String)> {
    let (kind, addr) = v.split_once(';')?;
    let atom_ok = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b));
    if !atom_ok || addr.is_empty() {
        return None;
    }
    let kind = kind.to_ascii_lowercase();
    let allow_utf8 = smtputf8 && kind == "utf-8";
    let addr = xtext::decode_with(addr, allow_utf8)?;
    if addr.is_empty() || has_control(&addr) {
        return None;
    }
    Some((kind, addr))
}

#[cfg(test)]
mod tests;
