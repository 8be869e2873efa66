//! The smtp client against a scripted fake server on 127.0.0.1: each test reads like the
//! conversation it checks, and asserts what the server received byte for byte where it matters.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::client::{Message, Settings};
use super::deliver_to;
use crate::queue::Recipient;
use crate::transport::Outcome;

/// The fake server's replies. RCPT replies are chosen by a substring of the command.
struct Script {
    greeting: &'static str,
    ehlo: &'static str,
    rcpt: Vec<(&'static str, &'static str)>,
    data: &'static str,
    done: &'static str,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: "220 fake.test ESMTP\r\n",
            ehlo: "250-fake.test\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n",
            rcpt: Vec::new(),
            data: "354 End data with <CR><LF>.<CR><LF>\r\n",
            done: "250 2.0.0 Ok: queued as 4XyZ\r\n",
        }
    }
}

/// Starts the server for one session; the handle yields everything it received.
async fn serve(script: Script) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        let mut seen = String::new();
        w.write_all(script.greeting.as_bytes())
            .await
            .expect("greet");
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: String = match verb.as_str() {
                "EHLO" => script.ehlo.into(),
                "HELO" => "250 fake.test\r\n".into(),
                "MAIL" => "250 2.1.0 Ok\r\n".into(),
                "RCPT" => script
                    .rcpt
                    .iter()
                    .find(|(k, _)| line.contains(k))
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| "250 2.1.5 Ok\r\n".into()),
                "DATA" => {
                    w.write_all(script.data.as_bytes()).await.expect("354");
                    if !script.data.starts_with("354") {
                        continue;
                    }
                    loop {
                        let mut l = String::new();
                        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
                            break;
                        }
                        seen.push_str(&l);
                        if l == ".\r\n" {
                            break;
                        }
                    }
                    script.done.into()
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
                    break;
                }
                _ => "502 5.5.2 Error: command not recognized\r\n".into(),
            };
            w.write_all(reply.as_bytes()).await.expect("reply");
        }
        seen
    });
    (addr, task)
}

/// Client settings for tests: 5 s timeouts everywhere, no TLS, no cache, no AUTH.
pub(super) fn settings() -> Settings {
    let t = Duration::from_secs(5);
    Settings {
        dialect: super::client::Dialect::Smtp,
        helo_name: "client.test".into(),
        myhostname: "client.test".into(),
        connect: t,
        helo: t,
        mail: t,
        rcpt: t,
        data_init: t,
        data_xfer: t,
        data_done: t,
        quit: t,
        tls: Default::default(),
        cache: None,
        sasl: None,
    }
}

async fn send(addr: SocketAddr, rcpts: &[&str], content: &[u8], smtputf8: bool) -> Vec<Outcome> {
    let rcpts: Vec<Recipient> = rcpts.iter().map(|r| Recipient::new(*r)).collect();
    let msg = Message {
        queue_id: "TESTID".into(),
        sender: "alice@example.org",
        rcpts: rcpts.iter().collect(),
        content,
        body: None,
        smtputf8,
        ret: None,
        envid: None,
    };
    deliver_to(&settings(), &[("127.0.0.1".into(), addr)], &msg).await
}

const MSG: &[u8] = b"Subject: hi\n\nbody\n";

#[tokio::test]
async fn delivers_without_pipelining() {
    let (addr, server) = serve(Script::default()).await;
    let out = send(addr, &["bob@remote.test", "carol@remote.test"], MSG, false).await;
    let seen = server.await.expect("server");
    assert_eq!(out.len(), 2);
    for o in &out {
        assert!(o.is_sent(), "{o:?}");
        assert_eq!(o.status.to_string(), "2.0.0");
        assert_eq!(o.text, "250 2.0.0 Ok: queued as 4XyZ");
        assert_eq!(o.relay, format!("127.0.0.1[127.0.0.1]:{}", addr.port()));
    }
    assert_eq!(
        seen,
        format!(
            "EHLO client.test\r\nMAIL FROM:<alice@example.org> SIZE={}\r\n\
             RCPT TO:<bob@remote.test>\r\nRCPT TO:<carol@remote.test>\r\nDATA\r\n\
             Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            MSG.len()
        )
    );
}

#[tokio::test]
async fn one_recipient_rejected_with_pipelining() {
    let (addr, server) = serve(Script {
        ehlo: "250-fake.test\r\n250 PIPELINING\r\n",
        rcpt: vec![(
            "nobody@",
            "550 5.1.1 <nobody@remote.test>: Recipient address rejected\r\n",
        )],
        ..Script::default()
    })
    .await;
    let out = send(addr, &["nobody@remote.test", "bob@remote.test"], MSG, false).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_bounced());
    assert_eq!(out[0].status.to_string(), "5.1.1");
    assert_eq!(
        out[0].diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected")
    );
    assert!(
        out[0]
            .text
            .starts_with("host 127.0.0.1[127.0.0.1] said: 550 5.1.1"),
        "{}",
        out[0].text
    );
    assert!(out[0].text.ends_with("(in reply to RCPT TO command)"));
    assert!(out[1].is_sent(), "{:?}", out[1]);
    assert!(
        seen.contains("RCPT TO:<bob@remote.test>\r\nDATA\r\n"),
        "{seen}"
    );
}

#[tokio::test]
async fn greeting_421_and_refused_connections_defer() {
    let (addr, server) = serve(Script {
        greeting: "421 4.3.2 Service not available\r\n",
        ..Script::default()
    })
    .await;
    let out = send(addr, &["bob@remote.test"], MSG, false).await;
    let _ = server.await;
    assert!(out[0].is_deferred());
    assert_eq!(out[0].status.to_string(), "4.3.2");
    assert!(
        out[0].text.contains("refused to talk to me: 421 4.3.2"),
        "{}",
        out[0].text
    );

    // A port nobody listens on: bound, then dropped.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let out = send(closed, &["bob@remote.test"], MSG, false).await;
    assert!(out[0].is_deferred());
    assert_eq!(out[0].status.to_string(), "4.4.1");
    assert_eq!(
        out[0].text,
        format!(
            "connect to 127.0.0.1[127.0.0.1]:{}: Connection refused",
            closed.port()
        )
    );
}

#[tokio::test]
async fn data_rejection_bounces_every_accepted_recipient() {
    let (addr, server) = serve(Script {
        data: "554 5.7.1 Message refused\r\n",
        rcpt: vec![("later@", "451 4.3.0 Try again\r\n")],
        ..Script::default()
    })
    .await;
    let out = send(
        addr,
        &["a@remote.test", "later@remote.test", "b@remote.test"],
        MSG,
        false,
    )
    .await;
    let _ = server.await;
    assert!(out[0].is_bounced() && out[2].is_bounced());
    assert_eq!(out[0].status.to_string(), "5.7.1");
    assert_eq!(
        out[0].diagnostic.as_deref(),
        Some("smtp; 554 5.7.1 Message refused")
    );
    assert!(out[0].text.ends_with("(in reply to DATA command)"));
    assert!(out[1].is_deferred(), "the RCPT result stands: {:?}", out[1]);
}

#[tokio::test]
async fn content_is_dot_stuffed_with_crlf_on_the_wire() {
    let (addr, server) = serve(Script::default()).await;
    let content = b"Subject: dots\n\n.hidden\n..\n.\nbare\rcr\nlast";
    let out = send(addr, &["bob@remote.test"], content, false).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent());
    assert!(
        seen.contains("DATA\r\nSubject: dots\r\n\r\n..hidden\r\n...\r\n..\r\nbare\r\ncr\r\nlast\r\n.\r\nQUIT\r\n"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn oversized_message_is_refused_before_mail_from() {
    let (addr, server) = serve(Script {
        ehlo: "250-fake.test\r\n250 SIZE 10\r\n",
        ..Script::default()
    })
    .await;
    let out = send(addr, &["bob@remote.test"], MSG, false).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_bounced());
    assert_eq!(out[0].status.to_string(), "5.3.4");
    assert!(
        out[0].text.contains("exceeds size limit 10"),
        "{}",
        out[0].text
    );
    assert!(!seen.contains("MAIL FROM"), "{seen}");
}

#[tokio::test]
async fn smtputf8_needed_but_not_offered_bounces() {
    let (addr, server) = serve(Script::default()).await;
    let out = send(addr, &["bob@remote.test"], MSG, true).await;
    let seen = server.await.expect("server");
    assert_eq!(out[0].status.to_string(), "5.6.7");
    assert!(!seen.contains("MAIL FROM"), "{seen}");
}

#[tokio::test]
async fn helo_fallback_when_ehlo_is_refused() {
    let (addr, server) = serve(Script {
        ehlo: "502 5.5.2 Error: command not recognized\r\n",
        ..Script::default()
    })
    .await;
    let out = send(addr, &["bob@remote.test"], MSG, false).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent(), "{:?}", out[0]);
    assert!(
        seen.contains("HELO client.test\r\nMAIL FROM:<alice@example.org>\r\n"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_server_with_our_own_name_is_a_mail_loop() {
    let (addr, server) = serve(Script {
        ehlo: "250-CLIENT.test\r\n250 PIPELINING\r\n",
        ..Script::default()
    })
    .await;
    let out = send(addr, &["bob@remote.test"], MSG, false).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_bounced(), "{:?}", out[0]);
    assert_eq!(out[0].status.to_string(), "5.4.6");
    assert_eq!(
        out[0].text,
        "mail for 127.0.0.1[127.0.0.1] loops back to myself"
    );
    assert_eq!(seen, "EHLO client.test\r\nQUIT\r\n", "no MAIL FROM");
}

/// A server that greets, answers EHLO with `ehlo`, then acts out `rest` on the socket.
async fn misbehaving<F, Fut>(ehlo: &'static str, rest: F) -> SocketAddr
where
    F: FnOnce(BufReader<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let mut io = BufReader::new(sock);
        let _ = io.get_mut().write_all(b"220 fake.test ESMTP\r\n").await;
        let mut line = String::new();
        let _ = io.read_line(&mut line).await;
        let _ = io.get_mut().write_all(ehlo.as_bytes()).await;
        rest(io).await;
    });
    addr
}

async fn send_with(settings: &Settings, addr: SocketAddr) -> Outcome {
    let rcpt = Recipient::new("bob@remote.test");
    let msg = Message {
        queue_id: "TESTID".into(),
        sender: "alice@example.org",
        rcpts: vec![&rcpt],
        content: MSG,
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
    };
    let mut out = deliver_to(settings, &[("127.0.0.1".into(), addr)], &msg).await;
    out.remove(0)
}

#[tokio::test]
async fn a_stalled_server_times_out_and_defers() {
    let addr = misbehaving("250 fake.test\r\n", |mut io| async move {
        let mut line = String::new();
        let _ = io.read_line(&mut line).await; // MAIL FROM, never answered
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let mut s = settings();
    s.mail = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let o = send_with(&s, addr).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(o.is_deferred(), "{o:?}");
    assert_eq!(o.status.to_string(), "4.4.2");
    assert_eq!(
        o.text,
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending MAIL FROM"
    );
}

#[tokio::test]
async fn a_reset_in_the_middle_of_data_defers() {
    let addr = misbehaving("250 fake.test\r\n", |mut io| async move {
        for reply in ["250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n", "354 go ahead\r\n"] {
            let mut line = String::new();
            let _ = io.read_line(&mut line).await;
            let _ = io.get_mut().write_all(reply.as_bytes()).await;
        }
        let mut line = String::new();
        let _ = io.read_line(&mut line).await; // the first content line, then hang up
        drop(io);
    })
    .await;
    let o = send_with(&settings(), addr).await;
    assert!(o.is_deferred(), "{o:?}");
    assert_eq!(o.status.to_string(), "4.4.2");
    assert!(
        o.text
            .starts_with("lost connection with 127.0.0.1[127.0.0.1] while sending"),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn a_garbage_reply_defers_with_a_precise_diagnostic() {
    let addr = misbehaving("hello, I am not an SMTP server\r\n", |io| async move {
        drop(io);
    })
    .await;
    let o = send_with(&settings(), addr).await;
    assert!(o.is_deferred(), "{o:?}");
    assert_eq!(o.status.to_string(), "4.5.0");
    assert_eq!(
        o.text,
        "host 127.0.0.1[127.0.0.1] sent a malformed reply while performing the EHLO handshake"
    );
}
