//! The command line as an admin uses it: check (including lookup tables), conf, queue, newaliases.

use postern_tests::Server;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_reports_bad_values_with_file_and_line() {
    let server = Server::start("");
    let main_cf = server.dir.path().join("main.cf");
    let mut text = std::fs::read_to_string(&main_cf).expect("main.cf");
    text.push_str("message_size_limit = 10MB\nmydestnation = typo.example\n");
    std::fs::write(&main_cf, text).expect("write");
    let out = server.cli(&["check"]);
    assert!(!out.status.success());
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("main.cf:") && all.contains("message_size_limit"),
        "{all}"
    );
    assert!(
        all.contains("mydestination"),
        "did-you-mean hint missing: {all}"
    );
}

#[test]
fn conf_shows_explicit_and_default_parameters() {
    let server = Server::start("smtpd_recipient_limit = 77");
    let n = stdout(&server.cli(&["conf", "-n"]));
    assert!(n.contains("smtpd_recipient_limit = 77"), "{n}");
    let d = stdout(&server.cli(&["conf", "-d", "smtpd_recipient_limit"]));
    assert!(d.contains("smtpd_recipient_limit = 1000"), "{d}");
    let e = server.cli(&["conf", "-e", "smtpd_recipient_limit=88"]);
    assert!(e.status.success(), "{}", stderr(&e));
    let one = stdout(&server.cli(&["conf", "smtpd_recipient_limit"]));
    assert_eq!(one.trim(), "smtpd_recipient_limit = 88");
}

#[test]
fn deferred_mail_is_listed_held_released_and_deleted() {
    // Remote mail from a trusted client is accepted and deferred (the relay host refuses).
    let server = Server::start("relayhost = [127.0.0.1]:1");
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250");
    s.rcpt_to("someone@remote.example", "250");
    let id =
        postern_tests::TestSession::queue_id(&s.data("Subject: remote\r\n\r\nx\r\n", "250 2.0.0"));
    s.cmd("QUIT", "221");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.queue_files("deferred").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let list = stdout(&server.cli(&["queue", "list"]));
    assert!(
        list.contains(&id) && list.contains("someone@remote.example"),
        "{list}"
    );
    assert!(server.cli(&["queue", "hold", &id]).status.success());
    assert_eq!(server.queue_files("hold").len(), 1);
    assert!(server.cli(&["queue", "release", &id]).status.success());
    assert!(server.queue_files("hold").is_empty());
    assert!(server.cli(&["queue", "delete", &id]).status.success());
    let list = stdout(&server.cli(&["queue", "list"]));
    assert!(!list.contains(&id), "{list}");
}

#[test]
fn check_fails_on_an_unknown_restriction_that_the_daemon_survives() {
    let server = Server::start("smtpd_recipient_restrictions = reject_unauth_destinaton");
    let out = server.cli(&["check"]);
    assert!(!out.status.success());
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("error:") && all.contains("reject_unauth_destinaton"),
        "{all}"
    );
    assert!(
        all.contains("reject_unauth_destination"),
        "did-you-mean: {all}"
    );
    // The running daemon answers Postfix's "Server configuration error" instead of permitting.
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250");
    s.rcpt_to("user@localhost", "451 4.3.5");
}

#[test]
fn check_opens_every_table_and_the_daemon_logs_broken_lines() {
    let server = Server::start("");
    let dir = server.dir.path();
    let checks = dir.join("header_checks");
    std::fs::write(
        &checks,
        "/^Subject: Make money fast/ REJECT\n/[unclosed/ REJECT\n",
    )
    .expect("write");
    let access = dir.join("access");
    std::fs::write(&access, "user@example.org OK\nexample.org REJECT\n").expect("write");
    let main_cf = dir.join("main.cf");
    let mut text = std::fs::read_to_string(&main_cf).expect("main.cf");
    text.push_str(&format!(
        "header_checks = regexp:{}\nsmtpd_recipient_restrictions = check_recipient_access \
         hash:{}, reject_unauth_destination\n",
        checks.display(),
        access.display()
    ));
    std::fs::write(&main_cf, text).expect("write");

    // The broken line is a warning (Postfix skips it); the unbuilt hash table is an error.
    let out = server.cli(&["check"]);
    let all = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("warning: {}:2: ", checks.display())),
        "{all}"
    );
    assert!(
        all.contains("error: smtpd_recipient_restrictions: hash:")
            && all.contains("postern map build"),
        "{all}"
    );

    let built = server.cli(&["map", "build", &format!("hash:{}", access.display())]);
    assert!(built.status.success(), "{}", stderr(&built));
    let out = server.cli(&["check"]);
    let all = stdout(&out) + &stderr(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("warning: {}:2: ", checks.display())),
        "{all}"
    );

    // The running daemon logs the skipped line when it reloads the configuration.
    assert!(server.cli(&["reload"]).status.success());
    let needle = format!("{}, line 2:", checks.display());
    let log = server.wait_for_log(&needle, std::time::Duration::from_secs(10));
    assert!(log.contains(&needle), "{log}");
}

#[test]
fn newaliases_builds_every_alias_database() {
    let server = Server::start("");
    let dir = server.dir.path();
    let aliases = dir.join("aliases");
    std::fs::write(&aliases, "root: admin\npostmaster: root\n").expect("write");
    let pdb = dir.join("aliases.pdb");

    // The default alias_database ($alias_maps) is empty in Postern.
    let out = server.cli(&["alias", "build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("alias_database is empty; nothing to build"),
        "{}",
        stdout(&out)
    );

    let main_cf = dir.join("main.cf");
    let mut text = std::fs::read_to_string(&main_cf).expect("main.cf");
    text.push_str(&format!("alias_database = hash:{}\n", aliases.display()));
    std::fs::write(&main_cf, text).expect("write");
    for argv in [
        &["sendmail", "-bi"][..],
        &["sendmail", "-I"],
        &["alias", "build"],
    ] {
        let _ = std::fs::remove_file(&pdb);
        let out = server.cli(argv);
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
        assert!(pdb.exists(), "{argv:?} did not build {}", pdb.display());
    }
    let q = server.cli(&[
        "map",
        "query",
        &format!("hash:{}", aliases.display()),
        "postmaster",
    ]);
    assert_eq!(stdout(&q), "root\n");
}

#[test]
fn flush_of_one_site_retries_only_its_mail() {
    // Both destinations are deferred (the relay host refuses connections).
    let server = Server::start("relayhost = [127.0.0.1]:1");
    let mut ids = Vec::new();
    for rcpt in ["someone@a.example", "someone@b.example"] {
        let mut s = server.connect();
        s.ehlo("client.example.org");
        s.mail_from("a@example.org", "250");
        s.rcpt_to(rcpt, "250");
        ids.push(postern_tests::TestSession::queue_id(
            &s.data("Subject: remote\r\n\r\nx\r\n", "250 2.0.0"),
        ));
        s.cmd("QUIT", "221");
    }
    let wait = std::time::Duration::from_secs(10);
    let deadline = std::time::Instant::now() + wait;
    while server.queue_files("deferred").len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = server.cli(&["queue", "flush", "A.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains(&format!("{}: requeued", ids[0])), "{said}");
    assert!(!said.contains(&ids[1]), "{said}");
    // The daemon tries the a.example message again at once; b.example keeps its retry time.
    let attempts = |id: &str| {
        server
            .log()
            .lines()
            .filter(|l| l.contains(&format!("{id}: to=<")))
            .count()
    };
    let deadline = std::time::Instant::now() + wait;
    while attempts(&ids[0]) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(attempts(&ids[0]), 2, "{}", server.log());
    assert_eq!(attempts(&ids[1]), 1, "{}", server.log());
}
