use super::*;
use postern_proto::params::Ret;

fn cfg() -> Config {
    postern_config::load_with(None, &[("myhostname".into(), "mx.example.org".into())])
        .expect("config")
        .main
}

const CONTENT: &[u8] =
    b"From: alice@example.com\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nSecret body\r\n";

fn env(sender: &str) -> Envelope {
    let mut e = Envelope::new(
        QueueId::generate(),
        sender,
        Origin::Local {
            user: "alice".into(),
        },
    );
    e.envid = Some("ENV-42".into());
    let mut r = Recipient::new("bob@localhost");
    r.orcpt = Some(("rfc822".into(), "Bob@LocalHost".into()));
    e.recipients.push(r);
    e.recipients.push(Recipient::new("carol@localhost"));
    e
}

fn failed(e: &Envelope) -> Vec<DsnRecipient> {
    vec![DsnRecipient::new(
        &e.recipients[0],
        EnhancedCode::new(5, 1, 1),
        "unknown user: \"bob\"",
    )]
}

/// Minimal MIME reader for the tests: (top headers, parts as (headers, body)).
fn parts(msg: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8(msg.to_vec()).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let b = head
        .split("boundary=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("boundary");
    let delim = format!("\r\n--{b}");
    let mut out = Vec::new();
    let chunks: Vec<&str> = body.split(delim.as_str()).collect();
    for chunk in &chunks[1..] {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").expect("crlf after boundary");
        let (h, b) = chunk.split_once("\r\n\r\n").expect("part header end");
        out.push((h.to_string(), b.to_string()));
    }
    assert!(
        chunks.last().expect("last").starts_with("--"),
        "closing boundary"
    );
    (head.to_string(), out)
}

#[test]
fn failure_report_structure() {
    let e = env("alice@example.com");
    let (out, msg) = build(
        &cfg(),
        DsnKind::Failure,
        &e,
        CONTENT,
        &failed(&e),
        1_795_309_591,
    )
    .expect("a report");
    assert_eq!(out.sender, "");
    assert_eq!(out.recipients.len(), 1);
    assert_eq!(out.recipients[0].address, "alice@example.com");
    assert_eq!(
        out.origin,
        Origin::Local {
            user: "MAILER-DAEMON".into()
        }
    );

    let (head, p) = parts(&msg);
    assert!(head.contains("From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"));
    assert!(head.contains("To: alice@example.com\r\n"));
    assert!(head.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
    assert!(head.contains("Auto-Submitted: auto-replied\r\n"));
    assert!(head.contains("MIME-Version: 1.0\r\n"));
    assert!(head.contains(&format!("Message-Id: <{}@mx.example.org>", out.id)));
    assert!(head.contains("Content-Type: multipart/report; report-type=delivery-status;"));
    assert_eq!(p.len(), 3);

    assert!(p[0].0.contains("text/plain"));
    assert!(p[0]
        .1
        .contains("This is the mail system at host mx.example.org."));
    assert!(p[0].1.contains("<bob@localhost>: unknown user: \"bob\""));

    assert!(p[1].0.contains("Content-Type: message/delivery-status"));
    let report = &p[1].1;
    let (per_msg, per_rcpt) = report.split_once("\r\n\r\n").expect("blocks");
    assert!(per_msg
        .starts_with("Original-Envelope-Id: ENV-42\r\nReporting-MTA: dns; mx.example.org\r\n"));
    assert!(per_msg.contains(&format!("X-Postern-Queue-ID: {}", e.id)));
    assert!(per_msg.contains("Arrival-Date: "));
    assert!(per_rcpt.contains("Original-Recipient: rfc822; Bob@LocalHost\r\n"));
    assert!(per_rcpt.contains("Final-Recipient: rfc822; bob@localhost\r\n"));
    assert!(per_rcpt.contains("Action: failed\r\n"));
    assert!(per_rcpt.contains("Status: 5.1.1\r\n"));
    assert!(per_rcpt.contains("Diagnostic-Code: X-Postern; unknown user: \"bob\"\r\n"));
    assert!(
        !per_rcpt.contains("carol"),
        "only failed recipients are reported"
    );

    assert!(p[2].0.contains("Content-Type: message/rfc822"));
    assert!(p[2].1.contains("Subject: hello"));
    assert!(p[2].1.contains("Secret body"));
}

#[test]
fn ret_hdrs_returns_headers_only() {
    let mut e = env("alice@example.com");
    e.ret = Some(Ret::Hdrs);
    let (_, msg) = build(&cfg(), DsnKind::Failure, &e, CONTENT, &failed(&e), 0).expect("report");
    let (_, p) = parts(&msg);
    assert!(p[2].0.contains("Content-Type: text/rfc822-headers"));
    assert!(p[2].1.contains("Subject: hello"));
    assert!(!p[2].1.contains("Secret body"));
}

#[test]
fn notify_is_honoured() {
    let mut e = env("alice@example.com");
    e.recipients[0].notify = Notify::parse("NEVER");
    assert!(build(&cfg(), DsnKind::Failure, &e, CONTENT, &failed(&e), 0).is_none());

    e.recipients[0].notify = Notify::parse("SUCCESS");
    assert!(build(&cfg(), DsnKind::Failure, &e, CONTENT, &failed(&e), 0).is_none());
    let ok = vec![DsnRecipient::new(
        &e.recipients[0],
        EnhancedCode::new(2, 0, 0),
        "delivered to maildir",
    )];
    let (_, msg) = build(&cfg(), DsnKind::Success, &e, CONTENT, &ok, 0).expect("success DSN");
    let (head, p) = parts(&msg);
    assert!(head.contains("Subject: Successful Mail Delivery Report"));
    assert!(p[1].1.contains("Action: delivered\r\nStatus: 2.0.0\r\n"));
    assert!(!p[2].1.contains("Secret body"));

    // Default NOTIFY (none given) is FAILURE,DELAY: no success report.
    e.recipients[0].notify = None;
    let ok = vec![DsnRecipient::new(
        &e.recipients[0],
        EnhancedCode::new(2, 0, 0),
        "delivered to maildir",
    )];
    assert!(build(&cfg(), DsnKind::Success, &e, CONTENT, &ok, 0).is_none());
    assert!(wanted(DsnKind::Delay, None));
}

#[test]
fn delay_report() {
    let e = env("alice@example.com");
    let d = vec![DsnRecipient::new(
        &e.recipients[1],
        EnhancedCode::new(4, 3, 0),
        "mail transport unavailable",
    )];
    let (_, msg) = build(
        &cfg(),
        DsnKind::Delay,
        &e,
        CONTENT,
        &d,
        e.arrival + 4 * 3600,
    )
    .expect("delay DSN");
    let (head, p) = parts(&msg);
    assert!(head.contains("Subject: Delayed Mail (still being retried)"));
    assert!(p[0].1.contains("THIS IS A WARNING ONLY"));
    assert!(p[0].1.contains("more than 4 hours"));
    assert!(p[1].1.contains("Action: delayed\r\nStatus: 4.3.0\r\n"));
    assert!(p[1].1.contains("Will-Retry-Until: "));
    assert!(p[2].0.contains("text/rfc822-headers"));
}

#[test]
fn null_sender_is_never_bounced() {
    let e = env("");
    assert!(build(&cfg(), DsnKind::Failure, &e, CONTENT, &failed(&e), 0).is_none());
}

#[test]
fn boundary_never_occurs_in_content() {
    let e = env("alice@example.com");
    let (_, msg) = build(
        &cfg(),
        DsnKind::Failure,
        &e,
        b"Subject: x\r\n\r\nbody\r\n",
        &failed(&e),
        7,
    )
    .expect("report");
    let (_, p) = parts(&msg);
    assert_eq!(p.len(), 3);
}

#[test]
fn reasons_parse() {
    let d = EnhancedCode::new(4, 0, 0);
    assert_eq!(
        parse_reason(Some("4.3.0 transport down"), d),
        (EnhancedCode::new(4, 3, 0), "transport down".to_string())
    );
    assert_eq!(parse_reason(Some("weird"), d), (d, "weird".to_string()));
    assert_eq!(parse_reason(None, d), (d, String::new()));
}
