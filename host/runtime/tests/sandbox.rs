//! The sandbox promises of ARCHITECTURE §3, checked against real components: a looping plugin
//! is stopped within its timeout, a hoarding one at its memory cap, an ungranted import answers
//! `denied`, and a plugin that traps on every call leaves the host healthy.

mod guest;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use postern_runtime::{
    Annotations, Binding, ClientInfo, Decision, LogLevel, PluginError, PolicyRequest, Protocol,
    Runtime, ServerInfo, Stage,
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
    let ann = Annotations::new();
    let v = p.check(&request("b@y.example"), &ann).await.unwrap();
    match &v.decision {
        Decision::Reject(r) => {
            assert_eq!(r.code, 550);
            assert_eq!(r.enhanced, Some(postern_runtime::EnhancedCode(5, 7, 1)));
            assert_eq!(r.text, vec!["no mail for you".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let v = p.check(&request("c@y.example"), &ann).await.unwrap();
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
        .check(&request("a@x"), &Annotations::new())
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
        ok.check(&request("a@x"), &Annotations::new())
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
        .check(&request("a@x"), &Annotations::new())
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
        .check(&request("a@x"), &Annotations::new())
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
    let v = p.check(&request("a@x"), &Annotations::new()).await.unwrap();
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
    let txn = Annotations::new();
    let v = spf.check(&request("a@x"), &txn).await.unwrap();
    assert_eq!(reject_text(&v.decision), "none");
    let v = dmarc.check(&request("a@x"), &txn).await.unwrap();
    assert_eq!(reject_text(&v.decision), "spf:pass");
    // A new transaction starts empty.
    let v = dmarc
        .check(&request("a@x"), &Annotations::new())
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
    let p = rt
        .load_policy(binding("trap", sandbox_wasm(), &[("mode", "trap")]))
        .unwrap();
    let ann = Annotations::new();
    // Warm up the pool and allocator before measuring.
    for _ in 0..500 {
        assert!(matches!(
            p.check(&request("a@x"), &ann).await,
            Err(PluginError::Temporary(_))
        ));
    }
    let before = rss_kib();
    let t = Instant::now();
    for _ in 0..10_000 {
        let r = p.check(&request("a@x"), &ann).await;
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
        ok.check(&request("a@x"), &ann).await.unwrap().decision,
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
        .load_policy(binding("reject-listed", wasm, &[("reject", "a@x")]))
        .unwrap();
    let compile = t.elapsed();
    let ann = Annotations::new();
    let req = request("b@x");
    for _ in 0..200 {
        p.check(&req, &ann).await.unwrap();
    }
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        p.check(&req, &ann).await.unwrap();
    }
    eprintln!(
        "example plugin: compile+prepare {compile:?}; fresh store + instantiate + call {:?}",
        t.elapsed() / n
    );
}
