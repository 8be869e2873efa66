use super::*;
use crate::queue::{Origin, Recipient};

fn tempdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "postern-spool-{tag}-{}-{}",
        std::process::id(),
        crate::time::now_micros()
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

fn one_rcpt(id: QueueId) -> Envelope {
    let mut env = Envelope::new(id, "a@b", Origin::Local { user: "u".into() });
    env.recipients.push(Recipient::new("c@d"));
    env
}

#[test]
fn store_load_move_remove() {
    let root = tempdir("basic");
    let spool = Spool::open(&root).expect("open");
    let env = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &env, b"x\r\n")
        .expect("store");
    assert_eq!(
        spool.list(QueueDir::Incoming).expect("list"),
        vec![env.id.clone()]
    );
    assert!(spool.list(QueueDir::Active).expect("list").is_empty());
    spool
        .move_to(&env.id, QueueDir::Incoming, QueueDir::Active)
        .expect("move");
    assert_eq!(spool.locate(&env.id), Some(QueueDir::Active));
    let (back, content) = spool.load(QueueDir::Active, &env.id).expect("load");
    assert_eq!(back, env);
    assert_eq!(content, b"x\r\n");
    spool.remove(QueueDir::Active, &env.id).expect("remove");
    assert_eq!(spool.locate(&env.id), None);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn files_not_marked_complete_are_not_mail() {
    let root = tempdir("incomplete");
    let spool = Spool::open(&root).expect("open");
    let mut env = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &env, b"x\r\n")
        .expect("store");
    let path = spool.path(QueueDir::Incoming, &env.id);
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, MODE_COMPLETE);

    // A crash between create and the completion mark leaves a 0600 file.
    let half = QueueId::generate();
    let half_path = spool.path(QueueDir::Incoming, &half);
    fs::write(&half_path, b"postern-queue 1\n").expect("write");
    fs::set_permissions(&half_path, fs::Permissions::from_mode(MODE_INCOMPLETE)).expect("chmod");
    assert_eq!(
        spool.list(QueueDir::Incoming).expect("list"),
        vec![env.id.clone()]
    );
    assert_eq!(
        spool.clean_tmp().expect("clean"),
        0,
        "recycled, not deleted"
    );
    assert!(!half_path.exists());
    assert!(spool.pool.take_spare().is_some());
    assert!(path.exists(), "complete mail is never cleaned");

    // Storing over an existing message replaces it atomically.
    env.attempts = 3;
    spool
        .rewrite(QueueDir::Incoming, &env, b"y\r\n")
        .expect("rewrite");
    let (back, content) = spool.load(QueueDir::Incoming, &env.id).expect("load");
    assert_eq!((back.attempts, content.as_slice()), (3, &b"y\r\n"[..]));
    let _ = fs::remove_dir_all(&root);
}

/// A spool with its pool filler running, and the first reservation that is a pre-created file.
fn pooled(tag: &str) -> (PathBuf, Spool, Reservation) {
    let root = tempdir(tag);
    let spool = Spool::open(&root).expect("open");
    spool.start_pool();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = spool.reserve();
        if spool.path(QueueDir::Incoming, r.id()).exists() {
            return (root, spool, r);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the filler made no files"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pool_files_are_durable_before_they_are_offered_and_come_back_unused() {
    let (root, spool, first) = pooled("pool");
    let path = spool.path(QueueDir::Incoming, first.id());
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, MODE_INCOMPLETE, "an offered file is not mail");
    assert!(spool.list(QueueDir::Incoming).expect("list").is_empty());

    // Unused: dropped reservations go back to the pool, the next one may get it again.
    let id = first.id().clone();
    drop(first);
    let mut seen = false;
    let mut held = Vec::new();
    for _ in 0..pool::TARGET {
        let r = spool.reserve();
        seen |= r.id() == &id;
        held.push(r);
    }
    assert!(seen, "a returned file is offered again");

    // Used: the message is written into the reserved file and becomes mail.
    let r = held.pop().expect("reservation");
    let env = one_rcpt(r.id().clone());
    spool
        .store(QueueDir::Incoming, &env, b"pooled\r\n")
        .expect("store");
    drop(r);
    assert_eq!(
        spool.list(QueueDir::Incoming).expect("list"),
        vec![env.id.clone()]
    );
    let (_, content) = spool.load(QueueDir::Incoming, &env.id).expect("load");
    assert_eq!(content, b"pooled\r\n");
    drop(held);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn corrupt_files_are_reported_not_delivered() {
    let root = tempdir("corrupt");
    let spool = Spool::open(&root).expect("open");
    let id = QueueId::generate();
    fs::write(spool.path(QueueDir::Incoming, &id), b"postern-queue 1\nid ").expect("write");
    assert!(matches!(
        spool.load(QueueDir::Incoming, &id),
        Err(QueueError::Corrupt { .. })
    ));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn rewriting_in_place_keeps_the_length_and_reads_only_the_message() {
    let root = tempdir("inplace");
    let spool = Spool::open(&root).expect("open");
    let first = one_rcpt(QueueId::generate());
    let big = vec![b'x'; 20_000];
    spool
        .store(QueueDir::Incoming, &first, &big)
        .expect("store");
    let path = spool.path(QueueDir::Incoming, &first.id);
    let len = fs::metadata(&path).expect("stat").len();
    assert_eq!(len % GROW_STEP, 0, "grown files are padded to whole steps");

    // Recycled for a shorter message: the length stays, the old tail is not content.
    spool.remove(QueueDir::Incoming, &first.id).expect("remove");
    let second = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &second, b"short\r\n")
        .expect("store");
    let path = spool.path(QueueDir::Incoming, &second.id);
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        len,
        "a spare was reused"
    );
    let (back, content) = spool.load(QueueDir::Incoming, &second.id).expect("load");
    assert_eq!(
        (back, content.as_slice()),
        (second.clone(), &b"short\r\n"[..])
    );

    // Far longer than the message: cut back.
    spool
        .remove(QueueDir::Incoming, &second.id)
        .expect("remove");
    let huge = vec![b'y'; 300_000];
    let third = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &third, &huge)
        .expect("store");
    spool.remove(QueueDir::Incoming, &third.id).expect("remove");
    let fourth = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &fourth, b"tiny\r\n")
        .expect("store");
    let len = fs::metadata(spool.path(QueueDir::Incoming, &fourth.id))
        .expect("stat")
        .len();
    assert_eq!(len, GROW_STEP);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_crash_that_lost_the_mode_change_loses_no_mail() {
    let root = tempdir("sealed");
    let spool = Spool::open(&root).expect("open");
    let incomplete = || fs::Permissions::from_mode(MODE_INCOMPLETE);
    // Sealed mail whose 0700 never reached the disk, in incoming/ and deferred/.
    let mut kept = Vec::new();
    for dir in [QueueDir::Incoming, QueueDir::Deferred] {
        let env = one_rcpt(QueueId::generate());
        spool.store(dir, &env, b"mail\r\n").expect("store");
        fs::set_permissions(spool.path(dir, &env.id), incomplete()).expect("chmod");
        assert!(spool.list(dir).expect("list").is_empty());
        kept.push((dir, env.id));
    }
    // A recycled file renamed to a fresh ID: its old seal is valid, its ID is not this one.
    let old = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &old, b"old\r\n")
        .expect("store");
    let fresh = QueueId::generate();
    let stale = spool.path(QueueDir::Incoming, &fresh);
    fs::rename(spool.path(QueueDir::Incoming, &old.id), &stale).expect("rename");
    fs::set_permissions(&stale, incomplete()).expect("chmod");
    // A torn write: the seal does not match.
    let torn = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Incoming, &torn, b"torn\r\n")
        .expect("store");
    let torn_path = spool.path(QueueDir::Incoming, &torn.id);
    let mut bytes = fs::read(&torn_path).expect("read");
    let at = bytes
        .windows(4)
        .position(|w| w == b"torn")
        .expect("content");
    bytes[at] ^= 1;
    fs::write(&torn_path, &bytes).expect("write");
    fs::set_permissions(&torn_path, incomplete()).expect("chmod");
    // Not mail and not in incoming/: quarantined.
    let odd = QueueId::generate();
    let odd_path = spool.path(QueueDir::Hold, &odd);
    fs::write(&odd_path, b"postern-queue 1\n").expect("write");
    fs::set_permissions(&odd_path, incomplete()).expect("chmod");

    spool.clean_tmp().expect("clean");
    for (dir, id) in &kept {
        assert_eq!(spool.list(*dir).expect("list"), vec![id.clone()], "{dir:?}");
        assert!(spool.load(*dir, id).is_ok());
    }
    assert!(!stale.exists() && !torn_path.exists(), "recycled as spares");
    assert!(spool.path(QueueDir::Corrupt, &odd).exists());
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn the_daemon_recycles_finished_files_straight_into_the_pool() {
    let (root, spool, _) = pooled("recycle");
    let env = one_rcpt(QueueId::generate());
    spool
        .store(QueueDir::Active, &env, b"done\r\n")
        .expect("store");
    let before = fs::read_dir(spool.dir(QueueDir::Incoming))
        .expect("dir")
        .count();
    spool.remove(QueueDir::Active, &env.id).expect("remove");
    assert_eq!(spool.locate(&env.id), None);
    assert_eq!(fs::read_dir(root.join("tmp")).expect("tmp").count(), 0);
    assert_eq!(
        fs::read_dir(spool.dir(QueueDir::Incoming))
            .expect("dir")
            .count(),
        before + 1,
        "back in incoming/ under a fresh ID"
    );
    assert!(
        spool.list(QueueDir::Incoming).expect("list").is_empty(),
        "not mail"
    );
    // The filler makes its name durable within its next round and then offers it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spool.pool.unsynced_len() > 0 {
        assert!(std::time::Instant::now() < deadline, "never offered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = fs::remove_dir_all(&root);
}
