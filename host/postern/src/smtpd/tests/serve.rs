//! The listener: connection limits, configuration reload and shutdown, over loopback TCP.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;
use crate::qmgr::QmgrHandle;
use crate::smtpd::serve;

struct Server {
    addr: std::net::SocketAddr,
    config: watch::Sender<Arc<postern_config::Config>>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(spool: &TempSpool, overrides: &[(&str, &str)]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (config, config_rx) = watch::channel(Arc::new(config(overrides)));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        "smtp".into(),
        config_rx,
        (**spool).clone(),
        QmgrHandle::detached(),
        shutdown_rx,
    ));
    Server {
        addr,
        config,
        shutdown,
        task,
    }
}

async fn greeted(addr: std::net::SocketAddr) -> Dialog {
    let mut d = Dialog::connect(addr).await;
    d.greeting = d.reply().await;
    d
}

#[tokio::test]
async fn per_client_connection_limit() {
    let spool = TempSpool::new("serve-limit");
    // 127.0.0.1 must not be in mynetworks, which is exempt from the limit.
    let cfg = [
        ("smtpd_client_connection_count_limit", "1"),
        ("mynetworks", "192.0.2.0/24"),
    ];
    let srv = start(&spool, &cfg).await;
    let mut first = greeted(srv.addr).await;
    assert!(
        first.greeting.starts_with("220 mx.example.test"),
        "{}",
        first.greeting
    );
    let mut second = greeted(srv.addr).await;
    assert_eq!(
        second.greeting,
        "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1\r\n"
    );
    assert!(second.closed().await);
    first.cmd("QUIT", "221").await;
    assert!(first.closed().await);
    // The slot is free again once the first session has ended.
    let mut third = Dialog::connect(srv.addr).await;
    let mut greeting = third.reply().await;
    for _ in 0..50 {
        if greeting.starts_with("220") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        third = Dialog::connect(srv.addr).await;
        greeting = third.reply().await;
    }
    assert!(greeting.starts_with("220"), "{greeting}");

    // Trusted networks are exempt.
    let _ = srv.config.send(Arc::new(config(&[(
        "smtpd_client_connection_count_limit",
        "1",
    )])));
    let mut fourth = greeted(srv.addr).await;
    assert!(fourth.greeting.starts_with("220"), "{}", fourth.greeting);
    fourth.cmd("NOOP", "250").await;
    let _ = srv.shutdown.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), srv.task).await;
}

#[tokio::test]
async fn process_limit_makes_new_clients_wait() {
    let spool = TempSpool::new("serve-procs");
    let srv = start(&spool, &[("default_process_limit", "1")]).await;
    let mut first = greeted(srv.addr).await;
    assert!(first.greeting.starts_with("220"));
    let mut second = Dialog::connect(srv.addr).await;
    assert_eq!(second.reply_within(Duration::from_millis(300)).await, None);
    first.cmd("QUIT", "221").await;
    let greeting = second.reply().await;
    assert!(greeting.starts_with("220 mx.example.test"), "{greeting}");
    let _ = srv.shutdown.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), srv.task).await;
}

#[tokio::test]
async fn reload_applies_to_new_sessions_only_and_shutdown_says_421() {
    let spool = TempSpool::new("serve-reload");
    let srv = start(&spool, &[("message_size_limit", "1000")]).await;
    let mut old = greeted(srv.addr).await;
    let new_cfg = config(&[
        ("message_size_limit", "2000"),
        ("smtpd_banner", "$myhostname reloaded"),
    ]);
    let _ = srv.config.send(Arc::new(new_cfg));
    let caps = old.cmd("EHLO x", "250-").await;
    assert!(caps.contains("SIZE 1000\r\n"), "{caps}");
    let mut new = greeted(srv.addr).await;
    assert_eq!(new.greeting, "220 mx.example.test reloaded\r\n");
    let caps = new.cmd("EHLO x", "250-").await;
    assert!(caps.contains("SIZE 2000\r\n"), "{caps}");

    // A session in the middle of DATA finishes its message; idle ones are told 421.
    old.cmd("MAIL FROM:<a@example.org>", "250").await;
    old.cmd("RCPT TO:<u@localhost>", "250").await;
    old.cmd("DATA", "354").await;
    let _ = srv.shutdown.send(true);
    assert_eq!(
        new.reply().await,
        "421 4.3.2 mx.example.test Service shutting down\r\n"
    );
    assert!(new.closed().await);
    old.send(b"Subject: last\r\n\r\nx\r\n.\r\n").await;
    assert!(old.reply().await.starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(
        old.reply().await,
        "421 4.3.2 mx.example.test Service shutting down\r\n"
    );
    let done = tokio::time::timeout(Duration::from_secs(10), srv.task).await;
    assert!(done.is_ok(), "serve() did not return after shutdown");
    assert_eq!(spool.incoming().len(), 1);
    assert!(tokio::net::TcpStream::connect(srv.addr).await.is_err());
}
