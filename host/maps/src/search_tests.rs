use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::testutil::TempDir;
use crate::{build_hash, open_table, Kind, OpenCtx, Table};

/// A hash: table built from `text`, as an admin would (postern map build).
fn hash(dir: &TempDir, name: &str, text: &str) -> Tables {
    let src = dir.write(name, text);
    build_hash(&src).unwrap();
    Tables::open(&format!("hash:{}", src.display()), &OpenCtx::new()).unwrap()
}

fn keys(probes: &[Probe]) -> Vec<String> {
    probes
        .iter()
        .map(|p| match p.scope {
            Scope::Full => p.key.clone(),
            Scope::Partial => format!("{} (fixed)", p.key),
        })
        .collect()
}

fn value(found: Result<Option<Found>, LookupError>) -> Option<String> {
    found.unwrap().map(|f| f.value)
}

#[test]
fn access_search_order_is_access_5() {
    let opts = AddressOptions::with_delimiter("+");
    let probes = address_probes(
        "user+foo@mail.example.org",
        &Strategy::access(ParentStyle::Parent),
        &opts,
        &|_| false,
    );
    // access(5): user+foo@domain, user@domain, domain, (parents), user+foo@, user@.
    assert_eq!(
        keys(&probes),
        vec![
            "user+foo@mail.example.org",
            "user@mail.example.org (fixed)",
            "mail.example.org (fixed)",
            "example.org (fixed)",
            "org (fixed)",
            "user+foo@ (fixed)",
            "user@ (fixed)",
        ]
    );
    let dot = address_probes(
        "u@a.example.org",
        &Strategy::access(ParentStyle::DotParent),
        &opts,
        &|_| false,
    );
    assert_eq!(
        keys(&dot),
        vec![
            "u@a.example.org",
            "a.example.org (fixed)",
            ".example.org (fixed)",
            ".org (fixed)",
            "u@ (fixed)"
        ]
    );
}

#[test]
fn access_file_with_user_and_domain_entries() {
    let dir = TempDir::new("access");
    let t = hash(
        &dir,
        "access",
        "user@example.org OK\nexample.org REJECT\nfriend@ OK\n",
    );
    let opts = AddressOptions::with_delimiter("+");
    let parent = ParentStyle::for_feature(
        DEFAULT_PARENT_DOMAIN_MATCHES_SUBDOMAINS,
        "smtpd_access_maps",
    );
    assert_eq!(parent, ParentStyle::Parent);
    let check = |addr: &str, style| value(access_address(&t, addr, &opts, style));
    assert_eq!(check("user@example.org", parent).as_deref(), Some("OK"));
    assert_eq!(
        check("User+lists@Example.ORG", parent).as_deref(),
        Some("OK")
    );
    assert_eq!(
        check("other@example.org", parent).as_deref(),
        Some("REJECT")
    );
    // smtpd_access_maps in parent_domain_matches_subdomains: example.org covers subdomains…
    assert_eq!(
        check("other@mail.example.org", parent).as_deref(),
        Some("REJECT")
    );
    // …without it, only an explicit .example.org entry would.
    assert_eq!(
        check("other@mail.example.org", ParentStyle::DotParent),
        None
    );
    assert_eq!(check("friend@elsewhere.net", parent).as_deref(), Some("OK"));
    assert_eq!(check("nobody@example.com", parent), None);
}

#[test]
fn pattern_tables_see_only_the_full_key() {
    let ctx = OpenCtx::new();
    let t = Tables::open(
        r"regexp:{ {/^example\.org$/ REJECT domain}, {/^user@/ OK user} }",
        &ctx,
    )
    .unwrap();
    let opts = AddressOptions::default();
    // "example.org" and "user@" are partial keys: a regexp table is not asked for them.
    assert_eq!(
        value(access_address(
            &t,
            "joe@example.org",
            &opts,
            ParentStyle::Parent
        )),
        None
    );
    assert_eq!(
        value(access_address(
            &t,
            "user@example.org",
            &opts,
            ParentStyle::Parent
        ))
        .as_deref(),
        Some("OK user")
    );
}

#[test]
fn client_names_and_addresses() {
    assert_eq!(
        keys(&client_address_probes("192.168.1.25")),
        vec![
            "192.168.1.25",
            "192.168.1 (fixed)",
            "192.168 (fixed)",
            "192 (fixed)"
        ]
    );
    assert_eq!(
        keys(&client_address_probes("2001:db8::25")),
        vec![
            "2001:db8::25",
            "2001:db8: (fixed)",
            "2001:db8 (fixed)",
            "2001 (fixed)"
        ]
    );
    assert_eq!(
        keys(&domain_probes("1.2.3.4", ParentStyle::Parent)),
        vec!["1.2.3.4"]
    );
    let t = Tables::open(
        "inline:{ {192.168 = REJECT lan}, example.com=OK, {2001:db8 = REJECT doc} }, cidr:{ {10.0.0.0/8 DUNNO ten} }",
        &OpenCtx::new(),
    )
    .unwrap();
    let client = |name: &str, addr: &str| value(access_client(&t, name, addr, ParentStyle::Parent));
    assert_eq!(
        client("unknown", "192.168.7.7").as_deref(),
        Some("REJECT lan")
    );
    assert_eq!(
        client("mx.example.com", "192.168.7.7").as_deref(),
        Some("OK")
    );
    assert_eq!(
        client("unknown", "2001:db8::1").as_deref(),
        Some("REJECT doc")
    );
    assert_eq!(client("unknown", "10.1.1.1").as_deref(), Some("DUNNO ten"));
    assert_eq!(client("unknown", "8.8.8.8"), None);
    assert_eq!(
        value(access_domain(&t, "helo.example.com", ParentStyle::Parent)).as_deref(),
        Some("OK")
    );
}

#[test]
fn virtual_catch_all_and_local_part_keys() {
    let dir = TempDir::new("virtual");
    let t = hash(
        &dir,
        "virtual",
        "postmaster@example.org  admin@example.net\n\
         info@example.org        joe@example.net, jane@example.net\n\
         @example.org            bounce-local\n\
         root                    admin@example.net\n",
    );
    let opts = AddressOptions::with_delimiter("+");
    let local = |d: &str| d == "localhost";
    let find = |a: &str| value(virtual_alias(&t, a, &opts, &local));
    assert_eq!(
        find("postmaster@example.org").as_deref(),
        Some("admin@example.net")
    );
    let f = virtual_alias(&t, "info+news@example.org", &opts, &local)
        .unwrap()
        .unwrap();
    assert_eq!(f.key, "info@example.org");
    assert_eq!(f.extension.as_deref(), Some("+news"));
    assert_eq!(find("anyone@example.org").as_deref(), Some("bounce-local"));
    // `root` alone is tried only for local domains (virtual(5)).
    assert_eq!(find("root@localhost").as_deref(), Some("admin@example.net"));
    assert_eq!(find("root@example.com"), None);
    assert_eq!(
        keys(&address_probes(
            "a+b@localhost",
            &Strategy::DEFAULT,
            &opts,
            &local
        )),
        vec![
            "a+b@localhost",
            "a@localhost (fixed)",
            "a+b (fixed)",
            "a (fixed)",
            "@localhost (fixed)"
        ]
    );
}

#[test]
fn map_address_rewrites_domains_and_propagates_extensions() {
    let t = Tables::open(
        "inline:{ @example.com=@example.net, { info@example.org = joe@example.net, \"jane doe\"@example.net } }",
        &OpenCtx::new(),
    )
    .unwrap();
    let opts = AddressOptions::with_delimiter("+");
    assert_eq!(
        map_address(&t, "bob+x@example.com", &opts, &|_| false, true).unwrap(),
        Some(vec!["bob+x@example.net".to_string()])
    );
    assert_eq!(
        map_address(&t, "info+y@example.org", &opts, &|_| false, true).unwrap(),
        Some(vec![
            "joe+y@example.net".to_string(),
            "jane doe+y@example.net".to_string()
        ])
    );
    assert_eq!(
        map_address(&t, "info+y@example.org", &opts, &|_| false, false).unwrap(),
        Some(vec![
            "joe@example.net".to_string(),
            "jane doe@example.net".to_string()
        ])
    );
    assert_eq!(
        map_address(&t, "x@example.org", &opts, &|_| false, true).unwrap(),
        None
    );
}

#[test]
fn relocated_entries() {
    let dir = TempDir::new("relocated");
    let t = hash(
        &dir,
        "relocated",
        "# relocated(5)\nusername@example.com  otheruser@otherdomain.tld\n@example.net  example.org\n",
    );
    let opts = AddressOptions::default();
    let find = |a: &str| value(relocated(&t, a, &opts, &|_| false));
    assert_eq!(
        find("UserName@example.com").as_deref(),
        Some("otheruser@otherdomain.tld")
    );
    assert_eq!(find("anyone@example.net").as_deref(), Some("example.org"));
    assert_eq!(find("username@example.org"), None);
}

#[test]
fn transport_maps_example() {
    let dir = TempDir::new("transport");
    // transport(5) EXAMPLES.
    let t = hash(
        &dir,
        "transport",
        "example.com      smtp:bar.example:2025\n\
         .example.com     error:mail for *.example.com is not deliverable\n\
         user@example.org relay:[mx.example.org]\n",
    );
    let opts = AddressOptions::with_delimiter("+");
    let style =
        ParentStyle::for_feature(DEFAULT_PARENT_DOMAIN_MATCHES_SUBDOMAINS, "transport_maps");
    assert_eq!(style, ParentStyle::DotParent);
    let route = |a: &str| {
        transport(&t, a, &opts, style)
            .unwrap()
            .map(|f| TransportEntry::parse(&f.value))
    };
    let foo = route("joe@example.com").unwrap();
    assert_eq!(
        (foo.transport.as_str(), foo.nexthop.as_str()),
        ("smtp", "bar.example:2025")
    );
    let sub = route("joe@mail.example.com").unwrap();
    assert_eq!(sub.transport, "error");
    assert_eq!(sub.nexthop, "mail for *.example.com is not deliverable");
    assert_eq!(
        route("user+x@example.org").unwrap().nexthop,
        "[mx.example.org]"
    );
    assert_eq!(route("joe@example.net"), None);
    // The `*` wildcard comes last.
    let wild = Tables::open(
        "inline:{ example.com=local:, *=smtp:[relay.example] }",
        &OpenCtx::new(),
    )
    .unwrap();
    let w = transport(&wild, "a@b.example.com", &opts, style)
        .unwrap()
        .unwrap();
    assert_eq!(
        (w.key.as_str(), w.value.as_str()),
        ("*", "smtp:[relay.example]")
    );
}

#[test]
fn quoted_local_parts_are_tried_quoted_first() {
    let t = Tables::open(
        "inline:{ {\"john smith\"@example.com = OK quoted} }",
        &OpenCtx::new(),
    )
    .unwrap();
    let opts = AddressOptions::default();
    let f = access_address(&t, "john smith@example.com", &opts, ParentStyle::Parent)
        .unwrap()
        .unwrap();
    assert_eq!(f.value, "OK quoted");
    assert_eq!(f.key, "\"john smith\"@example.com");
}

#[test]
fn lookup_errors_end_the_search() {
    let t = Tables::open("inline:{ x=1 }, fail:broken", &OpenCtx::new()).unwrap();
    let opts = AddressOptions::default();
    assert!(access_address(&t, "a@example.com", &opts, ParentStyle::Parent).is_err());
    // Partial keys skip the fail: pattern table, the full key stops at it.
    assert!(virtual_alias(&t, "x@y", &opts, &|_| false).is_err());
}

/// A table that counts its round trips.
#[derive(Debug)]
struct Remote {
    calls: AtomicUsize,
}

impl Table for Remote {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok((key == "example.org").then(|| "REJECT".to_string()))
    }
    fn kind(&self) -> Kind {
        Kind::Fixed
    }
    fn spec(&self) -> &str {
        "remote:test"
    }
    fn lookup_first(&self, keys: &[String]) -> Result<Option<(usize, String)>, LookupError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(keys
            .iter()
            .position(|k| k == "example.org")
            .map(|i| (i, "REJECT".to_string())))
    }
}

#[test]
fn a_single_table_gets_the_whole_search_in_one_call() {
    let remote = Arc::new(Remote {
        calls: AtomicUsize::new(0),
    });
    let t = Tables::from_tables(vec![remote.clone()]);
    let f = access_address(
        &t,
        "joe+x@example.org",
        &AddressOptions::with_delimiter("+"),
        ParentStyle::Parent,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (f.key.as_str(), f.value.as_str()),
        ("example.org", "REJECT")
    );
    assert_eq!(remote.calls.load(Ordering::Relaxed), 1);
    let _ = open_table("static:x", &OpenCtx::new()).unwrap();
}
