//! Building and validating a [`Config`] from a [`MainCf`] (every problem is collected).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::mastercf::interface_addrs;
use crate::typed::Config;
use crate::values::{parse_bool, parse_list, parse_size, parse_time, BareNewline, Cidr};
use crate::{Diagnostic, MainCf};

#[path = "restrict.rs"]
pub(crate) mod restrict;
#[path = "security.rs"]
pub(crate) mod security;

use restrict::{ADDRESS_CLASSES, DELIVERY_SOURCES, EXTENSION_CLASSES};

const NOTIFY_CLASSES: &[&str] = &[
    "2bounce", "bounce", "data", "delay", "policy", "protocol", "resource", "software",
];

/// Build a Config, appending problems to `errors` and `warnings`. The returned Config is only
/// meaningful when no errors were added.
pub(crate) fn build(
    raw: MainCf,
    config_dir: Option<PathBuf>,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Config {
    let mut b = Builder {
        raw: &raw,
        errors,
        warnings,
    };
    let mynetworks = b.cidrs("mynetworks");
    let exclusions = if raw
        .get_raw("smtpd_forbid_bare_newline_exclusions")
        .is_some()
    {
        b.cidrs("smtpd_forbid_bare_newline_exclusions")
    } else {
        mynetworks.clone()
    };
    b.check_mynetworks_style();
    let minimal_backoff_time = b.time("minimal_backoff_time", 's', true);
    let maximal_backoff_time = b.time("maximal_backoff_time", 's', true);
    if maximal_backoff_time < minimal_backoff_time {
        let value = b.value("maximal_backoff_time");
        b.invalid(
            "maximal_backoff_time",
            &value,
            "it must not be smaller than minimal_backoff_time",
            None,
        );
    }
    let classes = b.restriction_classes();
    let config = Config {
        config_dir,
        mail_name: b.string("mail_name"),
        myhostname: b.string("myhostname"),
        mydomain: b.string("mydomain"),
        myorigin: b.string("myorigin"),
        mydestination: b.domains("mydestination"),
        mynetworks,
        relay_domains: b.domains("relay_domains"),
        inet_interfaces: b.interfaces(),
        inet_protocols: b.protocols(),
        queue_directory: PathBuf::from(b.string("queue_directory")),
        mail_spool_directory: b.string("mail_spool_directory"),
        home_mailbox: b.string("home_mailbox"),
        local_recipient_maps: b.list("local_recipient_maps"),
        recipient_delimiter: b.string("recipient_delimiter"),
        message_size_limit: b.size("message_size_limit"),
        smtpd_recipient_limit: b.number("smtpd_recipient_limit", 1),
        smtpd_timeout: b.time("smtpd_timeout", 's', true),
        smtpd_soft_error_limit: b.number("smtpd_soft_error_limit", 0),
        smtpd_hard_error_limit: b.number("smtpd_hard_error_limit", 1),
        smtpd_error_sleep_time: b.time("smtpd_error_sleep_time", 's', false),
        smtpd_client_connection_count_limit: b.number("smtpd_client_connection_count_limit", 0),
        default_process_limit: b.number("default_process_limit", 1),
        line_length_limit: b.number("line_length_limit", 512),
        header_size_limit: b.number("header_size_limit", 1),
        smtpd_banner: b.string("smtpd_banner"),
        smtpd_forbid_bare_newline: b.bare_newline(),
        smtpd_forbid_bare_newline_exclusions: exclusions,
        smtpd_forbid_bare_newline_reject_code: b
            .reply_code("smtpd_forbid_bare_newline_reject_code"),
        smtpd_relay_restrictions: b.restrictions("smtpd_relay_restrictions", &classes),
        smtpd_recipient_restrictions: b.restrictions("smtpd_recipient_restrictions", &classes),
        minimal_backoff_time,
        maximal_backoff_time,
        maximal_queue_lifetime: b.time("maximal_queue_lifetime", 'd', false),
        bounce_queue_lifetime: b.time("bounce_queue_lifetime", 'd', false),
        delay_warning_time: b.time("delay_warning_time", 'h', false),
        queue_run_delay: b.time("queue_run_delay", 's', true),
        qmgr_message_active_limit: b.number("qmgr_message_active_limit", 1),
        default_destination_concurrency_limit: b.number("default_destination_concurrency_limit", 0),
        local_destination_concurrency_limit: b.number("local_destination_concurrency_limit", 0),
        default_transport: b.string("default_transport"),
        local_transport: b.string("local_transport"),
        relayhost: b.string("relayhost"),
        bounce_notice_recipient: b.string("bounce_notice_recipient"),
        notify_classes: b.notify_classes(),
        maillog_file: b.string("maillog_file"),
        smtpd_helo_required: b.boolean("smtpd_helo_required"),
        disable_vrfy_command: b.boolean("disable_vrfy_command"),
        strict_rfc821_envelopes: b.boolean("strict_rfc821_envelopes"),
        smtputf8_enable: b.boolean("smtputf8_enable"),
        append_dot_mydomain: b.boolean("append_dot_mydomain"),
        allow_percent_hack: b.boolean("allow_percent_hack"),
        swap_bangpath: b.boolean("swap_bangpath"),
        soft_bounce: b.boolean("soft_bounce"),
        smtpd_client_restrictions: b.restrictions("smtpd_client_restrictions", &classes),
        smtpd_helo_restrictions: b.restrictions("smtpd_helo_restrictions", &classes),
        smtpd_sender_restrictions: b.restrictions("smtpd_sender_restrictions", &classes),
        smtpd_data_restrictions: b.restrictions("smtpd_data_restrictions", &classes),
        smtpd_end_of_data_restrictions: b.restrictions("smtpd_end_of_data_restrictions", &classes),
        smtpd_restriction_classes: classes,
        smtpd_delay_reject: b.boolean("smtpd_delay_reject"),
        parent_domain_matches_subdomains: b.list("parent_domain_matches_subdomains"),
        smtpd_null_access_lookup_key: b.string("smtpd_null_access_lookup_key"),
        access_map_reject_code: b.reply_code("access_map_reject_code"),
        access_map_defer_code: b.reply_code("access_map_defer_code"),
        unknown_address_reject_code: b.reply_code("unknown_address_reject_code"),
        unknown_client_reject_code: b.reply_code("unknown_client_reject_code"),
        unknown_hostname_reject_code: b.reply_code("unknown_hostname_reject_code"),
        invalid_hostname_reject_code: b.reply_code("invalid_hostname_reject_code"),
        non_fqdn_reject_code: b.reply_code("non_fqdn_reject_code"),
        maps_rbl_reject_code: b.reply_code("maps_rbl_reject_code"),
        relay_domains_reject_code: b.reply_code("relay_domains_reject_code"),
        unknown_local_recipient_reject_code: b.reply_code("unknown_local_recipient_reject_code"),
        unknown_virtual_alias_reject_code: b.reply_code("unknown_virtual_alias_reject_code"),
        unknown_virtual_mailbox_reject_code: b.reply_code("unknown_virtual_mailbox_reject_code"),
        unknown_relay_recipient_reject_code: b.reply_code("unknown_relay_recipient_reject_code"),
        defer_code: b.reply_code("defer_code"),
        reject_code: b.reply_code("reject_code"),
        default_rbl_reply: b.unexpanded("default_rbl_reply"),
        smtpd_reject_unlisted_sender: b.boolean("smtpd_reject_unlisted_sender"),
        smtpd_reject_unlisted_recipient: b.boolean("smtpd_reject_unlisted_recipient"),
        dns_nameservers: b.nameservers(),
        dns_timeout: b.time("dns_timeout", 's', true),
        canonical_maps: b.list("canonical_maps"),
        sender_canonical_maps: b.list("sender_canonical_maps"),
        recipient_canonical_maps: b.list("recipient_canonical_maps"),
        canonical_classes: b.keywords("canonical_classes", ADDRESS_CLASSES),
        masquerade_domains: b.domains("masquerade_domains"),
        masquerade_exceptions: b.list("masquerade_exceptions"),
        masquerade_classes: b.keywords("masquerade_classes", ADDRESS_CLASSES),
        propagate_unmatched_extensions: b
            .keywords("propagate_unmatched_extensions", EXTENSION_CLASSES),
        virtual_alias_domains: b.domains("virtual_alias_domains"),
        virtual_alias_maps: b.list("virtual_alias_maps"),
        virtual_alias_recursion_limit: b.number("virtual_alias_recursion_limit", 1),
        virtual_alias_expansion_limit: b.number("virtual_alias_expansion_limit", 1),
        alias_maps: b.list("alias_maps"),
        alias_database: b.list("alias_database"),
        allow_mail_to_files: b.keywords("allow_mail_to_files", DELIVERY_SOURCES),
        allow_mail_to_commands: b.keywords("allow_mail_to_commands", DELIVERY_SOURCES),
        relocated_maps: b.list("relocated_maps"),
        relay_recipient_maps: b.list("relay_recipient_maps"),
        transport_maps: b.list("transport_maps"),
        relay_transport: b.string("relay_transport"),
        content_filter: b.string("content_filter"),
        smtpd_milters: b.list("smtpd_milters"),
        virtual_transport: b.string("virtual_transport"),
        virtual_mailbox_domains: b.domains("virtual_mailbox_domains"),
        virtual_mailbox_maps: b.list("virtual_mailbox_maps"),
        virtual_mailbox_base: b.string("virtual_mailbox_base"),
        owner_request_special: b.boolean("owner_request_special"),
        header_checks: b.list("header_checks"),
        mime_header_checks: b.list("mime_header_checks"),
        nested_header_checks: b.list("nested_header_checks"),
        body_checks: b.list("body_checks"),
        body_checks_size_limit: b.size("body_checks_size_limit"),
        policy_time_limit: b.time("policy_time_limit", 's', true),
        smtpd_policy_service_timeout: b.time("smtpd_policy_service_timeout", 's', true),
        smtpd_policy_service_max_idle: b.time("smtpd_policy_service_max_idle", 's', true),
        smtpd_policy_service_max_ttl: b.time("smtpd_policy_service_max_ttl", 's', true),
        smtpd_policy_service_retry_delay: b.time("smtpd_policy_service_retry_delay", 's', false),
        smtpd_policy_service_default_action: b.string("smtpd_policy_service_default_action"),
        smtpd_policy_service_request_limit: b.number("smtpd_policy_service_request_limit", 0),
        smtpd_policy_service_try_limit: b.number("smtpd_policy_service_try_limit", 1),
        smtpd_policy_service_policy_context: b.string("smtpd_policy_service_policy_context"),
        smtp_helo_name: b.string("smtp_helo_name"),
        smtp_connect_timeout: b.time("smtp_connect_timeout", 's', true),
        smtp_helo_timeout: b.time("smtp_helo_timeout", 's', true),
        smtp_mail_timeout: b.time("smtp_mail_timeout", 's', true),
        smtp_rcpt_timeout: b.time("smtp_rcpt_timeout", 's', true),
        smtp_data_init_timeout: b.time("smtp_data_init_timeout", 's', true),
        smtp_data_xfer_timeout: b.time("smtp_data_xfer_timeout", 's', true),
        smtp_data_done_timeout: b.time("smtp_data_done_timeout", 's', true),
        smtp_quit_timeout: b.time("smtp_quit_timeout", 's', true),
        smtpd_tls: b.smtpd_tls(),
        smtp_tls: b.smtp_tls(),
        sasl: b.sasl(),
        delivery: b.delivery(),
        smtp_sasl: b.client_sasl(),
        raw: MainCf::default(),
    };
    Config { raw, ..config }
}

struct Builder<'a> {
    raw: &'a MainCf,
    errors: &'a mut Vec<Diagnostic>,
    warnings: &'a mut Vec<Diagnostic>,
}

impl Builder<'_> {
    /// Where `name` was set, or the main.cf file without a line for defaults.
    fn location(&self, name: &str) -> (PathBuf, usize) {
        match self.raw.location(name) {
            Some((f, l)) => (f.to_path_buf(), l),
            None => (self.raw.file().to_path_buf(), 0),
        }
    }

    fn diagnostic(&self, name: &str, message: String) -> Diagnostic {
        let (file, line) = self.location(name);
        Diagnostic::new(Path::new(&file), line, message)
    }

    /// The expanded value (an expansion error is recorded and yields "").
    fn value(&mut self, name: &str) -> String {
        match self.raw.expand_with(name, self.warnings) {
            Ok(v) => v.trim().to_string(),
            Err(e) => {
                self.errors.extend(e.into_diagnostics());
                String::new()
            }
        }
    }

    fn invalid(&mut self, name: &str, value: &str, expected: &str, hint: Option<String>) {
        let mut d = self.diagnostic(
            name,
            format!("invalid value \"{value}\" for {name}: {expected}"),
        );
        d.hint = hint;
        self.errors.push(d);
    }

    fn string(&mut self, name: &str) -> String {
        self.value(name)
    }

    /// The value as written (or the table default), without `$name` expansion.
    fn unexpanded(&self, name: &str) -> String {
        self.raw
            .get_raw(name)
            .or_else(|| crate::param_def(name).map(|d| d.default))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// A list whose elements must each be one of `allowed`.
    fn keywords(&mut self, name: &str, allowed: &[&str]) -> Vec<String> {
        let list = self.list(name);
        for item in &list {
            if !allowed.contains(&item.as_str()) {
                let hint = Some(format!("known values: {}", allowed.join(", ")));
                self.invalid(name, item, "unknown value", hint);
            }
        }
        list
    }

    /// `dns_nameservers`: IP addresses with an optional port (`192.0.2.1`, `192.0.2.1:5353`,
    /// `::1`, `[::1]:5353`).
    fn nameservers(&mut self) -> Vec<String> {
        let name = "dns_nameservers";
        let list = self.list(name);
        for item in &list {
            if crate::values::parse_nameserver(item).is_none() {
                let hint = Some(
                    "write IP addresses with an optional port, e.g. 127.0.0.1:5353 or [::1]:53; \
                     leave empty to use /etc/resolv.conf"
                        .to_string(),
                );
                self.invalid(name, item, "expected an IP address or address:port", hint);
            }
        }
        list
    }

    fn list(&mut self, name: &str) -> Vec<String> {
        parse_list(&self.value(name))
    }

    /// A domain list: lowercased, trailing dots removed; table references kept as written.
    fn domains(&mut self, name: &str) -> Vec<String> {
        self.list(name)
            .into_iter()
            .map(|d| {
                if d.contains(':') || d.starts_with('/') {
                    d
                } else {
                    d.trim_end_matches('.').to_ascii_lowercase()
                }
            })
            .filter(|d| !d.is_empty())
            .collect()
    }

    fn boolean(&mut self, name: &str) -> bool {
        let v = self.value(name);
        parse_bool(&v).unwrap_or_else(|| {
            let hint = match v.to_ascii_lowercase().as_str() {
                "true" | "false" | "on" | "off" | "1" | "0" | "y" | "n" => {
                    Some("Postfix booleans are written yes or no".to_string())
                }
                _ => None,
            };
            self.invalid(name, &v, "expected yes or no", hint);
            false
        })
    }

    fn size(&mut self, name: &str) -> u64 {
        let v = self.value(name);
        parse_size(&v).unwrap_or_else(|| {
            let hint = size_hint(&v);
            self.invalid(name, &v, "expected a size in bytes", Some(hint));
            0
        })
    }

    fn number<T: FromStr + Default>(&mut self, name: &str, min: u64) -> T {
        let v = self.value(name);
        let parsed = parse_size(&v)
            .filter(|n| *n >= min)
            .and_then(|n| n.to_string().parse().ok());
        parsed.unwrap_or_else(|| {
            let hint = if v.starts_with('-') {
                "negative numbers are not allowed".to_string()
            } else if parse_size(&v).is_some_and(|n| n < min) {
                format!("the minimum is {min}")
            } else if parse_size(&v).is_some() {
                "the number is too large".to_string()
            } else {
                format!(
                    "write a whole number, e.g. {}",
                    crate::param_def(name).map_or("0", |d| d.default)
                )
            };
            self.invalid(name, &v, "expected a non-negative whole number", Some(hint));
            T::default()
        })
    }

    fn time(&mut self, name: &str, unit: char, nonzero: bool) -> Duration {
        let v = self.value(name);
        match parse_time(&v, unit) {
            Some(d) if !nonzero || !d.is_zero() => d,
            Some(_) => {
                self.invalid(name, &v, "the time must be greater than zero", None);
                Duration::ZERO
            }
            None => {
                let hint = if v.starts_with('-') {
                    "negative times are not allowed".to_string()
                } else {
                    "write a number with an optional unit s (seconds), m (minutes), h (hours), \
                     d (days) or w (weeks), e.g. 300s or 5d"
                        .to_string()
                };
                let expected = format!("expected a time (default unit: {unit})");
                self.invalid(name, &v, &expected, Some(hint));
                Duration::ZERO
            }
        }
    }

    fn reply_code(&mut self, name: &str) -> u16 {
        let v = self.value(name);
        match v.parse::<u16>() {
            Ok(c) if (400..600).contains(&c) && v.len() == 3 => c,
            _ => {
                let hint = Some("use a 4xx or 5xx code, e.g. 550 or 450".to_string());
                self.invalid(name, &v, "expected an SMTP reply code", hint);
                550
            }
        }
    }

    fn bare_newline(&mut self) -> BareNewline {
        let name = "smtpd_forbid_bare_newline";
        let v = self.value(name);
        BareNewline::parse(&v).unwrap_or_else(|| {
            self.invalid(name, &v, "expected reject, normalize, yes or no", None);
            BareNewline::Reject
        })
    }

    fn cidrs(&mut self, name: &str) -> Vec<Cidr> {
        let v = self.value(name);
        let mut out = Vec::new();
        for item in parse_list(&v) {
            match Cidr::parse_checked(&item) {
                Ok(c) => out.push(c),
                Err(why) => {
                    let hint = if item.starts_with('!') {
                        "exclusions (!pattern) are not supported yet; list the networks to trust"
                            .to_string()
                    } else if item.starts_with('/') || table_reference(&item) {
                        format!(
                            "table lookups (type:table) and /file/name patterns in {name} are not \
                             supported yet; list the networks inline, e.g. 127.0.0.0/8 [::1]/128"
                        )
                    } else {
                        format!("{why}; write networks as 192.168.0.0/16 or [2001:db8::]/32")
                    };
                    self.invalid(
                        name,
                        &item,
                        "expected a network address in CIDR form",
                        Some(hint),
                    );
                }
            }
        }
        out
    }

    fn check_mynetworks_style(&mut self) {
        let name = "mynetworks_style";
        let v = self.value(name);
        match v.as_str() {
            "host" => {}
            "subnet" | "class" => {
                if self.raw.get_raw("mynetworks").is_none() {
                    let mut d = self.diagnostic(
                        name,
                        format!("mynetworks_style = {v} is not supported; trusting only the loopback networks"),
                    );
                    d.hint = Some(
                        "set mynetworks explicitly, e.g. mynetworks = 127.0.0.0/8 192.168.0.0/16"
                            .into(),
                    );
                    self.warnings.push(d);
                }
            }
            _ => self.invalid(name, &v, "expected host, subnet or class", None),
        }
    }

    fn interfaces(&mut self) -> Vec<String> {
        let name = "inet_interfaces";
        let list = self.list(name);
        if list.is_empty() {
            self.invalid(
                name,
                "",
                "expected all, loopback-only, or IP addresses",
                None,
            );
        }
        for entry in &list {
            if interface_addrs(entry, true, true).is_none() {
                let hint = Some(
                    "Postern does not resolve host names here; write IP addresses, all or loopback-only"
                        .to_string(),
                );
                self.invalid(
                    name,
                    entry,
                    "expected all, loopback-only, or an IP address",
                    hint,
                );
            }
        }
        list
    }

    fn protocols(&mut self) -> Vec<String> {
        let name = "inet_protocols";
        let list = self.list(name);
        let ok = !list.is_empty()
            && list
                .iter()
                .all(|p| matches!(p.as_str(), "all" | "ipv4" | "ipv6"));
        if !ok {
            let v = list.join(", ");
            self.invalid(name, &v, "expected all, ipv4, ipv6, or ipv4, ipv6", None);
        }
        list
    }

    fn notify_classes(&mut self) -> Vec<String> {
        let name = "notify_classes";
        let list = self.list(name);
        for class in &list {
            if !NOTIFY_CLASSES.contains(&class.as_str()) {
                let hint = Some(format!("known classes: {}", NOTIFY_CLASSES.join(", ")));
                self.invalid(name, class, "unknown notification class", hint);
            }
        }
        list
    }
}

/// Whether `item` looks like a Postfix `type:table` reference (not an IPv6 address).
fn table_reference(item: &str) -> bool {
    item.split_once(':')
        .is_some_and(|(t, _)| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// A hint for an invalid size, converting `10MB`-style values when possible.
fn size_hint(value: &str) -> String {
    let v = value.trim();
    if v.starts_with('-') {
        return "negative sizes are not allowed; write the size in bytes, e.g. 10240000"
            .to_string();
    }
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits);
    let mult: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
        "k" | "kb" | "kib" => Some(1 << 10),
        "m" | "mb" | "mib" => Some(1 << 20),
        "g" | "gb" | "gib" => Some(1 << 30),
        _ => None,
    };
    match (num.parse::<u64>().ok(), mult) {
        (Some(n), Some(m)) => match n.checked_mul(m) {
            Some(bytes) => format!("write the size in bytes, e.g. {bytes} for {v}"),
            None => "write the size in bytes, e.g. 10240000".to_string(),
        },
        _ => "write the size in bytes, e.g. 10240000".to_string(),
    }
}
