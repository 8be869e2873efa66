//! Scripted SMTP dialogs against the real binary, asserting exact reply and enhanced codes.

use std::time::Duration;

use postern_tests::{message, Server, TestSession};

#[test]
fn a_message_to_a_local_user_is_queued_and_delivered_to_maildir() {
    let server = Server::start("");
    let mut s = server.connect();
    assert!(s.banner.contains("mx.example.test"), "{}", s.banner);
    let caps = s.ehlo("client.example.org");
    for cap in [
        "PIPELINING",
        "SIZE 10240000",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(caps.contains(cap), "EHLO lacks {cap}: {caps}");
    }
    s.mail_from("sender@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    let reply = s.data(&message("dialog-1"), "250 2.0.0 Ok: queued as ");
    let id = TestSession::queue_id(&reply);
    s.cmd("QUIT", "221 2.0.0");

    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    let m = &mail[0];
    assert!(m.contains("Subject: dialog-1"));
    assert!(
        m.contains(&format!("id {id}")),
        "Received: names the queue id:\n{m}"
    );
    assert!(
        m.starts_with("Return-Path: <sender@example.org>")
            || m.contains("\nReturn-Path: <sender@example.org>")
    );
    assert!(m.contains("Delivered-To: user@localhost"));
    assert!(m.contains("Message-ID: "), "cleanup adds Message-ID:\n{m}");
    let log = server.wait_for_log(
        &format!("{id}: to=<user@localhost>"),
        Duration::from_secs(10),
    );
    assert!(log.contains(&format!("{id}: to=<user@localhost>")), "{log}");
    assert!(log.contains("status=sent"), "{log}");
}

/// smtpd hands a new message to the queue manager at the client's next command, or after a
/// moment of silence: a client that keeps the session open without a word still gets its mail
/// delivered long before the next queue scan (`queue_run_delay`, 300 s by default).
#[test]
fn mail_is_delivered_while_the_client_keeps_the_session_open() {
    let server = Server::start("");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    // Two transactions on the same session, each followed by silence.
    for n in 1..=2 {
        s.mail_from("sender@example.org", "250 2.1.0");
        s.rcpt_to("user@localhost", "250 2.1.5");
        s.data(&message(&format!("idle-{n}")), "250 2.0.0 Ok: queued as ");
        let mail = server.wait_for_mail("user", n, Duration::from_secs(10));
        assert_eq!(mail.len(), n, "log:\n{}", server.log());
    }
    s.cmd("QUIT", "221 2.0.0");
}

#[test]
fn sequencing_and_syntax_errors_get_postfix_codes() {
    let server = Server::start("");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.cmd("RCPT TO:<user@localhost>", "503 5.5.1");
    s.cmd("DATA", "503 5.5.1");
    s.cmd("FROBNICATE", "500 5.5.2");
    s.cmd("MAIL FROM:<not an address", "501");
    s.mail_from("sender@example.org", "250 2.1.0");
    s.mail_from("sender@example.org", "503 5.5.1");
    s.cmd("DATA", "503 5.5.1");
    s.cmd("RCPT TO:<>", "501");
    s.cmd("RSET", "250 2.0.0");
    s.cmd("MAIL FROM:<a@example.org> FOO=BAR", "555 5.5.4");
    s.cmd("NOOP", "250 2.0.0");
    s.cmd("VRFY user", "252 2.0.0");
    s.cmd("QUIT", "221 2.0.0");
    assert!(s.is_closed());
}

#[test]
fn relaying_is_denied_to_outsiders_and_sizes_are_enforced() {
    // 127.0.0.1 is in the default mynetworks; an empty mynetworks makes us an outsider.
    let server =
        Server::start("mynetworks =\nmessage_size_limit = 2000\nsmtpd_recipient_limit = 2");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.cmd("MAIL FROM:<a@example.org> SIZE=5000", "552 5.3.4");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("victim@elsewhere.example", "454 4.7.1");
    s.rcpt_to("one@localhost", "250 2.1.5");
    s.rcpt_to("two@localhost", "250 2.1.5");
    s.rcpt_to("three@localhost", "452 4.5.3");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(3000));
    s.data(&big, "552 5.3.4");
    s.cmd("QUIT", "221");
}

#[test]
fn helo_clients_get_replies_without_enhanced_codes() {
    let server = Server::start("");
    let mut s = server.connect();
    s.cmd("HELO client.example.org", "250 ");
    let r = s.mail_from("a@example.org", "250 ");
    assert!(!r.contains("2.1.0"), "{r}");
}

#[test]
fn pipelined_transaction_in_one_write() {
    let server = Server::start("");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.send_raw(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@localhost>\r\nRCPT TO:<other@localhost>\r\nDATA\r\n",
    );
    for want in ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"] {
        let r = s.read_reply();
        assert!(r.starts_with(want), "wanted {want}, got {r}");
    }
    s.send_raw(b"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert!(s.read_reply().starts_with("250 2.0.0"));
    assert!(s.read_reply().starts_with("221"));
    assert_eq!(
        server
            .wait_for_mail("other", 1, Duration::from_secs(10))
            .len(),
        1
    );
}

#[test]
fn smuggled_end_of_data_does_not_split_the_message() {
    let server = Server::start("smtpd_forbid_bare_newline = normalize");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.cmd("DATA", "354");
    // "\n.\r\n" must not end the data: the smuggled MAIL FROM stays message content.
    s.send_raw(b"Subject: smuggle\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@example.org>\r\n.\r\n");
    let r = s.read_reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    s.cmd("QUIT", "221");
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("MAIL FROM:<evil@example.org>"),
        "{}",
        mail[0]
    );
}

#[test]
fn bare_lf_is_refused_by_default() {
    let server = Server::start("mynetworks =");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.cmd("DATA", "354");
    s.send_raw(b"Subject: lf\n\nbody\n.\r\n");
    s.send_raw(b"\r\n.\r\n");
    let r = s.read_reply();
    assert!(r.contains("5.5.2"), "{r}");
    assert!(server
        .wait_for_mail("user", 1, Duration::from_millis(500))
        .is_empty());
}

#[test]
fn bdat_chunks_are_assembled() {
    let server = Server::start("");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    let part1 = b"Subject: chunky\r\n\r\n";
    let part2 = b"line one\r\n.line with dot\r\n";
    s.send_raw(format!("BDAT {}\r\n", part1.len()).as_bytes());
    s.send_raw(part1);
    assert!(s.read_reply().starts_with("250 2.0.0"));
    s.send_raw(format!("BDAT {} LAST\r\n", part2.len()).as_bytes());
    s.send_raw(part2);
    let r = s.read_reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert!(
        mail[0].contains("\n.line with dot\n"),
        "BDAT content is not dot-unstuffed: {}",
        mail[0]
    );
}

#[test]
fn hard_error_limit_disconnects() {
    let server = Server::start("smtpd_hard_error_limit = 3\nsmtpd_error_sleep_time = 0");
    let mut s = server.connect();
    let mut replies = Vec::new();
    for i in 0..6 {
        s.send_raw(format!("BOGUS{i}\r\n").as_bytes());
        let r = s.read_reply();
        let closing = r.is_empty() || r.starts_with("421");
        if !r.is_empty() {
            replies.push(r);
        }
        if closing {
            break;
        }
    }
    let last = replies.last().cloned().unwrap_or_default();
    assert!(last.starts_with("421 4.7.0"), "{replies:?}");
    assert!(replies.len() <= 4, "{replies:?}");
    assert!(s.is_closed());
}
