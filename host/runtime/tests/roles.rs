//! The lookup, filter and transport roles against a real component
//! (host/runtime/tests/plugins/roles): answers cross the WIT boundary intact, filters are held
//! to what they declared, transports answer per recipient, and faults stay temporary errors.

mod guest;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use postern_runtime::services::{Clock, KvBackend, MemoryKv, SystemClock};
use postern_runtime::{
    Address, Binding, Disposition, DsnAction, EnvelopeEdit, FilterContext, HeaderEdit,
    MessageContent, Options, Phase, Plugin, PluginError, Role, Runtime, TableKind,
};

fn roles_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("host/runtime/tests/plugins/roles", "roles.wasm"))
        .clone()
}

fn load(rt: &Runtime, role: Role, config: &[(&str, &str)]) -> Plugin {
    let mut b = Binding::new("roles", roles_wasm());
    b.roles = vec![role];
    b.grants.kv = vec!["mailbox".into()];
    for (k, v) in config {
        b.config.insert(k.to_string(), v.to_string());
    }
    rt.load(b, &Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_tables_answer_found_not_found_and_errors() {
    let rt = Runtime::new().unwrap();
    let p = load(&rt, Role::Lookup, &[("entries", "a@x=alpha, x=domain")]);
    let l = p.lookup.clone().unwrap();
    assert_eq!(l.describe("fixed").await, Ok(TableKind::Fixed));
    assert_eq!(l.describe("pattern").await, Ok(TableKind::Pattern));
    assert!(matches!(
        l.describe("nope").await,
        Err(PluginError::Config(m)) if m.contains("no table named nope")
    ));
    assert_eq!(l.get("fixed", "a@x").await, Ok(Some("alpha".into())));
    assert_eq!(l.get("fixed", "b@x").await, Ok(None));
    let keys: Vec<String> = ["b@x", "b@", "x"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        l.get_first("fixed", &keys).await,
        Ok(Some((2, "domain".into())))
    );
    assert_eq!(
        l.get("fail", "k").await,
        Err(PluginError::Temporary("backend down".into()))
    );
    // Synchronous callers (postern-maps tables) on a multi-threaded runtime.
    assert_eq!(
        l.get_blocking("pattern", "u@example.com"),
        Ok(Some("pattern:u@example.com".into()))
    );
    let t = Instant::now();
    let r = l.get("loop", "k").await;
    assert!(
        matches!(r, Err(PluginError::Temporary(ref m)) if m.contains("timed out")),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(200));
}

#[test]
fn lookups_work_from_plain_threads() {
    let rt = Runtime::new().unwrap();
    let p = load(&rt, Role::Lookup, &[("entries", "k=v")]);
    let l = p.lookup.clone().unwrap();
    assert_eq!(l.get_blocking("fixed", "k"), Ok(Some("v".into())));
    assert_eq!(l.describe_blocking("pattern"), Ok(TableKind::Pattern));
}

fn context() -> FilterContext {
    FilterContext {
        phase: Phase::BeforeQueue,
        queue_id: "4Xq1".into(),
        sender: Address::new("from@example.org"),
        recipients: vec![Address::new("a@example.com"), Address::new("b@example.com")],
        client: None,
    }
}

fn message() -> Arc<MessageContent> {
    Arc::new(MessageContent::parse(
        b"Subject: hello\r\nFrom: from@example.org\r\n\r\nThis is SPAM, maybe.\r\n",
    ))
}

#[tokio::test]
async fn filters_see_the_message_and_edit_within_their_capabilities() {
    let rt = Runtime::new().unwrap();
    let tag = load(
        &rt,
        Role::Filter,
        &[("filter", "tag"), ("caps", "add-headers")],
    );
    let f = tag.filter.clone().unwrap();
    let r = f.scan(&context(), message(), 1 << 20, None).await.unwrap();
    assert_eq!(r.disposition, Disposition::Accept);
    let size = message().size();
    assert_eq!(
        r.header_edits,
        vec![HeaderEdit::Add {
            name: "X-Scanned".into(),
            value: format!("size={size} body=22 rcpts=2 subject=hello"),
        }]
    );

    let spam = load(&rt, Role::Filter, &[("filter", "reject-spam")]);
    let r = spam
        .filter
        .clone()
        .unwrap()
        .scan(&context(), message(), 1 << 20, None)
        .await
        .unwrap();
    match r.disposition {
        Disposition::Reject(reply) => {
            assert_eq!(
                (reply.code, reply.text),
                (550, vec!["spam detected".to_string()])
            )
        }
        other => panic!("{other:?}"),
    }

    let body = load(
        &rt,
        Role::Filter,
        &[("filter", "rewrite-body"), ("caps", "replace-body")],
    );
    let r = body
        .filter
        .clone()
        .unwrap()
        .scan(&context(), message(), 1 << 20, None)
        .await
        .unwrap();
    assert_eq!(
        r.new_body.as_deref(),
        Some(&b"THIS IS SPAM, MAYBE.\r\n"[..])
    );

    let env = load(
        &rt,
        Role::Filter,
        &[
            ("filter", "envelope"),
            ("caps", "add-recipients, remove-recipients"),
            ("add", "archive@example.com"),
        ],
    );
    let r = env
        .filter
        .clone()
        .unwrap()
        .scan(&context(), message(), 1 << 20, None)
        .await
        .unwrap();
    assert_eq!(
        r.envelope_edits,
        vec![
            EnvelopeEdit::AddRecipient(Address::new("archive@example.com")),
            EnvelopeEdit::RemoveRecipient("a@example.com".into())
        ]
    );
}

#[tokio::test]
async fn filters_that_overstep_are_refused() {
    let rt = Runtime::new().unwrap();
    for (config, want) in [
        (vec![("filter", "undeclared")], "add a header"),
        (vec![("filter", "rewrite-body")], "replace the body"),
        (vec![("filter", "quarantine")], "quarantine"),
        (vec![("filter", "bad-reply")], "must be 5xx"),
    ] {
        let p = load(&rt, Role::Filter, &config);
        let r = p
            .filter
            .clone()
            .unwrap()
            .scan(&context(), message(), 1 << 20, None)
            .await;
        assert!(
            matches!(r, Err(PluginError::Config(ref m)) if m.contains(want)),
            "{config:?}: {r:?}"
        );
    }
    let p = load(
        &rt,
        Role::Filter,
        &[("filter", "huge-body"), ("caps", "replace-body")],
    );
    let r = p
        .filter
        .clone()
        .unwrap()
        .scan(&context(), message(), 100_000, None)
        .await;
    assert!(
        matches!(r, Err(PluginError::Temporary(ref m)) if m.contains("exceeds 100000 bytes")),
        "{r:?}"
    );
}

#[tokio::test]
async fn transports_answer_per_recipient() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let kv = Arc::new(MemoryKv::new(clock.clone()));
    let rt = Runtime::with_options(Options {
        kv: kv.clone(),
        clock,
        ..Default::default()
    })
    .unwrap();
    let p = load(&rt, Role::Transport, &[]);
    let t = p.transport.clone().unwrap();
    let req = postern_runtime::DeliveryRequest {
        queue_id: "4Xq2".into(),
        sender: Address::new("from@example.org"),
        recipients: vec![
            Address::new("ok@example.com"),
            Address::new("fail@example.com"),
            Address::new("defer@example.com"),
        ],
        nexthop: "[store.example]:24".into(),
        attempt: 1,
    };
    let got = t.deliver(&req, message()).await.unwrap();
    let summary: Vec<(DsnAction, String)> = got
        .iter()
        .map(|s| (s.action, s.status.to_string()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (DsnAction::Delivered, "2.0.0".into()),
            (DsnAction::Failed, "5.1.1".into()),
            (DsnAction::Delayed, "4.4.1".into()),
        ]
    );
    assert_eq!(got[0].reason, "stored 22 bytes via [store.example]:24");
    assert_eq!(got[1].remote_reply.as_ref().map(|r| r.code), Some(550));
    let stored = kv.get("mailbox", "4Xq2:ok@example.com").await.unwrap();
    assert_eq!(stored.as_deref(), Some(&b"This is SPAM, maybe.\r\n"[..]));
}

#[tokio::test]
async fn a_component_without_the_role_is_refused_at_load() {
    let rt = Runtime::new().unwrap();
    let mut b = Binding::new("roles", roles_wasm());
    b.roles = vec![Role::Policy];
    let e = rt.load(b, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("does not export the policy role"), "{e}");
}
