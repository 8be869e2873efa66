//! End-to-end tests of the queue manager on a temporary spool and Maildir root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::queue::{Envelope, Origin, RcptState, Recipient};

struct Env {
    root: PathBuf,
    spool: Spool,
    cfg_tx: watch::Sender<Arc<Config>>,
    shutdown: watch::Sender<bool>,
    handle: QmgrHandle,
    join: Option<JoinHandle<()>>,
}

fn config(root: &Path, extra: &[(&str, &str)]) -> Config {
    let mut over: Vec<(String, String)> = vec![
        (
            "queue_directory".into(),
            root.join("queue").display().to_string(),
        ),
        (
            "mail_spool_directory".into(),
            format!("{}/", root.join("mail").display()),
        ),
        ("myhostname".into(), "mx.test.example".into()),
        ("mydestination".into(), "localhost, $myhostname".into()),
        ("recipient_delimiter".into(), "+".into()),
    ];
    over.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    postern_config::load_with(None, &over).expect("config").main
}

fn root(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "postern-qmgr-{tag}-{}-{}",
        std::process::id(),
        crate::time::now_micros()
    ));
    let _ = std::fs::remove_dir_all(&p);
    p
}

impl Env {
    /// Prepares the spool; `before_start` may put files in place; then starts the qmgr.
    async fn start(tag: &str, extra: &[(&str, &str)], before_start: impl FnOnce(&Spool)) -> Env {
        let root = root(tag);
        let cfg = config(&root, extra);
        let spool = Spool::open(&cfg.queue_directory).expect("spool");
        before_start(&spool);
        let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (handle, join) = start(cfg_rx, spool.clone(), shutdown_rx);
        Env {
            root,
            spool,
            cfg_tx,
            shutdown,
            handle,
            join: Some(join),
        }
    }

    fn maildir_files(&self, user: &str) -> Vec<String> {
        let dir = self.root.join("mail").join(user).join("new");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(join) = self.join.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), join).await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn message(sender: &str, rcpts: &[&str]) -> Envelope {
    let mut env = Envelope::new(
        QueueId::generate(),
        sender,
        Origin::Local {
            user: "test".into(),
        },
    );
    env.recipients = rcpts.iter().map(|r| Recipient::new(*r)).collect();
    env
}

const CONTENT: &[u8] = b"From: alice@localhost\r\nSubject: qmgr test\r\n\r\nhello\r\n";

/// Polls `f` every 20 ms for at most 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_message_is_delivered_and_removed() {
    let t = Env::start("deliver", &[], |_| {}).await;
    let env = message(
        "alice@example.com",
        &["Bob+x@localhost", "carol@mx.test.example"],
    );
    t.spool
        .store(QueueDir::Incoming, &env, CONTENT)
        .expect("store");
    t.handle.new_message(env.id.clone());
    eventually("bob's maildir", || t.maildir_files("bob").len() == 1).await;
    eventually("carol's maildir", || t.maildir_files("carol").len() == 1).await;
    eventually("queue file removed", || t.spool.locate(&env.id).is_none()).await;
    let mail = &t.maildir_files("bob")[0];
    assert!(mail.starts_with("Return-Path: <alice@example.com>\nDelivered-To: Bob+x@localhost\n"));
    assert!(mail.contains("Subject: qmgr test\n"));
    assert_eq!(
        std::fs::read_dir(t.root.join("mail/bob/tmp"))
            .expect("tmp")
            .count(),
        0
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mail_is_deferred_with_reason() {
    // Nothing listens on port 1: the smtp client is refused and defers.
    let t = Env::start("defer", &[("relayhost", "[127.0.0.1]:1")], |_| {}).await;
    let env = message("alice@localhost", &["dave@remote.example", "bob@localhost"]);
    t.spool
        .store(QueueDir::Incoming, &env, CONTENT)
        .expect("store");
    t.handle.new_message(env.id.clone());
    eventually("deferred file", || {
        t.spool.locate(&env.id) == Some(QueueDir::Deferred)
    })
    .await;
    let (back, content) = t.spool.load(QueueDir::Deferred, &env.id).expect("load");
    assert_eq!(content, CONTENT);
    assert_eq!(back.attempts, 1);
    assert!(back.next_attempt > crate::time::now_secs());
    let dave = &back.recipients[0];
    assert_eq!(dave.state, RcptState::Pending);
    let reason = dave.reason.as_deref().unwrap_or("");
    assert!(reason.starts_with("4.4.1 "), "{reason}");
    assert!(
        reason.contains("connect to 127.0.0.1[127.0.0.1]:1: Connection refused"),
        "{reason}"
    );
    // The local recipient was delivered once and is not retried.
    assert_eq!(back.recipients[1].state, RcptState::Delivered);
    assert_eq!(t.maildir_files("bob").len(), 1);
    assert!(
        t.maildir_files("alice").is_empty(),
        "no delay warning by default"
    );

    // A reload that routes remote mail to discard, then a flush, finishes the message.
    let mut cfg = (**t.cfg_tx.borrow()).clone();
    cfg.default_transport = "discard".into();
    let _ = t.cfg_tx.send(Arc::new(cfg));
    t.handle.flush();
    eventually("flushed and removed", || t.spool.locate(&env.id).is_none()).await;
    assert_eq!(t.maildir_files("bob").len(), 1, "not delivered twice");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_mail_bounces_to_sender() {
    // Port 1 refuses: the delivery defers, and the expired message then bounces.
    let extra = [
        ("maximal_queue_lifetime", "0"),
        ("relayhost", "[127.0.0.1]:1"),
    ];
    let t = Env::start("expire", &extra, |_| {}).await;
    let env = message("alice@localhost", &["dave@remote.example"]);
    t.spool
        .store(QueueDir::Incoming, &env, CONTENT)
        .expect("store");
    t.handle.new_message(env.id.clone());
    eventually("bounce in alice's maildir", || {
        t.maildir_files("alice").len() == 1
    })
    .await;
    eventually("original removed", || t.spool.locate(&env.id).is_none()).await;
    let dsn = &t.maildir_files("alice")[0];
    assert!(dsn.starts_with("Return-Path: <>\n"), "{dsn}");
    assert!(dsn.contains("Subject: Undelivered Mail Returned to Sender\n"));
    assert!(dsn.contains("Final-Recipient: rfc822; dave@remote.example\n"));
    assert!(dsn.contains("Action: failed\nStatus: 5.4.7\n"));
    assert!(dsn.contains("delivery time expired"));
    assert!(dsn.contains("Subject: qmgr test"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_transport_bounces_but_never_a_bounce() {
    let t = Env::start(
        "error",
        &[("default_transport", "error:5.7.1 no outbound mail here")],
        |_| {},
    )
    .await;
    let env = message("alice@localhost", &["dave@remote.example"]);
    let bounce = message("", &["eve@remote.example"]);
    t.spool
        .store(QueueDir::Incoming, &env, CONTENT)
        .expect("store");
    t.spool
        .store(QueueDir::Incoming, &bounce, CONTENT)
        .expect("store");
    t.handle.new_message(env.id.clone());
    t.handle.new_message(bounce.id.clone());
    eventually("bounce delivered", || t.maildir_files("alice").len() == 1).await;
    eventually("both removed", || {
        t.spool.locate(&env.id).is_none() && t.spool.locate(&bounce.id).is_none()
    })
    .await;
    let dsn = &t.maildir_files("alice")[0];
    assert!(dsn.contains("Status: 5.7.1\n"));
    assert!(dsn.contains("no outbound mail here"));
    // Nothing else was queued for the null-sender message.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for dir in [QueueDir::Incoming, QueueDir::Active, QueueDir::Deferred] {
        assert!(t.spool.list(dir).expect("list").is_empty(), "{dir:?}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_delivers_active_and_incoming_skips_hold_quarantines_corrupt() {
    let active = message("alice@localhost", &["bob@localhost"]);
    let incoming = message("alice@localhost", &["carol@localhost"]);
    let held = message("alice@localhost", &["dave@localhost"]);
    let corrupt = QueueId::generate();
    let t = Env::start("recover", &[], |spool| {
        spool
            .store(QueueDir::Active, &active, CONTENT)
            .expect("store");
        spool
            .store(QueueDir::Incoming, &incoming, CONTENT)
            .expect("store");
        spool.store(QueueDir::Hold, &held, CONTENT).expect("store");
        let path = spool.path(QueueDir::Incoming, &corrupt);
        std::fs::write(&path, b"postern-queue 1\nid").expect("write");
        // Marked complete (mode 0700) but unreadable: damaged, not half-written.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    })
    .await;
    eventually("active message delivered", || {
        t.maildir_files("bob").len() == 1
    })
    .await;
    eventually("incoming message delivered", || {
        t.maildir_files("carol").len() == 1
    })
    .await;
    eventually("corrupt file quarantined", || {
        t.spool.locate(&corrupt) == Some(QueueDir::Corrupt)
    })
    .await;
    eventually("queues empty", || {
        t.spool.locate(&active.id).is_none() && t.spool.locate(&incoming.id).is_none()
    })
    .await;
    assert_eq!(t.spool.locate(&held.id), Some(QueueDir::Hold));
    assert!(t.maildir_files("dave").is_empty());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildrop_is_picked_up() {
    let t = Env::start("pickup", &[], |_| {}).await;
    let env = message("alice@localhost", &["bob@localhost"]);
    t.spool
        .store(QueueDir::Maildrop, &env, CONTENT)
        .expect("store");
    t.handle.pickup();
    eventually("delivered from maildrop", || {
        t.maildir_files("bob").len() == 1
    })
    .await;
    eventually("maildrop emptied", || {
        t.spool.list(QueueDir::Maildrop).expect("list").is_empty()
    })
    .await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_files_are_found_by_flush() {
    let t = Env::start("rescan", &[], |_| {}).await;
    let env = message("alice@localhost", &["bob@localhost"]);
    // Written behind the daemon's back, as `postern queue requeue` does.
    t.spool
        .store(QueueDir::Incoming, &env, CONTENT)
        .expect("store");
    t.handle.flush();
    eventually("delivered after flush", || {
        t.maildir_files("bob").len() == 1
    })
    .await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_destination_defers_without_connecting() {
    // failed_cohort_limit 1 and an initial window of 1: the first refused connection kills the
    // destination; later mail is deferred at once with the first failure's reason.
    let t = Env::start(
        "dead",
        &[
            ("relayhost", "[127.0.0.1]:1"),
            ("initial_destination_concurrency", "1"),
        ],
        |_| {},
    )
    .await;
    let first = message("alice@localhost", &["dave@remote.example"]);
    t.spool
        .store(QueueDir::Incoming, &first, CONTENT)
        .expect("store");
    t.handle.new_message(first.id.clone());
    eventually("first deferred", || {
        t.spool.locate(&first.id) == Some(QueueDir::Deferred)
    })
    .await;
    let second = message("alice@localhost", &["erin@remote.example"]);
    t.spool
        .store(QueueDir::Incoming, &second, CONTENT)
        .expect("store");
    t.handle.new_message(second.id.clone());
    eventually("second deferred", || {
        t.spool.locate(&second.id) == Some(QueueDir::Deferred)
    })
    .await;
    let (back, _) = t.spool.load(QueueDir::Deferred, &second.id).expect("load");
    let reason = back.recipients[0].reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]:1"),
        "{reason}"
    );
    t.stop().await;
}

#[test]
fn smtp_jobs_respect_the_destination_recipient_limit() {
    let root = root("rcptlimit");
    let cfg = config(
        &root,
        &[
            ("relayhost", "[127.0.0.1]:1"),
            ("smtp_destination_recipient_limit", "50"),
        ],
    );
    let rcpts: Vec<String> = (0..120).map(|i| format!("u{i}@remote.example")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut env = message("alice@localhost", &refs);
    env.recipients.push(Recipient::new("bob@localhost"));
    let env = Arc::new(env);
    let content = Arc::new(CONTENT.to_vec());
    let dest = crate::address::Destinations::new(&cfg);
    let jobs = deliver::plan(&cfg, &dest, &env, &content);
    let smtp: Vec<usize> = jobs
        .iter()
        .filter(|(j, _)| j.route.transport == crate::transport::Transport::Smtp)
        .map(|(j, _)| j.rcpts.len())
        .collect();
    assert_eq!(smtp, vec![50, 50, 20]);
    assert_eq!(jobs.len(), 4, "plus one local job");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_flush_retries_only_that_site() {
    let t = Env::start("siteflush", &[("relayhost", "[127.0.0.1]:1")], |_| {}).await;
    let a = message("alice@localhost", &["x@a.example"]);
    let b = message("alice@localhost", &["y@b.example"]);
    for env in [&a, &b] {
        t.spool
            .store(QueueDir::Incoming, env, CONTENT)
            .expect("store");
        t.handle.new_message(env.id.clone());
    }
    let attempts = |id: &QueueId| {
        t.spool
            .load(QueueDir::Deferred, id)
            .map(|(env, _)| env.attempts)
            .unwrap_or(0)
    };
    eventually("both deferred", || {
        attempts(&a.id) == 1 && attempts(&b.id) == 1
    })
    .await;
    t.handle.flush_site("Sub.A.example");
    // The files say "deferred" a moment before the scheduler hears of it; a flush in between
    // finds nothing to retry, so it is repeated until one lands.
    eventually("a.example retried", || {
        t.handle.flush_site("a.example");
        attempts(&a.id) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(attempts(&b.id), 1, "b.example keeps its retry time");
    t.stop().await;
}

#[test]
fn sites_are_domains_and_their_subdomains() {
    assert!(in_site("bob@example.org", "example.org"));
    assert!(in_site("bob@MX.Example.ORG.", "example.org"));
    assert!(!in_site("bob@notexample.org", "example.org"));
    assert!(!in_site("bob", "example.org"));
}
