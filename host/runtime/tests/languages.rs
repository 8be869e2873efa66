//! The example policy ("reject the recipients listed in the config with 550 5.7.1 <text>")
//! written in Python (examples/policy-python) and JavaScript (examples/policy-js), each built
//! with its `build.sh` and run through the real runtime: same behaviour as the Rust example.
//!
//! A language whose toolchain is not installed is skipped with a message, except under
//! `CI=true`, where that is a failure (`.ci/run` installs the tools). Timing lines (compile,
//! per-call) are printed: `cargo test --release -p postern-runtime --test languages -- --nocapture`.
//! In a debug build Cranelift is unoptimised and compiling these 12–18 MB components takes
//! minutes rather than seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_runtime::{
    Binding, ClientInfo, Decision, EnhancedCode, LogLevel, PolicyRequest, Protocol, Runtime,
    ServerInfo, Stage, Transaction,
};

/// The repository root (this crate lives in host/runtime).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/plugins/<lang>` next to this test binary's target directory (as in guest/mod.rs).
fn out_dir(lang: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/plugins/<lang>
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("plugins")
        .join(lang)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// True when every tool answers `--version`. Otherwise: under CI a failure, elsewhere a
/// "skipping" line and false.
fn toolchain_present(lang: &str, tools: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        !in_ci(),
        "{lang} plugin test: {what} not installed (CI=true, so this is a failure; install: {install})"
    );
    eprintln!(
        "skipping: {what} not installed (needed by the {lang} plugin test; install: {install})"
    );
    false
}

/// Runs `examples/<example>/build.sh <target/plugins/<lang>>` and returns the component path.
fn build(lang: &str, example: &str, artifact: &str) -> PathBuf {
    let out = out_dir(lang);
    let script = repo().join("examples").join(example).join("build.sh");
    let t = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = out.join(artifact);
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| {
            panic!(
                "{} did not produce {}: {e}",
                script.display(),
                wasm.display()
            )
        })
        .len();
    eprintln!(
        "{lang}: build.sh took {:?}; {} is {:.1} MB",
        t.elapsed(),
        wasm.display(),
        size as f64 / 1e6
    );
    wasm
}

fn request(rcpt: Option<&str>) -> PolicyRequest {
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
        recipient: rcpt.map(Into::into),
        recipient_count: 0,
        size: 0,
        argument: None,
        context: None,
    }
}

/// Loads `wasm` as binding "reject-listed" and checks the example's behaviour and log line.
async fn check_example(lang: &str, wasm: PathBuf) {
    let lines: Arc<Mutex<Vec<(String, LogLevel, String)>>> = Arc::default();
    let sink = lines.clone();
    let rt = Runtime::with_log(Arc::new(move |name: &str, level: LogLevel, msg: &str| {
        sink.lock()
            .unwrap()
            .push((name.to_string(), level, msg.to_string()));
    }))
    .unwrap();
    let mut b = Binding::new("reject-listed", wasm);
    b.config
        .insert("reject".into(), "a@example.com, b@example.com".into());
    b.config.insert("text".into(), "custom text".into());
    // This checks behaviour, not speed: the first call instantiates an 18 MB Python component,
    // which on a 2-core CI machine busy compiling the JS example can exceed the 50 ms default.
    b.timeout = Duration::from_secs(10);

    let t = Instant::now();
    let p = rt
        .load_policy(b)
        .unwrap_or_else(|e| panic!("{lang}: load_policy: {e:#}"));
    eprintln!("{lang}: compile + prepare (load_policy) {:?}", t.elapsed());

    let txn = Transaction::new();
    // Listed, in any case; the plugin compares case-insensitively.
    for rcpt in ["a@example.com", "B@Example.COM"] {
        let v = p
            .check(&request(Some(rcpt)), Some(&txn))
            .await
            .unwrap_or_else(|e| panic!("{lang}: check({rcpt}): {e:?}"));
        match &v.decision {
            Decision::Reject(r) => {
                assert_eq!(r.code, 550, "{lang}: {rcpt}");
                assert_eq!(r.enhanced, Some(EnhancedCode(5, 7, 1)), "{lang}: {rcpt}");
                assert_eq!(r.text, vec!["custom text".to_string()], "{lang}: {rcpt}");
            }
            other => panic!("{lang}: {rcpt}: expected a reject, got {other:?}"),
        }
        assert!(v.actions.is_empty(), "{lang}: {rcpt}: {:?}", v.actions);
        let logged = lines.lock().unwrap().clone();
        assert!(
            logged
                .iter()
                .any(|(name, level, msg)| name == "reject-listed"
                    && *level == LogLevel::Info
                    && msg.contains(rcpt)),
            "{lang}: no Info log line naming {rcpt}: {logged:?}"
        );
    }
    // Unlisted, and a request without a recipient: DUNNO, nothing logged.
    let before = lines.lock().unwrap().len();
    for rcpt in [Some("c@example.com"), Some("a@example.com.evil"), None] {
        let v = p
            .check(&request(rcpt), Some(&txn))
            .await
            .unwrap_or_else(|e| panic!("{lang}: check({rcpt:?}): {e:?}"));
        assert_eq!(v.decision, Decision::Dunno, "{lang}: {rcpt:?}");
        assert!(v.actions.is_empty(), "{lang}: {rcpt:?}: {:?}", v.actions);
    }
    assert_eq!(
        lines.lock().unwrap().len(),
        before,
        "{lang}: DUNNO decisions are not logged: {:?}",
        lines.lock().unwrap()
    );

    // Cost per call as the MTA pays it, with the binding's default instance policy.
    let (listed, unlisted) = (
        request(Some("a@example.com")),
        request(Some("c@example.com")),
    );
    for _ in 0..20 {
        p.check(&unlisted, Some(&txn)).await.unwrap();
    }
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        p.check(&unlisted, Some(&txn)).await.unwrap();
    }
    let dunno = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        p.check(&listed, Some(&txn)).await.unwrap();
    }
    let reject = t.elapsed() / n;
    eprintln!("{lang}: per call (default instance policy): DUNNO {dunno:?}, REJECT+log {reject:?}");
}

#[tokio::test]
async fn python_example_policy() {
    if !toolchain_present(
        "Python",
        &["componentize-py"],
        "pip3 install componentize-py==0.25.1",
    ) {
        return;
    }
    let wasm = build("python", "policy-python", "policy_python.wasm");
    check_example("python", wasm).await;
}

#[tokio::test]
async fn javascript_example_policy() {
    if !toolchain_present("JavaScript", &["node", "npm"], "Node.js 18+ with npm") {
        return;
    }
    let wasm = build("js", "policy-js", "policy_js.wasm");
    check_example("js", wasm).await;
}
