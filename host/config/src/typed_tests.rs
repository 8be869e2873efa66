use super::*;
use std::path::Path;

fn config(text: &str) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
    let raw = MainCf::parse(text, Path::new("main.cf")).expect("syntax");
    Config::from_main_cf(raw, None)
}

fn ok(text: &str) -> Config {
    match config(text) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

fn err(text: &str) -> Vec<Diagnostic> {
    match config(text) {
        Ok((c, _)) => panic!("accepted: {c:?}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

const HOST: &str = "myhostname = mail.example.com\n";

#[test]
fn defaults() {
    let c = ok(HOST);
    assert_eq!(c.mail_name, "Postern");
    assert_eq!(c.myhostname, "mail.example.com");
    assert_eq!(c.mydomain, "example.com");
    assert_eq!(c.myorigin, "mail.example.com");
    assert_eq!(
        c.mydestination,
        ["mail.example.com", "localhost.example.com", "localhost"]
    );
    let nets: Vec<String> = c.mynetworks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["127.0.0.0/8", "[::1]/128"]);
    assert_eq!(c.smtpd_forbid_bare_newline_exclusions, c.mynetworks);
    assert!(c.relay_domains.is_empty());
    assert_eq!(c.inet_interfaces, ["all"]);
    assert_eq!(c.inet_protocols, ["all"]);
    assert_eq!(c.queue_directory, PathBuf::from("/var/spool/postern"));
    assert_eq!(c.mail_spool_directory, "/var/mail");
    assert_eq!(c.home_mailbox, "");
    assert!(c.local_recipient_maps.is_empty());
    assert_eq!(c.recipient_delimiter, "");
    assert_eq!(c.message_size_limit, 10_240_000);
    assert_eq!(c.smtpd_recipient_limit, 1000);
    assert_eq!(c.smtpd_timeout, Duration::from_secs(300));
    assert_eq!(c.smtpd_soft_error_limit, 10);
    assert_eq!(c.smtpd_hard_error_limit, 20);
    assert_eq!(c.smtpd_error_sleep_time, Duration::from_secs(1));
    assert_eq!(c.smtpd_client_connection_count_limit, 50);
    assert_eq!(c.default_process_limit, 100);
    assert_eq!(c.line_length_limit, 2048);
    assert_eq!(c.header_size_limit, 102_400);
    assert_eq!(c.smtpd_banner, "mail.example.com ESMTP Postern");
    assert_eq!(c.smtpd_forbid_bare_newline, BareNewline::Reject);
    assert_eq!(c.smtpd_forbid_bare_newline_reject_code, 550);
    assert_eq!(
        c.smtpd_relay_restrictions,
        [
            "permit_mynetworks",
            "permit_sasl_authenticated",
            "defer_unauth_destination"
        ]
    );
    assert!(c.smtpd_recipient_restrictions.is_empty());
    assert_eq!(c.minimal_backoff_time, Duration::from_secs(300));
    assert_eq!(c.maximal_backoff_time, Duration::from_secs(4000));
    assert_eq!(c.maximal_queue_lifetime, Duration::from_secs(5 * 86_400));
    assert_eq!(c.bounce_queue_lifetime, Duration::from_secs(5 * 86_400));
    assert_eq!(c.delay_warning_time, Duration::ZERO);
    assert_eq!(c.queue_run_delay, Duration::from_secs(300));
    assert_eq!(c.qmgr_message_active_limit, 20_000);
    assert_eq!(c.default_destination_concurrency_limit, 20);
    assert_eq!(c.local_destination_concurrency_limit, 2);
    assert_eq!(c.default_transport, "smtp");
    assert_eq!(c.local_transport, "local:mail.example.com");
    assert_eq!(c.relayhost, "");
    assert_eq!(c.bounce_notice_recipient, "postmaster");
    assert_eq!(c.notify_classes, ["resource", "software"]);
    assert_eq!(c.maillog_file, "");
    assert!(!c.smtpd_helo_required);
    assert!(!c.disable_vrfy_command);
    assert!(!c.strict_rfc821_envelopes);
    assert!(c.smtputf8_enable);
    assert!(!c.append_dot_mydomain);
    assert!(!c.allow_percent_hack);
    assert!(c.swap_bangpath);
    assert!(!c.soft_bounce);
    assert!(c.config_dir.is_none());
    assert_eq!(c.raw.get_raw("myhostname"), Some("mail.example.com"));
}

#[test]
fn system_hostname_defaults() {
    let c = ok("");
    assert!(c.myhostname.contains('.'), "{}", c.myhostname);
    assert!(
        c.myhostname.ends_with(&c.mydomain),
        "{} / {}",
        c.myhostname,
        c.mydomain
    );
    assert_eq!(
        c.myhostname,
        crate::param_def("myhostname").unwrap().default
    );
    // A host name without a dot gets the explicit mydomain appended, as in Postfix.
    if !crate::params::system_hostname().contains('.') {
        let c = ok("mydomain = example.net\n");
        assert!(c.myhostname.ends_with(".example.net"), "{}", c.myhostname);
    }
}

#[test]
fn quick_start_example() {
    let c = ok(
        "myhostname = host.example.com\nmydomain = example.com\nmyorigin = $mydomain\n\
         mydestination = $myhostname, localhost.$mydomain, $mydomain\n\
         mynetworks = 168.100.189.0/28, 127.0.0.0/8\nrelay_domains = Example.COM.\n\
         relayhost = [mailhub.example.com]\n",
    );
    assert_eq!(c.myorigin, "example.com");
    assert_eq!(
        c.mydestination,
        ["host.example.com", "localhost.example.com", "example.com"]
    );
    assert!(c.mynetworks[0].contains("168.100.189.14".parse().unwrap()));
    assert!(!c.mynetworks[0].contains("168.100.189.16".parse().unwrap()));
    assert_eq!(c.relay_domains, ["example.com"]);
    assert_eq!(c.relayhost, "[mailhub.example.com]");
}

#[test]
fn debian_main_cf() {
    let text = "\
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = debian.example.org
alias_maps = hash:/etc/aliases
myorigin = /etc/mailname
mydestination = $myhostname, debian, localhost.localdomain, , localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = all
inet_protocols = all
";
    let (c, warnings) = config(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.smtpd_banner,
        "debian.example.org ESMTP Postern (Debian/GNU)"
    );
    assert_eq!(
        c.mydestination,
        [
            "debian.example.org",
            "debian",
            "localhost.localdomain",
            "localhost"
        ]
    );
    assert_eq!(c.mynetworks.len(), 3);
    assert!(c
        .mynetworks
        .iter()
        .any(|n| n.contains("::ffff:127.0.0.1".parse().unwrap())));
    assert_eq!(c.recipient_delimiter, "+");
    assert_eq!(c.myorigin, "/etc/mailname");
}

#[test]
fn overrides_and_time_units() {
    let c = ok(
        "myhostname = h.example\nmaximal_queue_lifetime = 2\nbounce_queue_lifetime = 12h\n\
         delay_warning_time = 4\nminimal_backoff_time = 5m\nsmtpd_timeout = 60\n\
         smtpd_forbid_bare_newline = normalize\nsmtpd_forbid_bare_newline_exclusions = 10.0.0.0/8\n\
         message_size_limit = 0\nsmtpd_helo_required = YES\nmail_spool_directory = Maildir/\n",
    );
    assert_eq!(c.maximal_queue_lifetime, Duration::from_secs(2 * 86_400));
    assert_eq!(c.bounce_queue_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(c.delay_warning_time, Duration::from_secs(4 * 3600));
    assert_eq!(c.minimal_backoff_time, Duration::from_secs(300));
    assert_eq!(c.smtpd_timeout, Duration::from_secs(60));
    assert_eq!(c.smtpd_forbid_bare_newline, BareNewline::Normalize);
    assert_eq!(
        c.smtpd_forbid_bare_newline_exclusions,
        [Cidr::parse("10.0.0.0/8").unwrap()]
    );
    assert_eq!(c.message_size_limit, 0);
    assert!(c.smtpd_helo_required);
    assert_eq!(c.mail_spool_directory, "Maildir/");
}

#[test]
fn size_with_unit_is_rejected_with_hint() {
    let d = err("myhostname = h.example\n\nmessage_size_limit = 10MB\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].line, 3);
    assert_eq!(
        d[0].message,
        "invalid value \"10MB\" for message_size_limit: expected a size in bytes"
    );
    let hint = d[0].hint.as_deref().unwrap();
    assert!(hint.starts_with("write the size in bytes"), "{hint}");
    assert!(hint.contains("10485760"), "{hint}");
    assert!(d[0]
        .to_string()
        .starts_with("main.cf:3: invalid value \"10MB\""));
    let d = err("message_size_limit = abc\n");
    assert_eq!(
        d[0].hint.as_deref(),
        Some("write the size in bytes, e.g. 10240000")
    );
}

#[test]
fn every_invalid_value_is_reported() {
    let d = err("myhostname = h.example\n\
         message_size_limit = -1\n\
         smtpd_recipient_limit = -5\n\
         smtpd_timeout = 5 minutes\n\
         maximal_queue_lifetime = 5y\n\
         mynetworks = 127.0.0.0/8 192.168.1.5/24 hash:/etc/postfix/network_table !10.0.0.1\n\
         smtpd_forbid_bare_newline = maybe\n\
         smtpd_helo_required = true\n\
         line_length_limit = 100\n\
         smtpd_hard_error_limit = 99999999999\n\
         smtpd_forbid_bare_newline_reject_code = 250\n\
         inet_interfaces = mail.example.com\n\
         inet_protocols = ipv5\n\
         notify_classes = resource, everything\n\
         mynetworks_style = galaxy\n");
    let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
    assert_eq!(
        lines,
        [2, 3, 4, 5, 6, 6, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        "{d:#?}"
    );
    let text: Vec<String> = d.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    for needle in [
        "negative sizes are not allowed",
        "negative numbers are not allowed",
        "expected a time (default unit: s)",
        "expected a time (default unit: d)",
        "perhaps you should use \"192.168.1.0/24\"",
        "table lookups (type:table)",
        "exclusions (!pattern) are not supported",
        "invalid value \"maybe\" for smtpd_forbid_bare_newline",
        "Postfix booleans are written yes or no",
        "the minimum is 512",
        "the number is too large",
        "expected an SMTP reply code",
        "does not resolve host names",
        "inet_protocols",
        "unknown notification class",
        "expected host, subnet or class",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn backoff_order_is_checked() {
    let d = err("minimal_backoff_time = 1h\nmaximal_backoff_time = 10m\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 2);
    assert!(d[0].message.contains("minimal_backoff_time"));
    let d = err("queue_run_delay = 0\n");
    assert!(d[0].message.contains("greater than zero"));
}

#[test]
fn expansion_loop_is_one_error() {
    let d = err("myhostname = $mydomain.x\nmydomain = $myhostname\n");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(
        d[0].message.contains("parameter expansion loop"),
        "{}",
        d[0]
    );
}

#[test]
fn undefined_reference_warns() {
    let (c, w) =
        config("myhostname = h.example\nsmtpd_banner = $myhostname $bogus_param\n").unwrap();
    assert_eq!(c.smtpd_banner, "h.example");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].line, 2);
}

#[test]
fn mynetworks_style_subnet_warns() {
    let (c, w) = config("myhostname = h.example\nmynetworks_style = subnet\n").unwrap();
    assert_eq!(c.mynetworks.len(), 2);
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("not supported"));
    let (_, w) =
        config("mynetworks_style = subnet\nmynetworks = 10.0.0.0/8\nmyhostname = h.x\n").unwrap();
    assert!(w.is_empty());
}
