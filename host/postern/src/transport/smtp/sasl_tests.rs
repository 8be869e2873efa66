//! SMTP AUTH in the smtp client against a scripted server: PLAIN, LOGIN, a refused password,
//! and no password in the clear unless allowed.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::client::{Message, Settings};
use super::deliver_to;
use super::sasl::Secret;
use crate::queue::Recipient;
use crate::transport::Outcome;

/// One session: EHLO offers `auth`; AUTH succeeds for alice:wonderland.
async fn serve(auth: &'static str) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let mut io = BufReader::new(sock);
        let mut seen = String::new();
        let _ = io.get_mut().write_all(b"220 relay.test ESMTP\r\n").await;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let good_plain = format!("AUTH PLAIN {}\r\n", b64("\0alice\0wonderland"));
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            let reply: String = match line.get(..4).unwrap_or("") {
                "EHLO" => format!("250-relay.test\r\n250-PIPELINING\r\n{auth}250 8BITMIME\r\n"),
                "AUTH" if line == good_plain => "235 2.7.0 Authentication successful\r\n".into(),
                "AUTH" if line.starts_with("AUTH LOGIN") => "334 VXNlcm5hbWU6\r\n".into(),
                "AUTH" => "535 5.7.8 Error: authentication failed\r\n".into(),
                _ if line == format!("{}\r\n", b64("alice")) => "334 UGFzc3dvcmQ6\r\n".into(),
                _ if line == format!("{}\r\n", b64("wonderland")) => "235 2.7.0 Ok\r\n".into(),
                "MAIL" => "250 2.1.0 Ok\r\n".into(),
                "RCPT" => "250 2.1.5 Ok\r\n".into(),
                "DATA" => {
                    let _ = io.get_mut().write_all(b"354 go ahead\r\n").await;
                    loop {
                        let mut l = String::new();
                        if io.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                            break;
                        }
                    }
                    "250 2.0.0 Ok: queued\r\n".into()
                }
                "QUIT" => {
                    let _ = io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                    break;
                }
                _ => "502 5.5.2 Error: command not recognized\r\n".into(),
            };
            if io.get_mut().write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
        seen
    });
    (addr, task)
}

fn settings(secret: Secret) -> Settings {
    Settings {
        sasl: Some(Arc::new(secret)),
        ..super::tests::settings()
    }
}

async fn send(settings: &Settings, addr: SocketAddr) -> Outcome {
    let rcpt = Recipient::new("bob@remote.test");
    let msg = Message {
        queue_id: "SASLTEST".into(),
        sender: "alice@example.org",
        rcpts: vec![&rcpt],
        content: b"Subject: hi\r\n\r\nbody\r\n",
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
    };
    let mut out = deliver_to(settings, &[("relay.test".into(), addr)], &msg).await;
    out.remove(0)
}

#[tokio::test]
async fn plain_login_then_mail() {
    let (addr, server) = serve("250-AUTH LOGIN PLAIN\r\n").await;
    let o = send(
        &settings(Secret::for_tests("alice", "wonderland", true)),
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(o.is_sent(), "{o:?}");
    assert!(
        seen.contains("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\nMAIL FROM:"),
        "{seen}"
    );
}

#[tokio::test]
async fn login_mechanism_when_plain_is_not_offered() {
    let (addr, server) = serve("250-AUTH LOGIN\r\n").await;
    let o = send(
        &settings(Secret::for_tests("alice", "wonderland", true)),
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(o.is_sent(), "{o:?}");
    assert!(
        seen.contains("AUTH LOGIN\r\nYWxpY2U=\r\nd29uZGVybGFuZA==\r\nMAIL FROM:"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_refused_password_defers_and_sends_nothing() {
    let (addr, server) = serve("250-AUTH PLAIN\r\n").await;
    let o = send(&settings(Secret::for_tests("alice", "wrong", true)), addr).await;
    let seen = server.await.expect("server");
    assert!(o.is_deferred(), "{o:?}");
    assert_eq!(o.status.to_string(), "4.7.0");
    assert_eq!(
        o.text,
        "SASL authentication failed; server relay.test[127.0.0.1] said: 535 5.7.8 Error: \
         authentication failed"
    );
    assert!(!seen.contains("MAIL FROM"), "{seen}");
}

#[tokio::test]
async fn no_password_in_the_clear_with_noplaintext() {
    let (addr, server) = serve("250-AUTH PLAIN LOGIN\r\n").await;
    let o = send(
        &settings(Secret::for_tests("alice", "wonderland", false)),
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(o.is_sent(), "{o:?}");
    assert!(!seen.contains("AUTH"), "{seen}");
}
