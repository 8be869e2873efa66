//! The typed, validated [`Config`] built from a [`MainCf`].

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use crate::build::build;
use crate::build::security::{ClientSasl, Delivery, Sasl, SmtpTls, SmtpdTls};
use crate::values::{BareNewline, Cidr};
use crate::{tidy_diagnostics, ConfigError, Diagnostic, MainCf};

/// The fully typed, validated configuration one SMTP listener / the queue manager uses.
///
/// Defaults follow Postfix (postconf(5)) except where documented on the field; the parameter
/// table (`postern conf -d`, `docs/parameters.md`) lists every default.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory main.cf/master.cf were loaded from; `None` = embedded defaults.
    pub config_dir: Option<PathBuf>,
    /// `mail_name` (default `Postern`; Postfix: `Postfix`).
    pub mail_name: String,
    /// `myhostname`: default the system host name, with `.localdomain` (or `.$mydomain` when
    /// `mydomain` is set) appended if it has no dot — Postfix's behaviour.
    pub myhostname: String,
    /// `mydomain`: default `$myhostname` minus its first label, `localdomain` if none.
    pub mydomain: String,
    /// `myorigin` (default `$myhostname`).
    pub myorigin: String,
    /// `mydestination`, lowercased, trailing dots removed (table references kept as written).
    pub mydestination: Vec<String>,
    /// `mynetworks`. Default `127.0.0.0/8 [::1]/128`: Postfix derives the default from
    /// `mynetworks_style` (`host` since Postfix 3.0, i.e. the machine's own addresses); Postern
    /// trusts the loopback networks only. Table references (`hash:/path`), `/file/name` and
    /// `!exclusions` are rejected for now.
    pub mynetworks: Vec<Cidr>,
    /// `relay_domains` (default empty, as in Postfix ≥ 3.0); normalized like `mydestination`.
    pub relay_domains: Vec<String>,
    /// `inet_interfaces` as written (`all`, `loopback-only`, `localhost` or IP addresses).
    pub inet_interfaces: Vec<String>,
    /// `inet_protocols` (`all`, `ipv4`, `ipv6`).
    pub inet_protocols: Vec<String>,
    /// `queue_directory` (default `/var/spool/postern`; relative paths kept as written).
    pub queue_directory: PathBuf,
    /// `mail_spool_directory` (default `/var/mail`); a trailing `/` means Maildir.
    pub mail_spool_directory: String,
    /// `home_mailbox` (default empty = deliver to `mail_spool_directory`).
    pub home_mailbox: String,
    /// `local_recipient_maps` table references. Default empty, which in Postern means "accept
    /// any local part" — unlike Postfix, whose default `proxy:unix:passwd.byname $alias_maps`
    /// rejects unknown users (and where an explicitly empty value means "accept any").
    pub local_recipient_maps: Vec<String>,
    /// `recipient_delimiter` (default empty = no address extensions).
    pub recipient_delimiter: String,
    /// `message_size_limit` in bytes (default 10240000; 0 = no limit).
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit` (default 1000, minimum 1).
    pub smtpd_recipient_limit: usize,
    /// `smtpd_timeout` (default 300s; Postfix lowers it under stress, Postern does not).
    pub smtpd_timeout: Duration,
    /// `smtpd_soft_error_limit` (default 10).
    pub smtpd_soft_error_limit: u32,
    /// `smtpd_hard_error_limit` (default 20, minimum 1).
    pub smtpd_hard_error_limit: u32,
    /// `smtpd_error_sleep_time` (default 1s).
    pub smtpd_error_sleep_time: Duration,
    /// `smtpd_client_connection_count_limit` (default 50; 0 = unlimited).
    pub smtpd_client_connection_count_limit: u32,
    /// Maximal simultaneous SMTP sessions per listener: `default_process_limit` (default 100),
    /// or the service's master.cf maxproc when set (maxproc 0 = no limit → `u32::MAX`).
    pub default_process_limit: u32,
    /// `line_length_limit` (default 2048, minimum 512 as in Postfix).
    pub line_length_limit: usize,
    /// `header_size_limit` (default 102400).
    pub header_size_limit: usize,
    /// `smtpd_banner`, expanded (default `$myhostname ESMTP $mail_name`).
    pub smtpd_banner: String,
    /// `smtpd_forbid_bare_newline`: default `reject` in Postern (Postfix 3.9 defaults to
    /// `normalize`; Postern refuses bare `<LF>` by default).
    pub smtpd_forbid_bare_newline: BareNewline,
    /// `smtpd_forbid_bare_newline_exclusions` (default `$mynetworks`).
    pub smtpd_forbid_bare_newline_exclusions: Vec<Cidr>,
    /// `smtpd_forbid_bare_newline_reject_code` (default 550; 4xx or 5xx).
    pub smtpd_forbid_bare_newline_reject_code: u16,
    /// `smtpd_relay_restrictions` (default
    /// `permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination`).
    pub smtpd_relay_restrictions: Vec<String>,
    /// `smtpd_recipient_restrictions` (default empty).
    pub smtpd_recipient_restrictions: Vec<String>,
    /// `minimal_backoff_time` (default 300s, unit s).
    pub minimal_backoff_time: Duration,
    /// `maximal_backoff_time` (default 4000s, unit s; must not be below minimal_backoff_time).
    pub maximal_backoff_time: Duration,
    /// `maximal_queue_lifetime` (default 5d, unit d).
    pub maximal_queue_lifetime: Duration,
    /// `bounce_queue_lifetime` (default 5d, unit d).
    pub bounce_queue_lifetime: Duration,
    /// `delay_warning_time` (default 0h = off, unit h).
    pub delay_warning_time: Duration,
    /// `queue_run_delay` (default 300s, unit s).
    pub queue_run_delay: Duration,
    /// `qmgr_message_active_limit` (default 20000).
    pub qmgr_message_active_limit: usize,
    /// `default_destination_concurrency_limit` (default 20).
    pub default_destination_concurrency_limit: usize,
    /// `local_destination_concurrency_limit` (default 2).
    pub local_destination_concurrency_limit: usize,
    /// `default_transport` (default `smtp`).
    pub default_transport: String,
    /// `local_transport`, expanded (default `local:$myhostname`).
    pub local_transport: String,
    /// `relayhost` (default empty = direct delivery).
    pub relayhost: String,
    /// `bounce_notice_recipient` (default `postmaster`).
    pub bounce_notice_recipient: String,
    /// `notify_classes` (default `resource, software`).
    pub notify_classes: Vec<String>,
    /// `maillog_file` (default empty = standard error; Postfix: syslog).
    pub maillog_file: String,
    /// `smtpd_helo_required` (default no).
    pub smtpd_helo_required: bool,
    /// `disable_vrfy_command` (default no).
    pub disable_vrfy_command: bool,
    /// `strict_rfc821_envelopes` (default no).
    pub strict_rfc821_envelopes: bool,
    /// `smtputf8_enable` (default yes).
    pub smtputf8_enable: bool,
    /// `append_dot_mydomain` (default no, as in Postfix ≥ 3.0).
    pub append_dot_mydomain: bool,
    /// `allow_percent_hack` (default no in Postern for now; Postfix: yes).
    pub allow_percent_hack: bool,
    /// `swap_bangpath` (default yes, as in Postfix).
    pub swap_bangpath: bool,
    /// `soft_bounce` (default no).
    pub soft_bounce: bool,
    /// `smtpd_client_restrictions` (default empty): evaluated at connect time (or with
    /// `smtpd_delay_reject`, at RCPT TO).
    pub smtpd_client_restrictions: Vec<String>,
    /// `smtpd_helo_restrictions` (default empty).
    pub smtpd_helo_restrictions: Vec<String>,
    /// `smtpd_sender_restrictions` (default empty).
    pub smtpd_sender_restrictions: Vec<String>,
    /// `smtpd_data_restrictions` (default empty).
    pub smtpd_data_restrictions: Vec<String>,
    /// `smtpd_end_of_data_restrictions` (default empty).
    pub smtpd_end_of_data_restrictions: Vec<String>,
    /// `smtpd_restriction_classes` (default empty): each class name with the restriction list
    /// its own main.cf parameter holds, in the order listed.
    pub smtpd_restriction_classes: Vec<(String, Vec<String>)>,
    /// `smtpd_delay_reject` (default yes).
    pub smtpd_delay_reject: bool,
    /// `parent_domain_matches_subdomains` (Postfix default list of feature names).
    pub parent_domain_matches_subdomains: Vec<String>,
    /// `smtpd_null_access_lookup_key` (default `<>`).
    pub smtpd_null_access_lookup_key: String,
    /// `access_map_reject_code` (default 554).
    pub access_map_reject_code: u16,
    /// `access_map_defer_code` (default 450).
    pub access_map_defer_code: u16,
    /// `unknown_address_reject_code` (default 450).
    pub unknown_address_reject_code: u16,
    /// `unknown_client_reject_code` (default 450).
    pub unknown_client_reject_code: u16,
    /// `unknown_hostname_reject_code` (default 450).
    pub unknown_hostname_reject_code: u16,
    /// `invalid_hostname_reject_code` (default 501).
    pub invalid_hostname_reject_code: u16,
    /// `non_fqdn_reject_code` (default 504).
    pub non_fqdn_reject_code: u16,
    /// `maps_rbl_reject_code` (default 554).
    pub maps_rbl_reject_code: u16,
    /// `relay_domains_reject_code` (default 554).
    pub relay_domains_reject_code: u16,
    /// `unknown_local_recipient_reject_code` (default 550).
    pub unknown_local_recipient_reject_code: u16,
    /// `unknown_virtual_alias_reject_code` (default 550).
    pub unknown_virtual_alias_reject_code: u16,
    /// `unknown_virtual_mailbox_reject_code` (default 550).
    pub unknown_virtual_mailbox_reject_code: u16,
    /// `unknown_relay_recipient_reject_code` (default 550).
    pub unknown_relay_recipient_reject_code: u16,
    /// `defer_code` (default 450).
    pub defer_code: u16,
    /// `reject_code` (default 554).
    pub reject_code: u16,
    /// `default_rbl_reply`, NOT expanded: the `$rbl_code`, `$rbl_class`, `$rbl_what`,
    /// `$rbl_domain`, `$rbl_reason`, … names are filled in per reply by the restriction code.
    pub default_rbl_reply: String,
    /// `smtpd_reject_unlisted_sender` (default no).
    pub smtpd_reject_unlisted_sender: bool,
    /// `smtpd_reject_unlisted_recipient` (default yes).
    pub smtpd_reject_unlisted_recipient: bool,
    /// `dns_nameservers` (Postern only; default empty = use /etc/resolv.conf): `ip` or
    /// `ip:port` / `[ipv6]:port` entries, validated.
    pub dns_nameservers: Vec<String>,
    /// `dns_timeout` (Postern only; default 5s): time limit per DNS query.
    pub dns_timeout: Duration,
    /// `canonical_maps` (default empty).
    pub canonical_maps: Vec<String>,
    /// `sender_canonical_maps` (default empty).
    pub sender_canonical_maps: Vec<String>,
    /// `recipient_canonical_maps` (default empty).
    pub recipient_canonical_maps: Vec<String>,
    /// `canonical_classes` (default all four: envelope_sender, envelope_recipient,
    /// header_sender, header_recipient).
    pub canonical_classes: Vec<String>,
    /// `masquerade_domains` (default empty; `!domain` entries kept, lowercased).
    pub masquerade_domains: Vec<String>,
    /// `masquerade_exceptions` (default empty; user names).
    pub masquerade_exceptions: Vec<String>,
    /// `masquerade_classes` (default envelope_sender, header_sender, header_recipient).
    pub masquerade_classes: Vec<String>,
    /// `propagate_unmatched_extensions` (default canonical, virtual).
    pub propagate_unmatched_extensions: Vec<String>,
    /// `virtual_alias_domains` (default `$virtual_alias_maps`), normalized like mydestination.
    pub virtual_alias_domains: Vec<String>,
    /// `virtual_alias_maps` (default empty; Postfix: `$virtual_maps`, a legacy name).
    pub virtual_alias_maps: Vec<String>,
    /// `virtual_alias_recursion_limit` (default 1000, minimum 1).
    pub virtual_alias_recursion_limit: u32,
    /// `virtual_alias_expansion_limit` (default 1000, minimum 1).
    pub virtual_alias_expansion_limit: u32,
    /// `alias_maps` (default empty in Postern; Postfix: `hash:/etc/aliases, nis:mail.aliases`).
    pub alias_maps: Vec<String>,
    /// `alias_database` (default `$alias_maps`; Postfix: `hash:/etc/aliases`).
    pub alias_database: Vec<String>,
    /// `allow_mail_to_files` (default alias, forward; also include).
    pub allow_mail_to_files: Vec<String>,
    /// `allow_mail_to_commands` (default alias, forward; also include).
    pub allow_mail_to_commands: Vec<String>,
    /// `relocated_maps` (default empty).
    pub relocated_maps: Vec<String>,
    /// `relay_recipient_maps` (default empty = any recipient in relay_domains).
    pub relay_recipient_maps: Vec<String>,
    /// `transport_maps` (default empty).
    pub transport_maps: Vec<String>,
    /// `relay_transport` (default `relay`).
    pub relay_transport: String,
    /// `content_filter` (default empty): `transport:nexthop` every received message is routed
    /// to first (a `FILTER` action for all mail).
    pub content_filter: String,
    /// `smtpd_milters` (default empty): before-queue filters, in order (`wasm:NAME`).
    pub smtpd_milters: Vec<String>,
    /// `virtual_transport` (default `virtual`).
    pub virtual_transport: String,
    /// `virtual_mailbox_domains` (default `$virtual_mailbox_maps`), normalized like
    /// mydestination.
    pub virtual_mailbox_domains: Vec<String>,
    /// `virtual_mailbox_maps` (default empty).
    pub virtual_mailbox_maps: Vec<String>,
    /// `virtual_mailbox_base` (default empty).
    pub virtual_mailbox_base: String,
    /// `owner_request_special` (default yes).
    pub owner_request_special: bool,
    /// `header_checks` (default empty).
    pub header_checks: Vec<String>,
    /// `mime_header_checks` (default `$header_checks`).
    pub mime_header_checks: Vec<String>,
    /// `nested_header_checks` (default `$header_checks`).
    pub nested_header_checks: Vec<String>,
    /// `body_checks` (default empty).
    pub body_checks: Vec<String>,
    /// `body_checks_size_limit` in bytes (default 51200).
    pub body_checks_size_limit: u64,
    /// `policy_time_limit` (default 1000s).
    pub policy_time_limit: Duration,
    /// `smtpd_policy_service_timeout` (default 100s).
    pub smtpd_policy_service_timeout: Duration,
    /// `smtpd_policy_service_max_idle` (default 300s).
    pub smtpd_policy_service_max_idle: Duration,
    /// `smtpd_policy_service_max_ttl` (default 1000s).
    pub smtpd_policy_service_max_ttl: Duration,
    /// `smtpd_policy_service_retry_delay` (default 1s).
    pub smtpd_policy_service_retry_delay: Duration,
    /// `smtpd_policy_service_default_action` (default `451 4.3.5 Server configuration problem`).
    pub smtpd_policy_service_default_action: String,
    /// `smtpd_policy_service_request_limit` (default 0 = no limit).
    pub smtpd_policy_service_request_limit: u32,
    /// `smtpd_policy_service_try_limit` (default 2, minimum 1).
    pub smtpd_policy_service_try_limit: u32,
    /// `smtpd_policy_service_policy_context` (default empty).
    pub smtpd_policy_service_policy_context: String,
    /// `smtp_helo_name`, expanded (default `$myhostname`): the name smtp(8) sends in EHLO/HELO.
    pub smtp_helo_name: String,
    /// `smtp_connect_timeout` (default 30s): TCP connection setup by smtp(8).
    pub smtp_connect_timeout: Duration,
    /// `smtp_helo_timeout` (default 300s): greeting and EHLO/HELO reply.
    pub smtp_helo_timeout: Duration,
    /// `smtp_mail_timeout` (default 300s): MAIL FROM and its reply.
    pub smtp_mail_timeout: Duration,
    /// `smtp_rcpt_timeout` (default 300s): each RCPT TO and its reply.
    pub smtp_rcpt_timeout: Duration,
    /// `smtp_data_init_timeout` (default 120s): DATA and its 354 reply.
    pub smtp_data_init_timeout: Duration,
    /// `smtp_data_xfer_timeout` (default 180s): each write of message content. Postfix applies it
    /// per write, so a slow but moving transfer of a large message is not cut off.
    pub smtp_data_xfer_timeout: Duration,
    /// `smtp_data_done_timeout` (default 600s): the reply to the final "." — long, because the
    /// peer may run content filters before answering (RFC 5321 §4.5.3.2.6 asks for 10 minutes).
    pub smtp_data_done_timeout: Duration,
    /// `smtp_quit_timeout` (default 300s): QUIT and its reply.
    pub smtp_quit_timeout: Duration,
    /// smtpd TLS: `smtpd_tls_*`, `tls_server_sni_maps`, `smtpd_starttls_timeout`.
    pub smtpd_tls: SmtpdTls,
    /// smtp/lmtp client TLS: `smtp_tls_*`, `smtp_starttls_timeout`.
    pub smtp_tls: SmtpTls,
    /// smtpd AUTH: `smtpd_sasl_*`, `smtpd_sender_login_maps`, `smtpd_client_auth_rate_limit`.
    pub sasl: Sasl,
    /// Outbound scheduling, connection reuse and LMTP client settings.
    pub delivery: Delivery,
    /// The smtp client's AUTH towards relays: `smtp_sasl_*`.
    pub smtp_sasl: ClientSasl,
    /// The source, with any overrides applied (for `postern conf -n` and later features).
    pub raw: MainCf,
}

impl Config {
    /// Build and validate a Config from `raw`. Returns the config and warnings (undefined
    /// `$names`, unsupported `mynetworks_style`), or every invalid value at once
    /// ([`ConfigError::Many`]).
    pub fn from_main_cf(
        raw: MainCf,
        config_dir: Option<PathBuf>,
    ) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let config = build(raw, config_dir, &mut errors, &mut warnings);
        tidy_diagnostics(&mut warnings);
        if errors.is_empty() {
            Ok((config, warnings))
        } else {
            tidy_diagnostics(&mut errors);
            Err(ConfigError::Many(errors))
        }
    }
}

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
