//! Unit tests of the vector file parser.

use super::*;
use std::path::PathBuf;

#[test]
fn outcomes_take_a_kind_a_code_and_an_enhanced_code() {
    let o = outcome("reject 550 5.7.1", POLICY_DECISIONS, "decision").unwrap();
    assert_eq!(o.to_string(), "reject 550 5.7.1");
    let o = outcome("DUNNO", POLICY_DECISIONS, "decision").unwrap();
    assert_eq!((o.kind.as_str(), o.code), ("dunno", None));
    let e = outcome("reject 550 go away", POLICY_DECISIONS, "decision").unwrap_err();
    assert!(e.to_string().contains("\"go\" is neither"), "{e}");
    let e = outcome("refuse", POLICY_DECISIONS, "decision").unwrap_err();
    assert!(
        e.to_string().contains("starts with one of ok, dunno"),
        "{e}"
    );
    let e = outcome("ok 250", POLICY_DECISIONS, "decision").unwrap_err();
    assert!(e.to_string().contains("only reject and defer"), "{e}");
}

#[test]
fn clock_start_reads_toml_datetimes_and_unix_seconds() {
    let t: toml::Table = toml::from_str("start = 2026-01-01T00:00:00Z").unwrap();
    let got = parse_clock(&toml::Value::Table(t)).unwrap();
    assert_eq!(got, SystemTime::UNIX_EPOCH + crate::DEFAULT_START);
    let t: toml::Table = toml::from_str("start = 2024-02-29T12:00:00+02:00").unwrap();
    let got = parse_clock(&toml::Value::Table(t)).unwrap();
    assert_eq!(
        got,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_200_800)
    );
    let t: toml::Table = toml::from_str("start = 86400").unwrap();
    let got = parse_clock(&toml::Value::Table(t)).unwrap();
    assert_eq!(got, SystemTime::UNIX_EPOCH + Duration::from_secs(86400));
}

#[test]
fn mistakes_in_a_vector_file_name_the_line() {
    let wasm = Path::new("/x/p.wasm");
    let p = Path::new("p.tests.toml");
    let e = parse(
        "[[case]]\nrecipient = \"a@x\"\ndecison = \"dunno\"\n",
        p,
        wasm,
    )
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .starts_with("p.tests.toml:1: [[case]] cannot tell"),
        "{e}"
    );
    let text = "[[case]]\ndecision = \"dunno\"\n\n[[case]]\ndecision = \"dunno\"\nrcpt = \"a\"\n";
    let e = parse(text, p, wasm).err().unwrap();
    assert!(
        e.to_string()
            .starts_with("p.tests.toml:4: [[case]] unknown key \"rcpt\" for a policy case"),
        "{e}"
    );
    let e = parse(
        "[binding]\non_error = \"maybe\"\n[[case]]\ndecision = \"ok\"\n",
        p,
        wasm,
    )
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "p.tests.toml: [binding] \"p\": on_error must be \"dunno\" or \"defer\""
    );
    let e = parse("[[case]]\ntable = \"t\"\nkey = \"k\"\n", p, wasm)
        .err()
        .unwrap();
    assert!(e.to_string().contains("expects nothing"), "{e}");
    let e = parse(
        "[dns.\"example.com\"]\nmx = [\"mail\"]\n[[case]]\ndecision = \"ok\"\n",
        p,
        wasm,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("PREFERENCE HOST"), "{e}");
}

#[test]
fn binding_defaults_to_the_file_name_and_the_exported_roles() {
    let v = parse(
        "[binding]\ngrants = [\"dns\"]\ntimeout = \"2s\"\n[binding.config]\nmode = \"dns\"\n\
         [[case]]\ndecision = \"reject\"\ntext = \"answered\"\n",
        Path::new("/v/sandbox.tests.toml"),
        Path::new("/w/sandbox.wasm"),
    )
    .unwrap();
    assert_eq!(v.binding.name, "sandbox");
    assert_eq!(v.binding.component, PathBuf::from("/w/sandbox.wasm"));
    assert!(v.binding.grants.dns);
    assert_eq!(v.binding.timeout, Duration::from_secs(2));
    assert_eq!(
        v.binding.config.get("mode").map(String::as_str),
        Some("dns")
    );
    assert!(!v.roles_given);
    assert_eq!(v.cases[0].name, "rcpt from 192.0.2.1");
}
