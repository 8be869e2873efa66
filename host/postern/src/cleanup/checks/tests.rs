use std::borrow::Cow;
use std::path::PathBuf;

use super::*;
use crate::queue::{QueueId, Recipient};
use crate::smtpd::testkit::config;

/// A regexp/pcre table file with these rules, unique per test.
fn table(name: &str, rules: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(name);
    std::fs::write(&path, rules).expect("write table");
    path
}

fn env() -> Envelope {
    let mut env = Envelope::new(
        QueueId::generate(),
        "a@b.example",
        Origin::Smtp {
            addr: "192.0.2.1".into(),
            helo: "x.example".into(),
            name: "unknown".into(),
        },
    );
    env.recipients = vec![Recipient::new("c@d.example")];
    env
}

/// Runs the checks with `params` (name, table rules) over `msg`; returns the result and the
/// possibly edited message.
fn run(name: &str, params: &[(&str, &str)], msg: &str) -> (Result<Actions, Reply>, String) {
    let specs: Vec<(String, String)> = params
        .iter()
        .filter(|(_, rules)| !rules.is_empty())
        .map(|(param, rules)| {
            let file = table(&format!("{name}-{param}"), rules);
            (param.to_string(), format!("regexp:{}", file.display()))
        })
        .collect();
    let overrides: Vec<(&str, &str)> = specs
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .chain(
            params
                .iter()
                .filter(|(_, r)| r.is_empty())
                .map(|(p, _)| (*p, "")),
        )
        .collect();
    let cfg = config(&overrides);
    let mut content = Cow::Borrowed(msg.as_bytes());
    let result = apply(&cfg, &env(), &Protocol::ESMTP, &mut content);
    (
        result,
        String::from_utf8(content.into_owned()).expect("utf8"),
    )
}

const MSG: &str = "Subject: Make money\r\n fast\r\nFrom: x@y\r\n\r\nhello\r\nbuy now\r\n";

#[test]
fn reject_matches_the_unfolded_header() {
    let (r, _) = run(
        "reject",
        &[("header_checks", "/^Subject: Make money fast/ REJECT\n")],
        MSG,
    );
    let reply = r.expect_err("rejected");
    assert_eq!(reply.to_string(), "550 5.7.1 message content rejected");
    let (r, _) = run(
        "reject-text",
        &[("header_checks", "/^Subject:/ REJECT 4.7.0 not today\n")],
        MSG,
    );
    assert_eq!(r.expect_err("deferred").to_string(), "451 4.7.0 not today");
    let (r, _) = run(
        "reject-own",
        &[("header_checks", "/^From:/ REJECT No spam please\n")],
        MSG,
    );
    assert_eq!(
        r.expect_err("rejected").to_string(),
        "550 5.7.1 No spam please"
    );
}

#[test]
fn defer_and_numeric_codes() {
    let (r, _) = run("defer", &[("body_checks", "/^buy/ DEFER busy\n")], MSG);
    assert_eq!(r.expect_err("deferred").to_string(), "451 4.7.1 busy");
    let (r, _) = run("5nn", &[("body_checks", "/^buy/ 554 5.7.9 go away\n")], MSG);
    assert_eq!(r.expect_err("rejected").to_string(), "554 5.7.9 go away");
}

#[test]
fn ignore_prepend_replace_edit_the_message() {
    let rules = "/^From:/ IGNORE\n/^Subject:/ PREPEND X-Flag: yes\n/^hello$/ REPLACE bye\n\
                 /^buy/ PREPEND inserted line\n";
    let (r, msg) = run(
        "edits",
        &[("header_checks", rules), ("body_checks", rules)],
        MSG,
    );
    assert_eq!(r.expect("accepted"), Actions::default());
    assert_eq!(
        msg,
        "X-Flag: yes\r\nSubject: Make money\r\n fast\r\n\r\nbye\r\ninserted line\r\nbuy now\r\n"
    );
    let (_, msg) = run(
        "replace-header",
        &[(
            "header_checks",
            "/^Subject:/ REPLACE Subject: [SPAM] clean\n",
        )],
        MSG,
    );
    assert!(
        msg.starts_with("Subject: [SPAM] clean\r\nFrom: x@y\r\n"),
        "{msg}"
    );
}

#[test]
fn bad_header_text_is_ignored() {
    let (r, msg) = run(
        "bad-prepend",
        &[("header_checks", "/^Subject:/ PREPEND not a header\n")],
        MSG,
    );
    assert!(r.is_ok());
    assert_eq!(msg, MSG);
}

#[test]
fn side_effects_become_actions() {
    let rules = "/^Subject:/ HOLD suspicious\n/^From:/ BCC archive@example.org\n\
                 /^hello/ FILTER smtp:[127.0.0.1]:10025\n/^buy/ WARN spammy\n";
    let (r, msg) = run(
        "actions",
        &[("header_checks", rules), ("body_checks", rules)],
        MSG,
    );
    let actions = r.expect("accepted");
    assert_eq!(actions.hold.as_deref(), Some("suspicious"));
    assert_eq!(actions.bcc, ["archive@example.org"]);
    assert_eq!(actions.filter.as_deref(), Some("smtp:[127.0.0.1]:10025"));
    assert_eq!(msg, MSG);
    // REDIRECT and DISCARD end the checks: the later REJECT is never reached.
    let rules = "/^Subject:/ REDIRECT spam@example.org\n/^From:/ REJECT\n";
    let (r, _) = run("redirect", &[("header_checks", rules)], MSG);
    assert_eq!(
        r.expect("accepted").redirect.as_deref(),
        Some("spam@example.org")
    );
    let rules = "/^Subject:/ DISCARD\n/^From:/ REJECT\n";
    let (r, _) = run("discard", &[("header_checks", rules)], MSG);
    assert_eq!(r.expect("accepted").discard.as_deref(), Some(""));
    // Bad arguments are ignored.
    let rules = "/^Subject:/ REDIRECT nobody\n/^From:/ FILTER nocolon\n";
    let (r, _) = run("bad-args", &[("header_checks", rules)], MSG);
    assert_eq!(r.expect("accepted"), Actions::default());
}

#[test]
fn dunno_ok_and_unknown_do_nothing() {
    let rules = "/^Subject:/ DUNNO\n/^From:/ OK\n/^hello/ FROBNICATE\n";
    let (r, msg) = run(
        "noop",
        &[("header_checks", rules), ("body_checks", rules)],
        MSG,
    );
    assert_eq!(r.expect("accepted"), Actions::default());
    assert_eq!(msg, MSG);
}

const MIME: &str = "Subject: outer\r\nMIME-Version: 1.0\r\n\
    Content-Type: multipart/mixed; boundary=XX\r\n\r\n\
    --XX\r\nContent-Type: text/plain\r\nX-Part: yes\r\n\r\npart text\r\n\
    --XX\r\nContent-Type: message/rfc822\r\n\r\n\
    Subject: inner\r\nContent-Disposition: inline\r\n\r\ninner text\r\n--XX--\r\n";

#[test]
fn each_header_class_has_its_table() {
    // Only the primary Subject is a header_checks header.
    let (r, _) = run(
        "primary",
        &[
            ("header_checks", "/^Subject: inner/ REJECT primary\n"),
            ("mime_header_checks", ""),
            ("nested_header_checks", ""),
        ],
        MIME,
    );
    assert!(r.is_ok());
    let (r, _) = run(
        "nested",
        &[
            ("header_checks", "/^Subject: outer/ DUNNO\n"),
            ("nested_header_checks", "/^Subject: inner/ REJECT nested\n"),
        ],
        MIME,
    );
    assert_eq!(r.expect_err("nested").to_string(), "550 5.7.1 nested");
    // mime_header_checks: MIME headers anywhere and all part headers.
    let (r, msg) = run(
        "mime",
        &[
            ("header_checks", ""),
            ("nested_header_checks", ""),
            (
                "mime_header_checks",
                "/^Content-Disposition:/ IGNORE\n/^X-Part:/ REPLACE X-Part: checked\n",
            ),
        ],
        MIME,
    );
    assert!(r.is_ok());
    assert!(msg.contains("X-Part: checked\r\n\r\npart text"), "{msg}");
    assert!(!msg.contains("Content-Disposition"), "{msg}");
    // By default mime and nested checks are $header_checks.
    let (r, _) = run(
        "default",
        &[("header_checks", "/^Content-Disposition: inline/ REJECT\n")],
        MIME,
    );
    assert!(r.is_err());
}

#[test]
fn body_checks_see_parts_and_boundaries() {
    let (r, _) = run(
        "part-body",
        &[("body_checks", "/^inner text$/ REJECT\n")],
        MIME,
    );
    assert!(r.is_err());
    let (r, _) = run("boundary", &[("body_checks", "/^--XX--$/ REJECT\n")], MIME);
    assert!(r.is_err());
    // Headers are not body lines.
    let (r, _) = run("not-body", &[("body_checks", "/^X-Part/ REJECT\n")], MIME);
    assert!(r.is_ok());
}

#[test]
fn body_size_limit_is_per_segment() {
    let filler = "x".repeat(100);
    let msg = format!("Subject: s\r\n\r\n{filler}\r\nlate spam\r\n");
    let rules = "/spam/ REJECT\n";
    let (r, _) = run("limit-hit", &[("body_checks", rules)], &msg);
    assert!(r.is_err());
    let cfg_run = |limit: &str| {
        let file = table(&format!("limit-{limit}"), rules);
        let spec = format!("regexp:{}", file.display());
        let cfg = config(&[
            ("body_checks", spec.as_str()),
            ("body_checks_size_limit", limit),
        ]);
        let mut content = Cow::Borrowed(msg.as_bytes());
        apply(&cfg, &env(), &Protocol::ESMTP, &mut content)
    };
    assert!(cfg_run("50").is_ok(), "the line starts after the limit");
    assert!(cfg_run("103").is_err(), "the line starts before the limit");
    assert!(cfg_run("0").is_err(), "0 = no limit");
}

#[test]
fn long_lines_are_checked_in_pieces() {
    let msg = format!("Subject: s\r\n\r\n{}spam\r\n", "y".repeat(3000));
    let (r, _) = run("pieces", &[("body_checks", "/^spam/ REJECT\n")], &msg);
    // line_length_limit 2048: the second piece starts with y…, not spam.
    assert!(r.is_ok());
    let (r, _) = run(
        "pieces2",
        &[("body_checks", "/^y{2000,}spam/ REJECT\n")],
        &msg,
    );
    assert!(r.is_ok(), "no piece holds the whole line");
    let (r, _) = run(
        "pieces3",
        &[("body_checks", "/^y{952}spam$/ REJECT\n")],
        &msg,
    );
    assert!(r.is_err(), "the last piece is checked");
}

#[test]
fn broken_table_is_a_configuration_error() {
    let cfg = config(&[("header_checks", "regexp:/nonexistent/postern/table")]);
    let mut content = Cow::Borrowed(MSG.as_bytes());
    let reply = apply(&cfg, &env(), &Protocol::ESMTP, &mut content).expect_err("451");
    assert_eq!(reply.to_string(), "451 4.3.5 Server configuration error");
}

#[test]
fn no_checks_no_copy() {
    let cfg = config(&[]);
    let mut content = Cow::Borrowed(MSG.as_bytes());
    assert_eq!(
        apply(&cfg, &env(), &Protocol::ESMTP, &mut content),
        Ok(Actions::default())
    );
    assert!(matches!(content, Cow::Borrowed(_)));
}

#[test]
fn reply_codes_follow_postfix() {
    let r = |code, text| content_reply(code, text).to_string();
    assert_eq!(r(None, ""), "550 5.7.1 message content rejected");
    assert_eq!(r(None, "5.7.0 no"), "550 5.7.0 no");
    assert_eq!(r(None, "2.0.0 odd"), "451 4.0.0 odd");
    assert_eq!(r(Some(450), "5.1.1 mismatch"), "450 4.7.1 mismatch");
    assert_eq!(r(None, "5.7.1"), "550 5.7.1 message content rejected");
    assert!(is_dsn("4.7.1") && is_dsn("5.100.999"));
    assert!(!is_dsn("3.0.0") && !is_dsn("5.7") && !is_dsn("5.7.1.1") && !is_dsn("5.a.1"));
}

#[test]
fn header_keys_are_unfolded_and_limited() {
    assert_eq!(
        header_key(b"Subject: a\r\n\tb\r\n c\r\n", 1000),
        "Subject: a\tb c"
    );
    assert_eq!(header_key(b"Subject: abcdef\r\n", 10), "Subject: a");
}
