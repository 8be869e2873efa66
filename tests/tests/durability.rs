//! No message that received 250 is ever lost: kill -9 the daemon at random points during a load
//! of a few thousand messages, restart it, and check that every acknowledged message is delivered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_tests::{read_maildir, Server, TestSession};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 600;

/// xorshift, seeded from the clock: random kill points without a dependency.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Sends one message; returns true only when the server said 250 to the end of data.
fn send_one(port: u16, subject: &str) -> bool {
    let attempt = std::panic::catch_unwind(|| {
        let mut s = TestSession::connect(port);
        s.ehlo("load.example.org");
        s.mail_from("load@example.org", "250");
        s.rcpt_to("sink@localhost", "250");
        s.cmd("DATA", "354");
        s.send_raw(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes());
        let r = s.read_reply();
        r.starts_with("250 2.0.0")
    });
    attempt.unwrap_or(false)
}

#[test]
fn kill_9_during_load_loses_no_acknowledged_message() {
    let mut server = Server::start("");
    let port = server.port;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        let acked = Arc::clone(&acked);
        workers.push(std::thread::spawn(move || {
            for i in 0..PER_CLIENT {
                let subject = format!("load-{c}-{i}");
                // Retry through restarts for a bounded time; an unacknowledged attempt may or
                // may not be delivered, which is allowed.
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    if send_one(port, &subject) {
                        if let Ok(mut a) = acked.lock() {
                            a.push(subject.clone());
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }
    // Silence the panics of connection attempts that hit a dead server.
    std::panic::set_hook(Box::new(|_| {}));

    let mut seed = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7))
        | 1;
    let mut kills = 0;
    while kills < 5 && workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200 + next_rand(&mut seed) % 600));
        server.kill9();
        kills += 1;
        server.spawn();
    }
    for w in workers {
        w.join().expect("worker");
    }
    done.store(true, Ordering::Relaxed);
    let _ = std::panic::take_hook();

    let acked: HashSet<String> = acked
        .lock()
        .map(|a| a.iter().cloned().collect())
        .unwrap_or_default();
    assert!(
        acked.len() >= CLIENTS * PER_CLIENT * 9 / 10,
        "only {} acknowledged",
        acked.len()
    );

    let dir = server.maildir_new("sink");
    let deadline = Instant::now() + Duration::from_secs(90);
    let missing = loop {
        let delivered: HashSet<String> = read_maildir(&dir)
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            })
            .collect();
        let missing: Vec<&String> = acked.iter().filter(|s| !delivered.contains(*s)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "{} acknowledged messages were lost after {kills} kills, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        server.queue_files("corrupt").is_empty(),
        "corrupt files after kill -9"
    );
}

/// A power loss can keep a queue file's data (flushed before the 250) and lose its mode change
/// to "complete" (not flushed). The next start must find it by its seal and deliver it, and
/// must not take a recycled file's old, correctly sealed content for mail under its new name.
#[test]
fn a_sealed_file_whose_mode_change_was_lost_is_delivered_after_restart() {
    use std::os::unix::fs::PermissionsExt;

    use postern::queue::{Envelope, Origin, QueueDir, QueueId, Recipient, Spool};

    let mut server = Server::start("");
    server.stop();
    let spool = Spool::open(&server.dir.path().join("queue")).expect("open spool");
    let incomplete = || std::fs::Permissions::from_mode(0o600);
    let message = |subject: &str| {
        let mut env = Envelope::new(
            QueueId::generate(),
            "alice@example.org",
            Origin::Local {
                user: "alice".into(),
            },
        );
        env.recipients.push(Recipient::new("sink@localhost"));
        let content = format!("Subject: {subject}\r\n\r\nbody\r\n");
        spool
            .store(QueueDir::Incoming, &env, content.as_bytes())
            .expect("store");
        env.id
    };
    let acked = message("acknowledged");
    std::fs::set_permissions(spool.path(QueueDir::Incoming, &acked), incomplete()).expect("chmod");
    // A finished file recycled into the pool under a fresh ID, its old content intact.
    let old = message("already delivered");
    let recycled = spool.path(QueueDir::Incoming, &QueueId::generate());
    std::fs::rename(spool.path(QueueDir::Incoming, &old), &recycled).expect("rename");
    std::fs::set_permissions(&recycled, incomplete()).expect("chmod");

    server.spawn();
    let mail = server.wait_for_mail("sink", 1, Duration::from_secs(20));
    assert!(mail[0].contains("Subject: acknowledged"), "{}", mail[0]);
    server.wait_for_log(&format!("{acked}: removed"), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let mail = read_maildir(&server.maildir_new("sink"));
    assert_eq!(mail.len(), 1, "only the acknowledged message: {mail:?}");
    assert!(server.log().contains("marked complete again after a crash"));
    assert!(server.queue_files("corrupt").is_empty());
    server.stop();
}
