//! The command line as an admin uses it: check, conf, queue.

use postern_tests::Server;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_reports_bad_values_with_file_and_line() {
    let server = Server::start("");
    let main_cf = server.dir.path().join("main.cf");
    let mut text = std::fs::read_to_string(&main_cf).expect("main.cf");
    text.push_str("message_size_limit = 10MB\nmydestnation = typo.example\n");
    std::fs::write(&main_cf, text).expect("write");
    let out = server.cli(&["check"]);
    assert!(!out.status.success());
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("main.cf:") && all.contains("message_size_limit"),
        "{all}"
    );
    assert!(
        all.contains("mydestination"),
        "did-you-mean hint missing: {all}"
    );
}

#[test]
fn conf_shows_explicit_and_default_parameters() {
    let server = Server::start("smtpd_recipient_limit = 77");
    let n = stdout(&server.cli(&["conf", "-n"]));
    assert!(n.contains("smtpd_recipient_limit = 77"), "{n}");
    let d = stdout(&server.cli(&["conf", "-d", "smtpd_recipient_limit"]));
    assert!(d.contains("smtpd_recipient_limit = 1000"), "{d}");
    let e = server.cli(&["conf", "-e", "smtpd_recipient_limit=88"]);
    assert!(e.status.success(), "{}", stderr(&e));
    let one = stdout(&server.cli(&["conf", "smtpd_recipient_limit"]));
    assert_eq!(one.trim(), "smtpd_recipient_limit = 88");
}

#[test]
fn deferred_mail_is_listed_held_released_and_deleted() {
    // Remote mail from a trusted client is accepted and deferred (no smtp transport yet).
    let server = Server::start("");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250");
    s.rcpt_to("someone@remote.example", "250");
    let id =
        postern_tests::TestSession::queue_id(&s.data("Subject: remote\r\n\r\nx\r\n", "250 2.0.0"));
    s.cmd("QUIT", "221");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.queue_files("deferred").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let list = stdout(&server.cli(&["queue", "list"]));
    assert!(
        list.contains(&id) && list.contains("someone@remote.example"),
        "{list}"
    );
    assert!(server.cli(&["queue", "hold", &id]).status.success());
    assert_eq!(server.queue_files("hold").len(), 1);
    assert!(server.cli(&["queue", "release", &id]).status.success());
    assert!(server.queue_files("hold").is_empty());
    assert!(server.cli(&["queue", "delete", &id]).status.success());
    let list = stdout(&server.cli(&["queue", "list"]));
    assert!(!list.contains(&id), "{list}");
}

#[test]
fn check_fails_on_an_unknown_restriction_that_the_daemon_survives() {
    let server = Server::start("smtpd_recipient_restrictions = reject_unauth_destinaton");
    let out = server.cli(&["check"]);
    assert!(!out.status.success());
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("error:") && all.contains("reject_unauth_destinaton"),
        "{all}"
    );
    assert!(
        all.contains("reject_unauth_destination"),
        "did-you-mean: {all}"
    );
    // The running daemon answers Postfix's "Server configuration error" instead of permitting.
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250");
    s.rcpt_to("user@localhost", "451 4.3.5");
}
