//! SMTP AUTH (RFC 4954) back ends for smtpd: the built-in passwd-file verifier and a client of
//! Dovecot's auth protocol.
//!
//! # Layout
//! smtpd (`smtpd/auth.rs`) runs the SASL exchange itself (PLAIN and LOGIN both come down to a
//! user name and a password) and asks an [`Authenticator`] whether they are right. The back end
//! is made once per configuration epoch ([`Sasl::new`], hung on `smtpd::Settings`):
//! - `passwd.rs`: `smtpd_sasl_type = passwd-file`, a `user:hash` file, re-read when it changes;
//! - `dovecot.rs`: `smtpd_sasl_type = dovecot`, Dovecot's auth socket;
//! - `rate.rs`: `smtpd_client_auth_rate_limit`, shared by all sessions of a service.
//!
//! Passwords live only in [`Credentials`], whose `Debug` hides them; nothing here logs one.

mod dovecot;
mod passwd;
mod rate;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use postern_config::{Config, SaslType};

pub use dovecot::DovecotAuth;
pub use passwd::{hash_argon2id, PasswdFile};
pub use rate::AuthRate;

/// The reply text of every refused login (Cyrus SASL's `SASL_BADAUTH` text, which Postfix
/// shows in `535 5.7.8 Error: authentication failed: …`): the client is not told whether the
/// name or the password was wrong.
pub const FAILURE_TEXT: &str = "authentication failure";

/// A successful AUTH: who logged in and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The SASL login name (after `smtpd_sasl_local_domain` is applied).
    pub username: String,
    /// The mechanism used (`PLAIN`, `LOGIN`).
    pub method: String,
}

/// What the client presented. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// PLAIN's authorization identity; empty when the client asked for none (RFC 4616 §2).
    pub authzid: String,
    /// The login name as the client sent it, qualified with `smtpd_sasl_local_domain`.
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// About the session asking, for back ends that pass it on (Dovecot's `rip`, `secured`).
#[derive(Clone, Debug)]
pub struct AuthContext {
    /// The mechanism the client used (becomes [`Login::method`]).
    pub method: String,
    pub client_addr: IpAddr,
    pub client_port: u16,
    /// The session is encrypted.
    pub secured: bool,
}

/// A back end's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResult {
    Ok(Login),
    /// Wrong name or password (the text is for the log only, never for the client).
    Failed(String),
    /// The back end could not decide (`454 4.7.0`, RFC 4954 §6): the client may try later.
    TempFail(String),
}

/// The future a back end returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>>;

/// A SASL back end: checks a user name and password.
pub trait Authenticator: Send + Sync + fmt::Debug {
    fn verify<'a>(&'a self, creds: &'a Credentials, ctx: &'a AuthContext) -> AuthFuture<'a>;
}

/// smtpd's AUTH back end for one configuration epoch (the AUTH rate table is process-wide,
/// see `rate.rs`).
#[derive(Clone, Debug)]
pub struct Sasl {
    backend: Option<Arc<dyn Authenticator>>,
}

impl Sasl {
    /// Makes the back end `smtpd_sasl_type` names when `smtpd_sasl_auth_enable = yes`.
    pub fn new(cfg: &Config) -> Sasl {
        if !cfg.sasl.auth_enable || cfg.sasl.path.is_empty() {
            return Sasl { backend: None };
        }
        let backend: Arc<dyn Authenticator> = match cfg.sasl.sasl_type {
            SaslType::PasswdFile => Arc::new(PasswdFile::new(resolve(cfg, &cfg.sasl.path))),
            SaslType::Dovecot => Arc::new(DovecotAuth::new(dovecot_target(cfg, &cfg.sasl.path))),
        };
        Sasl {
            backend: Some(backend),
        }
    }

    /// The back end, when AUTH is enabled.
    pub fn backend(&self) -> Option<&Arc<dyn Authenticator>> {
        self.backend.as_ref()
    }
}

/// Relative paths are relative to `queue_directory`, as Postfix resolves `smtpd_sasl_path`
/// (`private/auth` is the usual Dovecot socket in Postfix's queue directory).
fn resolve(cfg: &Config, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cfg.queue_directory.join(p)
    }
}

/// Where Dovecot's auth service listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    /// `host:port`.
    Inet(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Inet(a) => write!(f, "inet:{a}"),
        }
    }
}

fn dovecot_target(cfg: &Config, path: &str) -> Target {
    if let Some(addr) = path.strip_prefix("inet:") {
        return Target::Inet(addr.to_string());
    }
    let path = path.strip_prefix("unix:").unwrap_or(path);
    Target::Unix(resolve(cfg, path))
}

/// `smtpd_sasl_local_domain`: a bare login name is taken to be in this realm.
pub fn qualify(username: &str, local_domain: &str) -> String {
    if local_domain.is_empty() || username.contains('@') {
        username.to_string()
    } else {
        format!("{username}@{local_domain}")
    }
}

pub use crate::log::printable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            authzid: String::new(),
            username: "alice".into(),
            password: "s3cret-pw".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }

    #[test]
    fn local_domain_qualifies_bare_names_only() {
        assert_eq!(qualify("bob", ""), "bob");
        assert_eq!(qualify("bob", "example.org"), "bob@example.org");
        assert_eq!(qualify("bob@example.net", "example.org"), "bob@example.net");
    }
}
