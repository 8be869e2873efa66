//! `postern plugin list|check|test` against the real binary, with the example plugin from
//! `examples/policy-rust/` and its test vectors. Building it needs the wasm32-wasip2 target
//! (`rustup target add wasm32-wasip2`).

#[path = "../../host/runtime/tests/guest/mod.rs"]
mod guest;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use postern_tests::{postern_bin, TempDir};

fn example_plugin() -> PathBuf {
    guest::build("examples/policy-rust", "policy_rust.wasm")
}

fn example_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy-rust/policy_rust.tests.toml")
}

fn postern(args: &[&str]) -> Output {
    Command::new(postern_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn check_shows_roles_imports_and_grants() {
    let wasm = example_plugin();
    let out = postern(&["plugin", "check", arg(&wasm)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("\n  roles: policy\n"), "{stdout}");
    assert!(
        stdout.contains("  exports: postern:plugin/policy@0.1.0\n"),
        "{stdout}"
    );
    let imports = stdout
        .lines()
        .find(|l| l.starts_with("  imports: "))
        .unwrap_or_default();
    assert!(
        imports.contains("logging") && imports.contains("config"),
        "{stdout}"
    );
    assert!(stdout.contains("  requests grants: none\n"), "{stdout}");
    assert!(
        stdout.contains("is a Postern plugin (roles: policy)"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_what_is_not_a_component() {
    let dir = TempDir::new("plugin-check");
    let junk = dir.path().join("notes.wasm");
    std::fs::write(&junk, "this is not WebAssembly\n").unwrap();
    let out = postern(&["plugin", "check", arg(&junk)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        format!(
            "postern: error: {} is not a Postern plugin component: not a WebAssembly file\n",
            junk.display()
        )
    );
    // A core module (what a wasm32-unknown-unknown build gives) is not a component either.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = postern(&["plugin", "check", arg(&core)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("is a core WebAssembly module, not a component"),
        "{stderr}"
    );
    let out = postern(&["plugin", "check", arg(&dir.path().join("missing.wasm"))]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn test_runs_the_example_vectors() {
    let wasm = example_plugin();
    let vectors = example_vectors();
    let out = postern(&["plugin", "test", arg(&wasm), arg(&vectors)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok     policy: a listed recipient is rejected with the configured text\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok     policy: the list is matched regardless of case\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("test result: ok. 5 passed; 0 failed\n"),
        "{stdout}"
    );

    // Without VECTORS: PATH.tests.toml next to the component.
    let dir = TempDir::new("plugin-test");
    let copy = dir.path().join("reject_listed.wasm");
    std::fs::copy(&wasm, &copy).unwrap();
    let out = postern(&["plugin", "test", arg(&copy)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}{stderr}");
    assert!(
        stderr.contains("reject_listed.tests.toml does not exist"),
        "{stderr}"
    );
    std::fs::copy(&vectors, dir.path().join("reject_listed.tests.toml")).unwrap();
    let out = postern(&["plugin", "test", arg(&copy)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
}

#[test]
fn test_fails_on_a_wrong_expectation() {
    let wasm = example_plugin();
    let dir = TempDir::new("plugin-test-wrong");
    let vectors = dir.path().join("wrong.tests.toml");
    std::fs::write(
        &vectors,
        "[binding.config]\nreject = \"blocked@example.com\"\n\n\
         [[case]]\nname = \"listed\"\nrecipient = \"blocked@example.com\"\ndecision = \"reject 550 5.7.1\"\n\n\
         [[case]]\nname = \"unlisted is wrongly expected to be rejected\"\n\
         recipient = \"someone@example.com\"\ndecision = \"reject 550 5.7.1\"\n",
    )
    .unwrap();
    let out = postern(&["plugin", "test", arg(&wasm), arg(&vectors)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ok     policy: listed\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAILED policy: unlisted is wrongly expected to be rejected ({}:9)\n\
             \x20          expected: reject 550 5.7.1\n\
             \x20          got:      dunno\n",
            vectors.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("test result: FAILED. 1 passed; 1 failed\n"),
        "{stdout}"
    );

    // A vector file with a typo is refused before anything runs.
    std::fs::write(
        &vectors,
        "[[case]]\nrecipient = \"a@x\"\ndecison = \"dunno\"\n",
    )
    .unwrap();
    let out = postern(&["plugin", "test", arg(&wasm), arg(&vectors)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}{stderr}");
    assert!(
        stderr.contains("wrong.tests.toml:1: [[case]] cannot tell which role"),
        "{stderr}"
    );
}

#[test]
fn list_shows_each_binding_of_plugins_toml() {
    let wasm = example_plugin();
    let dir = TempDir::new("plugin-list");
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("main.cf"),
        format!(
            "queue_directory = {d}/queue\nmail_spool_directory = {d}/mail/\n\
             maillog_file = {d}/maillog\ninet_interfaces = 127.0.0.1\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("master.cf"),
        "127.0.0.1:0 inet n - n - - smtpd\n",
    )
    .unwrap();
    let list = |dir: &TempDir| {
        let out = postern(&["-c", arg(dir.path()), "plugin", "list"]);
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = list(&dir);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("plugins.toml does not exist: no plugins"),
        "{stdout}"
    );

    std::fs::write(
        dir.path().join("plugins.toml"),
        format!(
            "[[plugin]]\nname = \"reject-listed\"\ncomponent = \"{}\"\ngrants = [\"dns\", \"kv:grey\"]\n\
             instances = \"pooled\"\n[plugin.config]\nreject = \"a@example.com\"\n",
            wasm.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = list(&dir);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("plugin reject-listed ("), "{stdout}");
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(
        stdout.contains(&format!("  component: {} ({size} bytes)\n", wasm.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("  roles: policy (exports: policy)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  requests grants: none\n"), "{stdout}");
    assert!(stdout.contains("  granted: dns, kv:grey\n"), "{stdout}");
    assert!(stdout.contains("  instances: pooled\n"), "{stdout}");

    // A binding for a role the component does not export is listed, and is an error.
    std::fs::write(
        dir.path().join("plugins.toml"),
        format!(
            "[[plugin]]\nname = \"wrong-role\"\ncomponent = \"{}\"\nroles = [\"lookup\"]\n",
            wasm.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = list(&dir);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("does not export the lookup role"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  roles: lookup (exports: policy)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  instances: none (not loaded"), "{stdout}");
}
