//! The parameter table: every main.cf parameter Postern understands, with its default exactly
//! as `postern conf -d` prints it. `docs/parameters.md` mirrors this table (a unit test checks
//! that every name appears there).

use std::sync::OnceLock;

/// One known main.cf parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamDef {
    /// Parameter name as written in main.cf.
    pub name: &'static str,
    /// Default value, unexpanded, as `postern conf -d` prints it (`name = default`).
    pub default: &'static str,
    /// Whether the parameter exists in Postfix with the same meaning (the default may differ;
    /// `docs/parameters.md` lists the differences).
    pub postfix: bool,
    /// One-line description.
    pub doc: &'static str,
}

const fn p(name: &'static str, default: &'static str, doc: &'static str) -> ParamDef {
    ParamDef {
        name,
        default,
        postfix: true,
        doc,
    }
}

/// A parameter Postern has and Postfix does not (or not with this meaning).
const fn postern_only(name: &'static str, default: &'static str, doc: &'static str) -> ParamDef {
    ParamDef {
        name,
        default,
        postfix: false,
        doc,
    }
}

/// Placeholder defaults replaced at first use by values computed from the system host name.
const DYNAMIC: &str = "";

/// The static table, sorted by name. `myhostname`/`mydomain` get their defaults in
/// [`param_table`].
#[rustfmt::skip]
const PARAMS: &[ParamDef] = &[
    p("access_map_defer_code", "450", "SMTP reply code for an access(5) DEFER action."),
    p("access_map_reject_code", "554", "SMTP reply code for an access(5) REJECT action."),
    p("alias_database", "$alias_maps", "Alias databases rebuilt by `postern alias build` (newaliases)."),
    p("alias_maps", "", "Alias tables for local recipients (aliases(5) format)."),
    p("allow_mail_to_commands", "alias, forward", "Sources whose command targets are delivered: alias, forward, include."),
    p("allow_mail_to_files", "alias, forward", "Sources whose /file targets are delivered: alias, forward, include."),
    p("allow_percent_hack", "no", "Rewrite user%domain into user@domain (Postfix default: yes)."),
    p("anvil_rate_time_unit", "60s", "Time unit of smtpd_client_auth_rate_limit (default unit: s)."),
    p("append_dot_mydomain", "no", "Append .$mydomain to host names without a dot (Postfix >= 3.0 default)."),
    p("body_checks", "", "Tables (regexp:/pcre:) matched against each body line."),
    p("body_checks_size_limit", "51200", "Number of body bytes inspected by body_checks."),
    p("bounce_notice_recipient", "postmaster", "Recipient of notices about undeliverable mail (notify_classes bounce)."),
    p("bounce_queue_lifetime", "5d", "How long a bounce message stays queued before it is discarded (default unit: d)."),
    p("broken_sasl_auth_clients", "no", "Also announce AUTH as AUTH=mechanisms for old Outlook clients."),
    p("canonical_classes", "envelope_sender, envelope_recipient, header_sender, header_recipient", "Addresses rewritten by canonical_maps."),
    p("canonical_maps", "", "Canonical address tables for sender and recipient addresses."),
    postern_only("compatibility_level", "3.6", "Accepted and ignored: Postern always uses the defaults of Postfix compatibility level 3.6."),
    p("config_directory", "/etc/postern", "Directory with main.cf and master.cf; set to the directory actually loaded."),
    p("content_filter", "", "Route all received mail to this transport:nexthop first; wasm:NAME runs a filter-role plugin after queueing."),
    p("default_destination_concurrency_failed_cohort_limit", "1", "Failed connection cohorts before a destination at concurrency 1 is marked dead."),
    p("default_destination_concurrency_limit", "20", "Maximal number of parallel deliveries to the same destination."),
    p("default_destination_recipient_limit", "50", "Default maximal number of recipients per delivery."),
    p("default_process_limit", "100", "Maximal number of simultaneous SMTP sessions per listener (master.cf maxproc overrides it)."),
    p("default_rbl_reply", "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}", "Reply template for DNS blocklist rejections ($rbl_* names are filled in per reply)."),
    p("default_transport", "smtp", "Transport for destinations that are not local or relayed."),
    p("defer_code", "450", "SMTP reply code for the defer restriction."),
    p("delay_warning_time", "0h", "Time before a delayed-mail warning is sent to the sender; 0 disables (default unit: h)."),
    p("disable_vrfy_command", "no", "Disable the SMTP VRFY command."),
    postern_only("dns_nameservers", "", "DNS servers for DNS-based restrictions: IP addresses with optional :port; empty uses /etc/resolv.conf."),
    postern_only("dns_timeout", "5s", "Time limit for one DNS query of a DNS-based restriction (default unit: s)."),
    p("header_checks", "", "Tables (regexp:/pcre:) matched against each primary message header."),
    p("header_size_limit", "102400", "Maximal size in bytes of one message header (including continuation lines)."),
    p("home_mailbox", "", "Mailbox path relative to the user's home; a trailing / means Maildir; empty uses mail_spool_directory."),
    p("inet_interfaces", "all", "Addresses SMTP listeners without an explicit host bind: all, loopback-only, or IP addresses."),
    p("inet_protocols", "all", "IP protocols to use: all, ipv4, ipv6 (comma/space separated)."),
    p("initial_destination_concurrency", "5", "Parallel deliveries to a destination at first (slow start grows it to the limit)."),
    p("invalid_hostname_reject_code", "501", "SMTP reply code for reject_invalid_helo_hostname."),
    p("line_length_limit", "2048", "Maximal length of an SMTP line or message line before it is split (minimum 512)."),
    p("lmtp_connect_timeout", "0s", "Time limit for the lmtp client to connect; 0 uses the system limit (default unit: s)."),
    p("lmtp_destination_recipient_limit", "$default_destination_recipient_limit", "Maximal number of recipients per LMTP delivery."),
    p("lmtp_lhlo_name", "$myhostname", "Host name the lmtp client sends in LHLO."),
    p("lmtp_lhlo_timeout", "300s", "Time limit for the lmtp client to receive the greeting and the LHLO reply (default unit: s)."),
    p("lmtp_tcp_port", "24", "Default TCP port of lmtp next hops."),
    p("local_destination_concurrency_limit", "2", "Maximal number of parallel deliveries to the same local recipient."),
    p("local_recipient_maps", "", "Tables of valid local recipients; empty accepts every local part (Postfix: proxy:unix:passwd.byname $alias_maps)."),
    p("local_transport", "local:$myhostname", "Transport for domains listed in mydestination."),
    p("mail_name", "Postern", "Mail system name used in the SMTP banner and in notices (Postfix: Postfix)."),
    p("mail_spool_directory", "/var/mail", "Directory with UNIX-style mailboxes; a trailing / means Maildir."),
    p("mail_version", env!("CARGO_PKG_VERSION"), "Version of the mail system (read-only)."),
    p("maillog_file", "", "File to log to; empty logs to standard error (Postfix: syslog)."),
    p("maps_rbl_reject_code", "554", "SMTP reply code for DNS blocklist rejections."),
    p("masquerade_classes", "envelope_sender, header_sender, header_recipient", "Addresses subject to address masquerading."),
    p("masquerade_domains", "", "Domains whose subdomains are stripped from addresses; !domain excludes."),
    p("masquerade_exceptions", "", "User names never subjected to address masquerading."),
    p("maximal_backoff_time", "4000s", "Maximal time between attempts to deliver a deferred message (default unit: s)."),
    p("maximal_queue_lifetime", "5d", "How long a message stays queued before it is bounced as undeliverable (default unit: d)."),
    p("message_size_limit", "10240000", "Maximal message size in bytes, including envelope information; 0 means no limit."),
    p("mime_header_checks", "$header_checks", "Tables matched against MIME headers of message parts."),
    p("minimal_backoff_time", "300s", "Minimal time between attempts to deliver a deferred message (default unit: s)."),
    p("mydestination", "$myhostname, localhost.$mydomain, localhost", "Domains delivered locally (final destination)."),
    p("mydomain", DYNAMIC, "Internet domain of this host; default: $myhostname minus its first label, or localdomain."),
    p("myhostname", DYNAMIC, "Fully qualified host name; default: the system host name, plus .localdomain when it has no dot."),
    p("mynetworks", "127.0.0.0/8 [::1]/128", "Trusted client networks (CIDR); Postfix computes the default from mynetworks_style."),
    p("mynetworks_style", "host", "How Postfix derives mynetworks; Postern supports host only (loopback networks)."),
    p("myorigin", "$myhostname", "Domain appended to locally posted mail without a domain."),
    p("nested_header_checks", "$header_checks", "Tables matched against headers of attached messages."),
    p("non_fqdn_reject_code", "504", "SMTP reply code for the reject_non_fqdn_* restrictions."),
    p("notify_classes", "resource, software", "Problem classes reported to the postmaster."),
    p("owner_request_special", "yes", "Give owner-listname and listname-request addresses special treatment."),
    p("parent_domain_matches_subdomains", "debug_peer_list, fast_flush_domains, mynetworks, permit_mx_backup_networks, qmqpd_authorized_clients, relay_domains, smtpd_access_maps", "Features where a domain name also matches its subdomains (else write .domain)."),
    p("policy_time_limit", "1000s", "Time limit for one policy service request (Postfix: run time limit of a spawn(8) policy process) (default unit: s)."),
    p("propagate_unmatched_extensions", "canonical, virtual", "Lookups that propagate an unmatched address extension: canonical, virtual, alias, forward, include, generic."),
    p("qmgr_message_active_limit", "20000", "Maximal number of messages in the active queue."),
    p("queue_directory", "/var/spool/postern", "Root of the mail queue (Postfix: /var/spool/postfix)."),
    p("queue_run_delay", "300s", "Time between deferred queue scans (default unit: s)."),
    p("recipient_canonical_maps", "", "Canonical address tables for recipient addresses."),
    p("recipient_delimiter", "", "Characters that separate a user name from an address extension (user+ext)."),
    p("reject_code", "554", "SMTP reply code for the reject restriction."),
    p("relay_domains", "", "Domains this host relays mail to (Postfix >= 3.0 default: empty)."),
    p("relay_domains_reject_code", "554", "SMTP reply code for reject_unauth_destination."),
    p("relay_recipient_maps", "", "Tables of valid recipients in relay_domains; empty accepts any."),
    p("relay_transport", "relay", "Transport for domains listed in relay_domains."),
    p("relayhost", "", "Next-hop destination for non-local mail; empty delivers directly."),
    p("relocated_maps", "", "Tables of moved users; their mail is rejected with 551 5.1.6 and the new address."),
    p("sender_canonical_maps", "", "Canonical address tables for sender addresses."),
    p("smtp_connect_timeout", "30s", "Time limit for the smtp client to complete a TCP connection (default unit: s)."),
    p("smtp_connection_cache_destinations", "", "Destinations whose connections are always cached and reused."),
    p("smtp_connection_cache_on_demand", "yes", "Cache and reuse connections to destinations with a backlog."),
    p("smtp_connection_cache_time_limit", "2s", "How long an idle cached connection is kept (default unit: s)."),
    p("smtp_connection_reuse_count_limit", "0", "Maximal number of deliveries over one cached connection; 0 means no limit."),
    p("smtp_connection_reuse_time_limit", "300s", "Age after which a connection is no longer reused (default unit: s)."),
    p("smtp_data_done_timeout", "600s", "Time limit for the smtp client to receive the reply to the final \".\" (default unit: s)."),
    p("smtp_data_init_timeout", "120s", "Time limit for the smtp client to send DATA and receive the 354 reply (default unit: s)."),
    p("smtp_data_xfer_timeout", "180s", "Time limit for the smtp client to send message content (default unit: s)."),
    p("smtp_destination_recipient_limit", "$default_destination_recipient_limit", "Maximal number of recipients per SMTP delivery."),
    p("smtp_fallback_relay", "", "Next hops tried when the destination cannot be reached."),
    p("smtp_helo_name", "$myhostname", "Host name the smtp client sends in EHLO/HELO."),
    p("smtp_helo_timeout", "300s", "Time limit for the smtp client to receive the greeting and the EHLO/HELO reply (default unit: s)."),
    p("smtp_mail_timeout", "300s", "Time limit for the smtp client to send MAIL FROM and receive the reply (default unit: s)."),
    p("smtp_quit_timeout", "300s", "Time limit for the smtp client to send QUIT and receive the reply (default unit: s)."),
    p("smtp_rcpt_timeout", "300s", "Time limit for the smtp client to send RCPT TO and receive the reply (default unit: s)."),
    p("smtp_sasl_auth_enable", "no", "Authenticate to the next hop with SMTP AUTH (credentials from smtp_sasl_password_maps)."),
    p("smtp_sasl_password_maps", "", "Tables of next hop → username:password for the smtp client."),
    p("smtp_sasl_security_options", "noplaintext, noanonymous", "SASL restrictions for the smtp client without TLS (noplaintext: no PLAIN/LOGIN in the clear)."),
    p("smtp_sasl_tls_security_options", "noanonymous", "SASL restrictions for the smtp client over TLS (Postfix default: $smtp_sasl_security_options)."),
    p("smtp_starttls_timeout", "300s", "Time limit for the smtp client TLS handshake (default unit: s)."),
    p("smtp_tls_CAfile", "", "PEM file of CA certificates for verifying servers; empty uses the system trust store."),
    p("smtp_tls_CApath", "", "Directory of PEM CA certificates for verifying servers."),
    p("smtp_tls_cert_file", "", "PEM client certificate the smtp client presents."),
    p("smtp_tls_key_file", "$smtp_tls_cert_file", "PEM private key of smtp_tls_cert_file."),
    p("smtp_tls_loglevel", "0", "Logging of outbound TLS: 1 logs each TLS session."),
    p("smtp_tls_policy_maps", "", "Per-next-hop TLS policy tables: level and match= attributes."),
    p("smtp_tls_secure_cert_match", "nexthop, dot-nexthop", "Names a certificate must match at security level secure."),
    p("smtp_tls_security_level", "may", "Outbound TLS: none, may, encrypt, verify or secure (Postfix default: empty = none)."),
    p("smtp_tls_servername", "", "TLS SNI the smtp client sends: empty (none), hostname (the MX host), nexthop, or a name."),
    p("smtp_tls_verify_cert_match", "hostname", "Names a certificate must match at security level verify."),
    p("smtpd_banner", "$myhostname ESMTP $mail_name", "Text after the 220 code in the SMTP greeting."),
    p("smtpd_client_auth_rate_limit", "0", "Maximal AUTH commands per client address per anvil_rate_time_unit; 0 means no limit."),
    p("smtpd_client_connection_count_limit", "50", "Maximal simultaneous connections from one client; 0 means no limit."),
    p("smtpd_client_restrictions", "", "Restrictions applied to the client (at RCPT TO with smtpd_delay_reject)."),
    p("smtpd_data_restrictions", "", "Restrictions applied at the DATA command."),
    p("smtpd_delay_reject", "yes", "Delay client, HELO and sender restrictions until RCPT TO."),
    p("smtpd_end_of_data_restrictions", "", "Restrictions applied after the message content is received."),
    p("smtpd_error_sleep_time", "1s", "Delay before replying after an error once smtpd_soft_error_limit is reached (default unit: s)."),
    p("smtpd_forbid_bare_newline", "reject", "Bare <LF> handling: reject, normalize (= yes) or no (Postfix 3.9 default: normalize)."),
    p("smtpd_forbid_bare_newline_exclusions", "$mynetworks", "Client networks exempt from smtpd_forbid_bare_newline."),
    p("smtpd_forbid_bare_newline_reject_code", "550", "SMTP reply code when a message with bare <LF> is rejected."),
    p("smtpd_hard_error_limit", "20", "Number of errors after which the SMTP session is disconnected."),
    p("smtpd_helo_required", "no", "Require HELO/EHLO before MAIL FROM."),
    p("smtpd_helo_restrictions", "", "Restrictions applied to the HELO/EHLO name."),
    p("smtpd_milters", "", "Before-queue content filters run at end of data: wasm:NAME (filter-role plugin) or rhai:PATH (filter script)."),
    p("smtpd_null_access_lookup_key", "<>", "Lookup key used for the null sender address in access tables."),
    p("smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem", "Action used when a policy service cannot be reached."),
    p("smtpd_policy_service_max_idle", "300s", "Time after which an idle policy service connection is closed (default unit: s)."),
    p("smtpd_policy_service_max_ttl", "1000s", "Time after which an active policy service connection is closed (default unit: s)."),
    p("smtpd_policy_service_policy_context", "", "Value of the policy_context attribute sent to policy services."),
    p("smtpd_policy_service_request_limit", "0", "Maximal number of requests per policy service connection; 0 means no limit."),
    p("smtpd_policy_service_retry_delay", "1s", "Delay before a failed policy request is retried (default unit: s)."),
    p("smtpd_policy_service_timeout", "100s", "Time limit to connect to, send to or receive from a policy service (default unit: s)."),
    p("smtpd_policy_service_try_limit", "2", "Maximal number of attempts to send one policy request (minimum 1)."),
    p("smtpd_recipient_limit", "1000", "Maximal number of recipients per message (minimum 1)."),
    p("smtpd_recipient_restrictions", "", "Restrictions applied at RCPT TO after smtpd_relay_restrictions."),
    p("smtpd_reject_unlisted_recipient", "yes", "Reject unknown recipients even without reject_unlisted_recipient."),
    p("smtpd_reject_unlisted_sender", "no", "Reject unknown sender addresses in local/virtual domains."),
    p("smtpd_relay_restrictions", "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", "Relay access restrictions applied at RCPT TO."),
    p("smtpd_restriction_classes", "", "Names of restriction classes; each name is a parameter holding a restriction list."),
    p("smtpd_sasl_auth_enable", "no", "Offer SMTP AUTH (RFC 4954)."),
    p("smtpd_sasl_authenticated_header", "no", "Write the SASL login name into the Received: header."),
    postern_only("smtpd_sasl_failure_delay", "1s", "Pause before answering a failed AUTH (default unit: s)."),
    p("smtpd_sasl_local_domain", "", "Realm appended to login names without one."),
    p("smtpd_sasl_path", "", "passwd-file: the password file; dovecot: the auth socket (unix path or inet:host:port)."),
    p("smtpd_sasl_security_options", "noanonymous", "SASL mechanism restrictions without TLS (noanonymous, noplaintext)."),
    p("smtpd_sasl_tls_security_options", "$smtpd_sasl_security_options", "SASL mechanism restrictions over TLS."),
    p("smtpd_sasl_type", "passwd-file", "SASL back end: passwd-file (built in) or dovecot (Postfix default: cyrus)."),
    p("smtpd_sender_login_maps", "", "Tables of envelope sender → SASL login names owning it."),
    p("smtpd_sender_restrictions", "", "Restrictions applied at MAIL FROM (at RCPT TO with smtpd_delay_reject)."),
    p("smtpd_soft_error_limit", "10", "Number of errors after which replies are delayed by smtpd_error_sleep_time."),
    p("smtpd_starttls_timeout", "300s", "Time limit for the smtpd TLS handshake (default unit: s)."),
    p("smtpd_timeout", "300s", "Time limit for a client to send a request or receive a reply (default unit: s)."),
    p("smtpd_tls_auth_only", "yes", "Offer AUTH only over TLS (Postfix default: no)."),
    p("smtpd_tls_cert_file", "", "PEM server certificate (followed by its chain)."),
    p("smtpd_tls_chain_files", "", "PEM files with a private key followed by its certificate chain."),
    p("smtpd_tls_key_file", "$smtpd_tls_cert_file", "PEM private key of smtpd_tls_cert_file."),
    p("smtpd_tls_loglevel", "0", "Logging of inbound TLS: 1 logs each TLS session."),
    p("smtpd_tls_received_header", "no", "Put the TLS protocol and cipher into the Received: header."),
    p("smtpd_tls_security_level", "", "Inbound TLS: empty/none, may (STARTTLS offered) or encrypt (required)."),
    p("smtpd_tls_wrappermode", "no", "TLS from the first byte (port 465 submissions style) on this service."),
    p("smtputf8_enable", "yes", "Support SMTPUTF8 (RFC 6531)."),
    p("soft_bounce", "no", "Turn hard bounces into deferrals (testing safety net)."),
    p("strict_rfc821_envelopes", "no", "Require <> around MAIL FROM/RCPT TO addresses and reject RFC 822 comments."),
    p("swap_bangpath", "yes", "Rewrite site!user into user@site."),
    p("tls_server_sni_maps", "", "Tables of SNI host name → PEM file with key and certificate chain."),
    p("transport_maps", "", "Tables that map recipients or domains to transport:nexthop."),
    p("unknown_address_reject_code", "450", "SMTP reply code for reject_unknown_sender_domain and reject_unknown_recipient_domain."),
    p("unknown_client_reject_code", "450", "SMTP reply code for reject_unknown_client_hostname."),
    p("unknown_hostname_reject_code", "450", "SMTP reply code for reject_unknown_helo_hostname."),
    p("unknown_local_recipient_reject_code", "550", "SMTP reply code for unknown local recipients."),
    p("unknown_relay_recipient_reject_code", "550", "SMTP reply code for recipients not in relay_recipient_maps."),
    p("unknown_virtual_alias_reject_code", "550", "SMTP reply code for unknown recipients in virtual_alias_domains."),
    p("unknown_virtual_mailbox_reject_code", "550", "SMTP reply code for unknown recipients in virtual_mailbox_domains."),
    p("virtual_alias_domains", "$virtual_alias_maps", "Virtual alias domains (every address needs a virtual_alias_maps entry)."),
    p("virtual_alias_expansion_limit", "1000", "Maximal number of addresses one virtual alias expansion may produce."),
    p("virtual_alias_maps", "", "Virtual alias tables (recursive, one-to-many address rewriting)."),
    p("virtual_alias_recursion_limit", "1000", "Maximal nesting depth of virtual alias expansion."),
    p("virtual_mailbox_base", "", "Directory prepended to virtual_mailbox_maps results."),
    p("virtual_mailbox_domains", "$virtual_mailbox_maps", "Domains delivered by virtual_transport."),
    p("virtual_mailbox_maps", "", "Tables of valid virtual mailbox addresses and their mailbox paths."),
    p("virtual_transport", "virtual", "Transport for domains listed in virtual_mailbox_domains."),
];

/// Postfix parameters Postern recognises but does not implement. Setting one produces a
/// "not implemented; ignored" warning instead of "unknown parameter".
const POSTFIX_UNIMPLEMENTED: &[&str] = &[
    "biff",
    "command_directory",
    "daemon_directory",
    "data_directory",
    "debug_peer_level",
    "debug_peer_list",
    "debugger_command",
    "html_directory",
    "mail_owner",
    "mailbox_command",
    "mailbox_size_limit",
    "mailbox_transport",
    "mailq_path",
    "manpage_directory",
    "meta_directory",
    "milter_default_action",
    "milter_protocol",
    "newaliases_path",
    "non_smtpd_milters",
    "readme_directory",
    "receive_override_options",
    "sample_directory",
    "sendmail_path",
    "setgid_group",
    "shlib_directory",
    "smtp_bind_address",
    "smtp_tls_session_cache_database",
    "smtp_use_tls",
    "smtpd_tls_CAfile",
    "smtpd_tls_session_cache_database",
    "smtpd_use_tls",
    "syslog_facility",
    "syslog_name",
];

/// All known parameters, sorted by name (for `postern conf -d`).
///
/// The defaults of `myhostname` and `mydomain` are computed once from the system host name, as
/// `postconf -d` does (`/proc/sys/kernel/hostname`, else `/etc/hostname`, else `localhost`); all
/// others are static.
pub fn param_table() -> &'static [ParamDef] {
    static TABLE: OnceLock<Vec<ParamDef>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let host: &'static str = Box::leak(default_myhostname(None).into_boxed_str());
        let domain: &'static str = Box::leak(domain_of(host).into_boxed_str());
        let mut table: Vec<ParamDef> = PARAMS
            .iter()
            .map(|d| match d.name {
                "myhostname" => ParamDef {
                    default: host,
                    ..*d
                },
                "mydomain" => ParamDef {
                    default: domain,
                    ..*d
                },
                _ => *d,
            })
            .collect();
        table.sort_by(|a, b| a.name.cmp(b.name));
        table
    })
}

/// Look up one parameter definition by name.
pub fn param_def(name: &str) -> Option<&'static ParamDef> {
    let table = param_table();
    table
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .and_then(|i| table.get(i))
}

/// Whether `name` is a Postfix parameter that Postern accepts but ignores (not implemented).
pub fn postfix_unimplemented(name: &str) -> bool {
    POSTFIX_UNIMPLEMENTED.binary_search(&name).is_ok()
}

/// The system host name: `/proc/sys/kernel/hostname`, else `/etc/hostname`, else `localhost`.
pub(crate) fn system_hostname() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().trim_end_matches('.').to_string())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
    .clone()
}

/// Postfix's `myhostname` default: the system host name, with `.$mydomain` (explicit
/// `mydomain`, else `localdomain`) appended when it contains no dot.
pub(crate) fn default_myhostname(explicit_mydomain: Option<&str>) -> String {
    let host = system_hostname();
    if host.contains('.') {
        host
    } else {
        format!("{host}.{}", explicit_mydomain.unwrap_or("localdomain"))
    }
}

/// Postfix's `mydomain` default: `myhostname` minus its first label, `localdomain` if none.
pub(crate) fn domain_of(host: &str) -> String {
    match host.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_string(),
        _ => "localdomain".to_string(),
    }
}

/// The known name closest to `name` within edit distance 2 (optimal string alignment), if any.
pub(crate) fn did_you_mean(name: &str) -> Option<&'static str> {
    param_table()
        .iter()
        .map(|d| (edit_distance(name, d.name), d.name))
        .filter(|(dist, _)| *dist <= 2)
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, n)| n)
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows of the dynamic-programming matrix: i-2, i-1 and i.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            cur[j] = best;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_is_sorted_and_unique() {
        for w in PARAMS.windows(2) {
            assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
        }
        for w in POSTFIX_UNIMPLEMENTED.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for name in POSTFIX_UNIMPLEMENTED {
            assert!(
                param_def(name).is_none(),
                "{name} is both known and unimplemented"
            );
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(param_def("message_size_limit").unwrap().default, "10240000");
        assert_eq!(
            param_def("smtpd_forbid_bare_newline").unwrap().default,
            "reject"
        );
        assert_eq!(
            param_def("smtpd_forbid_bare_newline_reject_code")
                .unwrap()
                .default,
            "550"
        );
        assert_eq!(param_def("maximal_queue_lifetime").unwrap().default, "5d");
        assert!(param_def("no_such_parameter").is_none());
        assert!(postfix_unimplemented("smtpd_tls_session_cache_database"));
        assert!(!postfix_unimplemented("message_size_limit"));
    }

    #[test]
    fn dynamic_defaults_are_filled() {
        let host = param_def("myhostname").unwrap().default;
        assert!(host.contains('.'), "{host}");
        let domain = param_def("mydomain").unwrap().default;
        assert!(!domain.is_empty());
        assert!(host.ends_with(domain));
    }

    #[test]
    fn every_config_field_is_in_the_table() {
        for name in [
            "mail_name",
            "myhostname",
            "mydomain",
            "myorigin",
            "mydestination",
            "mynetworks",
            "relay_domains",
            "inet_interfaces",
            "queue_directory",
            "mail_spool_directory",
            "home_mailbox",
            "local_recipient_maps",
            "recipient_delimiter",
            "message_size_limit",
            "smtpd_recipient_limit",
            "smtpd_timeout",
            "smtpd_soft_error_limit",
            "smtpd_hard_error_limit",
            "smtpd_error_sleep_time",
            "smtpd_client_connection_count_limit",
            "default_process_limit",
            "line_length_limit",
            "header_size_limit",
            "smtpd_banner",
            "smtpd_forbid_bare_newline",
            "smtpd_forbid_bare_newline_exclusions",
            "smtpd_relay_restrictions",
            "smtpd_recipient_restrictions",
            "minimal_backoff_time",
            "maximal_backoff_time",
            "maximal_queue_lifetime",
            "bounce_queue_lifetime",
            "delay_warning_time",
            "queue_run_delay",
            "qmgr_message_active_limit",
            "default_destination_concurrency_limit",
            "local_destination_concurrency_limit",
            "default_transport",
            "local_transport",
            "relayhost",
            "bounce_notice_recipient",
            "notify_classes",
            "maillog_file",
            "smtpd_helo_required",
            "disable_vrfy_command",
            "strict_rfc821_envelopes",
            "smtputf8_enable",
            "append_dot_mydomain",
            "allow_percent_hack",
            "swap_bangpath",
            "mynetworks_style",
            "smtpd_forbid_bare_newline_reject_code",
            "soft_bounce",
            "inet_protocols",
        ] {
            assert!(param_def(name).is_some(), "{name} missing from the table");
        }
    }

    #[test]
    fn docs_list_every_parameter() {
        let docs = include_str!("../../../docs/parameters.md");
        for d in param_table() {
            assert!(
                docs.contains(&format!("`{}`", d.name)),
                "docs/parameters.md does not mention `{}`",
                d.name
            );
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("mesage_size_limit"),
            Some("message_size_limit")
        );
        assert_eq!(did_you_mean("myhsotname"), Some("myhostname"));
        assert_eq!(did_you_mean("mynetwork"), Some("mynetworks"));
        assert_eq!(did_you_mean("completely_unrelated"), None);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("ab", ""), 2);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn hostname_helpers() {
        assert_eq!(domain_of("mail.example.com"), "example.com");
        assert_eq!(domain_of("localhost"), "localdomain");
        assert!(default_myhostname(Some("example.org")).contains('.'));
    }
}
