use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(main_cf: Option<&str>, master_cf: Option<&str>) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postern-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(text) = main_cf {
            std::fs::write(dir.join("main.cf"), text).unwrap();
        }
        if let Some(text) = master_cf {
            std::fs::write(dir.join("master.cf"), text).unwrap();
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ov(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn addrs(l: &Listener) -> Vec<String> {
    l.addrs.iter().map(ToString::to_string).collect()
}

#[test]
fn embedded_defaults() {
    let loaded = load_embedded().unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.listeners.len(), 1);
    assert_eq!(loaded.listeners[0].service, "127.0.0.1:2525");
    assert_eq!(addrs(&loaded.listeners[0]), ["127.0.0.1:2525"]);
    let c = &loaded.main;
    assert!(c.config_dir.is_none());
    assert_eq!(c.queue_directory, PathBuf::from("./postern-data/queue"));
    assert_eq!(c.mail_spool_directory, "./postern-data/mail/");
    assert_eq!(
        c.mydestination,
        [c.myhostname.to_ascii_lowercase(), "localhost".to_string()]
    );
    let nets: Vec<String> = c.mynetworks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["127.0.0.0/8", "[::1]/128"]);
    assert_eq!(c.inet_interfaces, ["loopback-only"]);
    assert_eq!(loaded.listeners[0].config.message_size_limit, 10_240_000);
}

#[test]
fn embedded_with_overrides() {
    let loaded = load_with(
        None,
        &ov(&[
            ("message_size_limit", "1000"),
            ("myhostname", "test.example"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.main.message_size_limit, 1000);
    assert_eq!(loaded.listeners[0].config.message_size_limit, 1000);
    assert_eq!(
        loaded.listeners[0].config.smtpd_banner,
        "test.example ESMTP Postern"
    );
    assert_eq!(loaded.main.mydestination, ["test.example", "localhost"]);

    let err = load_with(None, &ov(&[("message_size_limit", "10MB")])).unwrap_err();
    let ConfigError::Many(d) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(d.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "command line: invalid value \"10MB\" for message_size_limit: expected a size in bytes \
         (hint: write the size in bytes, e.g. 10485760 for 10MB)"
    );
}

#[test]
fn missing_files_use_defaults() {
    let dir = TempDir::new(None, None);
    let loaded = load(&dir.0).unwrap();
    assert_eq!(loaded.main.config_dir.as_deref(), Some(dir.0.as_path()));
    assert_eq!(
        loaded.main.queue_directory,
        PathBuf::from("/var/spool/postern")
    );
    assert_eq!(loaded.listeners.len(), 1);
    assert_eq!(loaded.listeners[0].service, "smtp");
    assert_eq!(addrs(&loaded.listeners[0]), ["0.0.0.0:25", "[::]:25"]);
    assert_eq!(
        loaded.main.raw.expand("config_directory").unwrap(),
        dir.0.display().to_string()
    );
    assert!(loaded.main.raw.explicit().next().is_none());
}

#[test]
fn missing_directory_is_io_error() {
    let err = load(Path::new("/nonexistent/postern-config-test")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/postern-config-test: "),
        "{err}"
    );
}

const MAIN: &str = "\
# main.cf for tests
myhostname = mx.example.com
mydomain = example.com
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, $mydomain
inet_interfaces = 127.0.0.1, [::1]
mua_client_restrictions = permit_sasl_authenticated, reject
queue_directory = spool/queue
";

const MASTER: &str = "\
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       20      smtpd
  -o syslog_name=postfix/submission
  -o smtpd_client_restrictions=$mua_client_restrictions
  -o { smtpd_banner = $myhostname ESMTP submission }
  -o smtpd_recipient_limit=50
[::1]:2525 inet n - n - 0 smtpd
628       inet  n       -       y       -       -       qmqpd
pickup    unix  n       -       y       60      1       pickup
";

#[test]
fn listeners_with_overrides() {
    let dir = TempDir::new(Some(MAIN), Some(MASTER));
    let loaded = load(&dir.0).unwrap();
    assert_eq!(loaded.main.queue_directory, PathBuf::from("spool/queue"));
    assert_eq!(loaded.main.myorigin, "example.com");
    let l = &loaded.listeners;
    assert_eq!(l.len(), 3);
    assert_eq!(addrs(&l[0]), ["127.0.0.1:25", "[::1]:25"]);
    assert_eq!(l[0].config.smtpd_banner, "mx.example.com ESMTP Postern");
    assert_eq!(l[0].config.default_process_limit, 100);
    assert_eq!(l[1].service, "submission");
    assert_eq!(addrs(&l[1]), ["127.0.0.1:587", "[::1]:587"]);
    assert_eq!(l[1].config.smtpd_banner, "mx.example.com ESMTP submission");
    assert_eq!(l[1].config.smtpd_recipient_limit, 50);
    assert_eq!(l[1].config.default_process_limit, 20);
    assert_eq!(
        l[1].config.raw.get_raw("syslog_name"),
        Some("postfix/submission")
    );
    assert_eq!(loaded.main.smtpd_recipient_limit, 1000);
    assert_eq!(addrs(&l[2]), ["[::1]:2525"]);
    assert_eq!(l[2].config.default_process_limit, u32::MAX);
    let cli = load_with(Some(&dir.0), &ov(&[("default_process_limit", "7")])).unwrap();
    assert_eq!(cli.listeners[1].config.default_process_limit, 7);

    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    // mua_client_restrictions is user-defined (referenced from master.cf): no warning.
    assert!(w[0].contains("master.cf:2: Postfix parameter syslog_name is not implemented"));
    assert_eq!(
        l[1].config.smtpd_client_restrictions,
        ["permit_sasl_authenticated", "reject"]
    );
    assert!(l[0].config.smtpd_client_restrictions.is_empty());
    assert!(
        w[1].contains("master.cf:8: inet service 628 runs qmqpd"),
        "{}",
        w[1]
    );
}

#[test]
fn unknown_parameters_warn_with_suggestion() {
    let dir = TempDir::new(
        Some("myhostname = h.example\nmesage_size_limit = 1000\nfrobnicate = yes\nsmtpd_tls_session_cache_database = btree:/x\n"),
        Some("smtp inet n - n - - smtpd -o smtpd_timout=10s\n"),
    );
    let loaded = load(&dir.0).unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 4, "{w:#?}");
    assert!(
        w[0].contains(
            "main.cf:2: unknown parameter mesage_size_limit (did you mean message_size_limit?)"
        ),
        "{}",
        w[0]
    );
    assert!(
        w[1].contains("main.cf:3: unknown parameter frobnicate; ignored"),
        "{}",
        w[1]
    );
    assert!(
        w[2].contains(
            "main.cf:4: Postfix parameter smtpd_tls_session_cache_database is not implemented"
        ),
        "{}",
        w[2]
    );
    assert!(
        w[3].contains("master.cf:1: unknown parameter smtpd_timout (did you mean smtpd_timeout?)"),
        "{}",
        w[3]
    );
}

#[test]
fn all_errors_reported_together() {
    let dir = TempDir::new(
        Some("myhostname = h.example\nmessage_size_limit = 10MB\nmynetworks = 10.0.0.0/33\nbogus line\n"),
        Some("smtp inet n - y - - smtpd\nbad inet n - y\n127.0.0.1:smtpx inet n - n - - smtpd\n\
              2526 inet n - n - - smtpd -o smtpd_forbid_bare_newline=maybe\n"),
    );
    let err = load(&dir.0).unwrap_err();
    let ConfigError::Many(d) = &err else {
        panic!("{err:?}")
    };
    let got: Vec<(String, usize)> = d
        .iter()
        .map(|d| {
            (
                d.file.file_name().unwrap().to_string_lossy().into_owned(),
                d.line,
            )
        })
        .collect();
    let want = [
        ("main.cf", 2),
        ("main.cf", 3),
        ("main.cf", 4),
        ("master.cf", 2),
        ("master.cf", 3),
        ("master.cf", 4),
    ];
    let want: Vec<(String, usize)> = want.iter().map(|(f, l)| (f.to_string(), *l)).collect();
    assert_eq!(got, want, "{err}");
    assert_eq!(err.to_string().lines().count(), 6);
    let text = err.to_string();
    assert!(text.contains("invalid port \"smtpx\""), "{text}");
    assert!(text.contains("expected at least 8 fields"), "{text}");
    assert!(
        text.contains("invalid value \"maybe\" for smtpd_forbid_bare_newline"),
        "{text}"
    );
}

#[test]
fn duplicate_listen_address_is_an_error() {
    let dir = TempDir::new(
        Some("myhostname = h.example\ninet_interfaces = loopback-only\n"),
        Some("smtp inet n - n - - smtpd\n127.0.0.1:25 inet n - n - - smtpd\n"),
    );
    let err = load(&dir.0).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
    assert_eq!(err.diagnostics()[0].line, 2);
    assert!(err.to_string().contains("already uses"), "{err}");
}

#[test]
fn postscreen_and_no_listener_warn() {
    let dir = TempDir::new(
        Some("myhostname = h.example\n"),
        Some("smtp inet n - y - 1 postscreen\nsmtpd pass - - y - - smtpd\n"),
    );
    let loaded = load(&dir.0).unwrap();
    assert!(loaded.listeners.is_empty());
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w.iter().any(|w| w.contains("Postern has no postscreen")));
    assert!(w.iter().any(|w| w.contains("no smtpd inet service")));
}

#[test]
fn interface_protocol_filtering() {
    let dir = TempDir::new(
        Some("myhostname = h.example\ninet_protocols = ipv4\n"),
        None,
    );
    let loaded = load(&dir.0).unwrap();
    assert_eq!(addrs(&loaded.listeners[0]), ["0.0.0.0:25"]);
}

#[test]
fn bad_inet_interfaces_reported_once() {
    let dir = TempDir::new(
        Some("myhostname = h.example\ninet_interfaces = eth0\n"),
        None,
    );
    let err = load(&dir.0).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
    assert_eq!(err.diagnostics()[0].line, 2);
}

#[test]
fn unknown_restrictions_load_but_fail_check() {
    let main = "smtpd_restriction_classes = from_partners\n\
                from_partners = permit_mynetworks, reject\n\
                smtpd_recipient_restrictions = check_sender_access inline:{x=from_partners},\n    \
                  permit_mynetworks, no_such_thing\n";
    let dir = TempDir::new(Some(main), None);
    let loaded = load(&dir.0).unwrap();
    let check: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|d| d.fails_check)
        .map(ToString::to_string)
        .collect();
    assert_eq!(check.len(), 1, "{:#?}", loaded.warnings);
    assert!(check[0].contains("main.cf:3: unknown restriction \"no_such_thing\""));
    // The class name is a user-defined parameter, not an unknown one.
    assert!(
        loaded
            .warnings
            .iter()
            .all(|d| !d.message.contains("from_partners")),
        "{:#?}",
        loaded.warnings
    );
}
