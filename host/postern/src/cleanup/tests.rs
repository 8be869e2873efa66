use super::*;
use crate::queue::{QueueId, Recipient};
use crate::smtpd::testkit::{config, TempSpool};

fn smtp_env(rcpts: &[&str]) -> Envelope {
    let mut env = Envelope::new(
        QueueId::generate(),
        "alice@example.org",
        Origin::Smtp {
            addr: "192.0.2.1".into(),
            helo: "client.example.org".into(),
            name: "unknown".into(),
        },
    );
    env.recipients = rcpts.iter().map(|r| Recipient::new(*r)).collect();
    env
}

fn local_env(sender: &str, rcpts: &[&str]) -> Envelope {
    let mut env = Envelope::new(
        QueueId::generate(),
        sender,
        Origin::Local {
            user: "alice".into(),
        },
    );
    env.recipients = rcpts.iter().map(|r| Recipient::new(*r)).collect();
    env
}

/// Queues `content` and returns the stored envelope and message text.
fn run(cfg: &Config, env: Envelope, content: &[u8]) -> (Envelope, String) {
    let spool = TempSpool::new("cleanup");
    let stored = enqueue(cfg, &spool, env, content).expect("enqueue");
    let (loaded, body) = spool.load(QueueDir::Incoming, &stored.id).expect("load");
    assert_eq!(loaded, stored);
    (loaded, String::from_utf8(body).expect("utf8"))
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn received_header_has_postfix_shape() {
    let cfg = config(&[]);
    let (env, msg) = run(
        &cfg,
        smtp_env(&["bob@localhost"]),
        b"Subject: hi\r\n\r\nbody\r\n",
    );
    let date = crate::time::rfc5322(env.arrival);
    let expected = format!(
        "Received: from client.example.org (unknown [192.0.2.1])\r\n\
         \tby mx.example.test (Postern) with ESMTP id {}\r\n\
         \tfor <bob@localhost>; {date}\r\n",
        env.id
    );
    assert!(msg.starts_with(&expected), "{msg}");
    // Two recipients: no `for`, the date goes on its own line.
    let mut e = smtp_env(&["a@localhost", "b@localhost"]);
    e.origin = Origin::Smtp {
        addr: "2001:db8::1".into(),
        helo: "h".into(),
        name: "unknown".into(),
    };
    e.smtputf8 = true;
    let (env, msg) = run(&cfg, e, b"Subject: x\r\n\r\n");
    let date = crate::time::rfc5322(env.arrival);
    let expected = format!(
        "Received: from h (unknown [IPv6:2001:db8::1])\r\n\
         \tby mx.example.test (Postern) with UTF8SMTP id {};\r\n\t{date}\r\n",
        env.id
    );
    assert!(msg.starts_with(&expected), "{msg}");
}

#[test]
fn helo_clients_are_received_with_smtp() {
    let cfg = config(&[]);
    let spool = TempSpool::new("cleanup-helo");
    let env = enqueue_with(
        &cfg,
        &spool,
        smtp_env(&["b@localhost"]),
        b"x\r\n",
        Protocol::SMTP,
    )
    .expect("enqueue");
    let (_, body) = spool.load(QueueDir::Incoming, &env.id).expect("load");
    assert!(String::from_utf8_lossy(&body).contains(" with SMTP id "));
}

#[test]
fn missing_message_id_and_date_are_added_once() {
    let cfg = config(&[]);
    let (env, msg) = run(
        &cfg,
        smtp_env(&["bob@localhost"]),
        b"Subject: hi\r\n\r\nbody\r\n",
    );
    assert!(
        msg.contains(&format!("\r\nMessage-ID: <{}@mx.example.test>\r\n", env.id)),
        "{msg}"
    );
    assert_eq!(count(&msg, "\r\nDate: "), 1);
    // Added after the client's headers, before the separator.
    assert!(msg.ends_with("\r\n\r\nbody\r\n"), "{msg}");
    let hdr_end = msg.find("\r\n\r\n").expect("separator");
    assert!(msg[..hdr_end].contains("Message-ID:"));
    assert!(
        !msg.contains("From: "),
        "From: is only added for local submissions"
    );

    let given = b"Message-Id: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n";
    let (_, msg) = run(&cfg, smtp_env(&["bob@localhost"]), given);
    assert_eq!(count(&msg.to_ascii_lowercase(), "message-id:"), 1, "{msg}");
    assert_eq!(count(&msg, "Date: "), 1);
}

#[test]
fn local_submissions_get_from_and_to() {
    let cfg = config(&[("myorigin", "example.test")]);
    let (env, msg) = run(
        &cfg,
        local_env("alice", &["bob"]),
        b"Subject: note\n\nhello\n",
    );
    assert_eq!(env.sender, "alice@example.test");
    assert_eq!(env.recipients[0].address, "bob@example.test");
    assert!(msg.starts_with("Received: by mx.example.test (Postern, from user alice)\r\n\tid "));
    assert!(msg.contains("\r\nFrom: alice@example.test\r\n"), "{msg}");
    assert!(
        msg.contains("\r\nTo: undisclosed-recipients:;\r\n"),
        "{msg}"
    );
    assert!(
        msg.ends_with("\r\n\r\nhello\r\n"),
        "line endings normalised: {msg:?}"
    );

    let (_, msg) = run(
        &cfg,
        local_env("alice", &["bob"]),
        b"From: Alice <a@x.example>\r\nTo: b@x.example\r\n\r\nhi\r\n",
    );
    assert_eq!(count(&msg, "From: "), 1);
    assert!(!msg.contains("undisclosed"));
}

#[test]
fn messages_without_headers_get_a_separator() {
    let cfg = config(&[]);
    let (_, msg) = run(
        &cfg,
        smtp_env(&["bob@localhost"]),
        b"no headers here\r\nsecond",
    );
    let sep = msg.find("\r\n\r\n").expect("separator");
    assert!(msg[..sep].contains("Message-ID:"));
    assert_eq!(&msg[sep..], "\r\n\r\nno headers here\r\nsecond\r\n");
    let (_, msg) = run(&cfg, smtp_env(&["bob@localhost"]), b"");
    assert!(msg.contains("Date: "));
}

#[test]
fn dropped_and_truncated_headers() {
    let cfg = config(&[("header_size_limit", "40")]);
    let long = format!("X-Long: {}\r\n {}\r\n", "a".repeat(20), "b".repeat(30));
    let content = format!(
        "Return-Path: <forged@x>\r\nBcc: secret@x.example\r\n{long}Subject: s\r\n\r\nBcc: body stays\r\n"
    );
    let (_, msg) = run(&cfg, smtp_env(&["bob@localhost"]), content.as_bytes());
    assert!(!msg.contains("Return-Path"));
    assert!(!msg.contains("secret@x.example"));
    assert!(
        msg.contains(&format!("X-Long: {}\r\nSubject: s\r\n", "a".repeat(20))),
        "{msg}"
    );
    assert!(msg.contains("\r\n\r\nBcc: body stays\r\n"));
}

#[test]
fn mail_loops_are_refused() {
    let cfg = config(&[]);
    let spool = TempSpool::new("cleanup-loop");
    let content = "Received: from a by b\r\n".repeat(HOPCOUNT_LIMIT) + "\r\nbody\r\n";
    let err = enqueue(&cfg, &spool, smtp_env(&["b@localhost"]), content.as_bytes()).unwrap_err();
    match err {
        CleanupError::Rejected(r) => assert_eq!(r.to_string(), "554 5.4.0 Error: too many hops"),
        other => panic!("{other:?}"),
    }
    assert!(spool.list(QueueDir::Incoming).expect("list").is_empty());
}

#[test]
fn duplicate_and_missing_recipients() {
    let cfg = config(&[]);
    let (env, _) = run(
        &cfg,
        smtp_env(&["b@localhost", "b@localhost", "c@localhost"]),
        b"x\r\n",
    );
    let addrs: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addrs, ["b@localhost", "c@localhost"]);
    let spool = TempSpool::new("cleanup-norcpt");
    let err = enqueue(&cfg, &spool, smtp_env(&[]), b"x\r\n").unwrap_err();
    assert!(matches!(err, CleanupError::Rejected(r) if r.code == 550));
}

#[test]
fn qualification_rules() {
    let cfg = config(&[("myorigin", "example.test"), ("append_dot_mydomain", "yes")]);
    assert_eq!(qualify(&cfg, "bob"), "bob@example.test");
    assert_eq!(qualify(&cfg, "bob@host"), "bob@host.example.test");
    assert_eq!(qualify(&cfg, "bob@[192.0.2.1]"), "bob@[192.0.2.1]");
    assert_eq!(qualify(&cfg, "bob@a.b"), "bob@a.b");
}

#[test]
fn line_endings_are_made_canonical_without_needless_copies() {
    use std::borrow::Cow;
    assert!(matches!(
        normalize_line_endings(b"a\r\nb\r\n"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(normalize_line_endings(b""), Cow::Borrowed(_)));
    assert_eq!(&*normalize_line_endings(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n");
    assert_eq!(&*normalize_line_endings(b"\nx\r"), b"\r\nx\r\r\n");
}

fn full(cfg: &Config, env: Envelope, actions: &Actions) -> (Stored, TempSpool) {
    let spool = TempSpool::new("cleanup-actions");
    let content = b"Subject: s\r\n\r\nbody\r\n";
    let stored = enqueue_full(cfg, &spool, env, content, Protocol::ESMTP, actions).expect("ok");
    (stored, spool)
}

#[test]
fn actions_redirect_bcc_prepend_and_filter() {
    let cfg = config(&[]);
    let actions = Actions {
        prepend: vec!["X-Checked: yes".into()],
        redirect: Some("carol@localhost".into()),
        bcc: vec!["archive@localhost".into()],
        filter: Some("smtp:[127.0.0.1]:10025".into()),
        ..Actions::default()
    };
    let (stored, spool) = full(&cfg, smtp_env(&["bob@localhost"]), &actions);
    assert!(!stored.held && !stored.discarded);
    let (env, body) = spool
        .load(QueueDir::Incoming, &stored.env.id)
        .expect("load");
    let rcpts: Vec<&str> = env.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, vec!["carol@localhost", "archive@localhost"]);
    assert_eq!(env.filter.as_deref(), Some("smtp:[127.0.0.1]:10025"));
    assert!(body.starts_with(b"X-Checked: yes\r\nReceived: "));
}

#[test]
fn hold_and_discard() {
    let cfg = config(&[]);
    let hold = Actions {
        hold: Some("suspicious".into()),
        ..Actions::default()
    };
    let (stored, spool) = full(&cfg, smtp_env(&["bob@localhost"]), &hold);
    assert!(stored.held);
    assert!(spool.load(QueueDir::Hold, &stored.env.id).is_ok());
    assert!(spool.load(QueueDir::Incoming, &stored.env.id).is_err());

    let discard = Actions {
        discard: Some(String::new()),
        ..Actions::default()
    };
    let (stored, spool) = full(&cfg, smtp_env(&["bob@localhost"]), &discard);
    assert!(stored.discarded && !stored.held);
    assert!(spool.list(QueueDir::Incoming).expect("list").is_empty());
}

#[test]
fn rewriting_keeps_the_original_recipient_as_orcpt() {
    let cfg = config(&[
        (
            "virtual_alias_maps",
            "inline:{ {team@example.com=ann@localhost, ben@localhost}, @example.org=catch }",
        ),
        (
            "sender_canonical_maps",
            "inline:{ alice@example.org=a.smith@example.org }",
        ),
    ]);
    let mut env = smtp_env(&["team@example.com", "x@example.org", "ann@localhost"]);
    env.recipients[1].orcpt = Some(("rfc822".into(), "given@example.org".into()));
    let (stored, _spool) = full(&cfg, env, &Actions::default());
    let env = stored.env;
    assert_eq!(env.sender, "a.smith@example.org");
    let got: Vec<(&str, Option<&str>)> = env
        .recipients
        .iter()
        .map(|r| {
            (
                r.address.as_str(),
                r.orcpt.as_ref().map(|(_, a)| a.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann@localhost", Some("team@example.com")),
            ("ben@localhost", Some("team@example.com")),
            ("catch@mx.example.test", Some("given@example.org")),
        ]
    );
}

#[test]
fn lookup_errors_refuse_with_451() {
    let cfg = config(&[("virtual_alias_maps", "fail:down")]);
    let spool = TempSpool::new("cleanup-fail");
    let err = enqueue(&cfg, &spool, smtp_env(&["bob@localhost"]), b"x\r\n").unwrap_err();
    match err {
        CleanupError::Rejected(r) => assert_eq!(
            r.to_string(),
            "451 4.3.0 Error: temporary lookup failure, try again later"
        ),
        other => panic!("{other:?}"),
    }
}

fn tls_summary() -> crate::tls::TlsSummary {
    crate::tls::TlsSummary {
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        bits: 256,
        sni: None,
    }
}

/// The stored message text of one smtpd-style enqueue with `protocol`.
fn received_with(cfg: &Config, protocol: Protocol) -> (Envelope, String) {
    let spool = TempSpool::new("cleanup-tls");
    let env = enqueue_with(
        cfg,
        &spool,
        smtp_env(&["bob@localhost"]),
        b"Subject: hi\r\n\r\nbody\r\n",
        protocol,
    )
    .expect("enqueue");
    let (loaded, body) = spool.load(QueueDir::Incoming, &env.id).expect("load");
    (loaded, String::from_utf8(body).expect("utf8"))
}

#[test]
fn tls_sessions_are_received_with_esmtps_and_the_cipher_only_when_asked() {
    let protocol = Protocol {
        esmtp: true,
        tls: Some(tls_summary()),
        login: None,
    };
    let (env, msg) = received_with(&config(&[]), protocol.clone());
    let date = crate::time::rfc5322(env.arrival);
    let plain = format!(
        "Received: from client.example.org (unknown [192.0.2.1])\r\n\
         \tby mx.example.test (Postern) with ESMTPS id {}\r\n\
         \tfor <bob@localhost>; {date}\r\n",
        env.id
    );
    assert!(msg.starts_with(&plain), "{msg}");

    let cfg = config(&[("smtpd_tls_received_header", "yes")]);
    let (env, msg) = received_with(&cfg, protocol);
    let date = crate::time::rfc5322(env.arrival);
    let expected = format!(
        "Received: from client.example.org (unknown [192.0.2.1])\r\n\
         \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
         \t(No client certificate requested)\r\n\
         \tby mx.example.test (Postern) with ESMTPS id {}\r\n\
         \tfor <bob@localhost>; {date}\r\n",
        env.id
    );
    assert!(msg.starts_with(&expected), "{msg}");
    // No TLS, no TLS comment, whatever the setting says.
    let (_, msg) = received_with(&cfg, Protocol::ESMTP);
    assert!(!msg.contains("(using "), "{msg}");
}

#[test]
fn the_authenticated_sender_comment_follows_the_tls_comment_and_is_sanitized() {
    let protocol = Protocol {
        esmtp: true,
        tls: Some(tls_summary()),
        login: Some(crate::sasl::Login {
            username: "alice(x)\r\nX-Evil: 1".into(),
            method: "PLAIN".into(),
        }),
    };
    let (_, msg) = received_with(&config(&[]), protocol.clone());
    assert!(!msg.contains("Authenticated sender"), "{msg}");
    assert!(msg.contains(" with ESMTPSA id "), "{msg}");

    let cfg = config(&[
        ("smtpd_tls_received_header", "yes"),
        ("smtpd_sasl_authenticated_header", "yes"),
    ]);
    let (_, msg) = received_with(&cfg, protocol);
    let want = "\t(No client certificate requested)\r\n\
                \t(Authenticated sender: alice_x_??X-Evil: 1)\r\n\
                \tby mx.example.test (Postern) with ESMTPSA id ";
    assert!(msg.contains(want), "{msg}");
}
