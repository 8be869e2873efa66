//! The harness API against real components: the example policy (examples/policy-rust), the
//! misbehaving sandbox plugin and the lookup/filter/transport plugin of host/runtime/tests.

#[path = "../../../host/runtime/tests/guest/mod.rs"]
mod guest;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use postern_plugin_testing::{
    delivery_request, filter_context, message, policy_request, Clock, Decision, Disposition,
    DsnAction, Harness, HeaderEdit, KvBackend, ManualClock, PluginCalls, PluginError, Role,
    SigningKey, Stage, StaticDns, TableKind, Transaction, DEFAULT_START,
};

pub fn example_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("examples/policy-rust", "policy_rust.wasm"))
        .clone()
}

fn sandbox_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("host/runtime/tests/plugins/sandbox", "sandbox.wasm"))
        .clone()
}

fn roles_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest::build("host/runtime/tests/plugins/roles", "roles.wasm"))
        .clone()
}

fn reject_text(d: &Decision) -> String {
    match d {
        Decision::Reject(r) => r.text.join(" "),
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[tokio::test]
async fn a_policy_test_is_a_few_lines() {
    let h = Harness::new();
    let p = h
        .load(example_wasm(), |b| {
            b.config
                .insert("reject".into(), "blocked@example.com".into());
            b.config.insert("text".into(), "no mail here".into());
        })
        .unwrap();
    assert_eq!(p.binding().name, "policy_rust");
    assert_eq!(p.binding().roles, vec![Role::Policy]);
    let v = p
        .check(&policy_request(Stage::Rcpt, "Blocked@Example.com"))
        .await
        .unwrap();
    match &v.decision {
        Decision::Reject(r) => {
            assert_eq!(
                (r.code, r.enhanced.map(|e| e.to_string())),
                (550, Some("5.7.1".into()))
            );
            assert_eq!(r.text, vec!["no mail here".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let v = p
        .check(&policy_request(Stage::Rcpt, "someone@example.com"))
        .await
        .unwrap();
    assert_eq!(v.decision, Decision::Dunno);
    let logs: Vec<String> = h.logs().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        logs,
        vec!["policy_rust info: reject recipient <Blocked@Example.com>: listed".to_string()]
    );
    // A role the component does not export is a clear error, not a panic.
    let e = p.lookup("t", "k").await.unwrap_err();
    assert!(
        matches!(e, PluginError::Config(ref m) if m.contains("no lookup role")),
        "{e:?}"
    );
}

#[tokio::test]
async fn inspect_reports_roles_and_requested_grants() {
    let h = Harness::new();
    let info = h.inspect(sandbox_wasm()).unwrap();
    assert_eq!(info.roles, vec![Role::Policy]);
    for g in ["dns", "kv:BUCKET", "signing:KEY"] {
        assert!(
            info.grants.contains(&g.to_string()),
            "{g}: {:?}",
            info.grants
        );
    }
    let info = h.inspect(roles_wasm()).unwrap();
    assert_eq!(
        info.roles,
        vec![Role::Lookup, Role::Filter, Role::Transport]
    );
    let e = h
        .load(std::env::current_exe().unwrap(), |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("cannot compile component"), "{e}");
}

#[tokio::test]
async fn fake_dns_answers_reach_granted_plugins_only() {
    let h = Harness::new().dns(StaticDns::new().txt("example.com", "v=spf1 -all"));
    let load = |grant: bool| {
        h.load(sandbox_wasm(), |b| {
            b.config.insert("mode".into(), "dns".into());
            b.grants.dns = grant;
        })
        .unwrap()
    };
    let req = policy_request(Stage::Rcpt, "a@example.com");
    let v = load(true).check(&req).await.unwrap();
    assert_eq!(reject_text(&v.decision), "answered");
    let v = load(false).check(&req).await.unwrap();
    assert_eq!(reject_text(&v.decision), "denied");
    // Replacing the answers reaches plugins already loaded.
    let granted = load(true);
    let h = h.dns(StaticDns::new());
    let v = granted.check(&req).await.unwrap();
    assert!(reject_text(&v.decision).contains("NoSuchDomain"), "{v:?}");
    drop(h);
}

#[tokio::test]
async fn the_clock_drives_kv_expiry_and_the_kv_store_can_be_seeded_and_read() {
    let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + DEFAULT_START));
    let h = Harness::new().clock(clock.clone());
    h.kv()
        .set(
            "counters",
            "hits",
            b"41".to_vec(),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let p = h
        .load(sandbox_wasm(), |b| {
            b.config.insert("mode".into(), "kv".into());
            b.grants.kv = vec!["counters".into()];
        })
        .unwrap();
    let req = policy_request(Stage::Rcpt, "a@example.com");
    let v = p.check(&req).await.unwrap();
    assert_eq!(reject_text(&v.decision), "hits=42 first=Ok(true)");
    clock.advance(Duration::from_secs(61));
    let v = p.check(&req).await.unwrap();
    assert_eq!(reject_text(&v.decision), "hits=1 first=Ok(false)");
    let hits = h.kv().get("counters", "hits").await.unwrap();
    assert_eq!(hits.as_deref(), Some(&b"1"[..]));
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.manual_clock().now(), clock.now());
}

const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPeseQmSsEQWGq0SQiYAxctC312o2YU1zg10+zGgAS5o
-----END PRIVATE KEY-----
";

#[tokio::test]
async fn signing_keys_are_given_by_name() {
    let key = SigningKey::from_pem(ED25519_PEM, "s2026", "example.com").unwrap();
    let h = Harness::new().key("example", key);
    let p = h
        .load(sandbox_wasm(), |b| {
            b.config.insert("mode".into(), "sign".into());
            b.config.insert("key".into(), "example".into());
            b.grants.signing = vec!["example".into()];
        })
        .unwrap();
    let v = p
        .check(&policy_request(Stage::EndOfData, "a@example.com"))
        .await
        .unwrap();
    let text = reject_text(&v.decision);
    assert!(
        text.starts_with("Algorithm::Ed25519Sha256 s2026 example.com "),
        "{text}"
    );
}

#[tokio::test]
async fn annotations_are_shared_within_a_transaction() {
    let h = Harness::new();
    let load = |name: &str| {
        let name = name.to_string();
        h.load(sandbox_wasm(), move |b| {
            b.name = name;
            b.config.insert("mode".into(), "annotate".into());
        })
        .unwrap()
    };
    let (spf, dmarc) = (load("spf"), load("dmarc"));
    let txn = Transaction::new();
    let req = policy_request(Stage::Rcpt, "a@example.com");
    assert_eq!(
        reject_text(&spf.check_in(&req, &txn).await.unwrap().decision),
        "none"
    );
    assert_eq!(
        reject_text(&dmarc.check_in(&req, &txn).await.unwrap().decision),
        "spf:pass"
    );
}

#[tokio::test]
async fn lookup_filter_and_transport_roles_are_called_with_built_requests() {
    let h = Harness::new();
    let p = h
        .load(roles_wasm(), |b| {
            b.config.insert("entries".into(), "a@x=alpha".into());
            b.config.insert("filter".into(), "tag".into());
            b.config.insert("caps".into(), "add-headers".into());
            b.grants.kv = vec!["mailbox".into()];
        })
        .unwrap();
    assert_eq!(p.describe("pattern").await, Ok(TableKind::Pattern));
    assert_eq!(p.lookup("fixed", "a@x").await, Ok(Some("alpha".into())));
    assert_eq!(
        p.lookup_first("fixed", &["b", "a@x"]).await,
        Ok(Some((1, "alpha".into())))
    );

    let msg = message("Subject: hi\n\nHello.\n");
    let r = p
        .scan(
            &filter_context("s@example.org", &["r@example.com"]),
            msg.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.disposition, Disposition::Accept);
    assert!(matches!(
        &r.header_edits[..],
        [HeaderEdit::Add { name, value }] if name == "X-Scanned" && value.ends_with("rcpts=1 subject=hi")
    ));

    let statuses = p
        .deliver(
            &delivery_request("s@example.org", &["ok@example.com", "fail@example.com"]),
            msg,
        )
        .await
        .unwrap();
    let got: Vec<DsnAction> = statuses.iter().map(|s| s.action).collect();
    assert_eq!(got, vec![DsnAction::Delivered, DsnAction::Failed]);
    let stored = h
        .kv()
        .get(
            "mailbox",
            &format!("{}:ok@example.com", postern_plugin_testing::QUEUE_ID),
        )
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"Hello.\r\n"[..]));
    assert_eq!(
        p.check(&policy_request(Stage::Rcpt, "a@x"))
            .await
            .err()
            .map(|e| e.to_string().contains("no policy role")),
        Some(true)
    );
}
