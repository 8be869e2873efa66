//! Remote delivery through the smtp client: the real daemon relays to a server on 127.0.0.1
//! named by `relayhost = [127.0.0.1]:PORT` — Postfix's `smtp-sink` where installed, and a
//! scripted fake server in this file.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use postern_tests::{free_port, require, Server};

const WAIT: Duration = Duration::from_secs(20);

/// Submits one message for a remote recipient to `server`.
fn submit(server: &Server, rcpt: &str, body: &str) {
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("alice@example.org", "250");
    s.rcpt_to(rcpt, "250");
    s.data(body, "250 2.0.0");
    s.cmd("QUIT", "221");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn relays_to_smtp_sink() {
    if !require("smtp-sink") {
        return;
    }
    let port = free_port();
    let mut sink = Command::new("smtp-sink");
    // smtp-sink refuses to run as root without a user to switch to.
    if is_root() {
        sink.args(["-u", "nobody"]);
    }
    let mut sink = sink
        .args(["-c", &format!("127.0.0.1:{port}"), "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    // Wait until it listens.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = Server::start(&format!("relayhost = [127.0.0.1]:{port}"));
    submit(
        &server,
        "bob@remote.example",
        "Subject: to the sink\r\n\r\n.dot\r\n",
    );
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{port}");
    let log = server.wait_for_log("status=sent (250", WAIT);
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(
        log.contains("to=<bob@remote.example>, ") && log.contains(&relay),
        "{log}"
    );
    assert!(log.contains("status=sent (250"), "{log}");
}

#[test]
fn relays_to_a_scripted_server_with_per_recipient_results() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut w = sock.try_clone().expect("clone");
        let mut r = BufReader::new(sock);
        let mut seen = String::new();
        w.write_all(b"220 fake.test ESMTP\r\n").expect("greet");
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 2.0.0 Ok: queued as FAKE1\r\n")
                        .expect("done");
                }
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("") {
                "EHLO" => b"250-fake.test\r\n250-PIPELINING\r\n250 SIZE 100000\r\n",
                "MAIL" => b"250 2.1.0 Ok\r\n",
                "RCPT" if line.contains("nobody@") => {
                    b"550 5.1.1 <nobody@remote.example>: unknown\r\n"
                }
                "RCPT" => b"250 2.1.5 Ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 Bye\r\n");
                    break;
                }
                _ => b"502 5.5.2 what\r\n",
            };
            w.write_all(reply).expect("reply");
        }
        seen
    });
    let server = Server::start(&format!("relayhost = [127.0.0.1]:{port}"));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("alice@example.org", "250");
    s.rcpt_to("bob@remote.example", "250");
    s.rcpt_to("nobody@remote.example", "250");
    s.data(
        "Subject: scripted\r\n\r\n.leading dot\r\nbye\r\n",
        "250 2.0.0",
    );
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("status=bounced", WAIT);
    let seen = peer.join().expect("peer");
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{port}");
    assert!(
        log.contains(&format!("to=<bob@remote.example>, {relay}"))
            && log.contains("status=sent (250 2.0.0 Ok: queued as FAKE1)"),
        "{log}"
    );
    assert!(
        log.contains(&format!("to=<nobody@remote.example>, {relay}"))
            && log.contains("status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1"),
        "{log}"
    );
    assert!(seen.contains("EHLO mx.example.test\r\n"), "{seen}");
    assert!(seen.contains("\r\n..leading dot\r\nbye\r\n.\r\n"), "{seen}");
}
