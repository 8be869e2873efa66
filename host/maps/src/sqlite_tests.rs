use super::*;
use crate::testutil::TempDir;
use crate::{open_table, Scope, Tables};

fn setup(dir: &TempDir, cf: &str) -> Arc<dyn Table> {
    let db = dir.path().join("mail.sqlite");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE aliases (mailbox TEXT, goto TEXT, active INT);
         INSERT INTO aliases VALUES ('info@example.com', 'alice@example.com', 1);
         INSERT INTO aliases VALUES ('info@example.com', 'bob@example.com', 1);
         INSERT INTO aliases VALUES ('o''brien@example.com', 'ob@example.net', 1);
         INSERT INTO aliases VALUES ('old@example.com', 'gone@example.com', 0);
         INSERT INTO aliases VALUES ('null@example.com', NULL, 1);
         CREATE TABLE domains (domain TEXT, transport TEXT);
         INSERT INTO domains VALUES ('example.com', 'relay.example.com');",
    )
    .unwrap();
    drop(conn);
    let cf = dir.write("sqlite.cf", &cf.replace("DB", &db.display().to_string()));
    open_table(&format!("sqlite:{}", cf.display()), &OpenCtx::new()).unwrap()
}

#[test]
fn query_template_with_quoting_and_multiple_rows() {
    let dir = TempDir::new("sqlite");
    let t = setup(
        &dir,
        "# virtual aliases\ndbpath = DB\nquery = SELECT goto FROM aliases\n  WHERE mailbox = '%s' AND active = 1\n",
    );
    assert_eq!(t.kind(), Kind::Fixed);
    assert_eq!(
        t.lookup("Info@Example.COM").unwrap().as_deref(),
        Some("alice@example.com,bob@example.com")
    );
    // The key's quote is doubled, so it neither breaks nor changes the query.
    assert_eq!(
        t.lookup("o'brien@example.com").unwrap().as_deref(),
        Some("ob@example.net")
    );
    assert_eq!(t.lookup("x' OR '1'='1").unwrap(), None);
    assert_eq!(t.lookup("old@example.com").unwrap(), None);
    assert_eq!(t.lookup("null@example.com").unwrap(), None);
}

#[test]
fn user_domain_and_label_expansions() {
    let dir = TempDir::new("sqlite-parts");
    let t = setup(
        &dir,
        "dbpath = DB\nquery = SELECT transport FROM domains WHERE domain = '%2.%1'\n\
         result_format = smtp:[%s] for %U\n",
    );
    assert_eq!(
        t.lookup("joe@mail.example.com").unwrap().as_deref(),
        Some("smtp:[relay.example.com] for joe")
    );
    // Too few labels, or no domain at all: not queried, not found.
    assert_eq!(t.lookup("joe@localhost").unwrap(), None);
    assert_eq!(t.lookup("example.com").unwrap(), None);
    let dir2 = TempDir::new("sqlite-d");
    let t = setup(
        &dir2,
        "dbpath = DB\nquery = SELECT transport FROM domains WHERE domain = '%d'\n",
    );
    assert_eq!(
        t.lookup("a@example.com").unwrap().as_deref(),
        Some("relay.example.com")
    );
    assert_eq!(t.lookup("example.com").unwrap(), None);
}

#[test]
fn domain_filter_and_expansion_limit() {
    let dir = TempDir::new("sqlite-limit");
    let t = setup(
        &dir,
        "dbpath = DB\nquery = SELECT goto FROM aliases WHERE mailbox = '%s'\n\
         domain = example.net, inline:{example.com=yes}\nexpansion_limit = 1\n",
    );
    assert_eq!(
        t.lookup("o'brien@example.com").unwrap().as_deref(),
        Some("ob@example.net")
    );
    assert!(matches!(
        t.lookup("info@example.com"),
        Err(LookupError::Temporary(_))
    ));
    // Not in a listed domain, a bare domain, or an empty local part: never queried.
    assert_eq!(t.lookup("info@example.org").unwrap(), None);
    assert_eq!(t.lookup("example.com").unwrap(), None);
    assert_eq!(t.lookup("@example.com").unwrap(), None);
    let list = Tables::from_tables(vec![t]);
    assert!(list.find("info@example.com", Scope::Partial).is_err());
}

#[test]
fn bad_configurations() {
    let dir = TempDir::new("sqlite-bad");
    let cf = dir.write("no-db.cf", "query = SELECT 1\n");
    let err = open_table(&format!("sqlite:{}", cf.display()), &OpenCtx::new()).unwrap_err();
    assert!(err.to_string().contains("missing dbpath"), "{err}");
    let cf = dir.write(
        "bad.cf",
        "dbpath = /nonexistent/x.sqlite\n\nquery = SELECT '%x'\n",
    );
    let err = open_table(&format!("sqlite:{}", cf.display()), &OpenCtx::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("bad.cf, line 3: invalid query template"),
        "{err}"
    );
    let cf = dir.write(
        "nodb.cf",
        "dbpath = /nonexistent/x.sqlite\nquery = SELECT '%s'\n",
    );
    let err = open_table(&format!("sqlite:{}", cf.display()), &OpenCtx::new()).unwrap_err();
    assert!(
        err.to_string().contains("cannot open SQLite database"),
        "{err}"
    );
    // SQL that does not prepare is a configuration error at lookup time, never "not found".
    let t = setup(
        &dir,
        "dbpath = DB\nquery = SELECT nope FROM missing WHERE x = '%s'\n",
    );
    assert!(matches!(t.lookup("a@b"), Err(LookupError::Config(_))));
}

#[test]
fn legacy_parameters_build_the_query() {
    let dir = TempDir::new("sqlite-legacy");
    let t = setup(
        &dir,
        "dbpath = DB\nselect_field = goto\ntable = aliases\nwhere_field = mailbox\n\
         additional_conditions = AND active = 1\n",
    );
    assert_eq!(t.lookup("old@example.com").unwrap(), None);
    assert_eq!(
        t.lookup("o'brien@example.com").unwrap().as_deref(),
        Some("ob@example.net")
    );
}
