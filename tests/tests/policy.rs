//! `check_policy_service` against a real policy server from Debian: postgrey (greylisting).
//!
//! Each test starts its own postgrey on a free loopback port with a scratch database and empty
//! whitelists (so nothing outside the test decides), and kills it on drop. Without postgrey
//! installed the tests skip, except in CI, where `.ci/run` installs it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postern::restrictions::policy::{query, PolicyClients};
use postern_tests::{free_port, message, Server, TempDir};

/// postgrey's path (it lives in /usr/sbin, often not on a user's PATH).
fn postgrey_bin() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/postgrey");
    if sbin.exists() {
        return Some(sbin);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v postgrey"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running postgrey, killed (and its database removed) on drop.
struct Postgrey {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Postgrey {
    /// Starts postgrey with `--delay=delay`; `None` (test skipped) when it is not installed
    /// outside CI.
    fn start(delay: u32) -> Option<Postgrey> {
        let Some(bin) = postgrey_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "postgrey is required in CI (.ci/run installs it)"
            );
            eprintln!("skipping: postgrey is not installed");
            return None;
        };
        let dir = TempDir::new("postgrey");
        let d = dir.path();
        for f in ["whitelist_clients", "whitelist_recipients"] {
            std::fs::write(d.join(f), "").expect("write whitelist");
        }
        std::fs::create_dir_all(d.join("db")).expect("mkdir db");
        let port = free_port();
        // postgrey (Net::Server) switches to --user/--group, by default `postgrey`, which could
        // not write our scratch database: run it as whoever runs the tests.
        let child = Command::new(bin)
            .arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", d.join("db").display()))
            .arg(format!("--pidfile={}", d.join("postgrey.pid").display()))
            .arg(format!("--delay={delay}"))
            .arg(format!("--user={}", id("-un")))
            .arg(format!("--group={}", id("-gn")))
            .arg(format!(
                "--whitelist-clients={}",
                d.join("whitelist_clients").display()
            ))
            .arg(format!(
                "--whitelist-recipients={}",
                d.join("whitelist_recipients").display()
            ))
            .arg("--auto-whitelist-clients=0")
            .arg("--hostname=mx.example.test")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgrey");
        let mut pg = Postgrey {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = pg.child.try_wait() {
                panic!("postgrey exited early with {status}");
            }
            assert!(Instant::now() < deadline, "postgrey did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(pg)
    }

    fn spec(&self) -> String {
        format!("inet:127.0.0.1:{}", self.port)
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rcpt_request(client: &str, sender: &str, rcpt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("request", "smtpd_access_policy".into()),
        ("protocol_state", "RCPT".into()),
        ("protocol_name", "ESMTP".into()),
        ("helo_name", "client.example.org".into()),
        ("queue_id", String::new()),
        ("sender", sender.into()),
        ("recipient", rcpt.into()),
        ("recipient_count", "0".into()),
        ("client_address", client.into()),
        ("client_name", "client.example.org".into()),
        ("reverse_client_name", "client.example.org".into()),
        ("instance", "1a2b.5f3c4d5e.1".into()),
    ]
}

/// Greylisting as a Postfix admin knows it: the first delivery attempt of a triplet is deferred,
/// a retry after the delay passes with postgrey's `X-Greylist:` header.
#[tokio::test(flavor = "multi_thread")]
async fn postgrey_greylists_a_new_triplet_and_passes_the_retry() {
    let Some(pg) = Postgrey::start(1) else { return };
    let cfg = postern_config::load_embedded().expect("config").main;
    let clients = PolicyClients::new();
    let attrs = rcpt_request("192.0.2.10", "alice@example.org", "bob@example.test");

    let first = query(&clients, &pg.spec(), &attrs, &cfg)
        .await
        .expect("query");
    assert!(
        first.starts_with("DEFER_IF_PERMIT Greylisted"),
        "first attempt: {first:?}"
    );
    // Another triplet on the same (reused) connection is greylisted on its own.
    let other = rcpt_request("192.0.2.10", "carol@example.org", "bob@example.test");
    let second = query(&clients, &pg.spec(), &other, &cfg)
        .await
        .expect("query");
    assert!(second.starts_with("DEFER_IF_PERMIT"), "{second:?}");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let retry = query(&clients, &pg.spec(), &attrs, &cfg)
        .await
        .expect("query");
    assert!(
        retry.starts_with("PREPEND X-Greylist: delayed") || retry == "DUNNO",
        "retry after the delay: {retry:?}"
    );
}

/// postgrey gone: Postfix's default action (`451 4.3.5 Server configuration problem`), not a
/// silent permit.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_postgrey_gives_the_default_action() {
    let Some(pg) = Postgrey::start(60) else {
        return;
    };
    let mut cfg = postern_config::load_embedded().expect("config").main;
    cfg.smtpd_policy_service_retry_delay = Duration::from_millis(10);
    let clients = PolicyClients::new();
    let spec = pg.spec();
    let attrs = rcpt_request("192.0.2.11", "alice@example.org", "bob@example.test");
    let first = query(&clients, &spec, &attrs, &cfg).await.expect("query");
    assert!(first.starts_with("DEFER_IF_PERMIT"), "{first:?}");
    drop(pg);
    let after = query(&clients, &spec, &attrs, &cfg).await.expect("query");
    assert_eq!(after, "451 4.3.5 Server configuration problem");
}

/// The whole path: smtpd asks postgrey at RCPT time; the first attempt gets 450 4.2.0, the retry
/// after the delay is accepted and delivered with the `X-Greylist:` header postgrey prepended.
#[test]
fn smtpd_greylists_with_check_policy_service() {
    let Some(pg) = Postgrey::start(1) else { return };
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_policy_service {}",
        pg.spec()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.org", "250 2.1.0");
    // Postfix's wording, as in any Postfix + postgrey maillog (smtpd_dsn_fix makes the 4.7.1
    // of DEFER_IF_PERMIT a 4.2.0 for the recipient class).
    let reply = s.rcpt_to("user@localhost", "450 4.2.0");
    assert!(
        reply.contains("<user@localhost>: Recipient address rejected: Greylisted"),
        "{reply}"
    );
    s.cmd("QUIT", "221");

    std::thread::sleep(Duration::from_millis(2500));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.data(&message("greylisted"), "250 2.0.0");
    s.cmd("QUIT", "221");
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    assert!(
        mail[0].contains("X-Greylist: delayed"),
        "postgrey's header is prepended:\n{}",
        mail[0]
    );
}

/// No policy server listening: Postfix's default action (`451 4.3.5`) for the client and
/// Postfix's warning in the log — never a silent permit.
#[test]
fn smtpd_without_its_policy_server_defers_and_warns() {
    let port = free_port();
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{port}\n\
         smtpd_policy_service_retry_delay = 0s"
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.org", "250 2.1.0");
    let reply = s.rcpt_to("user@localhost", "451 4.3.5");
    assert!(reply.contains("Server configuration problem"), "{reply}");
    let needle =
        format!("warning: problem talking to server inet:127.0.0.1:{port}: Connection refused\n");
    let log = server.wait_for_log(&needle, Duration::from_secs(5));
    assert!(log.contains(&needle), "log:\n{log}");
}
