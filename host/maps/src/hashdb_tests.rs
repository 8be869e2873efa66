use super::*;
use crate::testutil::TempDir;
use crate::{open_table, OpenCtx};

#[test]
fn build_and_query_round_trip() {
    let dir = TempDir::new("hash");
    let src = dir.write(
        "access",
        "# access(5)\nuser@Example.ORG   OK\nexample.org REJECT\n  spam, go away\nbroken\n\
         example.org DUNNO\n",
    );
    let report = build_hash(&src).unwrap();
    assert_eq!(report.entries, 2);
    assert_eq!(report.path, dir.path().join("access.pdb"));
    let w: Vec<String> = report.warnings.iter().map(|w| w.to_string()).collect();
    let file = src.display();
    assert_eq!(
        w,
        vec![
            format!("{file}, line 5: expected format: key whitespace value -- ignoring this line"),
            format!("{file}, line 6: duplicate entry: \"example.org\" (the first one is used)"),
        ]
    );
    let t = open_table(&format!("hash:{}", src.display()), &OpenCtx::new()).unwrap();
    assert_eq!(t.kind(), Kind::Fixed);
    assert_eq!(t.lookup("USER@example.org").unwrap().as_deref(), Some("OK"));
    assert_eq!(
        t.lookup("example.org").unwrap().as_deref(),
        Some("REJECT  spam, go away")
    );
    assert_eq!(t.lookup("example.com").unwrap(), None);
    assert_eq!(t.lookup("").unwrap(), None);
}

#[test]
fn hundred_thousand_entries() {
    let dir = TempDir::new("hash100k");
    let mut text = String::with_capacity(100_000 * 40);
    for i in 0..100_000 {
        text.push_str(&format!(
            "user{i}@example{}.com relay{i}.example:25\n",
            i % 97
        ));
    }
    let src = dir.write("virtual", &text);
    let report = build_hash(&src).unwrap();
    assert_eq!(report.entries, 100_000);
    assert!(report.warnings.is_empty());
    let t = HashTable::open(&src).unwrap();
    assert_eq!(t.len(), 100_000);
    for i in (0..100_000).step_by(7) {
        let key = format!("USER{i}@example{}.com", i % 97);
        assert_eq!(
            t.lookup(&key).unwrap(),
            Some(format!("relay{i}.example:25")),
            "{key}"
        );
        assert_eq!(t.lookup(&format!("user{i}@nowhere")).unwrap(), None);
    }
}

#[test]
fn empty_source_builds_an_empty_index() {
    let dir = TempDir::new("hash-empty");
    let src = dir.write("empty", "# nothing\n");
    assert_eq!(build_hash(&src).unwrap().entries, 0);
    let t = HashTable::open(&src).unwrap();
    assert!(t.is_empty());
    assert_eq!(t.lookup("x").unwrap(), None);
}

#[test]
fn missing_and_corrupt_indexes_are_fatal() {
    let dir = TempDir::new("hash-bad");
    let src = dir.write("t", "a b\n");
    let err = HashTable::open(&src).unwrap_err().to_string();
    assert!(
        err.contains("t.pdb: no such file (build it with: postern map build hash:"),
        "{err}"
    );
    dir.write(
        "t.pdb",
        "not an index at all, but long enough to have a header......",
    );
    let err = HashTable::open(&src).unwrap_err().to_string();
    assert!(err.contains("not a Postern hash index"), "{err}");
    build_hash(&src).unwrap();
    let db = dir.path().join("t.pdb");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() - 1]).unwrap();
    let err = HashTable::open(&src).unwrap_err().to_string();
    assert!(err.contains("truncated or inconsistent index"), "{err}");
}

#[test]
fn rebuilding_makes_the_open_table_stale() {
    let dir = TempDir::new("hash-stale");
    let src = dir.write("t", "a 1\n");
    build_hash(&src).unwrap();
    let t = HashTable::open(&src).unwrap();
    assert!(!t.is_stale());
    assert!(t.warnings().is_empty());
    dir.write("t", "a 2\n");
    build_hash(&src).unwrap();
    assert!(t.is_stale());
    // The old mapping still answers from the old inode until the daemon reopens.
    assert_eq!(t.lookup("a").unwrap().as_deref(), Some("1"));
    assert_eq!(
        HashTable::open(&src)
            .unwrap()
            .lookup("a")
            .unwrap()
            .as_deref(),
        Some("2")
    );
}

#[test]
fn an_index_older_than_its_source_is_a_warning() {
    let dir = TempDir::new("hash-old");
    let src = dir.write("t", "a 1\n");
    build_hash(&src).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let f = std::fs::File::options().write(true).open(&src).unwrap();
    f.set_modified(later).unwrap();
    let t = HashTable::open(&src).unwrap();
    assert!(t.warnings()[0]
        .message
        .starts_with("database is older than source file"));
}
