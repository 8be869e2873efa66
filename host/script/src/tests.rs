use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postern-script-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write script");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scripts() -> (Scripts, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let logger: Logger = Arc::new(move |path: &str, msg: &str| {
        sink.lock().unwrap().push(format!("{path}: {msg}"));
    });
    (Scripts::new(Limits::default(), logger), lines)
}

fn attrs(rcpt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("protocol_state", "RCPT".to_string()),
        ("recipient", rcpt.to_string()),
    ]
}

#[test]
fn policy_returns_the_action_and_logs() {
    let dir = TempDir::new("policy");
    let path = dir.write(
        "p.rhai",
        r#"
const BLOCKED = ["bad@example.test"];
fn check(req) {
    if req.recipient in BLOCKED {
        log(`reject ${req.recipient}`);
        return "550 5.7.1 not here";
    }
    ()
}
"#,
    );
    let (scripts, lines) = scripts();
    let s = scripts.load(&path).unwrap();
    assert_eq!(
        s.check(&attrs("bad@example.test")).unwrap(),
        "550 5.7.1 not here"
    );
    assert_eq!(s.check(&attrs("ok@example.test")).unwrap(), "DUNNO");
    let logged = lines.lock().unwrap().clone();
    assert_eq!(
        logged,
        vec![format!("{}: reject bad@example.test", path.display())]
    );
}

#[test]
fn an_infinite_loop_stops_at_its_deadline() {
    let dir = TempDir::new("loop");
    let path = dir.write("loop.rhai", "fn check(req) { loop { } }\n");
    let logger: Logger = Arc::new(|_: &str, _: &str| {});
    let limits = Limits {
        max_operations: u64::MAX / 2,
        ..Limits::default()
    };
    let scripts = Scripts::new(limits, logger);
    let s = scripts.load(&path).unwrap();
    let start = Instant::now();
    let err = s.check(&attrs("x@y")).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, ScriptError::Limit { .. }), "{err}");
    assert!(err.to_string().contains("ran longer than 50 ms"), "{err}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // With the default operation limit the loop ends on operations first (or on time on a
    // slow machine): either way it is a limit, not a hang.
    let (scripts, _) = self::scripts();
    let err = scripts
        .load(&path)
        .unwrap()
        .check(&attrs("x@y"))
        .unwrap_err();
    assert!(matches!(err, ScriptError::Limit { .. }), "{err}");
}

#[test]
fn a_huge_string_hits_the_size_limit() {
    let dir = TempDir::new("big");
    let path = dir.write(
        "big.rhai",
        "fn check(req) { let s = \"x\"; loop { s += s; } }\n",
    );
    let (scripts, _) = scripts();
    let err = scripts
        .load(&path)
        .unwrap()
        .check(&attrs("x@y"))
        .unwrap_err();
    assert!(
        matches!(&err, ScriptError::Limit { message, .. } if message.contains("too large")),
        "{err}"
    );
}

#[test]
fn deep_recursion_is_a_limit() {
    let dir = TempDir::new("deep");
    let path = dir.write(
        "deep.rhai",
        "fn f(n) { f(n + 1) }\nfn check(req) { f(0) }\n",
    );
    let (scripts, _) = scripts();
    let err = scripts
        .load(&path)
        .unwrap()
        .check(&attrs("x@y"))
        .unwrap_err();
    assert!(matches!(err, ScriptError::Limit { .. }), "{err}");
}

#[test]
fn compile_errors_have_line_and_column() {
    let dir = TempDir::new("syntax");
    let path = dir.write("bad.rhai", "fn check(req) {\n    let x = ;\n}\n");
    let (scripts, _) = scripts();
    let err = scripts.load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2:13: Unexpected ';'", path.display())
    );
    let table =
        postern_maps::open_table(&format!("rhai:{}", path.display()), &ctx(Arc::new(scripts)))
            .unwrap_err();
    assert_eq!(
        table.to_string(),
        format!("rhai:{}: 2:13: Unexpected ';'", path.display())
    );
}

#[test]
fn files_and_modules_are_not_reachable() {
    let dir = TempDir::new("sandbox");
    let other = dir.write("other.rhai", "export const X = 1;\n");
    let import = dir.write(
        "import.rhai",
        &format!(
            "import \"{}\" as o;\nfn check(req) {{ o::X }}\n",
            other.display()
        ),
    );
    let (scripts, _) = scripts();
    assert!(scripts.load(&import).is_err());
    let eval = dir.write("eval.rhai", "fn check(req) { eval(\"1\") }\n");
    assert!(scripts.load(&eval).is_err());
}

fn ctx(scripts: Arc<Scripts>) -> postern_maps::OpenCtx {
    let mut ctx = postern_maps::OpenCtx::new();
    ctx.register("rhai", opener(scripts));
    ctx
}

#[test]
fn lookup_tables_find_and_miss() {
    let dir = TempDir::new("lookup");
    let path = dir.write(
        "l.rhai",
        r#"
const ROUTES = #{ "example.org": "smtp:[mx.example.org]" };
fn lookup(key) {
    if key.ends_with("@spam.test") { return "REJECT no spam"; }
    ROUTES[key]
}
"#,
    );
    let (scripts, _) = scripts();
    let t = postern_maps::open_table(&format!("rhai:{}", path.display()), &ctx(Arc::new(scripts)))
        .unwrap();
    assert_eq!(t.kind(), postern_maps::Kind::Pattern);
    assert_eq!(
        t.lookup("a@spam.test").unwrap().as_deref(),
        Some("REJECT no spam")
    );
    assert_eq!(
        t.lookup("example.org").unwrap().as_deref(),
        Some("smtp:[mx.example.org]")
    );
    assert_eq!(t.lookup("other.org").unwrap(), None);
    assert!(!t.is_stale());
    std::thread::sleep(Duration::from_millis(10));
    dir.write("l.rhai", "fn lookup(key) { throw \"broken\" }\n");
    assert!(t.is_stale());
}

#[test]
fn script_errors_are_temporary_lookup_failures() {
    let dir = TempDir::new("lookuperr");
    let path = dir.write("l.rhai", "fn lookup(key) { throw \"database down\" }\n");
    let (scripts, _) = scripts();
    let t = postern_maps::open_table(&format!("rhai:{}", path.display()), &ctx(Arc::new(scripts)))
        .unwrap();
    let err = t.lookup("x").unwrap_err();
    assert!(
        matches!(&err, postern_maps::LookupError::Temporary(m) if m.contains("database down")),
        "{err}"
    );
    let policy_only = dir.write("p.rhai", "fn check(req) { \"DUNNO\" }\n");
    let (scripts, _) = self::scripts();
    let err = postern_maps::open_table(
        &format!("rhai:{}", policy_only.display()),
        &ctx(Arc::new(scripts)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no fn lookup(key)"), "{err}");
}

#[test]
fn the_cache_recompiles_a_changed_file() {
    let dir = TempDir::new("cache");
    let path = dir.write("c.rhai", "fn check(req) { \"DUNNO\" }\n");
    let (scripts, _) = scripts();
    let a = scripts.load(&path).unwrap();
    let b = scripts.load(&path).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    dir.write("c.rhai", "fn check(req) { \"REJECT changed\" }\n");
    let c = scripts.load(&path).unwrap();
    assert_eq!(c.check(&attrs("x@y")).unwrap(), "REJECT changed");
}

/// Not a benchmark with assertions: prints the cost of one warm evaluation so that it can be
/// compared with TOOLCHAIN.md (`cargo test -p postern-script --release -- --nocapture cost`).
#[test]
fn cost_of_one_evaluation() {
    let dir = TempDir::new("cost");
    let path = dir.write(
        "route.rhai",
        "fn lookup(key) { if key.ends_with(\"@example.org\") { \"smtp:[mx.example.org]\" } else { () } }\n",
    );
    let policy = dir.write(
        "policy.rhai",
        "const BLOCKED = [\"a@example.org\", \"b@example.org\"];\n\
         fn check(req) { if req.recipient in BLOCKED { \"550 5.7.1 no\" } else { \"DUNNO\" } }\n",
    );
    let (scripts, _) = scripts();
    let route = scripts.load(&path).unwrap();
    let policy = scripts.load(&policy).unwrap();
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(route.lookup("joe@example.org").unwrap());
    }
    let per_lookup = start.elapsed() / n;
    let req = vec![
        ("protocol_state", "RCPT".to_string()),
        ("sender", "s@example.net".to_string()),
        ("recipient", "c@example.org".to_string()),
        ("client_address", "192.0.2.1".to_string()),
        ("helo_name", "client.example.net".to_string()),
    ];
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(policy.check(&req).unwrap());
    }
    let per_check = start.elapsed() / n;
    let plain = dir.write(
        "plain.rhai",
        "fn check(req) { if req.recipient == \"a@example.org\" { \"550 5.7.1 no\" } else { \"DUNNO\" } }\n",
    );
    let plain = scripts.load(&plain).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(plain.check(&req).unwrap());
    }
    let per_plain = start.elapsed() / n;
    eprintln!(
        "rhai routing lookup: {per_lookup:?} per call; policy check (5 attributes, const list): \
         {per_check:?}; without the const list: {per_plain:?}"
    );
}

#[test]
fn filter_scripts_see_headers_body_and_recipients() {
    let dir = TempDir::new("filter");
    let path = dir.write(
        "filter.rhai",
        r#"
fn filter(msg) {
    for h in msg.headers {
        if h[0] == "Subject" && h[1].contains("SPAM") { return "REJECT spam subject"; }
    }
    if msg.body.contains("viagra") { return "HOLD body looks bad"; }
    if msg.recipients.len() > 1 { return "PREPEND X-Recipients: " + msg.recipients.len(); }
    ()
}
"#,
    );
    let (scripts, _) = scripts();
    let s = scripts.load(&path).unwrap();
    let attrs = vec![("sender", "a@b".to_string())];
    let h = |subject: &str| vec![("Subject".to_string(), subject.to_string())];
    let one = vec!["x@y".to_string()];
    let two = vec!["x@y".to_string(), "z@y".to_string()];
    assert_eq!(
        s.filter(&attrs, &one, &h("buy SPAM"), String::new())
            .unwrap(),
        "REJECT spam subject"
    );
    assert_eq!(
        s.filter(&attrs, &one, &h("hi"), "cheap viagra".into())
            .unwrap(),
        "HOLD body looks bad"
    );
    assert_eq!(
        s.filter(&attrs, &two, &h("hi"), String::new()).unwrap(),
        "PREPEND X-Recipients: 2"
    );
    assert_eq!(
        s.filter(&attrs, &one, &h("hi"), String::new()).unwrap(),
        "DUNNO"
    );
    let no_fn = dir.write("nofilter.rhai", "fn check(req) { () }");
    let s = scripts.load(&no_fn).unwrap();
    assert!(s.filter(&attrs, &one, &[], String::new()).is_err());
}
