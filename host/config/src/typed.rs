//! The typed, validated [`Config`] built from a [`MainCf`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::mastercf::interface_addrs;
use crate::values::{parse_bool, parse_list, parse_size, parse_time, BareNewline, Cidr};
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
    /// The source, with any overrides applied (for `postern conf -n` and later features).
    pub raw: MainCf,
}

const NOTIFY_CLASSES: &[&str] = &[
    "2bounce", "bounce", "data", "delay", "policy", "protocol", "resource", "software",
];

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
        smtpd_relay_restrictions: b.list("smtpd_relay_restrictions"),
        smtpd_recipient_restrictions: b.list("smtpd_recipient_restrictions"),
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

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
