//! `run_vectors` on real components: the example policy's own vector file, vectors for the
//! sandbox plugin (fake DNS, kv seeds, the clock) and the lookup/filter/transport plugin, and
//! files whose expectations are wrong, which must fail and say why.

#[path = "../../../host/runtime/tests/guest/mod.rs"]
mod guest;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use postern_plugin_testing::{default_vectors_path, run_vectors, run_vectors_async, Role};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_wasm() -> PathBuf {
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

fn vectors(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// A scratch file removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, text: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("postern-testing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_example_passes_its_own_vectors() {
    let report = run_vectors(
        &example_wasm(),
        &repo().join("examples/policy-rust/policy_rust.tests.toml"),
    )
    .unwrap();
    assert!(report.success(), "{report}");
    assert_eq!(report.plugin, "reject-listed");
    assert_eq!(report.passed(), 5, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("ok     policy: a listed recipient is rejected with the configured text\n"),
        "{text}"
    );
    assert!(
        text.ends_with("test result: ok. 5 passed; 0 failed\n"),
        "{text}"
    );
}

#[tokio::test]
async fn sandbox_vectors_use_fake_dns_kv_and_the_clock() {
    let report = run_vectors_async(&sandbox_wasm(), &vectors("sandbox.tests.toml"))
        .await
        .unwrap();
    assert!(report.success(), "{report}");
    assert_eq!(report.cases.len(), 7);
}

#[test]
fn roles_vectors_cover_lookup_filter_and_transport() {
    let report = run_vectors(&roles_wasm(), &vectors("roles.tests.toml")).unwrap();
    assert!(report.success(), "{report}");
    let roles: Vec<Role> = report.cases.iter().map(|c| c.role).collect();
    for role in [Role::Lookup, Role::Filter, Role::Transport] {
        assert!(roles.contains(&role), "{roles:?}");
    }
    assert_eq!(report.cases[0].name, "fixed a@x");
}

#[test]
fn a_wrong_expectation_fails_and_says_what_differed() {
    let file = Scratch::new(
        "wrong.tests.toml",
        "[binding.config]\nreject = \"blocked@example.com\"\ntext = \"go away\"\n\n\
         [[case]]\nname = \"right\"\nrecipient = \"blocked@example.com\"\ndecision = \"reject 550 5.7.1\"\n\n\
         [[case]]\nname = \"wrong decision\"\nrecipient = \"someone@example.com\"\ndecision = \"reject 550\"\n\n\
         [[case]]\nname = \"wrong text\"\nrecipient = \"blocked@example.com\"\ndecision = \"reject\"\ntext = \"welcome\"\n\n\
         [[case]]\nname = \"wrong code\"\nrecipient = \"blocked@example.com\"\ndecision = \"defer 450 4.7.1\"\n",
    );
    let report = run_vectors(&example_wasm(), &file.0).unwrap();
    assert!(!report.success());
    assert_eq!((report.passed(), report.failed()), (1, 3), "{report}");
    let failures: Vec<(&str, &str)> = report
        .cases
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.failure.as_deref()?)))
        .collect();
    assert_eq!(
        failures[0],
        ("wrong decision", "expected: reject 550\ngot:      dunno")
    );
    assert!(
        failures[1].1.starts_with(
            "expected: text containing \"welcome\"\ngot:      reject 550 5.7.1 \"go away\""
        ),
        "{}",
        failures[1].1
    );
    // The plugin's log lines of a failed case come with it.
    assert!(
        failures[1].1.ends_with(
            "plugin log:\n  policy_rust info: reject recipient <blocked@example.com>: listed"
        ),
        "{}",
        failures[1].1
    );
    let text = report.to_string();
    assert!(text.contains("FAILED policy: wrong code ("), "{text}");
    assert!(text.contains(".tests.toml:21)\n"), "{text}");
    assert!(
        text.contains("           expected: defer 450 4.7.1\n"),
        "{text}"
    );
    assert!(
        text.ends_with("test result: FAILED. 1 passed; 3 failed\n"),
        "{text}"
    );
}

#[test]
fn wrong_lookup_and_transport_expectations_fail() {
    let file = Scratch::new(
        "roles-wrong.tests.toml",
        "[binding.config]\nentries = \"a@x=alpha\"\n\n\
         [[case]]\ntable = \"fixed\"\nkey = \"a@x\"\nvalue = \"beta\"\n\n\
         [[case]]\ntable = \"fixed\"\nkey = \"a@x\"\nfound = false\n\n\
         [[case]]\nrecipients = [\"ok@x\", \"fail@x\"]\nstatus = [\"2\", \"4\"]\n\n\
         [[case]]\ntable = \"fail\"\nkey = \"k\"\nvalue = \"v\"\n",
    );
    let report = run_vectors(&roles_wasm(), &file.0).unwrap();
    let failures: Vec<&str> = report
        .cases
        .iter()
        .filter_map(|c| c.failure.as_deref())
        .collect();
    assert_eq!(
        failures,
        vec![
            "expected: \"beta\"\ngot:      \"alpha\"",
            "expected: not found\ngot:      \"alpha\"",
            "expected: status 2, 4\ngot:      status 2.0.0, 5.1.1",
            "expected: an answer\ngot:      temporary plugin error: backend down",
        ]
    );
}

#[test]
fn unusable_vector_files_are_errors_not_reports() {
    let e = run_vectors(&example_wasm(), Path::new("/nonexistent/x.tests.toml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read test vectors /nonexistent/x.tests.toml"),
        "{e}"
    );
    let file = Scratch::new(
        "typo.tests.toml",
        "[[case]]\nrecipient = \"a\"\ndecison = \"ok\"\n",
    );
    let e = run_vectors(&example_wasm(), &file.0).unwrap_err();
    assert!(
        e.to_string()
            .contains("typo.tests.toml:1: [[case]] cannot tell which role"),
        "{e}"
    );
    let file = Scratch::new(
        "norole.tests.toml",
        "[[case]]\ntable = \"t\"\nkey = \"k\"\nvalue = \"v\"\n",
    );
    let report = run_vectors(&example_wasm(), &file.0).unwrap();
    assert!(
        report.cases[0]
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("no lookup role")),
        "{report}"
    );
}

#[test]
fn vectors_sit_next_to_the_component_by_default() {
    assert_eq!(
        default_vectors_path(Path::new("/p/policy_rust.wasm")),
        PathBuf::from("/p/policy_rust.tests.toml")
    );
}
