//! The TLS policy of one next hop: `smtp_tls_security_level`, overridden per destination by
//! `smtp_tls_policy_maps` (Postfix TLS_README "TLS policy table").
//!
//! The table is searched with the next hop as resolve.rs passes it (`example.com`,
//! `[mx.example.com]:587`), then, for a domain written with a port, the domain alone, then its
//! parents in `.example.com` form (Postfix's `parent_domain_matches_subdomains` style for this
//! table). The value is `level [match=name:name…] [protocols=…] [ciphers=…]`; `protocols` and
//! `ciphers` are accepted and ignored (rustls offers TLS 1.2 and 1.3 with safe suites only),
//! other attributes are ignored with a warning. A level Postern does not know defers the mail
//! with `4.7.5` and a message that names the table: sending in plaintext to a destination the
//! administrator wanted protected would be the wrong guess.

use std::sync::Arc;
use std::time::Duration;

use postern_config::{ClientTlsLevel, Config};
use postern_maps::search::{self, ParentStyle};
use postern_proto::EnhancedCode;

use super::nexthop::Nexthop;
use crate::cleanup::tables;
use crate::tls::client::{ClientTls, Name};
use crate::transport::Outcome;

/// What the client does about TLS with the servers of one next hop.
#[derive(Clone, Debug)]
pub struct Tls {
    pub level: ClientTlsLevel,
    /// `None` at level none, and at `may` when the TLS client could not be set up.
    pub client: Option<Arc<ClientTls>>,
    /// Names the certificate must match at `verify`/`secure`, keywords still unexpanded:
    /// `hostname` (the MX host), `nexthop`, `dot-nexthop`, or literal names.
    pub matches: Vec<String>,
    /// The next-hop domain or host, for `nexthop` and `dot-nexthop`.
    pub nexthop: String,
    /// `smtp_starttls_timeout`.
    pub timeout: Duration,
    /// `smtp_tls_loglevel`.
    pub loglevel: u32,
    /// `smtp_tls_servername`: empty (no SNI), `hostname`, `nexthop`, or a literal name.
    pub servername: String,
}

impl Tls {
    /// The SNI name to send to the server `host`, per `smtp_tls_servername`.
    pub fn sni(&self, host: &str) -> Option<String> {
        let name = match self.servername.as_str() {
            "" => return None,
            "hostname" => host,
            "nexthop" => self.nexthop.as_str(),
            other => other,
        };
        let name = name.trim_end_matches('.');
        // SNI carries host names only (RFC 6066 §3), never address literals.
        (!name.is_empty() && name.parse::<std::net::IpAddr>().is_err()).then(|| name.to_string())
    }
}

impl Default for Tls {
    fn default() -> Tls {
        Tls {
            level: ClientTlsLevel::None,
            client: None,
            matches: Vec::new(),
            nexthop: String::new(),
            servername: String::new(),
            timeout: Duration::from_secs(300),
            loglevel: 0,
        }
    }
}

impl Tls {
    /// The names for a connection to the MX host `host`.
    pub fn names(&self, host: &str) -> Vec<Name> {
        self.matches
            .iter()
            .filter_map(|m| match m.to_ascii_lowercase().as_str() {
                "hostname" => Name::parse(host),
                "nexthop" => Name::parse(&self.nexthop),
                "dot-nexthop" => Name::parse(&format!(".{}", self.nexthop)),
                _ => Name::parse(m),
            })
            .collect()
    }

    /// Whether the session must be encrypted (encrypt, verify, secure).
    pub fn required(&self) -> bool {
        self.level >= ClientTlsLevel::Encrypt
    }
}

/// One `smtp_tls_policy_maps` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub level: ClientTlsLevel,
    pub matches: Option<Vec<String>>,
    /// Attributes that were ignored, for a warning.
    pub ignored: Vec<String>,
}

/// Parses `level [attr=value…]`; `Err` is the unknown level.
pub fn parse_entry(value: &str) -> Result<Entry, String> {
    let mut words = value.split_ascii_whitespace();
    let level_word = words.next().unwrap_or("");
    let level = match ClientTlsLevel::parse(level_word) {
        Some(l) => l,
        None => return Err(level_word.to_string()),
    };
    let mut entry = Entry {
        level,
        matches: None,
        ignored: Vec::new(),
    };
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("match") => {
                entry.matches = Some(
                    v.split(':')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            Some((k, _)) if k.eq_ignore_ascii_case("protocols") => {}
            Some((k, _)) if k.eq_ignore_ascii_case("ciphers") => {}
            _ => entry.ignored.push(w.to_string()),
        }
    }
    Ok(entry)
}

/// The keys tried for `written` (the next hop as routed) in `smtp_tls_policy_maps`.
pub fn keys(written: &str, hop: &Nexthop) -> Vec<search::Probe> {
    let written = written.trim().to_ascii_lowercase();
    let mut probes = vec![search::Probe {
        key: written.clone(),
        scope: postern_maps::Scope::Full,
        extension: None,
    }];
    if hop.mx {
        for p in search::domain_probes(&hop.host, ParentStyle::DotParent) {
            if p.key != written {
                probes.push(p);
            }
        }
    }
    probes
}

/// The TLS plan for the next hop `written` (parsed as `hop`). `Err` is the outcome every
/// recipient gets: a table that cannot be read (4.3.0), a bad level (4.7.5), or mandatory TLS
/// when the TLS client cannot be set up (4.7.5).
pub fn plan(cfg: &Arc<Config>, written: &str, hop: &Nexthop) -> Result<Tls, Outcome> {
    let t = &cfg.smtp_tls;
    let mut level = t.security_level;
    let mut matches = None;
    if !t.policy_maps.is_empty() {
        let table = t.policy_maps.join(", ");
        let found = tables::open(&t.policy_maps)
            .and_then(|tables| search::find_probes(&tables, &keys(written, hop)));
        match found {
            Ok(Some(f)) => match parse_entry(&f.value) {
                Ok(e) => {
                    if !e.ignored.is_empty() {
                        crate::warn!(
                            "smtp",
                            "smtp_tls_policy_maps {table}: entry \"{}\": ignoring unknown \
                             attribute(s) {}",
                            f.key,
                            e.ignored.join(" ")
                        );
                    }
                    level = e.level;
                    matches = e.matches;
                }
                Err(bad) => {
                    let text = format!(
                        "invalid TLS security level \"{bad}\" for next hop \"{}\" in \
                         smtp_tls_policy_maps {table}",
                        f.key
                    );
                    crate::warn!("smtp", "{text}");
                    return Err(Outcome::defer(EnhancedCode::new(4, 7, 5), "none", text));
                }
            },
            Ok(None) => {}
            Err(e) => {
                let text = format!("smtp_tls_policy_maps lookup of {written}: {e}");
                crate::warn!("smtp", "{text}");
                return Err(Outcome::defer(EnhancedCode::new(4, 3, 0), "none", text));
            }
        }
    }
    let mut tls = Tls {
        level,
        client: None,
        matches: Vec::new(),
        nexthop: hop.host.clone(),
        timeout: t.starttls_timeout,
        loglevel: t.loglevel,
        servername: t.servername.trim().to_string(),
    };
    if level == ClientTlsLevel::None {
        return Ok(tls);
    }
    match crate::tls::client::for_config(cfg) {
        Ok(c) => tls.client = Some(c),
        // Opportunistic TLS that cannot be set up is no TLS (logged once per configuration).
        Err(_) if level == ClientTlsLevel::May => {
            tls.level = ClientTlsLevel::None;
            return Ok(tls);
        }
        Err(e) => {
            let text = format!("TLS is required, but the TLS client is not available: {e}");
            return Err(Outcome::defer(EnhancedCode::new(4, 7, 5), "none", text));
        }
    }
    tls.matches = match (matches, level) {
        (Some(m), _) => m,
        (None, ClientTlsLevel::Verify) => t.verify_cert_match.clone(),
        (None, ClientTlsLevel::Secure) => t.secure_cert_match.clone(),
        (None, _) => Vec::new(),
    };
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = parse_entry("secure match=.example.com:mx.example.net ciphers=high").expect("ok");
        assert_eq!(e.level, ClientTlsLevel::Secure);
        assert_eq!(
            e.matches,
            Some(vec![
                ".example.com".to_string(),
                "mx.example.net".to_string()
            ])
        );
        assert!(e.ignored.is_empty());
        let e = parse_entry("Encrypt tafile=x").expect("ok");
        assert_eq!(e.level, ClientTlsLevel::Encrypt);
        assert_eq!(e.ignored, vec!["tafile=x".to_string()]);
        assert_eq!(parse_entry("dane-only"), Err("dane-only".to_string()));
    }

    #[test]
    fn lookup_keys() {
        let hop = super::super::nexthop::parse("sub.example.com:2525").expect("hop");
        let k: Vec<String> = keys("Sub.Example.com:2525", &hop)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            k,
            [
                "sub.example.com:2525",
                "sub.example.com",
                ".example.com",
                ".com"
            ]
        );
        let hop = super::super::nexthop::parse("[mx.example.com]:587").expect("hop");
        let k: Vec<String> = keys("[mx.example.com]:587", &hop)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(k, ["[mx.example.com]:587"]);
    }

    #[test]
    fn names_expand_keywords() {
        let tls = Tls {
            matches: vec![
                "hostname".into(),
                "nexthop".into(),
                "dot-nexthop".into(),
                "Other.Example".into(),
            ],
            nexthop: "example.com".into(),
            ..Tls::default()
        };
        assert_eq!(
            tls.names("mx1.example.com"),
            vec![
                Name::Exact("mx1.example.com".into()),
                Name::Exact("example.com".into()),
                Name::Below("example.com".into()),
                Name::Exact("other.example".into()),
            ]
        );
    }
}
