use super::*;
use crate::queue::{Origin, Recipient};

struct TempSpool {
    spool: Spool,
}

impl TempSpool {
    fn new(tag: &str) -> TempSpool {
        let root = std::env::temp_dir().join(format!(
            "postern-cli-queue-{tag}-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ));
        TempSpool {
            spool: Spool::open(&root).expect("open spool"),
        }
    }
}

impl Drop for TempSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.spool.root());
    }
}

fn utc_asctime(secs: u64) -> String {
    let c = crate::time::civil(secs);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday as usize],
        MONTHS[c.month as usize - 1],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

fn message(sender: &str, rcpts: &[(&str, RcptState, Option<&str>)]) -> Envelope {
    let mut env = Envelope::new(
        QueueId::generate(),
        sender,
        Origin::Local {
            user: "alice".into(),
        },
    );
    env.arrival = 1_795_309_591; // Sun Nov 22 01:06:31 2026 UTC
    for (addr, state, reason) in rcpts {
        let mut r = Recipient::new(*addr);
        r.state = *state;
        r.reason = reason.map(String::from);
        env.recipients.push(r);
    }
    env
}

#[test]
fn empty_queue() {
    assert_eq!(format_listing(&[], &utc_asctime), "Mail queue is empty\n");
}

#[test]
fn mailq_layout_matches_postfix() {
    let tmp = TempSpool::new("list");
    let s = &tmp.spool;
    let refused = Some("connect to mx.example.net[192.0.2.26]:25: Connection refused");
    let deferred = message(
        "alice@example.com",
        &[
            ("bob@example.net", RcptState::Pending, refused),
            ("carol@example.net", RcptState::Pending, refused),
            ("done@example.net", RcptState::Delivered, None),
            ("dave@example.org", RcptState::Pending, None),
        ],
    );
    let bounce = message("", &[("alice@example.com", RcptState::Pending, None)]);
    let held = message(
        "x@example.com",
        &[("y@example.com", RcptState::Pending, None)],
    );
    let content = vec![b'x'; 2000];
    s.store(QueueDir::Deferred, &deferred, &content)
        .expect("store");
    s.store(QueueDir::Active, &bounce, b"hi\r\n")
        .expect("store");
    s.store(QueueDir::Hold, &held, b"held\r\n").expect("store");
    // A corrupt file is reported and skipped, not listed.
    std::fs::write(s.path(QueueDir::Deferred, &QueueId::generate()), b"junk").expect("write");

    let entries = scan(s, &LISTED).expect("scan");
    assert_eq!(entries.len(), 3);
    let total: u64 = entries.iter().map(|e| e.file_size).sum();
    let got = format_listing(&entries, &utc_asctime);
    let want = format!(
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n\
         {d}     2000 Sun Nov 22 01:06:31  alice@example.com\n\
         {reason:>78}\n\
         {pad}bob@example.net\n\
         {pad}carol@example.net\n\
         {pad}dave@example.org\n\
         \n\
         {b}*       4 Sun Nov 22 01:06:31  MAILER-DAEMON\n\
         {pad}alice@example.com\n\
         \n\
         {h}!       6 Sun Nov 22 01:06:31  x@example.com\n\
         {pad}y@example.com\n\
         \n\
         -- {kb} Kbytes in 3 Requests.\n",
        d = deferred.id,
        b = bounce.id,
        h = held.id,
        reason = "(connect to mx.example.net[192.0.2.26]:25: Connection refused)",
        pad = " ".repeat(41),
        kb = total / 1024,
    );
    assert_eq!(got, want);
    // The reason line is right-aligned to column 78, as showq prints it.
    assert!(got
        .lines()
        .any(|l| l.len() == 78 && l.ends_with("refused)")));
}

#[test]
fn one_request_is_singular_and_control_characters_are_masked() {
    let env = message(
        "evil\x1b[2J@example.com",
        &[("a@b", RcptState::Pending, None)],
    );
    let listed = Listed::new(QueueDir::Incoming, &env, 10, 2048);
    let got = format_listing(&[listed], &utc_asctime);
    assert!(got.contains("evil?[2J@example.com"));
    assert!(got.ends_with("\n-- 2 Kbytes in 1 Request.\n"));
}

#[test]
fn show_prints_envelope_then_content() {
    let mut env = message(
        "alice@example.com",
        &[("bob@example.net", RcptState::Pending, None)],
    );
    env.recipients[0].reason = Some("4.4.1 connection refused".into());
    let content = b"Subject: hi\r\nFrom: alice@example.com\r\n\r\nline 1\r\nline 2\r\n";
    let all = ShowParts {
        envelope: true,
        header: true,
        body: true,
    };
    let mut out = Vec::new();
    write_show(&mut out, QueueDir::Deferred, &env, content, all).expect("write");
    let text = String::from_utf8(out).expect("utf8");
    let place = format!("deferred/{}", env.id);
    assert!(text.starts_with(&format!(
        "*** ENVELOPE RECORDS {place} ***\nmessage_size: {}\n",
        content.len()
    )));
    assert!(text.contains("\nsender: alice@example.com\n"));
    assert!(text.contains("\nrecipient: bob@example.net\nreason: 4.4.1 connection refused\n"));
    assert!(text.ends_with(&format!(
        "*** MESSAGE CONTENTS {place} ***\nSubject: hi\nFrom: alice@example.com\n\n\
         line 1\nline 2\n*** MESSAGE FILE END {place} ***\n"
    )));

    let body_only = ShowParts {
        envelope: false,
        header: false,
        body: true,
    };
    let mut out = Vec::new();
    write_show(&mut out, QueueDir::Deferred, &env, content, body_only).expect("write");
    assert_eq!(out, b"line 1\nline 2\n");
    let header_only = ShowParts {
        envelope: false,
        header: true,
        body: false,
    };
    let mut out = Vec::new();
    write_show(&mut out, QueueDir::Deferred, &env, content, header_only).expect("write");
    assert_eq!(out, b"Subject: hi\nFrom: alice@example.com\n");
}

#[test]
fn asctime_shape() {
    let s = asctime(1_795_309_591);
    assert_eq!(s.len(), 24, "{s}");
    assert_eq!(utc_asctime(1_795_309_591), "Sun Nov 22 01:06:31 2026");
}
