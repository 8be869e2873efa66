//! Restriction stages as smtpd runs them: connect-time refusal without `smtpd_delay_reject`,
//! DATA and end-of-data lists (the DATA list also at the first BDAT), unauthorized pipelining
//! and access replies that hang up.

use super::{ehlo_session, envelope, OUTSIDER};
use crate::smtpd::testkit::{config, Dialog, TempSpool};

#[tokio::test]
async fn client_refused_at_connect_without_delay_reject() {
    let spool = TempSpool::new("smtpd-connect-reject");
    let cfg = config(&[
        ("smtpd_delay_reject", "no"),
        (
            "smtpd_client_restrictions",
            "check_client_access inline:{ 192.0.2=REJECT }",
        ),
    ]);
    let mut d = Dialog::start(cfg, &spool, OUTSIDER).await;
    assert!(
        d.greeting
            .starts_with("554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied"),
        "{}",
        d.greeting
    );
    d.cmd(
        "EHLO client.example.org",
        "503 5.7.0 Error: access denied for unknown[192.0.2.10]",
    )
    .await;
    d.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn data_and_end_of_data_restrictions() {
    let spool = TempSpool::new("smtpd-data-restr");
    let mut d = ehlo_session(
        &[("smtpd_data_restrictions", "reject_multi_recipient_bounce")],
        &spool,
        OUTSIDER,
    )
    .await;
    d.cmd("MAIL FROM:<>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;
    d.cmd("RCPT TO:<postmaster@localhost>", "250").await;
    d.cmd(
        "DATA",
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce",
    )
    .await;

    let mut d = ehlo_session(
        &[(
            "smtpd_end_of_data_restrictions",
            "check_sender_access inline:{ alice@example.org=REJECT }",
        )],
        &spool,
        OUTSIDER,
    )
    .await;
    envelope(&mut d).await;
    d.cmd("DATA", "354").await;
    d.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    let r = d.reply().await;
    assert!(
        r.starts_with("554 5.7.1 <alice@example.org>: Sender address rejected: Access denied"),
        "{r}"
    );
    assert!(spool.incoming().is_empty());
}

#[tokio::test]
async fn unauthorized_pipelining_is_refused() {
    let spool = TempSpool::new("smtpd-pipelining");
    let cfg = config(&[("smtpd_data_restrictions", "reject_unauth_pipelining")]);
    let mut d = Dialog::start(cfg, &spool, OUTSIDER).await;
    d.cmd("EHLO client.example.org", "250").await;
    envelope(&mut d).await;
    // DATA and the message in one packet, before the 354.
    d.send(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n").await;
    let r = d.reply().await;
    assert!(
        r.starts_with(
            "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"
        ),
        "{r}"
    );
}

#[tokio::test]
async fn access_421_hangs_up() {
    let spool = TempSpool::new("smtpd-421");
    let mut d = ehlo_session(
        &[(
            "smtpd_recipient_restrictions",
            "check_recipient_access inline:{ {x@localhost=421 go away} }, \
             reject_unauth_destination",
        )],
        &spool,
        OUTSIDER,
    )
    .await;
    d.cmd("MAIL FROM:<a@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<x@localhost>",
        "421 4.7.1 <x@localhost>: Recipient address rejected: go away",
    )
    .await;
    assert!(d.closed().await);
}

#[tokio::test]
async fn delayed_lists_see_each_recipient() {
    let spool = TempSpool::new("smtpd-delayed");
    let mut d = ehlo_session(
        &[(
            "smtpd_sender_restrictions",
            "check_recipient_access inline:{ x@localhost=REJECT }, \
             check_sender_access inline:{ {alice@example.org=PREPEND X-Once: yes} }",
        )],
        &spool,
        OUTSIDER,
    )
    .await;
    envelope(&mut d).await;
    d.cmd(
        "RCPT TO:<x@localhost>",
        "554 5.7.1 <x@localhost>: Recipient address rejected: Access denied",
    )
    .await;
    d.cmd("RCPT TO:<postmaster@localhost>", "250").await;
    d.cmd("DATA", "354").await;
    d.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    let r = d.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let ids = spool.incoming();
    assert_eq!(ids.len(), 1);
    let (_, content) = spool
        .load(crate::queue::QueueDir::Incoming, &ids[0])
        .expect("load");
    let text = String::from_utf8_lossy(&content);
    assert_eq!(text.matches("X-Once: yes").count(), 1, "{text}");
}

/// A BDAT transaction has no DATA command: smtpd_data_restrictions answer its first BDAT, and
/// the chunks pipelined after it are discarded until LAST (Postfix smtpd.c `bdat_cmd`).
#[tokio::test]
async fn data_restrictions_refuse_the_first_bdat() {
    let spool = TempSpool::new("smtpd-bdat-restr");
    let mut d = ehlo_session(
        &[("smtpd_data_restrictions", "reject_multi_recipient_bounce")],
        &spool,
        OUTSIDER,
    )
    .await;
    d.cmd("MAIL FROM:<>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;
    d.cmd("RCPT TO:<postmaster@localhost>", "250").await;
    d.send(b"BDAT 5\r\nhelloBDAT 3\r\nabcBDAT 2 LAST\r\nxy")
        .await;
    assert_eq!(
        d.reply().await.trim_end(),
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"
    );
    assert!(d.reply().await.starts_with("551 5.0.0 Discarded 3 bytes"));
    assert!(d.reply().await.starts_with("551 5.0.0 Discarded 2 bytes"));
    assert!(spool.incoming().is_empty());
    // The next transaction starts clean, and one that passes the list is queued.
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;
    d.send(b"BDAT 14 LAST\r\nSubject: x\r\n\r\n").await;
    let r = d.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: 14 bytes queued as"), "{r}");
}
