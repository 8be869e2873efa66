//! Typed TLS, SASL and outbound-delivery parameters (issue 5): what smtpd needs for STARTTLS
//! and AUTH, and what the smtp/lmtp clients and their scheduling need. Kept apart from
//! `typed.rs` so each group reads as one struct.

use std::time::Duration;

use super::Builder;

/// `smtpd_tls_security_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerTlsLevel {
    /// No STARTTLS (Postfix's empty default).
    None,
    /// STARTTLS offered, not required.
    May,
    /// STARTTLS required before MAIL (and before AUTH): `530 5.7.0 Must issue a STARTTLS
    /// command first`.
    Encrypt,
}

/// `smtp_tls_security_level` (and the `security_level` of `smtp_tls_policy_maps` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientTlsLevel {
    /// Never use TLS.
    None,
    /// Opportunistic: STARTTLS when offered, no certificate check; a failed handshake falls
    /// back to plaintext on a new connection.
    May,
    /// Mandatory TLS, no certificate check.
    Encrypt,
    /// Mandatory TLS, the certificate must be trusted and match the MX host name.
    Verify,
    /// Mandatory TLS, the certificate must be trusted and match the next-hop domain.
    Secure,
}

impl ClientTlsLevel {
    /// Parses a level name as written in main.cf or a policy table.
    pub fn parse(s: &str) -> Option<ClientTlsLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "" | "none" => ClientTlsLevel::None,
            "may" => ClientTlsLevel::May,
            "encrypt" => ClientTlsLevel::Encrypt,
            "verify" => ClientTlsLevel::Verify,
            "secure" => ClientTlsLevel::Secure,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientTlsLevel::None => "none",
            ClientTlsLevel::May => "may",
            ClientTlsLevel::Encrypt => "encrypt",
            ClientTlsLevel::Verify => "verify",
            ClientTlsLevel::Secure => "secure",
        }
    }
}

/// smtpd's TLS parameters.
#[derive(Clone, Debug)]
pub struct SmtpdTls {
    /// `smtpd_tls_security_level` (default empty = none).
    pub security_level: ServerTlsLevel,
    /// `smtpd_tls_wrappermode` (default no): TLS from the first byte (port 465 style).
    pub wrappermode: bool,
    /// `smtpd_tls_cert_file` (default empty): PEM certificate, optionally followed by its chain.
    pub cert_file: String,
    /// `smtpd_tls_key_file` (default `$smtpd_tls_cert_file`).
    pub key_file: String,
    /// `smtpd_tls_chain_files` (default empty): PEM files each holding a private key followed
    /// by its certificate chain; takes precedence over cert_file/key_file.
    pub chain_files: Vec<String>,
    /// `tls_server_sni_maps` (default empty): SNI name → PEM chain file (key + chain).
    pub sni_maps: Vec<String>,
    /// `smtpd_tls_received_header` (default no): TLS protocol and cipher in `Received:`.
    pub received_header: bool,
    /// `smtpd_tls_auth_only` (default yes; Postfix: no): AUTH only over TLS.
    pub auth_only: bool,
    /// `smtpd_tls_loglevel` (default 0): 1 logs a line per TLS session.
    pub loglevel: u32,
    /// `smtpd_starttls_timeout` (default 300s): time limit for the TLS handshake.
    pub starttls_timeout: Duration,
}

/// The smtp (and lmtp) client's TLS parameters.
#[derive(Clone, Debug)]
pub struct SmtpTls {
    /// `smtp_tls_security_level` (default may; Postfix: empty = none).
    pub security_level: ClientTlsLevel,
    /// `smtp_tls_policy_maps` (default empty): next hop → `level [match=…]`.
    pub policy_maps: Vec<String>,
    /// `smtp_tls_CAfile` (default empty = the system trust store).
    pub ca_file: String,
    /// `smtp_tls_CApath` (default empty): a directory of PEM CA certificates.
    pub ca_path: String,
    /// `smtp_tls_cert_file` (default empty): client certificate.
    pub cert_file: String,
    /// `smtp_tls_key_file` (default `$smtp_tls_cert_file`).
    pub key_file: String,
    /// `smtp_tls_loglevel` (default 0).
    pub loglevel: u32,
    /// `smtp_tls_verify_cert_match` (default `hostname`).
    pub verify_cert_match: Vec<String>,
    /// `smtp_tls_secure_cert_match` (default `nexthop, dot-nexthop`).
    pub secure_cert_match: Vec<String>,
    /// `smtp_starttls_timeout` (default 300s).
    pub starttls_timeout: Duration,
    /// `smtp_tls_servername` (default empty = no SNI): `hostname`, `nexthop` or a literal name.
    pub servername: String,
}

/// `smtpd_sasl_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslType {
    /// Postern's built-in passwd-file verifier; `smtpd_sasl_path` names the file.
    PasswdFile,
    /// A Dovecot auth server; `smtpd_sasl_path` names its socket (`unix:`/`inet:` or a path).
    Dovecot,
}

/// smtpd's SASL (AUTH) parameters.
#[derive(Clone, Debug)]
pub struct Sasl {
    /// `smtpd_sasl_auth_enable` (default no).
    pub auth_enable: bool,
    /// `smtpd_sasl_type` (default passwd-file; Postfix: cyrus).
    pub sasl_type: SaslType,
    /// `smtpd_sasl_path` (default empty; Postfix: smtpd).
    pub path: String,
    /// `smtpd_sasl_security_options` (default noanonymous).
    pub security_options: Vec<String>,
    /// `smtpd_sasl_tls_security_options` (default `$smtpd_sasl_security_options`).
    pub tls_security_options: Vec<String>,
    /// `smtpd_sasl_authenticated_header` (default no): login name in `Received:`.
    pub authenticated_header: bool,
    /// `smtpd_sasl_local_domain` (default empty): realm appended to bare login names.
    pub local_domain: String,
    /// `broken_sasl_auth_clients` (default no): also announce `AUTH=mech …`.
    pub broken_clients: bool,
    /// `smtpd_sender_login_maps` (default empty): sender address → owning login names.
    pub sender_login_maps: Vec<String>,
    /// `smtpd_client_auth_rate_limit` (default 0 = none): AUTH commands per client address
    /// per `anvil_rate_time_unit`.
    pub client_auth_rate_limit: u32,
    /// `anvil_rate_time_unit` (default 60s).
    pub rate_time_unit: Duration,
    /// `smtpd_sasl_failure_delay` (Postern; default 1s): pause before answering a failed AUTH.
    pub failure_delay: Duration,
}

/// The smtp client's SMTP AUTH towards a relay (`smtp_sasl_*`).
#[derive(Clone, Debug)]
pub struct ClientSasl {
    /// `smtp_sasl_auth_enable` (default no).
    pub auth_enable: bool,
    /// `smtp_sasl_password_maps` (default empty): next hop → `username:password`.
    pub password_maps: Vec<String>,
    /// `smtp_sasl_security_options` (default `noplaintext, noanonymous`): without TLS.
    pub security_options: Vec<String>,
    /// `smtp_sasl_tls_security_options` (default `noanonymous`; Postfix:
    /// `$smtp_sasl_security_options`): over TLS.
    pub tls_security_options: Vec<String>,
}

/// Outbound delivery: scheduling, connection reuse and LMTP.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `smtp_destination_recipient_limit` (default `$default_destination_recipient_limit`, 50).
    pub smtp_recipient_limit: usize,
    /// `lmtp_destination_recipient_limit` (default `$default_destination_recipient_limit`).
    pub lmtp_recipient_limit: usize,
    /// `initial_destination_concurrency` (default 5): slow start begins here.
    pub initial_concurrency: usize,
    /// `default_destination_concurrency_failed_cohort_limit` (default 1): failed connection
    /// cohorts at concurrency 1 before the destination is marked dead.
    pub failed_cohort_limit: u32,
    /// `smtp_fallback_relay` (default empty): next hops tried when a destination fails.
    pub fallback_relay: Vec<String>,
    /// `smtp_connection_cache_on_demand` (default yes).
    pub connection_cache_on_demand: bool,
    /// `smtp_connection_cache_destinations` (default empty): always cache connections to these.
    pub connection_cache_destinations: Vec<String>,
    /// `smtp_connection_cache_time_limit` (default 2s): idle time of a cached connection.
    pub connection_cache_time_limit: Duration,
    /// `smtp_connection_reuse_time_limit` (default 300s): age after which it is not reused.
    pub connection_reuse_time_limit: Duration,
    /// `smtp_connection_reuse_count_limit` (default 0 = no limit).
    pub connection_reuse_count_limit: u32,
    /// `lmtp_lhlo_name` (default `$myhostname`).
    pub lmtp_lhlo_name: String,
    /// `lmtp_tcp_port` (default 24).
    pub lmtp_tcp_port: u16,
    /// `lmtp_connect_timeout` (default 0s = the system's connect timeout).
    pub lmtp_connect_timeout: Duration,
    /// `lmtp_lhlo_timeout` (default 300s).
    pub lmtp_lhlo_timeout: Duration,
}

const SASL_OPTIONS: &[&str] = &[
    "noanonymous",
    "noplaintext",
    "noactive",
    "nodictionary",
    "mutual_auth",
    "forward_secrecy",
];

impl Builder<'_> {
    pub(super) fn smtpd_tls(&mut self) -> SmtpdTls {
        let name = "smtpd_tls_security_level";
        let v = self.value(name);
        let security_level = match v.to_ascii_lowercase().as_str() {
            "" | "none" => ServerTlsLevel::None,
            "may" => ServerTlsLevel::May,
            "encrypt" => ServerTlsLevel::Encrypt,
            _ => {
                let hint = Some("smtpd takes none, may or encrypt".to_string());
                self.invalid(name, &v, "unknown TLS security level", hint);
                ServerTlsLevel::None
            }
        };
        let tls = SmtpdTls {
            security_level,
            wrappermode: self.boolean("smtpd_tls_wrappermode"),
            cert_file: self.string("smtpd_tls_cert_file"),
            key_file: self.string("smtpd_tls_key_file"),
            chain_files: self.list("smtpd_tls_chain_files"),
            sni_maps: self.list("tls_server_sni_maps"),
            received_header: self.boolean("smtpd_tls_received_header"),
            auth_only: self.boolean("smtpd_tls_auth_only"),
            loglevel: self.number("smtpd_tls_loglevel", 0),
            starttls_timeout: self.time("smtpd_starttls_timeout", 's', true),
        };
        let wants_keys = tls.security_level != ServerTlsLevel::None || tls.wrappermode;
        if wants_keys && tls.cert_file.is_empty() && tls.chain_files.is_empty() {
            let what = if tls.wrappermode {
                "smtpd_tls_wrappermode"
            } else {
                "smtpd_tls_security_level"
            };
            let v = self.value(what);
            let hint = Some(
                "set smtpd_tls_chain_files (key + certificates in one PEM file) or \
                 smtpd_tls_cert_file and smtpd_tls_key_file"
                    .to_string(),
            );
            self.invalid(what, &v, "TLS needs a certificate and key", hint);
        }
        tls
    }

    pub(super) fn smtp_tls(&mut self) -> SmtpTls {
        let name = "smtp_tls_security_level";
        let v = self.value(name);
        let security_level = ClientTlsLevel::parse(&v).unwrap_or_else(|| {
            let hint = if matches!(v.as_str(), "dane" | "dane-only" | "fingerprint") {
                format!("{v} is not supported yet; use none, may, encrypt, verify or secure")
            } else {
                "use none, may, encrypt, verify or secure".to_string()
            };
            self.invalid(name, &v, "unknown TLS security level", Some(hint));
            ClientTlsLevel::May
        });
        SmtpTls {
            security_level,
            policy_maps: self.list("smtp_tls_policy_maps"),
            ca_file: self.string("smtp_tls_CAfile"),
            ca_path: self.string("smtp_tls_CApath"),
            cert_file: self.string("smtp_tls_cert_file"),
            key_file: self.string("smtp_tls_key_file"),
            loglevel: self.number("smtp_tls_loglevel", 0),
            verify_cert_match: self.list("smtp_tls_verify_cert_match"),
            secure_cert_match: self.list("smtp_tls_secure_cert_match"),
            starttls_timeout: self.time("smtp_starttls_timeout", 's', true),
            servername: self.string("smtp_tls_servername"),
        }
    }

    pub(super) fn sasl(&mut self) -> Sasl {
        let name = "smtpd_sasl_type";
        let v = self.value(name);
        let sasl_type = match v.to_ascii_lowercase().as_str() {
            "passwd-file" | "passwd_file" => SaslType::PasswdFile,
            "dovecot" => SaslType::Dovecot,
            _ => {
                let hint = if v == "cyrus" {
                    "Cyrus SASL is not supported; use dovecot or passwd-file".to_string()
                } else {
                    "use passwd-file or dovecot".to_string()
                };
                self.invalid(name, &v, "unknown SASL type", Some(hint));
                SaslType::PasswdFile
            }
        };
        let sasl = Sasl {
            auth_enable: self.boolean("smtpd_sasl_auth_enable"),
            sasl_type,
            path: self.string("smtpd_sasl_path"),
            security_options: self.keywords("smtpd_sasl_security_options", SASL_OPTIONS),
            tls_security_options: self.keywords("smtpd_sasl_tls_security_options", SASL_OPTIONS),
            authenticated_header: self.boolean("smtpd_sasl_authenticated_header"),
            local_domain: self.string("smtpd_sasl_local_domain"),
            broken_clients: self.boolean("broken_sasl_auth_clients"),
            sender_login_maps: self.list("smtpd_sender_login_maps"),
            client_auth_rate_limit: self.number("smtpd_client_auth_rate_limit", 0),
            rate_time_unit: self.time("anvil_rate_time_unit", 's', true),
            failure_delay: self.time("smtpd_sasl_failure_delay", 's', false),
        };
        if sasl.auth_enable && sasl.path.is_empty() {
            let v = self.value("smtpd_sasl_auth_enable");
            let hint = Some(match sasl.sasl_type {
                SaslType::PasswdFile => {
                    "set smtpd_sasl_path to the password file, e.g. /etc/postern/sasl_passwd"
                }
                SaslType::Dovecot => {
                    "set smtpd_sasl_path to Dovecot's auth socket, e.g. private/auth or \
                     inet:127.0.0.1:12345"
                }
            });
            self.invalid(
                "smtpd_sasl_auth_enable",
                &v,
                "AUTH needs smtpd_sasl_path",
                hint.map(str::to_string),
            );
        }
        sasl
    }

    pub(super) fn client_sasl(&mut self) -> ClientSasl {
        ClientSasl {
            auth_enable: self.boolean("smtp_sasl_auth_enable"),
            password_maps: self.list("smtp_sasl_password_maps"),
            security_options: self.keywords("smtp_sasl_security_options", SASL_OPTIONS),
            tls_security_options: self.keywords("smtp_sasl_tls_security_options", SASL_OPTIONS),
        }
    }

    pub(super) fn delivery(&mut self) -> Delivery {
        Delivery {
            smtp_recipient_limit: self.number("smtp_destination_recipient_limit", 1),
            lmtp_recipient_limit: self.number("lmtp_destination_recipient_limit", 1),
            initial_concurrency: self.number("initial_destination_concurrency", 1),
            failed_cohort_limit: self
                .number("default_destination_concurrency_failed_cohort_limit", 1),
            fallback_relay: self.list("smtp_fallback_relay"),
            connection_cache_on_demand: self.boolean("smtp_connection_cache_on_demand"),
            connection_cache_destinations: self.list("smtp_connection_cache_destinations"),
            connection_cache_time_limit: self.time("smtp_connection_cache_time_limit", 's', true),
            connection_reuse_time_limit: self.time("smtp_connection_reuse_time_limit", 's', true),
            connection_reuse_count_limit: self.number("smtp_connection_reuse_count_limit", 0),
            lmtp_lhlo_name: self.string("lmtp_lhlo_name"),
            lmtp_tcp_port: self.number("lmtp_tcp_port", 1),
            lmtp_connect_timeout: self.time("lmtp_connect_timeout", 's', false),
            lmtp_lhlo_timeout: self.time("lmtp_lhlo_timeout", 's', true),
        }
    }
}
