//! Wasm policy plugins end to end: `check_policy_service wasm:NAME` bound in
//! `$config_directory/plugins.toml`, in the real daemon, with the example plugin from
//! `examples/policy-rust/` and the misbehaving one from `host/runtime/tests/plugins/sandbox/`.
//! Building them needs the wasm32-wasip2 target (`rustup target add wasm32-wasip2`).

#[path = "../../host/runtime/tests/guest/mod.rs"]
mod guest;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postern_tests::Server;

fn example_plugin() -> PathBuf {
    guest::build("examples/policy-rust", "policy_rust.wasm")
}

fn sandbox_plugin() -> PathBuf {
    guest::build("host/runtime/tests/plugins/sandbox", "sandbox.wasm")
}

/// Starts the daemon with `restrictions`, then writes `plugins` as plugins.toml and restarts
/// it (Server::start creates the configuration directory).
fn server_with_plugins(restrictions: &str, plugins: &str) -> Server {
    let mut server = Server::start(restrictions);
    write_plugins(server.dir.path(), plugins);
    server.stop();
    server.spawn();
    server
}

fn write_plugins(dir: &Path, text: &str) {
    std::fs::write(dir.join("plugins.toml"), text).expect("write plugins.toml");
}

#[test]
fn the_example_plugin_rejects_listed_recipients_with_its_text() {
    let wasm = example_plugin();
    let server = server_with_plugins(
        "smtpd_recipient_restrictions = check_policy_service wasm:reject-listed, \
         permit_mynetworks, reject_unauth_destination",
        &format!(
            "[[plugin]]\nname = \"reject-listed\"\ncomponent = \"{}\"\n\
             [plugin.config]\nreject = \"blocked@example.test, other@example.test\"\n\
             text = \"This mailbox does not accept mail\"\n",
            wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to(
        "Blocked@example.test",
        "550 5.7.1 <Blocked@example.test>: Recipient address rejected: \
         This mailbox does not accept mail",
    );
    s.rcpt_to("someone@example.test", "250 2.1.5");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log(
        "reject recipient <Blocked@example.test>",
        Duration::from_secs(5),
    );
    assert!(log.contains("reject-listed: reject recipient"), "{log}");
    let check = server.cli(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("plugin reject-listed: "), "{out}");
}

#[test]
fn a_looping_plugin_gets_its_on_error_result_within_the_timeout() {
    let wasm = sandbox_plugin();
    let server = server_with_plugins(
        "smtpd_recipient_restrictions = check_policy_service wasm:loop-defer, \
         check_policy_service wasm:loop-dunno, permit_mynetworks, reject_unauth_destination",
        &format!(
            "[[plugin]]\nname = \"loop-defer\"\ncomponent = \"{w}\"\non_error = \"defer\"\n\
             [plugin.config]\nmode = \"loop\"\n\n\
             [[plugin]]\nname = \"loop-dunno\"\ncomponent = \"{w}\"\n\
             [plugin.config]\nmode = \"loop\"\n",
            w = wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    let start = Instant::now();
    s.rcpt_to("someone@example.test", "451 4.3.0");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("timed out", Duration::from_secs(5));
    assert!(log.contains("plugin loop-defer"), "{log}");
}

#[test]
fn a_failing_dunno_plugin_lets_the_list_continue() {
    let wasm = sandbox_plugin();
    let server = server_with_plugins(
        "smtpd_recipient_restrictions = check_policy_service wasm:trap, \
         permit_mynetworks, reject_unauth_destination",
        &format!(
            "[[plugin]]\nname = \"trap\"\ncomponent = \"{}\"\non_error = \"dunno\"\n\
             [plugin.config]\nmode = \"trap\"\n",
            wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("someone@example.test", "250 2.1.5");
    s.cmd("QUIT", "221");
}

#[test]
fn check_reports_plugin_problems_with_file_and_line() {
    let server = Server::start(
        "smtpd_recipient_restrictions = check_policy_service wasm:missing, \
         permit_mynetworks, reject_unauth_destination",
    );
    write_plugins(
        server.dir.path(),
        "[[plugin]]\nname = \"broken\"\ncomponent = \"nowhere.wasm\"\n\n\
         [[plugin]]\nname = \"odd\"\ncomponent = \"x.wasm\"\non_error = \"maybe\"\n",
    );
    let out = server.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "plugins.toml:5: [[plugin]] \"odd\": on_error must be \"dunno\" or \"defer\""
        ),
        "{text}"
    );
    write_plugins(
        server.dir.path(),
        "[[plugin]]\nname = \"broken\"\ncomponent = \"nowhere.wasm\"\n",
    );
    let out = server.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("plugins.toml:1: plugin broken: cannot load component"),
        "{text}"
    );
    assert!(
        text.contains("check_policy_service wasm:missing: no [[plugin]] named \"missing\""),
        "{text}"
    );
}

#[test]
fn annotations_last_for_one_transaction() {
    // The sandbox plugin in `annotate` mode rejects with what an earlier call recorded (or
    // "none"), then records spf=pass itself.
    let wasm = sandbox_plugin();
    let server = server_with_plugins(
        "smtpd_recipient_restrictions = check_policy_service wasm:spf, permit",
        &format!(
            "[[plugin]]\nname = \"spf\"\ncomponent = \"{}\"\n[plugin.config]\nmode = \"annotate\"\n",
            wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    let first = s.rcpt_to("a@example.test", "550 5.7.1");
    assert!(first.ends_with("none"), "{first}");
    let second = s.rcpt_to("b@example.test", "550 5.7.1");
    assert!(
        second.ends_with("spf:pass"),
        "same transaction sees it: {second}"
    );
    s.cmd("RSET", "250");
    s.mail_from("sender@example.net", "250 2.1.0");
    let fresh = s.rcpt_to("c@example.test", "550 5.7.1");
    assert!(
        fresh.ends_with("none"),
        "a new transaction starts empty: {fresh}"
    );
    s.cmd("QUIT", "221");
}

fn roles_plugin() -> PathBuf {
    guest::build("host/runtime/tests/plugins/roles", "roles.wasm")
}

/// One component as a before-queue filter (`smtpd_milters`), a table (`transport_maps =
/// wasm:…`) and a transport, in the real daemon.
#[test]
fn filter_table_and_transport_plugins_work_in_the_daemon() {
    let wasm = roles_plugin();
    let server = server_with_plugins(
        "smtpd_milters = wasm:tagger, wasm:spam\ntransport_maps = wasm:store/fixed",
        &format!(
            "[[plugin]]\nname = \"tagger\"\ncomponent = \"{w}\"\nroles = [\"filter\"]\n\
             [plugin.config]\nfilter = \"tag\"\ncaps = \"add-headers\"\n\n\
             [[plugin]]\nname = \"spam\"\ncomponent = \"{w}\"\nroles = [\"filter\"]\n\
             [plugin.config]\nfilter = \"reject-spam\"\n\n\
             [[plugin]]\nname = \"store\"\ncomponent = \"{w}\"\nroles = [\"lookup\", \"transport\"]\n\
             grants = [\"kv:mailbox\"]\n\
             [plugin.config]\nentries = \"kv@example.test=wasm:store:[store.example]:24\"\n",
            w = wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("carol@localhost", "250 2.1.5");
    s.data(&postern_tests::message("plain"), "250 2.0.0");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("carol@localhost", "250 2.1.5");
    s.data(
        "Subject: offer\r\n\r\nBuy SPAM now.\r\n",
        "550 5.7.1 spam detected",
    );
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("kv@example.test", "250 2.1.5");
    s.data(&postern_tests::message("stored"), "250 2.0.0");
    s.cmd("QUIT", "221");

    let mail = server.wait_for_mail("carol", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "the spam message must not be delivered");
    assert!(
        mail[0].contains("X-Scanned: size=") && mail[0].contains("subject=plain"),
        "{}",
        mail[0]
    );
    let log = server.wait_for_log("stored ", Duration::from_secs(10));
    assert!(log.contains("milter-reject: END-OF-MESSAGE"), "{log}");
    assert!(
        log.contains("to=<kv@example.test>, relay=wasm:store")
            && log.contains("status=sent (stored ")
            && log.contains("via [store.example]:24)"),
        "{log}"
    );
    let check = server.cli(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("plugin store: ") && out.contains("roles: lookup, transport"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let status = server.cli(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("plugins:") && out.contains("tagger"), "{out}");
}

/// `content_filter = wasm:NAME`: the filter runs after queueing and re-injects what it accepts
/// as a new queue file; a reject bounces.
#[test]
fn an_after_queue_filter_reinjects_or_bounces() {
    let wasm = roles_plugin();
    let server = server_with_plugins(
        "content_filter = wasm:scan",
        &format!(
            "[[plugin]]\nname = \"scan\"\ncomponent = \"{w}\"\nroles = [\"filter\"]\n\
             [plugin.config]\nfilter = \"tag\"\ncaps = \"add-headers\"\n",
            w = wasm.display()
        ),
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("dave@localhost", "250 2.1.5");
    s.data(&postern_tests::message("after"), "250 2.0.0");
    s.cmd("QUIT", "221");
    let mail = server.wait_for_mail("dave", 1, Duration::from_secs(10));
    assert!(
        mail[0].contains("X-Scanned: size=") && mail[0].contains("subject=after"),
        "{}",
        mail[0]
    );
    let log = server.wait_for_log("relay=local", Duration::from_secs(10));
    assert!(
        log.contains("relay=wasm:scan") && log.contains("filtered by wasm:scan, queued as"),
        "{log}"
    );

    // The same filter rejecting: the recipient bounces with the filter's reply.
    write_plugins(
        server.dir.path(),
        &format!(
            "[[plugin]]\nname = \"scan\"\ncomponent = \"{w}\"\nroles = [\"filter\"]\n\
             [plugin.config]\nfilter = \"reject-spam\"\n",
            w = wasm.display()
        ),
    );
    let reload = server.cli(&["reload"]);
    assert!(reload.status.success());
    std::thread::sleep(Duration::from_millis(500));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("dave@localhost", "250 2.1.5");
    s.data("Subject: offer\r\n\r\nBuy SPAM now.\r\n", "250 2.0.0");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("status=bounced (spam detected)", Duration::from_secs(10));
    assert!(log.contains("relay=wasm:scan"), "{log}");
    assert_eq!(
        server
            .wait_for_mail("dave", 1, Duration::from_secs(1))
            .len(),
        1
    );
}

/// `postern reload` twenty times while clients keep sending: every transaction completes —
/// sessions keep the plugins of the epoch they started in, new sessions get the new ones.
#[test]
fn reloading_plugins_under_load_fails_no_transaction() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let wasm = example_plugin();
    let plugins = |i: usize| {
        format!(
            "[[plugin]]\nname = \"reject-listed\"\ncomponent = \"{}\"\n\
             [plugin.config]\nreject = \"blocked@example.test\"\ntext = \"epoch {i}\"\n",
            wasm.display()
        )
    };
    let server = server_with_plugins(
        "smtpd_recipient_restrictions = check_policy_service wasm:reject-listed, \
         permit_mynetworks, reject_unauth_destination",
        &plugins(0),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let one = |s: &mut postern_tests::TestSession, n: usize| {
        s.mail_from("sender@example.net", "250 2.1.0");
        s.rcpt_to("blocked@example.test", "550 5.7.1");
        s.rcpt_to("erin@localhost", "250 2.1.5");
        s.data(&postern_tests::message(&format!("load {n}")), "250 2.0.0");
    };
    let mut threads = Vec::new();
    for t in 0..3 {
        let (stop, sent, port) = (stop.clone(), sent.clone(), server.port);
        threads.push(std::thread::spawn(move || {
            // Thread 0 keeps one session across every reload; the others reconnect each time.
            let mut long = (t == 0).then(|| {
                let mut s = postern_tests::TestSession::connect(port);
                s.ehlo("long.example.org");
                s
            });
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                match long.as_mut() {
                    Some(s) => one(s, n),
                    None => {
                        let mut s = postern_tests::TestSession::connect(port);
                        s.ehlo("client.example.org");
                        one(&mut s, n);
                        s.cmd("QUIT", "221");
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            if let Some(mut s) = long {
                s.cmd("QUIT", "221");
            }
        }));
    }
    for i in 1..=20 {
        write_plugins(server.dir.path(), &plugins(i));
        let out = server.cli(&["reload"]);
        assert!(out.status.success(), "reload {i} failed");
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a transaction failed during the reloads");
    }
    let total = sent.load(Ordering::Relaxed);
    eprintln!("{total} transactions during 20 reloads");
    assert!(total >= 20, "only {total} transactions during 20 reloads");
    let log = server.wait_for_log("reload --", Duration::from_secs(5));
    assert!(!log.contains("warning: plugin"), "{log}");
    // Every accepted message is delivered.
    let mail = server.wait_for_mail("erin", total, Duration::from_secs(30));
    if mail.len() != total {
        let log = server.log();
        let odd: Vec<&str> = log
            .lines()
            .filter(|l| {
                !l.contains("status=sent")
                    && (l.contains("status=") || l.contains("warning") || l.contains("error"))
            })
            .take(20)
            .collect();
        panic!(
            "{} of {total} delivered; queue: incoming {:?} active {:?} deferred {:?}; log:\n{}",
            mail.len(),
            server.queue_files("incoming"),
            server.queue_files("active"),
            server.queue_files("deferred"),
            odd.join("\n")
        );
    }
    // New sessions see the last epoch.
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    let r = s.rcpt_to("blocked@example.test", "550 5.7.1");
    assert!(r.contains("epoch 20"), "{r}");
}
