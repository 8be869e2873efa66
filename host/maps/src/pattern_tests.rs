use crate::testutil::TempDir;
use crate::{open_table, Kind, LookupError, OpenCtx, Scope, Table, Tables};
use std::sync::Arc;

fn table(kind: &str, text: &str) -> (TempDir, Arc<dyn Table>) {
    let dir = TempDir::new(kind);
    let path = dir.write("table", text);
    let t = open_table(&format!("{kind}:{}", path.display()), &OpenCtx::new()).unwrap();
    (dir, t)
}

fn get(t: &Arc<dyn Table>, key: &str) -> Option<String> {
    t.lookup(key).unwrap()
}

fn warnings(t: &Arc<dyn Table>) -> Vec<String> {
    t.warnings()
        .iter()
        .map(|w| format!("line {}: {}", w.line, w.message))
        .collect()
}

#[test]
fn header_checks_example() {
    let (_d, t) = table(
        "regexp",
        "# These were once common in junk mail.\n\
         /^Subject: make money fast/     REJECT\n\
         /^To: friend@public\\.com/       REJECT\n",
    );
    assert_eq!(t.kind(), Kind::Pattern);
    assert!(warnings(&t).is_empty());
    // Case-insensitive by default: the manual's pattern catches any capitalisation.
    assert_eq!(
        get(&t, "Subject: Make Money Fast!!!").as_deref(),
        Some("REJECT")
    );
    assert_eq!(get(&t, "To: FRIEND@public.com").as_deref(), Some("REJECT"));
    assert_eq!(get(&t, "To: friend@publicxcom"), None);
    assert_eq!(get(&t, "Subject: hello"), None);
}

#[test]
fn smtpd_access_example_with_if_and_substitution() {
    // regexp_table(5) "EXAMPLE SMTPD ACCESS MAP".
    let (_d, t) = table(
        "regexp",
        "/[%!@].*[%!@]/       550 Sender-specified routing rejected\n\
         /^postmaster@/       OK\n\
         if !/^owner-/\n\
         /^(.*)-outgoing@(.*)$/  550 Use ${1}@${2} instead\n\
         endif\n",
    );
    assert_eq!(
        get(&t, "user%other@example.com").as_deref(),
        Some("550 Sender-specified routing rejected")
    );
    assert_eq!(get(&t, "Postmaster@example.com").as_deref(), Some("OK"));
    assert_eq!(
        get(&t, "list-outgoing@example.com").as_deref(),
        Some("550 Use list@example.com instead")
    );
    assert_eq!(get(&t, "owner-list-outgoing@example.com"), None);
}

#[test]
fn flags_negation_and_second_patterns() {
    let (_d, t) = table(
        "regexp",
        "/^Exact$/i        case-sensitive\n\
         /^(a)|(b)$/       a=[$1] b=[$(2)]\n\
         !/@/              no-at-sign $$5\n\
         /^x/!/^xy/        x-but-not-xy\n\
         |a\\|b|           pipe-delimited\n\
         /a\\/b/           slash\n",
    );
    assert_eq!(get(&t, "Exact").as_deref(), Some("case-sensitive"));
    assert_eq!(get(&t, "exact").as_deref(), Some("no-at-sign $5"));
    assert_eq!(get(&t, "xb").as_deref(), Some("a=[] b=[b]"));
    assert_eq!(get(&t, "x@1").as_deref(), Some("x-but-not-xy"));
    assert_eq!(get(&t, "xy@1"), None);
    assert_eq!(get(&t, "@a|bc").as_deref(), Some("pipe-delimited"));
    assert_eq!(get(&t, "@a/bc").as_deref(), Some("slash"));
}

#[test]
fn multiline_flag_for_header_values() {
    let (_d, t) = table(
        "regexp",
        "/^X-Spam: yes$/m  folded\n/^Subject:.*viagra/ dotall\n",
    );
    assert_eq!(
        get(&t, "X-Foo: 1\nX-Spam: yes\n").as_deref(),
        Some("folded")
    );
    assert_eq!(
        get(&t, "Subject: hi\n\tcheap viagra").as_deref(),
        Some("dotall")
    );
}

#[test]
fn pcre_look_around_and_flags() {
    let (_d, t) = table(
        "pcre",
        "/^(?!postmaster@)[^@]+@example\\.com$/   REJECT not for you\n\
         /(?<=\\.)invalid$/                         REJECT bad tld\n\
         /^(\\w+)\\s+\\1$/                           DUNNO repeated $1\n\
         /^ a b c $/x                               spaced\n\
         /^CASE$/i                                  exact-case\n\
         /b+/A                                      anchored\n\
         /^(q.+)x/U                                 lazy $1\n",
    );
    assert_eq!(
        get(&t, "joe@example.com").as_deref(),
        Some("REJECT not for you")
    );
    assert_eq!(get(&t, "postmaster@example.com"), None);
    assert_eq!(get(&t, "host.invalid").as_deref(), Some("REJECT bad tld"));
    assert_eq!(
        get(&t, "hello hello").as_deref(),
        Some("DUNNO repeated hello")
    );
    assert_eq!(get(&t, "abc").as_deref(), Some("spaced"));
    assert_eq!(get(&t, "CASE").as_deref(), Some("exact-case"));
    assert_eq!(get(&t, "case"), None);
    assert_eq!(get(&t, "bbb").as_deref(), Some("anchored"));
    assert_eq!(get(&t, "abbb"), None);
    assert_eq!(get(&t, "qaxbx").as_deref(), Some("lazy qa"));
}

#[test]
fn pcre_backtracking_runaway_is_a_temporary_error() {
    let (_d, t) = table("pcre", "/^(?:(a)\\1?)+b/ never\n");
    let key = "a".repeat(40);
    assert!(matches!(t.lookup(&key), Err(LookupError::Temporary(_))));
}

#[test]
fn broken_rules_are_skipped_with_file_and_line() {
    let (_d, t) = table(
        "regexp",
        "/ok/ fine\n\
         /unterminated REJECT\n\
         /x/q bad flag\n\
         /(/ bad regexp\n\
         /(a)/ $2\n\
         !/a(b)/ $1\n\
         /a/ $name\n\
         garbage here\n\
         endif\n\
         /b/ \n\
         if /c/\n\
         /c1/ inside\n",
    );
    let w = warnings(&t);
    assert_eq!(
        w[0],
        "line 2: no closing regexp delimiter \"/\": skipping this rule"
    );
    assert_eq!(
        w[1],
        "line 3: unknown regexp option \"q\": skipping this rule"
    );
    assert!(
        w[2].starts_with("line 4: bad regexp pattern \"(\""),
        "{}",
        w[2]
    );
    assert_eq!(
        w[3],
        "line 5: out of range replacement index \"2\": skipping this rule"
    );
    assert_eq!(
        w[4],
        "line 6: $number found in negative match replacement text: skipping this rule"
    );
    assert_eq!(w[5], "line 7: bad replacement syntax: skipping this rule");
    assert_eq!(w[6], "line 8: ignoring unrecognized request");
    assert_eq!(w[7], "line 9: ignoring ENDIF without matching IF");
    assert_eq!(w[8], "line 10: no replacement text: using empty string");
    assert_eq!(w[9], "line 11: IF has no matching ENDIF");
    assert_eq!(w.len(), 10);
    assert_eq!(t.warnings()[0].to_string().split(", line").count(), 2);
    // The good rules still work; the empty result is a configuration error for the caller.
    assert_eq!(get(&t, "ok").as_deref(), Some("fine"));
    assert_eq!(get(&t, "c1").as_deref(), Some("inside"));
    assert_eq!(get(&t, "zzz"), None);
    let list = Tables::from_tables(vec![t]);
    assert!(matches!(
        list.find("b", Scope::Full),
        Err(LookupError::Config(_))
    ));
}

#[test]
fn inline_rules_and_missing_files() {
    let ctx = OpenCtx::new();
    let t = open_table("regexp:{ {/^a/ got a}, { /^b/ got b } }", &ctx).unwrap();
    assert_eq!(t.lookup("apple").unwrap().as_deref(), Some("got a"));
    assert_eq!(t.lookup("banana").unwrap().as_deref(), Some("got b"));
    assert!(!t.is_stale());
    let err = open_table("pcre:/nonexistent/postern/checks", &ctx).unwrap_err();
    assert_eq!(err.to_string(), "/nonexistent/postern/checks: no such file");
    assert!(open_table("regexp:{ /^a/ x }", &ctx).is_err());
}

#[test]
fn edits_make_the_table_stale() {
    let (d, t) = table("regexp", "/a/ 1\n");
    assert!(!t.is_stale());
    d.write("table", "/a/ 2\n/b/ 3\n");
    assert!(t.is_stale());
}
