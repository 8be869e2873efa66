//! Message content: DATA, BDAT, bare newlines, queueing.

use super::*;
use crate::queue::QueueDir;

#[tokio::test]
async fn full_transaction_is_queued() {
    let spool = TempSpool::new("smtpd-queue");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    d.cmd(
        "MAIL FROM:<alice@example.org> BODY=8BITMIME RET=HDRS ENVID=x1",
        "250 2.1.0 Ok",
    )
    .await;
    d.cmd(
        "RCPT TO:<user@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@localhost",
        "250 2.1.5",
    )
    .await;
    d.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>").await;
    d.send(b"Subject: hello\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n")
        .await;
    let r = d.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = queued_id(&r);
    d.cmd("QUIT", "221 2.0.0 Bye").await;
    d.finished().await;

    let ids = spool.incoming();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].as_str(), id);
    let (env, content) = spool.load(QueueDir::Incoming, &ids[0]).expect("load");
    assert_eq!(env.sender, "alice@example.org");
    assert_eq!(env.envid.as_deref(), Some("x1"));
    assert_eq!(env.recipients.len(), 1);
    assert_eq!(env.recipients[0].address, "user@localhost");
    assert!(env.recipients[0]
        .notify
        .is_some_and(|n| n.success && n.failure));
    assert_eq!(
        env.recipients[0].orcpt,
        Some(("rfc822".to_string(), "user@localhost".to_string()))
    );
    let text = String::from_utf8(content).expect("utf8");
    assert!(text.starts_with("Received: from client.example.org (unknown [192.0.2.10])\r\n\tby mx.example.test (Postern) with ESMTP id "), "{text}");
    assert!(
        text.ends_with("Subject: hello\r\n") || text.contains("\r\n\r\n.dot-stuffed\r\nbody\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn pipelined_transaction_in_one_write() {
    let spool = TempSpool::new("smtpd-pipe");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    d.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<one@localhost>\r\nRCPT TO:<x@remote.example>\r\n\
          RCPT TO:<two@localhost>\r\nDATA\r\nSubject: piped\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n",
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..8 {
        replies.push(d.reply().await);
    }
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["250", "250", "454", "250", "354", "250", "250", "221"],
        "{replies:?}"
    );
    assert!(replies[5].starts_with("250 2.0.0 Ok: queued as "));
    assert!(d.closed().await);
    assert_eq!(spool.incoming().len(), 1);
    let (env, _) = spool
        .load(QueueDir::Incoming, &spool.incoming()[0])
        .expect("load");
    assert_eq!(env.recipients.len(), 2);
}

#[tokio::test]
async fn recipient_limit_and_size_limits() {
    let spool = TempSpool::new("smtpd-limits");
    let cfg = [
        ("smtpd_recipient_limit", "2"),
        ("message_size_limit", "2000"),
    ];
    let mut d = ehlo_session(&cfg, &spool, OUTSIDER).await;
    d.cmd(
        "MAIL FROM:<a@example.org> SIZE=5000",
        "552 5.3.4 Message size exceeds fixed limit",
    )
    .await;
    d.cmd("MAIL FROM:<a@example.org> SIZE=1500", "250 2.1.0")
        .await;
    d.cmd("RCPT TO:<one@localhost>", "250 2.1.5").await;
    d.cmd("RCPT TO:<two@localhost>", "250 2.1.5").await;
    d.cmd(
        "RCPT TO:<three@localhost>",
        "452 4.5.3 Error: too many recipients",
    )
    .await;
    d.cmd("DATA", "354").await;
    // Oversized content is read to the end, then refused; the session goes on in step.
    let big = format!("Subject: big\r\n\r\n{}\r\n.\r\nNOOP\r\n", "x".repeat(3000));
    d.send(big.as_bytes()).await;
    assert_eq!(d.reply().await, "552 5.3.4 Error: message file too big\r\n");
    assert_eq!(d.reply().await, "250 2.0.0 Ok\r\n");
    // The transaction is over.
    d.cmd("RCPT TO:<one@localhost>", "503 5.5.1").await;
    // Exactly at the limit is fine.
    envelope(&mut d).await;
    d.cmd("DATA", "354").await;
    let body = "y".repeat(2000 - 2);
    d.send(format!("{body}\r\n.\r\n").as_bytes()).await;
    let r = d.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    assert_eq!(spool.incoming().len(), 1);
}

#[tokio::test]
async fn bdat_chunks_are_assembled() {
    let spool = TempSpool::new("smtpd-bdat");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    envelope(&mut d).await;
    let part1 = b"Subject: chunky\r\n\r\n";
    let part2 = b"line one\r\n.line with dot\r\nQUIT\r\n";
    d.send(format!("BDAT {}\r\n", part1.len()).as_bytes()).await;
    d.send(part1).await;
    assert_eq!(
        d.reply().await,
        format!("250 2.0.0 Ok: {} bytes\r\n", part1.len())
    );
    d.cmd("DATA", "503 5.5.1 Error: DATA after BDAT").await;
    d.cmd("RCPT TO:<x@localhost>", "503 5.5.1 Error: RCPT after BDAT")
        .await;
    // Last chunk and the next command in one write: the command is not part of the chunk.
    let mut last = format!("BDAT {} LAST\r\n", part2.len()).into_bytes();
    last.extend_from_slice(part2);
    last.extend_from_slice(b"NOOP\r\n");
    d.send(&last).await;
    let r = d.reply().await;
    let total = part1.len() + part2.len();
    assert!(
        r.starts_with(&format!("250 2.0.0 Ok: {total} bytes queued as ")),
        "{r}"
    );
    assert_eq!(d.reply().await, "250 2.0.0 Ok\r\n");
    assert!(d.hang_up().await);
    let (_, content) = spool
        .load(QueueDir::Incoming, &spool.incoming()[0])
        .expect("load");
    let text = String::from_utf8(content).expect("utf8");
    assert!(
        text.contains("\r\n.line with dot\r\nQUIT\r\n"),
        "not dot-unstuffed: {text}"
    );
}

#[tokio::test]
async fn bdat_edge_cases() {
    let spool = TempSpool::new("smtpd-bdat-edge");
    let mut d = ehlo_session(&[("message_size_limit", "100")], &spool, OUTSIDER).await;
    // No transaction: the chunk is read and discarded, later chunks too until LAST.
    d.send(b"BDAT 5\r\nhello").await;
    assert_eq!(d.reply().await, "503 5.5.1 Error: need RCPT command\r\n");
    d.send(b"BDAT 3\r\nabc").await;
    assert_eq!(
        d.reply().await,
        "551 5.0.0 Discarded 3 bytes after earlier error\r\n"
    );
    d.cmd(
        "MAIL FROM:<a@example.org>",
        "503 5.5.1 Error: MAIL after BDAT",
    )
    .await;
    d.send(b"BDAT 2 LAST\r\nxy").await;
    assert_eq!(
        d.reply().await,
        "551 5.0.0 Discarded 2 bytes after earlier error\r\n"
    );
    // BDAT 0 LAST carries a whole (empty) message.
    envelope(&mut d).await;
    d.send(b"BDAT 0 LAST\r\n").await;
    assert!(d
        .reply()
        .await
        .starts_with("250 2.0.0 Ok: 0 bytes queued as "));
    // Null non-final chunks are refused.
    envelope(&mut d).await;
    d.cmd("BDAT 0", "551 5.7.1 Null BDAT request").await;
    d.cmd("RSET", "250 2.0.0").await;
    // A chunk over the size limit.
    envelope(&mut d).await;
    let chunk = "z".repeat(120);
    d.send(format!("BDAT 120 LAST\r\n{chunk}").as_bytes()).await;
    assert_eq!(
        d.reply().await,
        "552 5.3.4 Chunk exceeds message size limit\r\n"
    );
    d.cmd("NOOP", "250 2.0.0").await;
    // Malformed BDAT: the following bytes would be content, so the server hangs up.
    d.cmd("BDAT ten", "521 5.5.4 Syntax: BDAT count [LAST]")
        .await;
    assert!(d.closed().await);
    assert_eq!(spool.incoming().len(), 1);
}

#[tokio::test]
async fn bdat_huge_chunk_ends_the_session() {
    let spool = TempSpool::new("smtpd-bdat-huge");
    let mut d = ehlo_session(&[("message_size_limit", "100")], &spool, OUTSIDER).await;
    envelope(&mut d).await;
    d.cmd(
        "BDAT 99999999999 LAST",
        "552 5.3.4 Chunk exceeds message size limit",
    )
    .await;
    assert!(d.closed().await);
}

#[tokio::test]
async fn bare_lf_in_data_under_each_policy() {
    let msg = b"Subject: lf\n\nline one\nline two\r\n.\r\n";
    // reject: refused after the end of data; the session continues.
    let (r, spool, mut d) = data_with("reject", OUTSIDER, msg).await;
    assert_eq!(r, "550 5.5.2 mx.example.test Error: bare <LF> received\r\n");
    d.cmd("NOOP", "250 2.0.0").await;
    assert!(spool.incoming().is_empty());
    // reject, but the client is in smtpd_forbid_bare_newline_exclusions ($mynetworks).
    let (r, spool, _d) = data_with("reject", LOCALHOST, msg).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(spool.incoming().len(), 1);
    // normalize: accepted, stored with CRLF.
    let (r, spool, _d) = data_with("normalize", OUTSIDER, msg).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (_, content) = spool
        .load(QueueDir::Incoming, &spool.incoming()[0])
        .expect("load");
    let text = String::from_utf8(content).expect("utf8");
    assert!(text.contains("Subject: lf\r\n"), "{text:?}");
    assert!(text.ends_with("\r\nline one\r\nline two\r\n"), "{text:?}");
    // no (legacy): a bare "\n.\n" ends the data.
    let (r, spool, _d) = data_with("no", OUTSIDER, b"Subject: x\n\nbody\n.\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(spool.incoming().len(), 1);
}

#[tokio::test]
async fn smuggled_end_of_data_stays_content() {
    for policy in ["normalize", "reject"] {
        let payload = b"Subject: s\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@example.org>\r\n.\r\n";
        let (r, spool, mut d) = data_with(policy, LOCALHOST, payload).await;
        assert!(r.starts_with("250 2.0.0"), "{policy}: {r}");
        // Nothing was executed as a command.
        d.cmd(
            "RCPT TO:<x@localhost>",
            "503 5.5.1 Error: need MAIL command",
        )
        .await;
        let (_, content) = spool
            .load(QueueDir::Incoming, &spool.incoming()[0])
            .expect("load");
        let text = String::from_utf8_lossy(&content).into_owned();
        assert!(text.contains("MAIL FROM:<evil@example.org>"), "{text}");
    }
}

#[tokio::test]
async fn bare_lf_in_bdat_under_reject() {
    let spool = TempSpool::new("smtpd-bare-bdat");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    envelope(&mut d).await;
    d.send(b"BDAT 8 LAST\r\nSubj\nx\r\n").await;
    assert_eq!(
        d.reply().await,
        "550 5.5.2 mx.example.test Error: bare <LF> received\r\n"
    );
    envelope(&mut d).await;
    // A CRLF split across chunks is not bare.
    d.send(b"BDAT 6\r\nab: c\r").await;
    assert!(d.reply().await.starts_with("250 2.0.0 Ok: 6 bytes"));
    d.send(b"BDAT 4 LAST\r\n\nd\r\n").await;
    let r = d.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: 10 bytes queued as "), "{r}");
    assert_eq!(spool.incoming().len(), 1);
}

#[tokio::test]
async fn client_vanishing_mid_data_queues_nothing() {
    let spool = TempSpool::new("smtpd-vanish");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    envelope(&mut d).await;
    d.cmd("DATA", "354").await;
    d.send(b"Subject: half\r\n\r\nsome text but no end").await;
    assert!(
        d.hang_up().await,
        "session did not end when the client left"
    );
    assert!(spool.incoming().is_empty());
    assert!(std::fs::read_dir(spool.root().join("tmp"))
        .expect("tmp")
        .next()
        .is_none());
}

#[tokio::test]
async fn smtputf8_addresses() {
    let spool = TempSpool::new("smtpd-utf8");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    d.cmd(
        "MAIL FROM:<jörg@example.org>",
        "553 5.6.7 Must declare SMTPUTF8",
    )
    .await;
    d.cmd("MAIL FROM:<jörg@example.org> SMTPUTF8", "250 2.1.0")
        .await;
    d.cmd("RCPT TO:<müller@localhost>", "250 2.1.5").await;
    d.cmd("DATA", "354").await;
    d.send("Subject: grüße\r\n\r\nhi\r\n.\r\n".as_bytes()).await;
    assert!(d.reply().await.starts_with("250 2.0.0"));
    let (env, content) = spool
        .load(QueueDir::Incoming, &spool.incoming()[0])
        .expect("load");
    assert!(env.smtputf8);
    assert_eq!(env.recipients[0].address, "müller@localhost");
    assert!(String::from_utf8_lossy(&content).contains(" with UTF8SMTP id "));
}

#[tokio::test]
async fn queue_write_errors_are_temporary() {
    let spool = TempSpool::new("smtpd-qerr");
    let mut d = ehlo_session(&[], &spool, OUTSIDER).await;
    envelope(&mut d).await;
    // The rename into incoming/ fails: the client must retry later, not bounce.
    std::fs::remove_dir_all(spool.dir(QueueDir::Incoming)).expect("remove incoming");
    d.cmd("DATA", "354").await;
    d.send(b"Subject: x\r\n\r\ny\r\n.\r\n").await;
    assert_eq!(
        d.reply().await,
        "451 4.3.0 Error: queue file write error\r\n"
    );
    // The transaction is over; the session is still usable.
    d.cmd("NOOP", "250 2.0.0 Ok").await;
    d.cmd("RCPT TO:<user@localhost>", "503 5.5.1").await;
}
