//! The connection cache against a scripted server that counts connections: reuse, the idle
//! limit, switching it off, and a server that closes a cached connection behind our back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::client::{Message, Settings};
use super::{cache, try_nexthop};
use crate::queue::Recipient;
use crate::transport::Outcome;

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    mails: AtomicUsize,
    quits: AtomicUsize,
}

/// A server for any number of sessions; with `close_after_message` it hangs up after each
/// final reply, as a server with a short idle timeout would.
async fn serve(close_after_message: bool) -> (SocketAddr, Arc<Counts>) {
    serve_with(close_after_message, false).await
}

/// With `idle_421`, the second MAIL FROM on a connection gets `421 4.4.2 Idle timeout` and the
/// connection is closed, as servers do with sessions that sat idle too long.
async fn serve_with(close_after_message: bool, idle_421: bool) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut io = BufReader::new(sock);
                let mut mails_here = 0;
                let _ = io.get_mut().write_all(b"220 fake.test ESMTP\r\n").await;
                loop {
                    let mut line = String::new();
                    if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = match line.get(..4).unwrap_or("") {
                        "EHLO" => b"250-fake.test\r\n250 PIPELINING\r\n",
                        "MAIL" => {
                            mails_here += 1;
                            if idle_421 && mails_here == 2 {
                                let _ = io.get_mut().write_all(b"421 4.4.2 Idle timeout\r\n").await;
                                return;
                            }
                            c.mails.fetch_add(1, Ordering::SeqCst);
                            b"250 2.1.0 Ok\r\n"
                        }
                        "RCPT" => b"250 2.1.5 Ok\r\n",
                        "DATA" => {
                            let _ = io.get_mut().write_all(b"354 go ahead\r\n").await;
                            loop {
                                let mut l = String::new();
                                if io.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                                    break;
                                }
                            }
                            let _ = io.get_mut().write_all(b"250 2.0.0 Ok\r\n").await;
                            if close_after_message {
                                return;
                            }
                            continue;
                        }
                        "QUIT" => {
                            c.quits.fetch_add(1, Ordering::SeqCst);
                            let _ = io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => b"502 5.5.2 Error\r\n",
                    };
                    if io.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, counts)
}

fn config(extra: &[(&str, &str)]) -> Arc<postern_config::Config> {
    let mut over: Vec<(String, String)> = vec![("smtp_tls_security_level".into(), "none".into())];
    over.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Arc::new(postern_config::load_with(None, &over).expect("config").main)
}

async fn send(cfg: &Arc<postern_config::Config>, nexthop: &str) -> Vec<Outcome> {
    let rcpt = Recipient::new("bob@example.net");
    let msg = Message {
        queue_id: "CACHETEST".into(),
        sender: "alice@example.org",
        rcpts: vec![&rcpt],
        content: b"Subject: hi\r\n\r\nbody\r\n",
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
    };
    let settings = Settings::from_config(cfg);
    match try_nexthop(cfg, &settings, nexthop, &msg).await {
        Ok(o) => o,
        Err(o) => vec![o],
    }
}

fn key(cfg: &postern_config::Config, nexthop: &str) -> String {
    let helo = Settings::from_config(cfg).helo_name;
    cache::Policy::for_nexthop(cfg, nexthop, &helo)
        .expect("cached")
        .key
}

#[tokio::test]
async fn a_second_delivery_reuses_the_connection() {
    let (addr, counts) = serve(false).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[]);
    for _ in 0..3 {
        let out = send(&cfg, &hop).await;
        assert!(out[0].is_sent(), "{:?}", out[0]);
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    assert_eq!(counts.mails.load(Ordering::SeqCst), 3);
    assert_eq!(counts.quits.load(Ordering::SeqCst), 0);
    assert_eq!(cache::parked(&key(&cfg, &hop)), 1);
}

#[tokio::test]
async fn without_caching_every_delivery_connects_and_quits() {
    let (addr, counts) = serve(false).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[("smtp_connection_cache_on_demand", "no")]);
    for _ in 0..2 {
        assert!(send(&cfg, &hop).await[0].is_sent());
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(counts.quits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_without_duplicates() {
    let (addr, counts) = serve(true).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[]);
    for _ in 0..2 {
        let out = send(&cfg, &hop).await;
        assert!(out[0].is_sent(), "{:?}", out[0]);
        // Let the server's close arrive before the next delivery takes the connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        counts.mails.load(Ordering::SeqCst),
        2,
        "each message sent once"
    );
}

#[tokio::test]
async fn idle_connections_expire_and_reuse_limits_apply() {
    let (addr, counts) = serve(false).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[("smtp_connection_cache_time_limit", "1s")]);
    assert!(send(&cfg, &hop).await[0].is_sent());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(cache::parked(&key(&cfg, &hop)), 0, "expired");
    assert!(send(&cfg, &hop).await[0].is_sent());
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);

    // smtp_connection_reuse_count_limit = 2: a connection carries two messages, then QUIT.
    let (addr, counts) = serve(false).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[("smtp_connection_reuse_count_limit", "2")]);
    for _ in 0..4 {
        assert!(send(&cfg, &hop).await[0].is_sent());
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(counts.quits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_421_to_mail_on_a_cached_connection_retries_on_a_new_one() {
    let (addr, counts) = serve_with(false, true).await;
    let hop = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[]);
    for _ in 0..2 {
        let out = send(&cfg, &hop).await;
        assert!(out[0].is_sent(), "{:?}", out[0]);
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(counts.mails.load(Ordering::SeqCst), 2);
}
