//! [`run_vectors`]: loads the component under a vector file's binding and fake services, runs
//! every case in file order, and reports each as passed or failed with what differed.

use anyhow::anyhow;
use postern_runtime::services::KvBackend;
use postern_runtime::{
    Action, Decision, Disposition, HeaderEdit, Plugin, PluginError, Reply, Role, TableKind,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::harness::Harness;
use crate::requests::PluginCalls;
use crate::vectors::{self, Call, Case, ErrorKind, Outcome};

/// What happened to one `[[case]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// `name = …`, or one made from the inputs (`rcpt <a@example.com>`).
    pub name: String,
    pub role: Role,
    /// Line of the case's `[[case]]` header in the vector file.
    pub line: usize,
    /// `None` when it passed; else expected and got, one per line, then the plugin's log.
    pub failure: Option<String>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The outcome of a vector file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Binding name the cases ran under.
    pub plugin: String,
    pub vectors: PathBuf,
    pub cases: Vec<CaseReport>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// Every case passed.
    pub fn success(&self) -> bool {
        self.failed() == 0
    }

    /// `test result: ok. 3 passed; 0 failed` (or `FAILED.`).
    pub fn summary(&self) -> String {
        format!(
            "test result: {}. {} passed; {} failed",
            if self.success() { "ok" } else { "FAILED" },
            self.passed(),
            self.failed()
        )
    }
}

/// One line per case (`ok     policy: NAME` / `FAILED policy: NAME (FILE:LINE)` followed by
/// the indented difference), then [`Report::summary`].
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.cases {
            let role = crate::role_name(c.role);
            match &c.failure {
                None => writeln!(f, "ok     {role}: {}", c.name)?,
                Some(why) => {
                    writeln!(
                        f,
                        "FAILED {role}: {} ({}:{})",
                        c.name,
                        self.vectors.display(),
                        c.line
                    )?;
                    for line in why.lines() {
                        writeln!(f, "           {line}")?;
                    }
                }
            }
        }
        writeln!(f, "{}", self.summary())
    }
}

/// `dir/NAME.wasm` → `dir/NAME.tests.toml`: where `postern plugin test` looks for vectors.
pub fn default_vectors_path(wasm: &Path) -> PathBuf {
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    wasm.with_file_name(format!("{stem}.tests.toml"))
}

/// Runs the vector file `vectors` against the component `wasm`, on a runtime of its own
/// (from a plain thread, so it may be called from sync code and from inside an async
/// runtime alike). `Err` means the cases could not run at all: an unreadable or invalid vector
/// file, a component that does not load. A case that fails is in the [`Report`].
pub fn run_vectors(wasm: &Path, vectors: &Path) -> anyhow::Result<Report> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow!("cannot start an async runtime: {e}"))?;
            rt.block_on(run_vectors_async(wasm, vectors))
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow!("running {} panicked", vectors.display())))
    })
}

/// [`run_vectors`] for callers already inside a tokio runtime (with the time driver).
pub async fn run_vectors_async(wasm: &Path, vectors: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(vectors)
        .map_err(|e| anyhow!("cannot read test vectors {}: {e}", vectors.display()))?;
    let parsed = vectors::parse(&text, vectors, wasm)?;
    let mut harness = Harness::new().dns(parsed.dns);
    harness.load_keys(&parsed.keys)?;
    if let Some(start) = parsed.start {
        harness.manual_clock().set(start);
    }
    for seed in &parsed.kv {
        harness
            .kv()
            .set(
                &seed.bucket,
                &seed.key,
                seed.value.as_bytes().to_vec(),
                seed.ttl,
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "{}: [[kv]] {}/{}: {e}",
                    vectors.display(),
                    seed.bucket,
                    seed.key
                )
            })?;
    }
    let mut base = parsed.binding;
    if !parsed.roles_given {
        let info = harness.inspect(wasm)?;
        if info.roles.is_empty() {
            anyhow::bail!(
                "{} exports no Postern role (postern:plugin/policy, lookup, filter or transport \
                 @0.1.0)",
                wasm.display()
            );
        }
        base.roles = info.roles;
    }
    let plugin = base.name.clone();
    // One loaded plugin per distinct config ([case.config] overlays), made when first needed.
    let mut loaded: BTreeMap<BTreeMap<String, String>, Plugin> = BTreeMap::new();
    let mut cases = Vec::new();
    for case in &parsed.cases {
        let mut config = base.config.clone();
        config.extend(case.config.clone());
        if !loaded.contains_key(&config) {
            let mut b = base.clone();
            b.config = config.clone();
            let p = harness.load_binding(b)?;
            loaded.insert(config.clone(), p);
        }
        let Some(p) = loaded.get(&config) else {
            continue;
        };
        if let Some(by) = case.advance {
            harness.advance(by);
        }
        harness.take_logs();
        let mut failure = run_case(p, case).await.err();
        if let Some(why) = failure.as_mut() {
            let logs = harness.take_logs();
            if !logs.is_empty() {
                why.push_str("\nplugin log:");
                for l in logs {
                    why.push_str(&format!("\n  {l}"));
                }
            }
        }
        cases.push(CaseReport {
            name: case.name.clone(),
            role: case.role,
            line: case.line,
            failure,
        });
    }
    Ok(Report {
        plugin,
        vectors: vectors.to_path_buf(),
        cases,
    })
}

/// `Err` = why the case failed, as `expected: …` / `got: …` lines.
async fn run_case(p: &Plugin, case: &Case) -> Result<(), String> {
    match &case.call {
        Call::Policy {
            request,
            decision,
            actions,
        } => {
            let Some(v) = settle(case, p.check(request).await)? else {
                return Ok(());
            };
            if let Some(want) = decision {
                check_outcome(want, &decision_outcome(&v.decision))?;
            }
            if let Some(t) = &case.text {
                check_text(t, &decision_text(&v.decision), &show_decision(&v.decision))?;
            }
            let got: Vec<String> = v.actions.iter().map(show_action).collect();
            for want in actions {
                if !got.contains(want) {
                    return Err(format!(
                        "expected: action {want:?}\ngot:      actions {got:?}"
                    ));
                }
            }
            Ok(())
        }
        Call::Lookup {
            table,
            keys,
            batch,
            value,
            index,
            kind,
        } => {
            if let Some(want) = kind {
                let Some(got) = settle(case, p.describe(table).await)? else {
                    return Ok(());
                };
                if got != *want {
                    return Err(format!(
                        "expected: table {table} is {}\ngot:      {}",
                        show_kind(*want),
                        show_kind(got)
                    ));
                }
            }
            if keys.is_empty() {
                return Ok(());
            }
            let answer = if *batch {
                let ks: Vec<&str> = keys.iter().map(String::as_str).collect();
                p.lookup_first(table, &ks).await
            } else {
                p.lookup(table, &keys[0]).await.map(|v| v.map(|v| (0, v)))
            };
            let Some(got) = settle(case, answer)? else {
                return Ok(());
            };
            let show = |v: &Option<(usize, String)>| match v {
                None => "not found".to_string(),
                Some((i, v)) if *batch => format!("{v:?} (key {i}: {:?})", keys[*i]),
                Some((_, v)) => format!("{v:?}"),
            };
            if let Some(want) = value {
                if got.as_ref().map(|(_, v)| v) != want.as_ref() {
                    let want = match want {
                        Some(v) => format!("{v:?}"),
                        None => "not found".to_string(),
                    };
                    return Err(format!("expected: {want}\ngot:      {}", show(&got)));
                }
            }
            if let Some(i) = index {
                if got.as_ref().map(|(n, _)| *n) != Some(*i) {
                    return Err(format!(
                        "expected: a hit on key {i}\ngot:      {}",
                        show(&got)
                    ));
                }
            }
            if let Some(t) = &case.text {
                let v = got.as_ref().map(|(_, v)| v.as_str()).unwrap_or_default();
                check_text(t, v, &show(&got))?;
            }
            Ok(())
        }
        Call::Filter {
            context,
            message,
            disposition,
            header,
            body,
        } => {
            let Some(r) = settle(case, p.scan(context, message.clone()).await)? else {
                return Ok(());
            };
            if let Some(want) = disposition {
                check_outcome(want, &disposition_outcome(&r.disposition))?;
            }
            if let Some(t) = &case.text {
                let (text, shown) = disposition_text(&r.disposition);
                check_text(t, &text, &shown)?;
            }
            if let Some((name, value)) = header {
                let added: Vec<(&str, &str)> = r
                    .header_edits
                    .iter()
                    .filter_map(|e| match e {
                        HeaderEdit::Add { name, value }
                        | HeaderEdit::Insert { name, value, .. } => {
                            Some((name.as_str(), value.as_str()))
                        }
                        HeaderEdit::Change { .. } => None,
                    })
                    .collect();
                let hit = added.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name)
                        && value.as_deref().is_none_or(|want| v.contains(want))
                });
                if !hit {
                    let want = match value {
                        Some(v) => format!("{name}: …{v}…"),
                        None => format!("{name}: …"),
                    };
                    let got: Vec<String> = added.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                    return Err(format!(
                        "expected: added header {want}\ngot:      added headers {got:?}"
                    ));
                }
            }
            if let Some(want) = body {
                let got = r.new_body.as_deref().map(String::from_utf8_lossy);
                if !got.as_deref().is_some_and(|b| b.contains(want.as_str())) {
                    return Err(format!(
                        "expected: a new body containing {want:?}\ngot:      {}",
                        match got {
                            Some(b) => format!("new body {b:?}"),
                            None => "the body unchanged".to_string(),
                        }
                    ));
                }
            }
            Ok(())
        }
        Call::Transport {
            request,
            message,
            status,
        } => {
            let Some(got) = settle(case, p.deliver(request, message.clone()).await)? else {
                return Ok(());
            };
            let shown: Vec<String> = got.iter().map(|s| s.status.to_string()).collect();
            let matches = status.len() == got.len()
                && status
                    .iter()
                    .zip(&shown)
                    .all(|(want, got)| got == want || got.split('.').next() == Some(want.as_str()));
            if !status.is_empty() && !matches {
                return Err(format!(
                    "expected: status {}\ngot:      status {}",
                    status.join(", "),
                    shown.join(", ")
                ));
            }
            if let Some(t) = &case.text {
                let reasons: Vec<&str> = got.iter().map(|s| s.reason.as_str()).collect();
                check_text(t, &reasons.join("\n"), &format!("reasons {reasons:?}"))?;
            }
            Ok(())
        }
    }
}

/// Applies `error = …`: `Ok(Some(answer))` to check further, `Ok(None)` when the expected
/// error happened, `Err` when the call went the other way.
fn settle<T>(case: &Case, answer: Result<T, PluginError>) -> Result<Option<T>, String> {
    match (case.error, answer) {
        (None, Ok(v)) => Ok(Some(v)),
        (None, Err(e)) => Err(format!("expected: an answer\ngot:      {e}")),
        (Some(kind), Ok(_)) => Err(format!(
            "expected: {} error\ngot:      an answer",
            show_error_kind(kind)
        )),
        (Some(kind), Err(e)) => {
            let fits = matches!(
                (kind, &e),
                (ErrorKind::Any, _)
                    | (ErrorKind::Temporary, PluginError::Temporary(_))
                    | (ErrorKind::Config, PluginError::Config(_))
            );
            if !fits {
                return Err(format!(
                    "expected: {} error\ngot:      {e}",
                    show_error_kind(kind)
                ));
            }
            if let Some(t) = &case.text {
                let msg = match &e {
                    PluginError::Temporary(m) | PluginError::Config(m) => m,
                };
                check_text(t, msg, &e.to_string())?;
            }
            Ok(None)
        }
    }
}

fn show_error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Temporary => "a temporary",
        ErrorKind::Config => "a configuration",
        ErrorKind::Any => "an",
    }
}

fn check_outcome(
    want: &Outcome,
    got: &(String, Option<u16>, Option<String>, String),
) -> Result<(), String> {
    let (kind, code, enhanced, shown) = got;
    let fits = want.kind == *kind
        && want.code.is_none_or(|c| Some(c) == *code)
        && want
            .enhanced
            .as_ref()
            .is_none_or(|e| Some(e) == enhanced.as_ref());
    if fits {
        Ok(())
    } else {
        Err(format!("expected: {want}\ngot:      {shown}"))
    }
}

fn check_text(want: &str, text: &str, shown: &str) -> Result<(), String> {
    if text.contains(want) {
        Ok(())
    } else {
        Err(format!(
            "expected: text containing {want:?}\ngot:      {shown}"
        ))
    }
}

fn show_reply(r: &Reply) -> String {
    let mut s = r.code.to_string();
    if let Some(e) = r.enhanced {
        s.push_str(&format!(" {e}"));
    }
    let text = r.text.join(" / ");
    if !text.is_empty() {
        s.push_str(&format!(" {text:?}"));
    }
    s
}

fn with_text(kind: &str, t: &Option<String>) -> String {
    match t {
        Some(t) => format!("{kind} {t:?}"),
        None => kind.to_string(),
    }
}

fn show_decision(d: &Decision) -> String {
    match d {
        Decision::Ok => "ok".into(),
        Decision::Dunno => "dunno".into(),
        Decision::Reject(r) => format!("reject {}", show_reply(r)),
        Decision::Defer(r) => format!("defer {}", show_reply(r)),
        Decision::DeferIfReject(t) => with_text("defer-if-reject", t),
        Decision::DeferIfPermit(t) => with_text("defer-if-permit", t),
        Decision::Discard(t) => with_text("discard", t),
    }
}

/// Kind, code, enhanced code and the whole decision shown, for [`check_outcome`].
fn decision_outcome(d: &Decision) -> (String, Option<u16>, Option<String>, String) {
    let (kind, reply) = match d {
        Decision::Ok => ("ok", None),
        Decision::Dunno => ("dunno", None),
        Decision::Reject(r) => ("reject", Some(r)),
        Decision::Defer(r) => ("defer", Some(r)),
        Decision::DeferIfReject(_) => ("defer-if-reject", None),
        Decision::DeferIfPermit(_) => ("defer-if-permit", None),
        Decision::Discard(_) => ("discard", None),
    };
    (
        kind.to_string(),
        reply.map(|r| r.code),
        reply.and_then(|r| r.enhanced).map(|e| e.to_string()),
        show_decision(d),
    )
}

fn decision_text(d: &Decision) -> String {
    match d {
        Decision::Reject(r) | Decision::Defer(r) => r.text.join("\n"),
        Decision::DeferIfReject(Some(t))
        | Decision::DeferIfPermit(Some(t))
        | Decision::Discard(Some(t)) => t.clone(),
        _ => String::new(),
    }
}

fn show_action(a: &Action) -> String {
    match a {
        Action::Prepend { name, value } => format!("prepend {name}: {value}"),
        Action::Hold(t) => with_text("hold", t).replace('"', ""),
        Action::Redirect(t) => format!("redirect {t}"),
        Action::Filter(t) => format!("filter {t}"),
        Action::Bcc(t) => format!("bcc {t}"),
        Action::Warn(t) => format!("warn {t}"),
        Action::Info(t) => format!("info {t}"),
    }
}

fn disposition_outcome(d: &Disposition) -> (String, Option<u16>, Option<String>, String) {
    let (kind, reply) = match d {
        Disposition::Accept => ("accept", None),
        Disposition::Reject(r) => ("reject", Some(r)),
        Disposition::Defer(r) => ("defer", Some(r)),
        Disposition::Discard(_) => ("discard", None),
        Disposition::Quarantine(_) => ("quarantine", None),
    };
    (
        kind.to_string(),
        reply.map(|r| r.code),
        reply.and_then(|r| r.enhanced).map(|e| e.to_string()),
        disposition_text(d).1,
    )
}

/// The disposition's text (reply, discard or quarantine reason) and the whole shown.
fn disposition_text(d: &Disposition) -> (String, String) {
    match d {
        Disposition::Accept => (String::new(), "accept".into()),
        Disposition::Reject(r) => (r.text.join("\n"), format!("reject {}", show_reply(r))),
        Disposition::Defer(r) => (r.text.join("\n"), format!("defer {}", show_reply(r))),
        Disposition::Discard(t) => (t.clone().unwrap_or_default(), with_text("discard", t)),
        Disposition::Quarantine(t) => (t.clone(), format!("quarantine {t:?}")),
    }
}

fn show_kind(k: TableKind) -> &'static str {
    match k {
        TableKind::Fixed => "fixed",
        TableKind::Pattern => "pattern",
    }
}
