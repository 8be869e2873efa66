//! Restrictions about the SASL login and the session's encryption (Postfix smtpd_check.c
//! `reject_auth_sender_login_mismatch`, `reject_unauth_sender_login_mismatch`,
//! `reject_plaintext_session`).
//!
//! `smtpd_sender_login_maps` says which login names own a sender address (virtual(5) search
//! order: `user+ext@domain`, `user@domain`, `user` for local domains, `@domain`; the value is
//! a list of login names separated by commas or spaces). As in Postfix these checks act only
//! when `smtpd_sasl_auth_enable = yes` and never on the null sender.

use postern_config::Config;
use postern_maps::{search, Tables};
use postern_proto::Reply;

use super::eval::{lookup_failure, server_error};
use super::{tables, Decision, Facts, Policy};

/// Which of Postfix's four sender/login checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginCheck {
    /// `reject_sender_login_mismatch`: a logged-in client must own the sender (unlisted
    /// senders included); a client that is not logged in may not use a listed sender.
    Any,
    /// `reject_authenticated_sender_login_mismatch`: only the first half.
    Authenticated,
    /// `reject_known_sender_login_mismatch`: like `Any`, but a logged-in client may use
    /// senders the table does not list.
    Known,
    /// `reject_unauthenticated_sender_login_mismatch`: only the second half.
    Unauthenticated,
}

/// `smtpd_sender_login_maps`, opened once per configuration epoch.
#[derive(Clone, Debug)]
pub struct LoginMaps {
    /// `smtpd_sasl_auth_enable`.
    enabled: bool,
    /// `None`: the parameter is empty; `Err`: a table could not be opened.
    tables: Result<Option<Tables>, String>,
}

impl LoginMaps {
    pub fn new(cfg: &Config) -> LoginMaps {
        LoginMaps {
            enabled: cfg.sasl.auth_enable,
            tables: tables::open_param("smtpd_sender_login_maps", &cfg.sasl.sender_login_maps),
        }
    }

    pub fn is_stale(&self) -> bool {
        matches!(&self.tables, Ok(Some(t)) if t.is_stale())
    }
}

/// The owners listed for `sender`, `Ok(None)` when it is not listed.
fn owners(p: &Policy, tables: &Tables, sender: &str) -> Result<Option<String>, Decision> {
    let dest = p.destinations();
    let is_local = |d: &str| dest.is_local_domain(d);
    match search::virtual_alias(tables, sender, p.maps.address_options(), &is_local) {
        Ok(found) => Ok(found.map(|f| f.value)),
        Err(e) => Err(lookup_failure(sender, &e)),
    }
}

/// One of the four sender/login checks; `Ok(Some(reply))` is a refusal.
pub fn sender_login_mismatch(
    p: &Policy,
    f: &Facts,
    check: LoginCheck,
) -> Result<Option<Reply>, Decision> {
    let maps = &p.logins;
    let Some(sender) = f.sender.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !maps.enabled {
        return Ok(None);
    }
    let tables = match &maps.tables {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(_) => return Err(server_error()),
    };
    let listed = owners(p, tables, sender)?;
    match &f.sasl_username {
        Some(user) if check != LoginCheck::Unauthenticated => {
            let owned = listed.as_deref().is_some_and(|names| {
                names
                    .split([',', ' ', '\t'])
                    .filter(|n| !n.is_empty())
                    .any(|n| n.eq_ignore_ascii_case(user))
            });
            if owned || (listed.is_none() && check == LoginCheck::Known) {
                return Ok(None);
            }
            Ok(Some(Reply::new(
                553,
                "5.7.1",
                format!("<{sender}>: Sender address rejected: not owned by user {user}"),
            )))
        }
        None if check != LoginCheck::Authenticated && listed.is_some() => Ok(Some(Reply::new(
            553,
            "5.7.1",
            format!("<{sender}>: Sender address rejected: not logged in"),
        ))),
        _ => Ok(None),
    }
}

/// `reject_plaintext_session`: `450 4.7.1 Session encryption is required` without TLS. The
/// code is Postfix's `plaintext_reject_code` default (450), which Postern does not make
/// configurable.
pub fn plaintext_session(f: &Facts) -> Option<Reply> {
    f.tls
        .is_none()
        .then(|| Reply::new(450, "4.7.1", "Session encryption is required"))
}

#[cfg(test)]
mod tests {
    use super::super::builtins::policy_attributes;
    use super::*;
    use crate::tls::TlsSummary;

    fn facts(tls: bool) -> Facts {
        let mut f = Facts::new("192.0.2.1".parse().expect("ip"));
        f.sasl_username = Some("alice".into());
        f.sasl_method = Some("PLAIN".into());
        f.sasl_sender = Some("alice@example.org".into());
        if tls {
            f.tls = Some(TlsSummary {
                protocol: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
                bits: 256,
                sni: None,
            });
        }
        f
    }

    #[test]
    fn plaintext_session_needs_tls() {
        let r = plaintext_session(&facts(false)).map(|r| r.to_string());
        assert_eq!(
            r.as_deref(),
            Some("450 4.7.1 Session encryption is required")
        );
        assert_eq!(plaintext_session(&facts(true)), None);
    }

    #[test]
    fn policy_requests_carry_login_and_encryption() {
        let attrs = policy_attributes(&facts(true));
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("sasl_method"), Some("PLAIN"));
        assert_eq!(get("sasl_username"), Some("alice"));
        assert_eq!(get("sasl_sender"), Some("alice@example.org"));
        assert_eq!(get("encryption_protocol"), Some("TLSv1.3"));
        assert_eq!(get("encryption_cipher"), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(get("encryption_keysize"), Some("256"));
        let plain = policy_attributes(&facts(false));
        assert!(plain.contains(&("encryption_protocol", String::new())));
        assert!(plain.contains(&("encryption_keysize", "0".to_string())));
    }

    #[test]
    fn plugins_see_login_and_tls() {
        let c = super::super::wasm::client_info(&facts(true));
        assert_eq!(c.sasl_method.as_deref(), Some("PLAIN"));
        assert_eq!(c.sasl_username.as_deref(), Some("alice"));
        let tls = c.tls.expect("tls");
        assert_eq!((tls.version.as_str(), tls.cipher_bits), ("TLSv1.3", 256));
    }
}
