//! Bad input and faults: slow clients, vanished clients, garbage, connection floods, a full disk.
//! Each must get the right reply or a clean drop while the server keeps serving others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use postern_tests::{message, Server, TempDir};

/// A session that still works after the fault: the server is alive and serving.
fn assert_serving(server: &Server, user: &str) {
    let mut s = server.connect();
    s.ehlo("after.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to(&format!("{user}@localhost"), "250 2.1.5");
    s.data(&message("still-serving"), "250 2.0.0");
    s.cmd("QUIT", "221");
}

#[test]
fn silent_client_times_out_with_421() {
    let server = Server::start("smtpd_timeout = 1s");
    let mut s = server.connect();
    let start = Instant::now();
    let r = s.read_reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(s.is_closed());
    assert_serving(&server, "u1");
}

#[test]
fn client_vanishing_mid_data_queues_nothing() {
    let server = Server::start("");
    {
        let mut s = server.connect();
        s.ehlo("client.example.org");
        s.mail_from("a@example.org", "250 2.1.0");
        s.rcpt_to("gone@localhost", "250 2.1.5");
        s.cmd("DATA", "354");
        s.send_raw(b"Subject: half\r\n\r\nthe client dies before the dot\r\n");
    } // dropped: connection closed mid-DATA
    std::thread::sleep(Duration::from_millis(300));
    assert!(server
        .wait_for_mail("gone", 1, Duration::from_millis(500))
        .is_empty());
    for q in ["incoming", "active", "deferred"] {
        assert!(server.queue_files(q).is_empty(), "{q} not empty");
    }
    assert!(
        server.log().contains("lost connection after DATA"),
        "{}",
        server.log()
    );
    assert_serving(&server, "u2");
}

#[test]
fn binary_garbage_and_overlong_lines_are_refused_cleanly() {
    let server = Server::start("smtpd_error_sleep_time = 0");
    let mut s = server.connect();
    s.send_raw(b"\x00\xff\xfe\x01garbage\r\n");
    assert!(s.read_reply().starts_with("500 5.5.2"));
    let long = format!("EHLO {}\r\n", "a".repeat(5000));
    s.send_raw(long.as_bytes());
    let r = s.read_reply();
    assert!(r.starts_with("500 5.5."), "{r}");
    s.cmd("NOOP", "250 2.0.0");
    assert_serving(&server, "u3");
}

#[test]
fn connection_flood_from_one_client_is_limited_and_others_are_served() {
    // 127.0.0.1 is outside mynetworks here so the per-client limit applies.
    let server =
        Server::start("mynetworks = 192.0.2.0/24\nsmtpd_client_connection_count_limit = 5");
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap_or(0);
        let banner = String::from_utf8_lossy(&buf[..n]).into_owned();
        if banner.starts_with("421") {
            refused += 1;
        } else {
            assert!(banner.starts_with("220"), "{banner}");
            held.push(c);
        }
    }
    assert_eq!(held.len(), 5, "limit is 5 connections per client");
    assert_eq!(refused, 35);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_serving(&server, "u4");
}

#[test]
fn many_concurrent_connections_are_all_greeted() {
    let server =
        Server::start("smtpd_client_connection_count_limit = 0\ndefault_process_limit = 1000");
    let conns: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connect"))
        .collect();
    for mut c in conns {
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap_or(0);
        assert!(
            buf[..n].starts_with(b"220"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        let _ = c.write_all(b"QUIT\r\n");
    }
    assert_serving(&server, "u5");
}

/// Mounting a tiny tmpfs needs root; CI runs as root. Elsewhere the test is skipped.
#[test]
fn full_disk_gets_452_and_corrupts_nothing() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let mnt = TempDir::new("fulldisk");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(mnt.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "cannot mount tmpfs in CI");
        eprintln!("skipping: cannot mount tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.path().to_path_buf());
    let queue = mnt.path().join("queue");
    let server = Server::start(&format!("queue_directory = {}", queue.display()));
    // Fill the file system (leave the spool directories in place).
    let filler = mnt.path().join("filler");
    let _ = std::fs::write(&filler, vec![b'x'; 1024 * 1024]);

    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("full@localhost", "250 2.1.5");
    let big = format!("Subject: too much\r\n\r\n{}\r\n", "y".repeat(64 * 1024));
    s.data(&big, "452 4.3.1");
    s.cmd("QUIT", "221");

    std::fs::remove_file(&filler).expect("free space");
    assert!(
        std::fs::read_dir(queue.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "half-written file left in tmp/"
    );
    assert_serving(&server, "full");
    assert_eq!(
        server
            .wait_for_mail("full", 1, Duration::from_secs(10))
            .len(),
        1
    );
    assert!(postern_tests::list_files(&queue.join("corrupt")).is_empty());
}
