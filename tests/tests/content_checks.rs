//! header_checks(5) and body_checks against the real binary: the Postfix literature's
//! `/^Subject: Make money fast/ REJECT`, edits visible in the delivered Maildir file, HOLD, and
//! tables that take effect when edited.

use std::path::PathBuf;
use std::time::Duration;

use postern_tests::{Server, TempDir};

/// Writes a regexp table; returns its `regexp:` spec.
fn regexp(dir: &TempDir, name: &str, rules: &str) -> String {
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, rules).expect("write table");
    format!("regexp:{}", path.display())
}

/// One SMTP transaction to user@localhost; returns the reply to the end of DATA.
fn send(server: &Server, message: &str, expect: &str) -> String {
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    let reply = s.data(message, expect);
    s.cmd("QUIT", "221");
    reply
}

const SPAM: &str = "From: sender@example.org\r\nTo: user@localhost\r\n\
    Subject: Make money fast\r\n\r\nAct now!\r\n";

#[test]
fn header_checks_reject_make_money_fast() {
    let tables = TempDir::new("hc");
    let spec = regexp(
        &tables,
        "header_checks",
        "/^Subject: Make money fast/ REJECT\n",
    );
    let server = Server::start(&format!("header_checks = {spec}"));
    send(&server, SPAM, "550 5.7.1 message content rejected");
    let log = server.wait_for_log("reject: header Subject:", Duration::from_secs(5));
    assert!(
        log.contains("reject: header Subject: Make money fast from ")
            && log.contains(
                "; from=<sender@example.org> to=<user@localhost> proto=ESMTP \
                 helo=<client.example.org>: 5.7.1 message content rejected"
            ),
        "{log}"
    );
    // A folded Subject is one logical header.
    let folded = SPAM.replace("Make money fast", "Make money\r\n fast");
    send(&server, &folded, "550 5.7.1");
    // Other mail still flows; the rejected messages never reach the queue or the mailbox.
    send(
        &server,
        &SPAM.replace("Make money fast", "Lunch"),
        "250 2.0.0",
    );
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    assert!(mail[0].contains("Subject: Lunch"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.wait_for_mail("user", 2, Duration::ZERO).len(), 1);
    assert!(server.queue_files("incoming").is_empty());
}

#[test]
fn body_checks_reject_with_own_text() {
    let tables = TempDir::new("bc");
    let spec = regexp(
        &tables,
        "body_checks",
        "/^act now/ REJECT 5.7.0 No urgency here\n",
    );
    let server = Server::start(&format!("body_checks = {spec}"));
    send(&server, SPAM, "550 5.7.0 No urgency here");
    let log = server.wait_for_log("reject: body Act now!", Duration::from_secs(5));
    assert!(log.contains("reject: body Act now! from "), "{log}");
}

#[test]
fn attached_messages_are_checked_with_nested_header_checks() {
    let tables = TempDir::new("nested");
    let spec = regexp(
        &tables,
        "header_checks",
        "/^Subject: Make money fast/ REJECT\n",
    );
    let server = Server::start(&format!("header_checks = {spec}"));
    let message = format!(
        "From: sender@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
         --b1\r\nContent-Type: message/rfc822\r\n\r\n{SPAM}--b1--\r\n"
    );
    // nested_header_checks defaults to $header_checks.
    send(&server, &message, "550 5.7.1 message content rejected");
}

#[test]
fn ignore_prepend_and_replace_show_in_the_delivered_message() {
    let tables = TempDir::new("edits");
    let headers = regexp(
        &tables,
        "header_checks",
        "/^X-Internal-Secret:/ IGNORE\n/^Subject:/ PREPEND X-Checked: yes\n",
    );
    let body = regexp(
        &tables,
        "body_checks",
        "/^password=/ REPLACE password=<removed>\n/^tracking-pixel/ IGNORE\n",
    );
    let server = Server::start(&format!("header_checks = {headers}\nbody_checks = {body}"));
    let message = "From: sender@example.org\r\nX-Internal-Secret: 42\r\n\
        Subject: report\r\n\r\nhello\r\npassword=hunter2\r\ntracking-pixel\r\nbye\r\n";
    send(&server, message, "250 2.0.0");
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    let m = mail[0].replace("\r\n", "\n");
    assert!(!m.contains("X-Internal-Secret"), "{m}");
    assert!(m.contains("X-Checked: yes\nSubject: report\n"), "{m}");
    assert!(m.ends_with("\n\nhello\npassword=<removed>\nbye\n"), "{m}");
}

#[test]
fn hold_keeps_the_message_in_the_hold_queue() {
    let tables = TempDir::new("hold");
    let spec = regexp(
        &tables,
        "header_checks",
        "/^Subject: review me/ HOLD needs a look\n",
    );
    let server = Server::start(&format!("header_checks = {spec}"));
    send(
        &server,
        &SPAM.replace("Make money fast", "review me"),
        "250 2.0.0",
    );
    let log = server.wait_for_log("hold: header Subject: review me", Duration::from_secs(5));
    assert!(log.contains(": needs a look"), "{log}");
    assert_eq!(server.queue_files("hold").len(), 1, "log:\n{log}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.wait_for_mail("user", 1, Duration::ZERO).is_empty());
}

#[test]
fn an_edited_table_applies_to_the_next_message() {
    let tables = TempDir::new("reload");
    let spec = regexp(&tables, "header_checks", "/^Subject: nothing/ REJECT\n");
    let server = Server::start(&format!("header_checks = {spec}"));
    send(&server, SPAM, "250 2.0.0");
    regexp(
        &tables,
        "header_checks",
        "/^Subject: Make money fast/ REJECT Changed my mind\n",
    );
    send(&server, SPAM, "550 5.7.1 Changed my mind");
}

#[test]
fn discard_and_bcc_change_who_gets_the_message() {
    let tables = TempDir::new("discard");
    let spec = regexp(
        &tables,
        "header_checks",
        "/^Subject: junk/ DISCARD\n/^Subject: keep a copy/ BCC archive@localhost\n",
    );
    let server = Server::start(&format!("header_checks = {spec}"));
    // DISCARD claims success and drops the message.
    send(
        &server,
        &SPAM.replace("Make money fast", "junk"),
        "250 2.0.0",
    );
    let log = server.wait_for_log("discard: header Subject: junk", Duration::from_secs(5));
    assert!(log.contains("discard: header Subject: junk from "), "{log}");
    send(
        &server,
        &SPAM.replace("Make money fast", "keep a copy"),
        "250 2.0.0",
    );
    let copy = server.wait_for_mail("archive", 1, Duration::from_secs(10));
    assert_eq!(copy.len(), 1, "log:\n{}", server.log());
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(
        mail.len(),
        1,
        "only the BCC'd message reaches user:\n{}",
        server.log()
    );
    assert!(mail[0].contains("Subject: keep a copy"));
}
