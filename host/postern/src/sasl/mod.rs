//! SMTP AUTH (RFC 4954) back ends for smtpd: the built-in passwd-file verifier and a client of
//! Dovecot's auth protocol.

/// A successful AUTH: who logged in and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The SASL login name (after `smtpd_sasl_local_domain` is applied).
    pub username: String,
    /// The mechanism used (`PLAIN`, `LOGIN`).
    pub method: String,
}
