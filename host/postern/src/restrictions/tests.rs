use std::net::IpAddr;

use super::*;
use crate::smtpd::testkit::config;

fn facts(addr: &str, rcpt: &str) -> Facts {
    let mut f = Facts::new(addr.parse::<IpAddr>().expect("ip"));
    f.helo = Some("client.example".into());
    f.sender = Some("a@example.org".into());
    f.recipient = Some(rcpt.into());
    f
}

fn check(p: &Policy, f: &Facts) -> Decision {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(p.check_recipient(f, None)).decision
}

fn code(d: &Decision) -> String {
    d.reply()
        .map(|r| r.to_string())
        .unwrap_or_else(|| format!("{d:?}"))
}

#[test]
fn default_config_is_not_an_open_relay() {
    let p = Policy::new(&config(&[]));
    assert!(p.has_relay_guard());
    let d = check(&p, &facts("192.0.2.7", "victim@remote.example"));
    assert_eq!(
        code(&d),
        "454 4.7.1 <victim@remote.example>: Relay access denied"
    );
    assert!(matches!(d, Decision::Defer(_)));
    // Local destinations are accepted from anywhere.
    let d = check(&p, &facts("192.0.2.7", "user@localhost"));
    assert_eq!(d, Decision::Ok);
    // Trusted networks may relay.
    assert_eq!(
        check(&p, &facts("127.0.0.1", "x@remote.example")),
        Decision::Ok
    );
    assert_eq!(check(&p, &facts("::1", "x@remote.example")), Decision::Ok);
    assert_eq!(
        check(&p, &facts("::ffff:127.0.0.1", "x@remote.example")),
        Decision::Ok
    );
}

#[test]
fn reject_unauth_destination_and_relay_domains() {
    let p = Policy::new(&config(&[
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks reject_unauth_destination",
        ),
        ("relay_domains", "partner.example"),
    ]));
    let d = check(&p, &facts("192.0.2.7", "x@remote.example"));
    assert_eq!(
        code(&d),
        "554 5.7.1 <x@remote.example>: Relay access denied"
    );
    assert_eq!(
        check(&p, &facts("192.0.2.7", "x@partner.example")),
        Decision::Ok
    );
    assert_eq!(
        check(&p, &facts("192.0.2.7", "x@mx.partner.example")),
        Decision::Ok
    );
    let d = check(&p, &facts("192.0.2.7", "\"x@remote.example\"@localhost"));
    assert!(matches!(d, Decision::Reject(_)), "{d:?}");
}

#[test]
fn recipient_restrictions_run_after_relay_restrictions() {
    let p = Policy::new(&config(&[(
        "smtpd_recipient_restrictions",
        "reject_non_fqdn_recipient, reject_non_fqdn_sender, permit",
    )]));
    // Relay permits (mynetworks), recipient list still rejects.
    let d = check(&p, &facts("127.0.0.1", "bob@localhost"));
    assert_eq!(
        code(&d),
        "504 5.5.2 <bob@localhost>: Recipient address rejected: need fully-qualified address"
    );
    let mut f = facts("127.0.0.1", "bob@mx.example.test");
    f.sender = Some("root@host".into());
    assert_eq!(
        code(&check(&p, &f)),
        "504 5.5.2 <root@host>: Sender address rejected: need fully-qualified address"
    );
    f.sender = Some(String::new());
    assert_eq!(check(&p, &f), Decision::Ok);
}

#[test]
fn generic_reject_and_defer_use_postfix_texts() {
    let p = Policy::new(&config(&[("smtpd_relay_restrictions", "reject")]));
    assert_eq!(
        code(&check(&p, &facts("127.0.0.1", "a@localhost"))),
        "554 5.7.1 <a@localhost>: Recipient address rejected: Access denied"
    );
    let p = Policy::new(&config(&[("smtpd_relay_restrictions", "defer")]));
    assert_eq!(
        code(&check(&p, &facts("127.0.0.1", "a@localhost"))),
        "450 4.3.2 <a@localhost>: Recipient address rejected: Try again later"
    );
}

#[test]
fn unknown_restrictions_defer_with_configuration_error() {
    let p = Policy::new(&config(&[(
        "smtpd_relay_restrictions",
        "check_client_access hash:/etc/postfix/access, permit_mynetworks, reject_unauth_destination",
    )]));
    assert_eq!(
        p.relay,
        vec![
            Restriction::Access(AccessCheck::Client, "hash:/etc/postfix/access".into()),
            Restriction::PermitMynetworks,
            Restriction::RejectUnauthDestination,
        ]
    );
    let d = check(&p, &facts("127.0.0.1", "a@localhost"));
    assert_eq!(code(&d), "451 4.3.5 Server configuration error");
    assert!(matches!(d, Decision::Defer(_)));
}

#[test]
fn lists_without_a_relay_guard_refuse_everything() {
    let p = Policy::new(&config(&[
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks, permit, reject_unauth_destination",
        ),
        ("smtpd_recipient_restrictions", ""),
    ]));
    assert!(!p.has_relay_guard());
    let d = check(&p, &facts("192.0.2.7", "x@remote.example"));
    assert_eq!(code(&d), "451 4.3.5 Server configuration error");
}

#[test]
fn unknown_local_users_are_rejected() {
    let p = Policy::new(&config(&[
        ("local_recipient_maps", "inline:{alice=1, bob=1}"),
        ("recipient_delimiter", "+"),
    ]));
    assert_eq!(
        check(&p, &facts("192.0.2.7", "alice@localhost")),
        Decision::Ok
    );
    assert_eq!(
        check(&p, &facts("192.0.2.7", "bob+lists@localhost")),
        Decision::Ok
    );
    assert_eq!(check(&p, &facts("192.0.2.7", "postmaster")), Decision::Ok);
    assert_eq!(
        code(&check(&p, &facts("192.0.2.7", "mallory@localhost"))),
        "550 5.1.1 <mallory@localhost>: Recipient address rejected: User unknown in local \
         recipient table"
    );
    // Remote recipients relayed by trusted clients are not looked up locally.
    assert_eq!(
        check(&p, &facts("127.0.0.1", "x@remote.example")),
        Decision::Ok
    );
}

#[test]
fn fqdn_syntax() {
    use super::builtins::is_fqdn;
    assert!(is_fqdn("mx.example.com", false));
    assert!(!is_fqdn("localhost", false));
    assert!(!is_fqdn("a..b", false));
    assert!(!is_fqdn("-a.b", false));
    assert!(!is_fqdn("bücher.example", false));
    assert!(is_fqdn("bücher.example", true));
}

mod lists {
    use super::*;

    fn run(p: &Policy, stage: Stage, f: &Facts) -> Verdict {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            match stage {
                Stage::Recipient => p.check_recipient(f, None).await,
                s => p.check_stage(s, f).await,
            }
        })
    }

    fn rcpt_policy(list: &str) -> Policy {
        Policy::new(&config(&[
            ("smtpd_recipient_restrictions", list),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks reject_unauth_destination",
            ),
        ]))
    }

    #[test]
    fn access_example_from_the_postfix_literature() {
        let p = rcpt_policy(
            "check_recipient_access inline:{ user@example.org=OK, example.org=REJECT }",
        );
        let ok = run(
            &p,
            Stage::Recipient,
            &facts("127.0.0.1", "user@example.org"),
        );
        assert_eq!(ok.decision, Decision::Ok);
        let d = run(
            &p,
            Stage::Recipient,
            &facts("127.0.0.1", "other@example.org"),
        );
        assert_eq!(
            code(&d.decision),
            "554 5.7.1 <other@example.org>: Recipient address rejected: Access denied"
        );
        // Parent domains match subdomains (parent_domain_matches_subdomains default).
        let d = run(
            &p,
            Stage::Recipient,
            &facts("127.0.0.1", "x@sub.example.org"),
        );
        assert!(matches!(d.decision, Decision::Reject(_)), "{d:?}");
    }

    #[test]
    fn action_texts_and_codes() {
        let p = rcpt_policy(
            "check_recipient_access inline:{ {a@x.example=REJECT 5.7.2 go away}, \
             b@x.example=DEFER, {c@x.example=421 4.7.0 closing}, {d@x.example=550 no} }",
        );
        let texts: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|u| {
                let f = facts("127.0.0.1", &format!("{u}@x.example"));
                code(&run(&p, Stage::Recipient, &f).decision)
            })
            .collect();
        assert_eq!(
            texts,
            [
                "554 5.7.2 <a@x.example>: Recipient address rejected: go away",
                "450 4.7.1 <b@x.example>: Recipient address rejected: Access denied",
                "421 4.7.0 <c@x.example>: Recipient address rejected: closing",
                "550 5.7.1 <d@x.example>: Recipient address rejected: no",
            ]
        );
    }

    #[test]
    fn stage_lists_name_their_subject() {
        let p = Policy::new(&config(&[
            (
                "smtpd_client_restrictions",
                "check_client_access inline:{192.0.2=REJECT}",
            ),
            (
                "smtpd_helo_restrictions",
                "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
            ),
            (
                "smtpd_sender_restrictions",
                "check_sender_access inline:{bad@example.org=REJECT, <>=HOLD}",
            ),
            ("smtpd_data_restrictions", "reject"),
        ]));
        let mut f = facts("192.0.2.9", "u@localhost");
        let d = run(&p, Stage::Client, &f);
        assert_eq!(
            code(&d.decision),
            "554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Access denied"
        );
        f.helo = Some("bad_name!".into());
        assert_eq!(
            code(&run(&p, Stage::Helo, &f).decision),
            "501 5.5.2 <bad_name!>: Helo command rejected: Invalid name"
        );
        f.helo = Some("localhost".into());
        assert_eq!(
            code(&run(&p, Stage::Helo, &f).decision),
            "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
        );
        f.sender = Some("bad@example.org".into());
        assert_eq!(
            code(&run(&p, Stage::Sender, &f).decision),
            "554 5.7.1 <bad@example.org>: Sender address rejected: Access denied"
        );
        f.sender = Some(String::new());
        let v = run(&p, Stage::Sender, &f);
        assert_eq!(v.decision, Decision::Ok);
        assert!(v.actions.hold.is_some());
        assert_eq!(
            code(&run(&p, Stage::Data, &f).decision),
            "554 5.7.1 <DATA>: Data command rejected: Access denied"
        );
    }

    #[test]
    fn side_effects_are_collected_and_evaluation_goes_on() {
        let p = rcpt_policy(
            "check_recipient_access inline:{ {a@x.example=PREPEND X-Tag: yes} }, \
             check_sender_access inline:{ {a@example.org=REDIRECT r@example.net} }, \
             check_client_access inline:{ {127.0.0.1=FILTER smtp:[127.0.0.1]:10025} }, \
             check_helo_access inline:{ {client.example=BCC archive@example.net} }, \
             check_recipient_access inline:{ {a@x.example=WARN look} }, \
             check_recipient_access inline:{ {a@x.example=DISCARD} }, reject",
        );
        let v = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert_eq!(v.decision, Decision::Ok, "DISCARD permits");
        assert_eq!(v.actions.prepend, vec!["X-Tag: yes".to_string()]);
        assert_eq!(v.actions.redirect.as_deref(), Some("r@example.net"));
        assert_eq!(v.actions.filter.as_deref(), Some("smtp:[127.0.0.1]:10025"));
        assert_eq!(v.actions.bcc, vec!["archive@example.net".to_string()]);
        assert!(v.actions.discard.is_some());
        let kinds: Vec<&str> = v.notes.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, ["redirect", "filter", "warn", "discard"]);
        assert_eq!(v.notes[2].text, "<a@x.example>: Recipient address look");
    }

    #[test]
    fn defer_if_permit_reject_and_warn_if_reject() {
        let p = rcpt_policy(
            "check_recipient_access inline:{ a@x.example=DEFER_IF_PERMIT }, permit_mynetworks",
        );
        let d = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert_eq!(
            code(&d.decision),
            "450 4.7.1 <a@x.example>: Recipient address rejected: Service unavailable"
        );
        let p =
            rcpt_policy("check_recipient_access inline:{ a@x.example=DEFER_IF_REJECT }, reject");
        let d = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert!(matches!(d.decision, Decision::Defer(_)), "{d:?}");
        let p = rcpt_policy("warn_if_reject reject, permit");
        let v = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert_eq!(v.decision, Decision::Ok);
        assert_eq!(v.notes[0].kind, "reject_warning");
    }

    #[test]
    fn restriction_classes_from_lists_and_tables() {
        let p = Policy::new(&config(&[
            ("smtpd_restriction_classes", "strict"),
            ("strict", "reject_non_fqdn_sender, reject"),
            (
                "smtpd_recipient_restrictions",
                "check_recipient_access inline:{ chef@localhost=strict }, permit",
            ),
        ]));
        let d = run(&p, Stage::Recipient, &facts("192.0.2.1", "chef@localhost"));
        assert_eq!(
            code(&d.decision),
            "554 5.7.1 <chef@localhost>: Recipient address rejected: Access denied"
        );
        let d = run(&p, Stage::Recipient, &facts("192.0.2.1", "cook@localhost"));
        assert_eq!(d.decision, Decision::Ok);
        // A class that names itself ends in a configuration error, not a stack overflow.
        let p = Policy::new(&config(&[
            ("smtpd_restriction_classes", "loop"),
            ("loop", "loop"),
            (
                "smtpd_recipient_restrictions",
                "loop, reject_unauth_destination",
            ),
        ]));
        let d = run(&p, Stage::Recipient, &facts("192.0.2.1", "a@localhost"));
        assert_eq!(code(&d.decision), "451 4.3.5 Server configuration error");
    }

    #[test]
    fn lookup_errors_are_temporary_failures() {
        let p = rcpt_policy("check_recipient_access fail:broken, permit");
        let d = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert_eq!(
            code(&d.decision),
            "451 4.3.0 <a@x.example>: Temporary lookup failure"
        );
        let p = rcpt_policy("check_recipient_access hash:/nonexistent/access, permit");
        let d = run(&p, Stage::Recipient, &facts("127.0.0.1", "a@x.example"));
        assert_eq!(code(&d.decision), "451 4.3.5 Server configuration error");
    }

    #[test]
    fn virtual_relay_and_relocated_recipients() {
        let p = Policy::new(&config(&[
            ("virtual_alias_maps", "inline:{ info@va.example=bob }"),
            ("virtual_alias_domains", "va.example"),
            ("virtual_mailbox_domains", "vm.example"),
            (
                "virtual_mailbox_maps",
                "inline:{ ann@vm.example=vm.example/ann/ }",
            ),
            ("relay_domains", "relay.example"),
            ("relay_recipient_maps", "inline:{ joe@relay.example=x }"),
            ("relocated_maps", "inline:{ old@localhost=new@example.net }"),
        ]));
        let c = |rcpt: &str| code(&run(&p, Stage::Recipient, &facts("192.0.2.1", rcpt)).decision);
        assert_eq!(c("info@va.example"), "Ok");
        assert_eq!(
            c("nobody@va.example"),
            "550 5.1.1 <nobody@va.example>: Recipient address rejected: User unknown in \
             virtual alias table"
        );
        assert_eq!(c("ann@vm.example"), "Ok");
        assert_eq!(
            c("bob@vm.example"),
            "550 5.1.1 <bob@vm.example>: Recipient address rejected: User unknown in virtual \
             mailbox table"
        );
        assert_eq!(c("joe@relay.example"), "Ok");
        assert_eq!(
            c("jim@relay.example"),
            "550 5.1.1 <jim@relay.example>: Recipient address rejected: User unknown in relay \
             recipient table"
        );
        assert_eq!(
            c("old@localhost"),
            "550 5.1.6 <old@localhost>: Recipient address rejected: User has moved to \
             new@example.net"
        );
    }

    #[test]
    fn multi_recipient_bounce_and_pipelining() {
        let p = rcpt_policy("reject_multi_recipient_bounce, reject_unauth_pipelining");
        let mut f = facts("127.0.0.1", "a@localhost");
        f.sender = Some(String::new());
        assert_eq!(run(&p, Stage::Recipient, &f).decision, Decision::Ok);
        f.recipient_count = 1;
        assert_eq!(
            code(&run(&p, Stage::Recipient, &f).decision),
            "550 5.5.3 <a@localhost>: Recipient address rejected: Multi-recipient bounce"
        );
        f.sender = Some("s@example.org".into());
        f.unauth_pipelining = true;
        assert_eq!(
            code(&run(&p, Stage::Recipient, &f).decision),
            "503 5.5.0 <a@localhost>: Recipient address rejected: Improper use of SMTP \
             command pipelining"
        );
    }
}

mod dns {
    use std::sync::Arc;

    use super::*;
    use crate::dns::{Answer, RecordType, StaticResolver};

    fn run(p: &Policy, f: &Facts) -> Decision {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(p.check_recipient(f, None)).decision
    }

    fn policy(list: &str) -> Policy {
        let r = StaticResolver::new()
            .with(
                "spam.example.rhs.example",
                RecordType::A,
                Answer::Records(vec!["127.0.0.2".into()]),
            )
            .with(
                "flaky.example",
                RecordType::Mx,
                Answer::TempFail("timeout".into()),
            )
            .with(
                "ok.example",
                RecordType::A,
                Answer::Records(vec!["192.0.2.1".into()]),
            );
        let cfg = config(&[
            ("smtpd_recipient_restrictions", list),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, reject_unauth_destination",
            ),
        ]);
        Policy::with_resolver(&cfg, Arc::new(r))
    }

    #[test]
    fn unknown_client_names() {
        let p = policy(
            "reject_unknown_reverse_client_hostname, reject_unknown_client_hostname, \
             reject_unauth_destination",
        );
        let mut f = facts("192.0.2.1", "a@localhost");
        f.reverse_client_name = "ptr.example".into();
        // (192.0.2.1 is outside mynetworks; a@localhost is a local destination.)
        assert_eq!(
            code(&run(&p, &f)),
            "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]"
        );
        f.reverse_client_name = "unknown".into();
        assert_eq!(
            code(&run(&p, &f)),
            "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.1]"
        );
    }

    #[test]
    fn unknown_domains_and_sender_blocklists() {
        let p = policy("reject_rhsbl_sender rhs.example, reject_unknown_recipient_domain");
        let mut f = facts("127.0.0.1", "x@nosuch.example");
        f.sender = Some("u@spam.example".into());
        assert_eq!(
            code(&run(&p, &f)),
            "554 5.7.1 Service unavailable; Sender address [spam.example] blocked using \
             rhs.example"
        );
        f.sender = Some("u@ok.example".into());
        assert_eq!(
            code(&run(&p, &f)),
            "450 4.1.2 <x@nosuch.example>: Recipient address rejected: Domain not found"
        );
        f.recipient = Some("x@ok.example".into());
        assert_eq!(run(&p, &f), Decision::Ok);
        // A DNS failure defers (DEFER_IF_PERMIT), it never rejects.
        f.recipient = Some("x@flaky.example".into());
        let d = run(&p, &f);
        assert!(matches!(d, Decision::Defer(_)), "{d:?}");
        // Local domains are not looked up.
        f.recipient = Some("x@localhost".into());
        assert_eq!(run(&p, &f), Decision::Ok);
    }
}
