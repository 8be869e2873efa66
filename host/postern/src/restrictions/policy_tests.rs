//! Unit tests of the policy client against in-process fake policy servers (TCP and unix).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

use super::*;

/// What the fake server does with each request it reads.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answer every request with these bytes.
    Reply(&'static str),
    /// Answer the first request on each connection, then close it.
    ReplyOnceThenClose(&'static str),
    /// Read the request and never answer.
    Hang,
    /// Read the request and close the connection.
    Close,
}

#[derive(Clone, Default)]
struct Seen {
    accepts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(stream: S, how: Behaviour, seen: Seen) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request = String::new();
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            request.push_str(&line);
            if line == "\n" {
                break;
            }
        }
        seen.requests.lock().expect("lock").push(request);
        match how {
            Behaviour::Reply(r) => {
                if stream.write_all(r.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::ReplyOnceThenClose(r) => {
                let _ = stream.write_all(r.as_bytes()).await;
                return;
            }
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::Close => return,
        }
    }
}

/// A fake policy server on 127.0.0.1; returns its `inet:` name.
async fn fake_inet(how: Behaviour) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Seen::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.accepts.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_conn(stream, how, s.clone()));
        }
    });
    (format!("inet:{addr}"), seen)
}

fn temp_dir(tag: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "postern-policy-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn cfg() -> Config {
    let mut cfg = postern_config::load_embedded().expect("config").main;
    cfg.smtpd_policy_service_timeout = Duration::from_secs(5);
    cfg.smtpd_policy_service_retry_delay = Duration::from_millis(10);
    cfg
}

fn rcpt_attrs() -> Vec<(&'static str, String)> {
    vec![
        ("request", "smtpd_access_policy".into()),
        ("protocol_state", "RCPT".into()),
        ("protocol_name", "ESMTP".into()),
        ("client_address", "192.0.2.1".into()),
        ("sender", "a@example.org".into()),
        ("recipient", "b@example.test".into()),
    ]
}

const DEFAULT: &str = "451 4.3.5 Server configuration problem";

#[tokio::test]
async fn request_is_name_value_lines_then_empty_line() {
    let (name, seen) = fake_inet(Behaviour::Reply("action=DUNNO\n\n")).await;
    let mut cfg = cfg();
    cfg.smtpd_policy_service_policy_context = "ctx".into();
    let mut attrs = rcpt_attrs();
    attrs.push(("helo_name", "evil\nrecipient=forged".into()));
    attrs.push(("policy_context", "from caller".into()));
    let action = query(&PolicyClients::new(), &name, &attrs, &cfg).await;
    assert_eq!(action, Ok("DUNNO".to_string()));
    assert_eq!(
        seen.requests(),
        vec![
            "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
             client_address=192.0.2.1\nsender=a@example.org\nrecipient=b@example.test\n\
             helo_name=evil recipient=forged\npolicy_context=ctx\n\n"
                .to_string()
        ]
    );
}

#[tokio::test]
async fn action_text_is_returned_and_other_attributes_ignored() {
    let (name, _) = fake_inet(Behaviour::Reply(
        "foo=bar\naction=DEFER_IF_PERMIT Greylisted, see http://x/\naction=OK\n\n",
    ))
    .await;
    let action = query(&PolicyClients::new(), &name, &rcpt_attrs(), &cfg()).await;
    assert_eq!(
        action,
        Ok("DEFER_IF_PERMIT Greylisted, see http://x/".to_string())
    );
}

#[tokio::test]
async fn connections_are_reused_up_to_the_request_limit() {
    let (name, seen) = fake_inet(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new();
    let mut cfg = cfg();
    for _ in 0..3 {
        assert_eq!(
            query(&clients, &name, &rcpt_attrs(), &cfg).await,
            Ok("DUNNO".into())
        );
    }
    assert_eq!(seen.accepts(), 1, "one connection for three requests");

    cfg.smtpd_policy_service_request_limit = 2;
    let (name, seen) = fake_inet(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new();
    for _ in 0..5 {
        assert_eq!(
            query(&clients, &name, &rcpt_attrs(), &cfg).await,
            Ok("DUNNO".into())
        );
    }
    assert_eq!(seen.accepts(), 3, "2 + 2 + 1 requests");
    assert_eq!(seen.requests().len(), 5);
}

#[tokio::test]
async fn idle_and_ttl_limits_close_connections() {
    let (name, seen) = fake_inet(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new();
    let spec = format!("{{ {name}, max_idle=1s }}");
    query(&clients, &spec, &rcpt_attrs(), &cfg())
        .await
        .expect("q");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    query(&clients, &spec, &rcpt_attrs(), &cfg())
        .await
        .expect("q");
    assert_eq!(seen.accepts(), 2, "idle connection expired");

    let mut cfg = cfg();
    cfg.smtpd_policy_service_max_ttl = Duration::ZERO;
    query(&clients, &name, &rcpt_attrs(), &cfg)
        .await
        .expect("q");
    query(&clients, &name, &rcpt_attrs(), &cfg)
        .await
        .expect("q");
    assert_eq!(seen.accepts(), 4, "max_ttl 0: never reused");
}

#[tokio::test]
async fn a_hanging_server_times_out_to_the_default_action() {
    let (name, seen) = fake_inet(Behaviour::Hang).await;
    let mut cfg = cfg();
    cfg.smtpd_policy_service_timeout = Duration::from_millis(300);
    cfg.smtpd_policy_service_try_limit = 2;
    let start = Instant::now();
    let action = query(&PolicyClients::new(), &name, &rcpt_attrs(), &cfg).await;
    assert_eq!(action, Ok(DEFAULT.to_string()));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "two attempts of 300 ms, took {took:?}"
    );
    assert_eq!(seen.accepts(), 2, "a timed-out connection is not reused");

    // The per-service override wins over smtpd_policy_service_default_action.
    let spec = format!("{{ {name}, timeout=1s, try_limit=1, default_action=DUNNO }}");
    let start = Instant::now();
    let action = query(&PolicyClients::new(), &spec, &rcpt_attrs(), &cfg).await;
    assert_eq!(action, Ok("DUNNO".to_string()));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_server_that_closes_gives_the_default_action() {
    let (name, seen) = fake_inet(Behaviour::Close).await;
    let action = query(&PolicyClients::new(), &name, &rcpt_attrs(), &cfg()).await;
    assert_eq!(action, Ok(DEFAULT.to_string()));
    assert_eq!(seen.accepts(), 2, "smtpd_policy_service_try_limit = 2");
}

#[tokio::test]
async fn a_refused_connection_gives_the_default_action() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let spec = format!("{{ inet:127.0.0.1:{port}, {{ default_action = 450 4.7.1 try later }} }}");
    let action = query(&PolicyClients::new(), &spec, &rcpt_attrs(), &cfg()).await;
    assert_eq!(action, Ok("450 4.7.1 try later".to_string()));
}

#[tokio::test]
async fn malformed_replies_give_the_default_action() {
    for reply in [
        "garbage\n\n",
        "foo=bar\n\n",
        "action=\n\n",
        "action=DUNNO",
        "action=DUNNO\n",
    ] {
        let (name, _) = fake_inet(Behaviour::ReplyOnceThenClose(reply)).await;
        let action = query(&PolicyClients::new(), &name, &rcpt_attrs(), &cfg()).await;
        assert_eq!(action, Ok(DEFAULT.to_string()), "reply {reply:?}");
    }
}

#[tokio::test]
async fn an_oversized_reply_is_malformed() {
    let huge: &'static str =
        Box::leak(format!("x={}\n", "y".repeat(MAX_REPLY_BYTES)).into_boxed_str());
    let (name, _) = fake_inet(Behaviour::Reply(huge)).await;
    let action = query(&PolicyClients::new(), &name, &rcpt_attrs(), &cfg()).await;
    assert_eq!(action, Ok(DEFAULT.to_string()));
}

#[tokio::test]
async fn a_server_that_closed_an_idle_connection_costs_no_attempt() {
    let (name, seen) = fake_inet(Behaviour::ReplyOnceThenClose("action=OK\n\n")).await;
    let clients = PolicyClients::new();
    let mut cfg = cfg();
    cfg.smtpd_policy_service_try_limit = 1;
    assert_eq!(
        query(&clients, &name, &rcpt_attrs(), &cfg).await,
        Ok("OK".into())
    );
    // Let the server's close arrive, so the pooled connection is stale.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        query(&clients, &name, &rcpt_attrs(), &cfg).await,
        Ok("OK".into())
    );
    assert_eq!(seen.accepts(), 2);
}

#[tokio::test]
async fn unix_sockets_work_and_relative_paths_are_under_the_queue_directory() {
    let dir = temp_dir("unix");
    std::fs::create_dir_all(dir.join("private")).expect("mkdir");
    let listener = UnixListener::bind(dir.join("private/policy")).expect("bind");
    let seen = Seen::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.accepts.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_conn(
                stream,
                Behaviour::Reply("action=REJECT no\n\n"),
                s.clone(),
            ));
        }
    });
    let mut cfg = cfg();
    cfg.queue_directory = dir.clone();
    let clients = PolicyClients::new();
    let absolute = format!("unix:{}", dir.join("private/policy").display());
    for spec in [
        absolute.as_str(),
        "unix:private/policy",
        "unix:private/policy",
    ] {
        assert_eq!(
            query(&clients, spec, &rcpt_attrs(), &cfg).await,
            Ok("REJECT no".to_string())
        );
    }
    assert_eq!(seen.accepts(), 2, "one pooled connection per service name");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unparseable_specs_are_config_errors() {
    for spec in [
        "",
        "127.0.0.1:10023",
        "tcp:127.0.0.1:10023",
        "inet:127.0.0.1",
        "inet:127.0.0.1:postgrey",
        "inet::10023",
        "unix:",
        "{ inet:127.0.0.1:10023, frobnicate=1 }",
        "{ inet:127.0.0.1:10023, timeout=soon }",
        "{ inet:127.0.0.1:10023, try_limit }",
        "{ inet:127.0.0.1:10023",
        "{ }",
    ] {
        let r = query(&PolicyClients::new(), spec, &rcpt_attrs(), &cfg()).await;
        assert!(
            matches!(r, Err(LookupError::Config(_))),
            "{spec:?} gave {r:?}"
        );
    }
}

#[test]
fn overrides_are_parsed_postfix_style() {
    let cfg = cfg();
    let svc = Service::parse(
        "{ inet:[::1]:9998, timeout=10s max_idle=2m, request_limit=3,\
         { default_action = 451 4.3.5 later }, policy_context=submission, try_limit=4, \
         retry_delay=2, max_ttl=1h }",
        &cfg,
    )
    .expect("parse");
    assert_eq!(svc.name, "inet:[::1]:9998");
    assert_eq!(
        svc.endpoint,
        Endpoint::Inet {
            host: "::1".into(),
            port: 9998
        }
    );
    assert_eq!(svc.timeout, Duration::from_secs(10));
    assert_eq!(svc.max_idle, Duration::from_secs(120));
    assert_eq!(svc.max_ttl, Duration::from_secs(3600));
    assert_eq!(svc.retry_delay, Duration::from_secs(2));
    assert_eq!(svc.request_limit, 3);
    assert_eq!(svc.try_limit, 4);
    assert_eq!(svc.default_action, "451 4.3.5 later");
    assert_eq!(svc.policy_context, "submission");

    let plain = Service::parse("inet:127.0.0.1:10023", &cfg).expect("parse");
    assert_eq!(plain.timeout, cfg.smtpd_policy_service_timeout);
    assert_eq!(plain.default_action, DEFAULT);
    assert_eq!(plain.try_limit, 2);
}

#[test]
fn warnings_read_like_postfix() {
    let refused = Problem::from(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
    assert_eq!(refused.to_string(), "Connection refused");
    assert_eq!(Problem::Timeout.to_string(), "Connection timed out");
}
