//! Commands, replies, limits and relay control.

use super::*;

#[tokio::test]
async fn greeting_and_ehlo_capabilities() {
    let spool = TempSpool::new("smtpd-ehlo");
    let mut d = Dialog::start(config(&[]), &spool, OUTSIDER).await;
    assert_eq!(d.greeting, "220 mx.example.test ESMTP Postern\r\n");
    let caps = d
        .cmd("EHLO client.example.org", "250-mx.example.test\r\n")
        .await;
    assert_eq!(
        caps,
        "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    );
    d.cmd("QUIT", "221 2.0.0 Bye").await;
    assert!(d.closed().await);

    let cfg = [("disable_vrfy_command", "yes"), ("smtputf8_enable", "no")];
    let mut d = Dialog::start(config(&cfg), &spool, OUTSIDER).await;
    let caps = d.cmd("EHLO x", "250-").await;
    assert!(
        !caps.contains("VRFY") && !caps.contains("SMTPUTF8"),
        "{caps}"
    );
    d.cmd("VRFY bob", "502 5.5.1 VRFY command is disabled")
        .await;
}

#[tokio::test]
async fn helo_clients_get_plain_replies() {
    let spool = TempSpool::new("smtpd-helo");
    let mut d = Dialog::start(config(&[]), &spool, OUTSIDER).await;
    // Before any greeting enhanced codes are sent (as Postfix does); after HELO they are not.
    d.cmd(
        "RCPT TO:<a@localhost>",
        "503 5.5.1 Error: need MAIL command\r\n",
    )
    .await;
    d.cmd("HELO client.example.org", "250 mx.example.test\r\n")
        .await;
    d.cmd("MAIL FROM:<a@example.org>", "250 Ok\r\n").await;
    d.cmd(
        "RCPT TO:<x@remote.example>",
        "454 <x@remote.example>: Relay access denied",
    )
    .await;
    d.cmd("HELO", "501 Syntax: HELO hostname\r\n").await;
    d.cmd("EHLO again", "250-").await;
    d.cmd("NOOP", "250 2.0.0 Ok\r\n").await;
}

#[tokio::test]
async fn sequencing_errors() {
    let spool = TempSpool::new("smtpd-seq");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    d.cmd(
        "RCPT TO:<user@localhost>",
        "503 5.5.1 Error: need MAIL command",
    )
    .await;
    d.cmd("DATA", "503 5.5.1 Error: need RCPT command").await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd(
        "MAIL FROM:<a@example.org>",
        "503 5.5.1 Error: nested MAIL command",
    )
    .await;
    d.cmd("DATA", "503 5.5.1 Error: need RCPT command").await;
    d.cmd("RCPT TO:<x@remote.example>", "454 4.7.1").await;
    d.cmd("DATA", "554 5.5.1 Error: no valid recipients").await;
    d.cmd("RSET", "250 2.0.0 Ok").await;
    d.cmd("RCPT TO:<user@localhost>", "503 5.5.1").await;
    d.cmd(
        "MAIL FROM:<a@example.org> FOO=BAR",
        "555 5.5.4 Unsupported option: FOO",
    )
    .await;
    d.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME", "555 5.5.4")
        .await;
    d.cmd("MAIL FROM:<a@example.org> AUTH=<>", "555 5.5.4")
        .await;
    d.cmd("RCPT TO:<>", "503 5.5.1").await;
    d.cmd("FROBNICATE", "500 5.5.2 Error: command not recognized")
        .await;
    d.cmd("EXPN staff", "500 5.5.2 Error: command not recognized")
        .await;
    d.cmd("STARTTLS", "502 5.5.1 Error: command not implemented")
        .await;
    d.cmd(
        "AUTH PLAIN AGJvYgBzZWNyZXQ=",
        "503 5.5.1 Error: authentication not enabled",
    )
    .await;
    d.cmd(
        "HELP",
        "214 2.0.0 Commands: BDAT DATA EHLO ETRN HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    )
    .await;
    d.cmd("VRFY user", "252 2.0.0 user").await;
    d.cmd("VRFY <someone@remote.example>", "454 4.7.1").await;
    d.cmd("ETRN example.test", "250 Queuing started").await;
    d.cmd("ETRN bad..name", "501 Error: invalid parameter syntax")
        .await;

    let mut d = Dialog::start(config(&[("smtpd_helo_required", "yes")]), &spool, OUTSIDER).await;
    d.cmd(
        "MAIL FROM:<a@example.org>",
        "503 5.5.1 Error: send HELO/EHLO first",
    )
    .await;
    d.cmd("EHLO x", "250-").await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd(
        "ETRN example.test",
        "503 Error: MAIL transaction in progress",
    )
    .await;
    d.cmd("QUIT", "221").await;
    d.finished().await;
    assert!(spool.incoming().is_empty());
}

#[tokio::test]
async fn bare_lf_in_commands() {
    let spool = TempSpool::new("smtpd-bare-cmd");
    let mut d = Dialog::start(config(&[]), &spool, OUTSIDER).await;
    d.send(b"EHLO x\n").await;
    assert_eq!(
        d.reply().await,
        "550 5.5.2 mx.example.test Error: bare <LF> received\r\n"
    );
    assert!(d.closed().await);
    let mut d = Dialog::start(
        config(&[("smtpd_forbid_bare_newline", "normalize")]),
        &spool,
        OUTSIDER,
    )
    .await;
    d.send(b"EHLO x\nNOOP\n").await;
    assert!(d.reply().await.starts_with("250-mx.example.test"));
    assert_eq!(d.reply().await, "250 2.0.0 Ok\r\n");
}

#[tokio::test]
async fn timeout_closes_with_421() {
    let spool = TempSpool::new("smtpd-timeout");
    let mut d = ehlo_session(&[("smtpd_timeout", "1s")], &spool, OUTSIDER).await;
    let start = std::time::Instant::now();
    assert_eq!(
        d.reply().await,
        "421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
    );
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
    assert!(d.closed().await);
}

#[tokio::test]
async fn hard_error_limit_disconnects() {
    let spool = TempSpool::new("smtpd-errors");
    let mut d = Dialog::start(config(&[("smtpd_hard_error_limit", "3")]), &spool, OUTSIDER).await;
    for i in 0..3 {
        d.cmd(&format!("BOGUS{i}"), "500 5.5.2").await;
    }
    assert_eq!(
        d.reply().await,
        "421 4.7.0 mx.example.test Error: too many errors\r\n"
    );
    assert!(d.closed().await);
}

#[tokio::test]
async fn soft_error_limit_slows_replies() {
    let spool = TempSpool::new("smtpd-soft");
    let cfg = [
        ("smtpd_soft_error_limit", "1"),
        ("smtpd_error_sleep_time", "1s"),
    ];
    let mut d = Dialog::start(config(&cfg), &spool, OUTSIDER).await;
    let start = std::time::Instant::now();
    d.cmd("BOGUS", "500").await;
    assert!(start.elapsed() < std::time::Duration::from_millis(900));
    d.cmd("NOOP", "250").await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(1000));
}

#[tokio::test]
async fn relay_control() {
    let spool = TempSpool::new("smtpd-relay");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd(
        "RCPT TO:<victim@remote.example>",
        "454 4.7.1 <victim@remote.example>: Relay access denied",
    )
    .await;
    d.cmd("RCPT TO:<\"victim@remote.example\"@localhost>", "454 4.7.1")
        .await;
    d.cmd("RCPT TO:<user@LOCALHOST>", "250 2.1.5").await;
    d.cmd("RCPT TO:<postmaster>", "250 2.1.5").await;

    let mut d = ehlo_session(&[], &spool, LOCALHOST).await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd("RCPT TO:<friend@remote.example>", "250 2.1.5 Ok")
        .await;

    let cfg = [(
        "smtpd_relay_restrictions",
        "permit_mynetworks reject_unauth_destination",
    )];
    let mut d = ehlo_session(&cfg, &spool, OUTSIDER).await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd(
        "RCPT TO:<victim@remote.example>",
        "554 5.7.1 <victim@remote.example>: Relay access denied",
    )
    .await;
}

#[tokio::test]
async fn soft_bounce_turns_rejections_into_deferrals() {
    let spool = TempSpool::new("smtpd-softbounce");
    let cfg = [
        ("soft_bounce", "yes"),
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks reject_unauth_destination",
        ),
    ];
    let mut d = ehlo_session(&cfg, &spool, OUTSIDER).await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd(
        "RCPT TO:<v@remote.example>",
        "454 4.7.1 <v@remote.example>: Relay access denied",
    )
    .await;
}

#[tokio::test]
async fn unknown_local_users_are_rejected() {
    let spool = TempSpool::new("smtpd-users");
    let mut d = ehlo_session(
        &[("local_recipient_maps", "inline:{user=1}")],
        &spool,
        OUTSIDER,
    )
    .await;
    d.cmd("MAIL FROM:<a@example.org>", "250 2.1.0").await;
    d.cmd("RCPT TO:<user@localhost>", "250 2.1.5").await;
    d.cmd(
        "RCPT TO:<nobody@localhost>",
        "550 5.1.1 <nobody@localhost>: Recipient address rejected: User unknown in local recipient table",
    )
    .await;
}

#[tokio::test]
async fn binary_garbage_is_survived() {
    let spool = TempSpool::new("smtpd-garbage");
    let cfg = [
        ("smtpd_hard_error_limit", "100"),
        ("smtpd_forbid_bare_newline", "normalize"),
    ];
    let mut d = Dialog::start(config(&cfg), &spool, OUTSIDER).await;
    d.send(b"\x00\x01\x02\xff\xfe\r\n").await;
    assert!(d.reply().await.starts_with("500 5.5.2"));
    d.send(b"MAIL FROM:<a\x00b@example.org>\r\n").await;
    assert!(d.reply().await.starts_with("500 5.5.2"));
    d.send(b"\r\n").await;
    assert!(d.reply().await.starts_with("500 5.5.2 Error: bad syntax"));
    d.send(b"\xc3\x28 invalid utf8\r\n").await;
    assert!(d.reply().await.starts_with("500 5.5.2"));
    let long = format!("NOOP {}\r\nNOOP\r\n", "A".repeat(5000));
    d.send(long.as_bytes()).await;
    assert_eq!(
        d.reply().await,
        "500 5.5.2 mx.example.test Error: command too long\r\n"
    );
    assert_eq!(d.reply().await, "250 2.0.0 Ok\r\n");
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    d.send(&noise).await;
    d.send(b"\r\nQUIT\r\n").await;
    let mut last = String::new();
    for _ in 0..200 {
        let r = d.reply().await;
        if r.is_empty() {
            break;
        }
        last = r;
    }
    assert!(last.starts_with("221") || last.starts_with("421"), "{last}");
}

#[tokio::test]
async fn non_smtp_commands_end_the_session() {
    let spool = TempSpool::new("smtpd-http");
    let mut d = Dialog::start(config(&[]), &spool, OUTSIDER).await;
    d.cmd(
        "Subject: hello",
        "221 2.7.0 Error: I can break rules, too. Goodbye.",
    )
    .await;
    assert!(d.closed().await);
}

#[test]
fn disconnect_statistics_follow_postfix() {
    let mut s = crate::smtpd::stats::Stats::default();
    assert_eq!(s.summary(), " commands=0/0");
    for (name, ok) in [
        ("ehlo", true),
        ("mail", true),
        ("rcpt", false),
        ("rcpt", true),
        ("data", true),
        ("quit", true),
    ] {
        s.count(name, ok);
    }
    assert_eq!(
        s.summary(),
        " ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"
    );
}
