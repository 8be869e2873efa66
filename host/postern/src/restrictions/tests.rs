use std::net::IpAddr;

use super::*;
use crate::smtpd::testkit::config;

fn facts<'a>(addr: &str, rcpt: &'a str) -> Facts<'a> {
    Facts {
        client_addr: addr.parse::<IpAddr>().expect("ip"),
        client_name: "unknown",
        helo: Some("client.example"),
        sender: Some("a@example.org"),
        recipient: Some(rcpt),
        sasl_username: None,
        smtputf8: false,
    }
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
    let d = p.check_recipient(&facts("192.0.2.7", "victim@remote.example"));
    assert_eq!(
        code(&d),
        "454 4.7.1 <victim@remote.example>: Relay access denied"
    );
    assert!(matches!(d, Decision::Defer(_)));
    // Local destinations are accepted from anywhere.
    let d = p.check_recipient(&facts("192.0.2.7", "user@localhost"));
    assert_eq!(d, Decision::Ok);
    // Trusted networks may relay.
    assert_eq!(
        p.check_recipient(&facts("127.0.0.1", "x@remote.example")),
        Decision::Ok
    );
    assert_eq!(
        p.check_recipient(&facts("::1", "x@remote.example")),
        Decision::Ok
    );
    assert_eq!(
        p.check_recipient(&facts("::ffff:127.0.0.1", "x@remote.example")),
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
    let d = p.check_recipient(&facts("192.0.2.7", "x@remote.example"));
    assert_eq!(
        code(&d),
        "554 5.7.1 <x@remote.example>: Relay access denied"
    );
    assert_eq!(
        p.check_recipient(&facts("192.0.2.7", "x@partner.example")),
        Decision::Ok
    );
    assert_eq!(
        p.check_recipient(&facts("192.0.2.7", "x@mx.partner.example")),
        Decision::Ok
    );
    let d = p.check_recipient(&facts("192.0.2.7", "\"x@remote.example\"@localhost"));
    assert!(matches!(d, Decision::Reject(_)), "{d:?}");
}

#[test]
fn recipient_restrictions_run_after_relay_restrictions() {
    let p = Policy::new(&config(&[(
        "smtpd_recipient_restrictions",
        "reject_non_fqdn_recipient, reject_non_fqdn_sender, permit",
    )]));
    // Relay permits (mynetworks), recipient list still rejects.
    let d = p.check_recipient(&facts("127.0.0.1", "bob@localhost"));
    assert_eq!(
        code(&d),
        "504 5.5.2 <bob@localhost>: Recipient address rejected: need fully-qualified address"
    );
    let mut f = facts("127.0.0.1", "bob@mx.example.test");
    f.sender = Some("root@host");
    assert_eq!(
        code(&p.check_recipient(&f)),
        "504 5.5.2 <root@host>: Sender address rejected: need fully-qualified address"
    );
    f.sender = Some("");
    assert_eq!(p.check_recipient(&f), Decision::Ok);
}

#[test]
fn generic_reject_and_defer_use_postfix_texts() {
    let p = Policy::new(&config(&[("smtpd_relay_restrictions", "reject")]));
    assert_eq!(
        code(&p.check_recipient(&facts("127.0.0.1", "a@localhost"))),
        "554 5.7.1 <a@localhost>: Recipient address rejected: Access denied"
    );
    let p = Policy::new(&config(&[("smtpd_relay_restrictions", "defer")]));
    assert_eq!(
        code(&p.check_recipient(&facts("127.0.0.1", "a@localhost"))),
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
            Restriction::Unknown {
                name: "check_client_access".into(),
                arg: Some("hash:/etc/postfix/access".into())
            },
            Restriction::PermitMynetworks,
            Restriction::RejectUnauthDestination,
        ]
    );
    let d = p.check_recipient(&facts("127.0.0.1", "a@localhost"));
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
    let d = p.check_recipient(&facts("192.0.2.7", "x@remote.example"));
    assert_eq!(code(&d), "451 4.3.5 Server configuration error");
}

#[test]
fn unknown_local_users_are_rejected() {
    let p = Policy::new(&config(&[
        ("local_recipient_maps", "inline:{alice, bob}"),
        ("recipient_delimiter", "+"),
    ]));
    assert_eq!(
        p.check_recipient(&facts("192.0.2.7", "alice@localhost")),
        Decision::Ok
    );
    assert_eq!(
        p.check_recipient(&facts("192.0.2.7", "bob+lists@localhost")),
        Decision::Ok
    );
    assert_eq!(
        p.check_recipient(&facts("192.0.2.7", "postmaster")),
        Decision::Ok
    );
    assert_eq!(
        code(&p.check_recipient(&facts("192.0.2.7", "mallory@localhost"))),
        "550 5.1.1 <mallory@localhost>: Recipient address rejected: User unknown in local \
         recipient table"
    );
    // Remote recipients relayed by trusted clients are not looked up locally.
    assert_eq!(
        p.check_recipient(&facts("127.0.0.1", "x@remote.example")),
        Decision::Ok
    );
}

#[test]
fn fqdn_syntax() {
    assert!(is_fqdn("mx.example.com", false));
    assert!(!is_fqdn("localhost", false));
    assert!(!is_fqdn("a..b", false));
    assert!(!is_fqdn("-a.b", false));
    assert!(!is_fqdn("bücher.example", false));
    assert!(is_fqdn("bücher.example", true));
}
