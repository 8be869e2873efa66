//! The sandbox promises of ARCHITECTURE §3, checked against real components: a looping plugin
//! is stopped within its timeout, a hoarding one at its memory cap, an ungranted import answers
//! `denied`, and a plugin that traps on every call leaves the host healthy.

mod guest;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use postern_runtime::{
    Binding, ClientInfo, Decision, LogLevel, PluginError, PolicyRequest, Protocol, Runtime,
    ServerInfo, Stage, Transaction,
};

fn sandbox_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("host/runtime/tests/plugins/sandbox", "sandbox.wasm"))
        .clone()
}

fn example_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("examples/policy-rust", "policy_rust.wasm"))
        .clone()
}

fn binding(name: &str, wasm: PathBuf, config: &[(&str, &str)]) -> Binding {
    let mut b = Binding::new(name, wasm);
    for (k, v) in config {
        b.config.insert(k.to_string(), v.to_string());
    }
    b
}

fn request(rcpt: &str) -> PolicyRequest {
    PolicyRequest {
        stage: Stage::Rcpt,
        instance: "1a2b.3c4d".into(),
        client: ClientInfo {
            address: "192.0.2.1".parse().unwrap(),
            port: 40000,
            reverse_name: None,
            verified_name: None,
            helo: Some("client.example".into()),
            protocol: Protocol::Esmtp,
            tls: None,
            sasl_method: None,
            sasl_username: None,
        },
        server: ServerInfo {
            address: "127.0.0.1".parse().unwrap(),
            port: 25,
            hostname: "mx.example".into(),
            service: "smtpd".into(),
        },
        queue_id: None,
        sender: Some("from@example.org".into()),
        recipient: Some(rcpt.into()),
        recipient_count: 0,
        size: 0,
        argument: None,
        context: None,
    }
}

fn reject_text(d: &Decision) -> String {
    match d {
        Decision::Reject(r) => r.text.join(" "),
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[tokio::test]
async fn example_plugin_rejects_listed_recipients_and_logs() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let rt = Runtime::with_log(Arc::new(move |name: &str, level: LogLevel, msg: &str| {
        sink.lock().unwrap().push(format!("{name} {level:?} {msg}"));
    }))
    .unwrap();
    let b = binding(
        "reject-listed",
        example_wasm(),
        &[
            ("reject", "a@x.example, B@y.example"),
            ("text", "no mail for you"),
        ],
    );
    let p = rt.load_policy(b).unwrap();
    let ann = Transaction::new();
    let v = p.check(&request("b@y.example"), Some(&ann)).await.unwrap();
    match &v.decision {
        Decision::Reject(r) => {
            assert_eq!(r.code, 550);
            assert_eq!(r.enhanced, Some(postern_runtime::EnhancedCode(5, 7, 1)));
            assert_eq!(r.text, vec!["no mail for you".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let v = p.check(&request("c@y.example"), Some(&ann)).await.unwrap();
    assert_eq!(v.decision, Decision::Dunno);
    assert_eq!(
        *lines.lock().unwrap(),
        vec!["reject-listed Info reject recipient <b@y.example>: listed".to_string()]
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_within_its_timeout() {
    let rt = Runtime::new().unwrap();
    let p = rt
        .load_policy(binding("loop", sandbox_wasm(), &[("mode", "loop")]))
        .unwrap();
    let t = Instant::now();
    let err = p
        .check(&request("a@x"), Some(&Transaction::new()))
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(&err, PluginError::Temporary(m) if m.contains("timed out")),
        "{err:?}"
    );
    // 50 ms default; one epoch tick plus scheduling slack on a loaded 2-core machine.
    assert!(took < Duration::from_millis(250), "took {took:?}");
    // The runtime is still usable afterwards.
    let ok = rt.load_policy(binding("ok", sandbox_wasm(), &[])).unwrap();
    assert_eq!(
        ok.check(&request("a@x"), Some(&Transaction::new()))
            .await
            .unwrap()
            .decision,
        Decision::Dunno
    );
}

#[tokio::test]
async fn fuel_exhaustion_is_a_temporary_error() {
    let rt = Runtime::new().unwrap();
    let mut b = binding("fuel", sandbox_wasm(), &[("mode", "loop")]);
    b.fuel = Some(1_000_000);
    b.timeout = Duration::from_secs(10);
    let err = rt
        .load_policy(b)
        .unwrap()
        .check(&request("a@x"), Some(&Transaction::new()))
        .await;
    assert!(
        matches!(&err, Err(PluginError::Temporary(m)) if m.contains("fuel")),
        "{err:?}"
    );
}

#[tokio::test]
async fn allocation_beyond_the_memory_cap_is_a_temporary_error() {
    let rt = Runtime::new().unwrap();
    let mut b = binding("alloc", sandbox_wasm(), &[("mode", "alloc")]);
    b.memory = 8 << 20;
    b.timeout = Duration::from_secs(10);
    let err = rt
        .load_policy(b)
        .unwrap()
        .check(&request("a@x"), Some(&Transaction::new()))
        .await;
    assert!(
        matches!(&err, Err(PluginError::Temporary(m)) if m.contains("memory") && !m.contains('\n')),
        "{err:?}"
    );
}

#[tokio::test]
async fn dns_without_the_grant_is_denied() {
    let rt = Runtime::new().unwrap();
    let p = rt
        .load_policy(binding("dns", sandbox_wasm(), &[("mode", "dns")]))
        .unwrap();
    let v = p
        .check(&request("a@x"), Some(&Transaction::new()))
        .await
        .unwrap();
    assert_eq!(reject_text(&v.decision), "denied");
}

#[tokio::test]
async fn annotations_are_shared_within_a_transaction() {
    let rt = Runtime::new().unwrap();
    let spf = rt
        .load_policy(binding("spf", sandbox_wasm(), &[("mode", "annotate")]))
        .unwrap();
    let dmarc = rt
        .load_policy(binding("dmarc", sandbox_wasm(), &[("mode", "annotate")]))
        .unwrap();
    let txn = Transaction::new();
    let v = spf.check(&request("a@x"), Some(&txn)).await.unwrap();
    assert_eq!(reject_text(&v.decision), "none");
    let v = dmarc.check(&request("a@x"), Some(&txn)).await.unwrap();
    assert_eq!(reject_text(&v.decision), "spf:pass");
    // A new transaction starts empty.
    let v = dmarc
        .check(&request("a@x"), Some(&Transaction::new()))
        .await
        .unwrap();
    assert_eq!(reject_text(&v.decision), "none");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_trapping_calls_leave_the_host_healthy() {
    let rt = Runtime::new().unwrap();
    // Every call must really trap: no back-off (tested on its own below).
    let mut b = binding("trap", sandbox_wasm(), &[("mode", "trap")]);
    b.backoff_after = 0;
    // Health, not speed, is under test: a loaded machine must not turn traps into timeouts.
    b.timeout = Duration::from_secs(5);
    let p = rt.load_policy(b).unwrap();
    let ann = Transaction::new();
    // Warm up the pool and allocator before measuring.
    for _ in 0..500 {
        assert!(matches!(
            p.check(&request("a@x"), Some(&ann)).await,
            Err(PluginError::Temporary(_))
        ));
    }
    let before = rss_kib();
    let t = Instant::now();
    for _ in 0..10_000 {
        let r = p.check(&request("a@x"), Some(&ann)).await;
        assert!(
            matches!(r, Err(PluginError::Temporary(ref m)) if m.contains("trap")),
            "{r:?}"
        );
    }
    let per_call = t.elapsed() / 10_000;
    let after = rss_kib();
    eprintln!("trapping call: {per_call:?} each; RSS {before} KiB → {after} KiB");
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let ok = rt.load_policy(binding("ok", sandbox_wasm(), &[])).unwrap();
    assert_eq!(
        ok.check(&request("a@x"), Some(&ann))
            .await
            .unwrap()
            .decision,
        Decision::Dunno
    );
}

/// Not a pass/fail test: prints compile and per-call costs (`cargo test -- --nocapture cost`).
#[tokio::test]
async fn cost() {
    let rt = Runtime::new().unwrap();
    let wasm = example_wasm();
    let t = Instant::now();
    let p = rt
        .load_policy(binding("reject-listed", wasm.clone(), &[("reject", "a@x")]))
        .unwrap();
    let compile = t.elapsed();
    let req = request("b@x");
    let n = 2000;
    let txn = Transaction::new();
    for _ in 0..200 {
        p.check(&req, Some(&txn)).await.unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        p.check(&req, Some(&txn)).await.unwrap();
    }
    let warm = t.elapsed() / n;
    let mut b = binding("fresh", wasm, &[("reject", "a@x")]);
    b.instances = postern_runtime::InstanceMode::Call;
    let fresh = rt.load_policy(b).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        fresh.check(&req, None).await.unwrap();
    }
    eprintln!(
        "example plugin: compile+prepare {compile:?}; warm call {warm:?}; fresh store + instantiate + call {:?}",
        t.elapsed() / n
    );
}

fn reply_of(r: Result<postern_runtime::Verdict, PluginError>) -> String {
    reject_text(&r.expect("a verdict").decision)
}

#[tokio::test]
async fn a_plugin_sleeping_in_a_wasi_call_is_cut_off_by_the_wall_clock() {
    let rt = Runtime::new().unwrap();
    let p = rt
        .load_policy(binding("sleep", sandbox_wasm(), &[("mode", "sleep")]))
        .unwrap();
    let t = Instant::now();
    let r = p.check(&request("a@x"), None).await;
    let took = t.elapsed();
    assert!(
        matches!(r, Err(PluginError::Temporary(ref m)) if m.contains("timed out")),
        "{r:?}"
    );
    assert!(took < Duration::from_millis(150), "took {took:?}");
}

#[tokio::test]
async fn files_and_sockets_are_out_of_reach() {
    let rt = Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("postern-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "do not read").unwrap();
    let p = rt
        .load_policy(binding(
            "file",
            sandbox_wasm(),
            &[("mode", "file"), ("path", secret.to_str().unwrap())],
        ))
        .unwrap();
    let text = reply_of(p.check(&request("a@x"), None).await);
    assert!(text.starts_with("file error"), "{text}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let p = rt
        .load_policy(binding(
            "socket",
            sandbox_wasm(),
            &[("mode", "socket"), ("target", &target)],
        ))
        .unwrap();
    let text = reply_of(p.check(&request("a@x"), None).await);
    assert!(text.starts_with("socket error"), "{text}");
    assert!(
        listener.accept().is_err(),
        "the plugin reached a host socket"
    );

    // With a grant for exactly that address the same plugin connects; other ports stay shut.
    let mut b = binding(
        "socket-granted",
        sandbox_wasm(),
        &[("mode", "socket"), ("target", &target)],
    );
    b.grants.connect = vec![target.parse().unwrap()];
    let p = rt.load_policy(b).unwrap();
    let text = reply_of(p.check(&request("a@x"), None).await);
    assert_eq!(text, "connected");
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut b = binding(
        "socket-other",
        sandbox_wasm(),
        &[
            ("mode", "socket"),
            ("target", &other.local_addr().unwrap().to_string()),
        ],
    );
    b.grants.connect = vec![target.parse().unwrap()];
    let p = rt.load_policy(b).unwrap();
    let text = reply_of(p.check(&request("a@x"), None).await);
    assert!(text.starts_with("socket error"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dns_answers_come_from_the_host_resolver_within_a_budget() {
    use postern_runtime::services::StaticDns;
    let rt = Runtime::with_options(postern_runtime::Options {
        dns: Arc::new(StaticDns::new().a("host.example", "192.0.2.7".parse().unwrap())),
        ..Default::default()
    })
    .unwrap();
    let mut b = binding("budget", sandbox_wasm(), &[("mode", "dns-budget")]);
    b.grants.dns = true;
    b.dns_queries = 7;
    let p = rt.load_policy(b).unwrap();
    assert_eq!(reply_of(p.check(&request("a@x"), None).await), "7 queries");
    // The budget is per call.
    assert_eq!(reply_of(p.check(&request("a@x"), None).await), "7 queries");
    // Without the grant: denied at once.
    let p = rt
        .load_policy(binding(
            "nogrant",
            sandbox_wasm(),
            &[("mode", "dns-budget")],
        ))
        .unwrap();
    assert_eq!(reply_of(p.check(&request("a@x"), None).await), "0 queries");
}

#[tokio::test]
async fn kv_buckets_are_shared_granted_by_name_and_atomic() {
    let rt = Runtime::new().unwrap();
    let mut b = binding(
        "kv",
        sandbox_wasm(),
        &[("mode", "kv"), ("bucket", "counters")],
    );
    b.grants.kv = vec!["counters".into()];
    let p = rt.load_policy(b).unwrap();
    assert_eq!(
        reply_of(p.check(&request("a@x"), None).await),
        "hits=1 first=Ok(true)"
    );
    assert_eq!(
        reply_of(p.check(&request("a@x"), None).await),
        "hits=2 first=Ok(false)"
    );
    let p = rt
        .load_policy(binding(
            "kv2",
            sandbox_wasm(),
            &[("mode", "kv"), ("bucket", "counters")],
        ))
        .unwrap();
    assert_eq!(
        reply_of(p.check(&request("a@x"), None).await),
        "open: KvError::Denied"
    );
}

const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPeseQmSsEQWGq0SQiYAxctC312o2YU1zg10+zGgAS5o
-----END PRIVATE KEY-----
";

#[tokio::test]
async fn signing_keys_stay_in_the_host_and_sign_for_granted_plugins() {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    use ed25519_dalek::Verifier;
    use postern_runtime::services::{KeyStore, SigningKey};
    use sha2::Digest;

    let rt = Runtime::new().unwrap();
    let mut keys = KeyStore::default();
    keys.insert(
        "example",
        SigningKey::from_pem(ED25519_PEM, "s2026", "example.com").unwrap(),
    );
    let mut b = binding(
        "dkim",
        sandbox_wasm(),
        &[("mode", "sign"), ("key", "example")],
    );
    b.grants.signing = vec!["example".into()];
    let p = rt.load(b, &keys).unwrap().policy.unwrap();
    let text = reply_of(p.check(&request("a@x"), None).await);
    let parts: Vec<&str> = text.split(' ').collect();
    assert_eq!(
        parts[..3],
        ["Algorithm::Ed25519Sha256", "s2026", "example.com"],
        "{text}"
    );
    let sig: Vec<u8> = (0..parts[3].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&parts[3][i..i + 2], 16).unwrap())
        .collect();
    let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(ED25519_PEM).unwrap();
    let digest = sha2::Sha256::digest(b"message to sign");
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    sk.verifying_key().verify(&digest, &sig).unwrap();

    // The same key, not granted: denied.
    let b = binding(
        "nokey",
        sandbox_wasm(),
        &[("mode", "sign"), ("key", "example")],
    );
    let p = rt.load(b, &keys).unwrap().policy.unwrap();
    assert_eq!(
        reply_of(p.check(&request("a@x"), None).await),
        "open: SigningError::Denied"
    );
}

#[tokio::test]
async fn a_crash_looping_plugin_is_backed_off_and_logged() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let rt = Runtime::with_log(Arc::new(move |name: &str, level: LogLevel, msg: &str| {
        sink.lock().unwrap().push(format!("{name} {level:?} {msg}"));
    }))
    .unwrap();
    let plugin = rt
        .load(
            binding("crashy", sandbox_wasm(), &[("mode", "trap")]),
            &Default::default(),
        )
        .unwrap();
    let p = plugin.policy.clone().unwrap();
    for _ in 0..20 {
        let r = p.check(&request("a@x"), None).await;
        assert!(matches!(r, Err(PluginError::Temporary(_))), "{r:?}");
    }
    let s = plugin.stats();
    assert_eq!(s.calls, 20);
    assert_eq!(s.faults, 5, "{s:?}");
    assert_eq!(s.backed_off, 15, "{s:?}");
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("crashy Warn trapped") && logged.contains("5 consecutive failures"),
        "{logged}"
    );
}

#[tokio::test]
async fn instances_live_per_transaction_or_in_a_pool() {
    let rt = Runtime::new().unwrap();
    let load = |mode: postern_runtime::InstanceMode| {
        let mut b = binding("reuse", example_wasm(), &[]);
        b.instances = mode;
        rt.load(b, &Default::default()).unwrap()
    };
    let per_txn = load(postern_runtime::InstanceMode::Transaction);
    let p = per_txn.policy.clone().unwrap();
    let t1 = Transaction::new();
    for _ in 0..3 {
        p.check(&request("a@x"), Some(&t1)).await.unwrap();
    }
    let t2 = Transaction::new();
    p.check(&request("a@x"), Some(&t2)).await.unwrap();
    p.check(&request("a@x"), None).await.unwrap();
    assert_eq!(
        per_txn.stats().instances,
        3,
        "one per transaction, one outside"
    );

    let pooled = load(postern_runtime::InstanceMode::Pooled);
    let p = pooled.policy.clone().unwrap();
    for _ in 0..5 {
        p.check(&request("a@x"), Some(&Transaction::new()))
            .await
            .unwrap();
    }
    assert_eq!(pooled.stats().instances, 1);

    let fresh = load(postern_runtime::InstanceMode::Call);
    let p = fresh.policy.clone().unwrap();
    for _ in 0..3 {
        p.check(&request("a@x"), Some(&t1)).await.unwrap();
    }
    assert_eq!(fresh.stats().instances, 3);
}
