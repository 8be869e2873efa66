//! Rhai scripts end to end: `check_policy_service rhai:…` and `rhai:` tables in the real daemon,
//! and `postern check` reporting a script's syntax error (docs/scripts.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postern_tests::{Server, TempDir};

/// The example policy shipped in `examples/policy-rhai/`.
fn example_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy-rhai/policy.rhai")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write script");
    p.display().to_string()
}

#[test]
fn the_example_policy_rejects_listed_recipients_with_its_text() {
    let policy = example_policy();
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_policy_service rhai:{}, \
         permit_mynetworks, reject_unauth_destination",
        policy.display()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to(
        "Blocked@example.test",
        "550 5.7.1 <Blocked@example.test>: Recipient address rejected: \
         This mailbox does not accept mail; \
         contact postmaster@example.test",
    );
    s.rcpt_to("someone@example.org", "250 2.1.5");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("to=<blocked@example.test>", Duration::from_secs(5));
    assert!(
        log.contains("postern/script[")
            && log.contains("policy.rhai: reject: client=127.0.0.1 from=<sender@example.net>"),
        "{log}"
    );
}

#[test]
fn a_looping_script_gives_the_default_action_without_stalling_the_server() {
    let dir = TempDir::new("loop");
    let script = write(dir.path(), "loop.rhai", "fn check(req) { loop { } }\n");
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_policy_service rhai:{script}, \
         permit_mynetworks, reject_unauth_destination"
    ));
    let mut a = server.connect();
    a.ehlo("client.example.org");
    a.mail_from("sender@example.net", "250 2.1.0");
    let start = Instant::now();
    a.rcpt_to("someone@example.org", "451 4.3.5");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Other sessions go on meanwhile and afterwards.
    let mut b = server.connect();
    b.ehlo("other.example.org");
    b.mail_from("sender@example.net", "250 2.1.0");
    b.rcpt_to("x@example.org", "451 4.3.5");
    a.cmd("QUIT", "221");
    b.cmd("QUIT", "221");
    let log = server.wait_for_log("problem running policy script", Duration::from_secs(5));
    assert!(
        log.contains("ran longer than 50 ms") || log.contains("too many operations"),
        "{log}"
    );
}

#[test]
fn a_rhai_lookup_table_works_as_an_access_table() {
    let dir = TempDir::new("lookup");
    let script = write(
        dir.path(),
        "lookup.rhai",
        "fn lookup(key) {\n\
         \x20   if key.starts_with(\"spam@\") { return \"REJECT no spam here\"; }\n\
         \x20   if key == \"vip@example.org\" { return \"OK\"; }\n\
         \x20   ()\n\
         }\n",
    );
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_recipient_access rhai:{script}, \
         reject_unauth_destination"
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to(
        "spam@example.org",
        "554 5.7.1 <spam@example.org>: Recipient address rejected: no spam here",
    );
    s.rcpt_to("vip@example.org", "250 2.1.5");
    // Not found: on to reject_unauth_destination.
    s.rcpt_to(
        "other@example.org",
        "554 5.7.1 <other@example.org>: Relay access denied",
    );
    s.cmd("QUIT", "221");
}

#[test]
fn check_shows_a_script_syntax_error_with_line_and_column() {
    let dir = TempDir::new("syntax");
    let policy = write(
        dir.path(),
        "bad.rhai",
        "fn check(req) {\n    let x = ;\n}\n",
    );
    let table = write(
        dir.path(),
        "badtable.rhai",
        "fn lookup(key) {\n  key +\n}\n",
    );
    let server = Server::start("");
    let main_cf = server.dir.path().join("main.cf");
    let mut text = std::fs::read_to_string(&main_cf).expect("main.cf");
    text.push_str(&format!(
        "smtpd_recipient_restrictions = check_policy_service rhai:{policy}, \
         check_recipient_access rhai:{table}, reject_unauth_destination\n"
    ));
    std::fs::write(&main_cf, text).expect("write");
    let out = server.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        all.contains(&format!("{policy}:2:13: Unexpected ';'")),
        "{all}"
    );
    assert!(all.contains(&format!("rhai:{table}: 3:1: ")), "{all}");
}

/// `smtpd_milters = rhai:PATH`: a script's `filter(msg)` decides at end of data.
#[test]
fn a_filter_script_rejects_holds_and_prepends() {
    let dir = TempDir::new("rhai-filter");
    let script = write(
        dir.path(),
        "filter.rhai",
        r#"
fn filter(msg) {
    for h in msg.headers {
        if h[0] == "Subject" && h[1].contains("SPAM") { return "554 5.7.1 spam subject"; }
    }
    if msg.body.contains("review me") { return "HOLD needs review"; }
    "PREPEND X-Filtered: by rhai for " + msg.recipients.len() + " recipient(s)"
}
"#,
    );
    let server = Server::start(&format!("smtpd_milters = rhai:{script}"));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("frank@localhost", "250 2.1.5");
    s.data(
        "Subject: buy SPAM\r\n\r\nhello\r\n",
        "554 5.7.1 spam subject",
    );
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("frank@localhost", "250 2.1.5");
    s.data("Subject: hold\r\n\r\nplease review me\r\n", "250 2.0.0");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("frank@localhost", "250 2.1.5");
    s.data(&postern_tests::message("plain"), "250 2.0.0");
    s.cmd("QUIT", "221");
    let mail = server.wait_for_mail("frank", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("X-Filtered: by rhai for 1 recipient(s)"),
        "{}",
        mail[0]
    );
    assert_eq!(server.queue_files("hold").len(), 1);
    let check = server.cli(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // A script without filter(msg) fails `postern check`.
    write(dir.path(), "filter.rhai", "fn check(req) { () }");
    let check = server.cli(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && out.contains("defines no fn filter(msg)"),
        "{out}"
    );
}
