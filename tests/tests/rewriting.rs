//! Address rewriting and routing through the real daemon: virtual(5) aliases, aliases(5),
//! canonical(5), masquerading, transport(5), virtual mailboxes and the FILTER action. Tables
//! are built with `postern map build` / `postern alias build`, as an administrator would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern_tests::{postern_bin, read_maildir, Server, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// Writes `name` in `dir` and compiles it with `postern map build` (or `alias build`).
fn build(dir: &Path, name: &str, text: &str, what: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write table source");
    let out = Command::new(postern_bin())
        .args([what, "build", &path.display().to_string()])
        .output()
        .expect("run postern build");
    assert!(
        out.status.success(),
        "{what} build {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("hash:{}", path.display())
}

fn send(server: &Server, from: &str, to: &[&str], body: &str) {
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from(from, "250");
    for rcpt in to {
        s.rcpt_to(rcpt, "250");
    }
    s.data(body, "250");
    s.cmd("QUIT", "221");
}

fn msg(subject: &str) -> String {
    format!("From: a@example.org\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n")
}

#[test]
fn virtual_catch_all_goes_to_a_local_mailbox() {
    let t = TempDir::new("rw-virtual");
    let virt = build(
        t.path(),
        "virtual",
        "info@example.org  someone@localhost\n@example.org  bounce-local\n",
        "map",
    );
    let server = Server::start(&format!(
        "virtual_alias_domains = example.org\nvirtual_alias_maps = {virt}"
    ));
    send(
        &server,
        "alice@example.net",
        &["Anyone@example.org", "info@example.org"],
        &msg("catch-all"),
    );
    let got = server.wait_for_mail("bounce-local", 1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", server.log());
    assert!(got[0].contains("Delivered-To: bounce-local@mx.example.test"));
    let got = server.wait_for_mail("someone", 1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", server.log());
}

#[test]
fn aliases_expand_lists_includes_and_commands() {
    let t = TempDir::new("rw-alias");
    let members = t.path().join("members");
    std::fs::write(&members, "# the list\ncarol, dave\n").expect("members");
    let piped = t.path().join("piped");
    let aliases = build(
        t.path(),
        "aliases",
        &format!(
            "root: someuser\nstaff: alice,\n  bob\nlist: :include:{}\npipe: \"|cat > {}\"\n",
            members.display(),
            piped.display()
        ),
        "alias",
    );
    let server = Server::start(&format!("alias_maps = {aliases}"));
    send(
        &server,
        "x@example.net",
        &["root@localhost"],
        &msg("to root"),
    );
    send(
        &server,
        "x@example.net",
        &["staff@localhost"],
        &msg("to staff"),
    );
    send(
        &server,
        "x@example.net",
        &["list@localhost"],
        &msg("to list"),
    );
    send(
        &server,
        "x@example.net",
        &["pipe@localhost"],
        &msg("to pipe"),
    );
    for (user, subject) in [
        ("someuser", "to root"),
        ("alice", "to staff"),
        ("bob", "to staff"),
        ("carol", "to list"),
        ("dave", "to list"),
    ] {
        let got = server.wait_for_mail(user, 1, WAIT);
        assert_eq!(got.len(), 1, "{user}; log:\n{}", server.log());
        assert!(got[0].contains(&format!("Subject: {subject}")), "{user}");
    }
    server.wait_for_log("delivered to command", WAIT);
    let text = std::fs::read_to_string(&piped).unwrap_or_default();
    assert!(text.starts_with("From x@example.net "), "{text}");
    assert!(text.contains("Delivered-To: pipe@localhost\n"), "{text}");
    assert!(text.contains("Subject: to pipe\n"), "{text}");
    assert!(read_maildir(&server.maildir_new("root")).is_empty());
}

#[test]
fn canonical_sender_rewrite_and_masquerading() {
    let t = TempDir::new("rw-canon");
    let canon = build(
        t.path(),
        "sender_canonical",
        "alice@example.org  Alice.Smith@example.org\n",
        "map",
    );
    let server = Server::start(&format!(
        "sender_canonical_maps = {canon}\nmasquerade_domains = example.net"
    ));
    let body = "From: Alice <alice@example.org>\r\nTo: bob@localhost\r\n\
                Subject: canon\r\n\r\nhi\r\n";
    send(&server, "alice@example.org", &["bob@localhost"], body);
    send(
        &server,
        "joe@host.example.net",
        &["carol@localhost"],
        &msg("masq"),
    );
    let got = server.wait_for_mail("bob", 1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", server.log());
    assert!(
        got[0].starts_with("Return-Path: <Alice.Smith@example.org>\n"),
        "{}",
        got[0]
    );
    // canonical_classes has header_sender: the From: header follows the envelope sender.
    assert!(
        got[0].contains("\nFrom: Alice <Alice.Smith@example.org>\n"),
        "{}",
        got[0]
    );
    let got = server.wait_for_mail("carol", 1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", server.log());
    assert!(
        got[0].starts_with("Return-Path: <joe@example.net>\n"),
        "{}",
        got[0]
    );
}

#[test]
fn transport_maps_error_route_bounces() {
    let t = TempDir::new("rw-transport");
    let transport = build(
        t.path(),
        "transport",
        "example.com  smtp:bar.example:2025\n\
         .example.com error:mail for *.example.com is not deliverable\n",
        "map",
    );
    let server = Server::start(&format!("transport_maps = {transport}"));
    send(
        &server,
        "carol@localhost",
        &["x@sub.example.com"],
        &msg("to a subdomain"),
    );
    let bounce = server.wait_for_mail("carol", 1, WAIT);
    assert_eq!(bounce.len(), 1, "log:\n{}", server.log());
    assert!(
        bounce[0].contains("mail for *.example.com is not deliverable"),
        "{}",
        bounce[0]
    );
    let log = server.log();
    assert!(log.contains("to=<x@sub.example.com>, relay=none"), "{log}");
    assert!(log.contains("status=bounced (mail for *.example.com is not deliverable)"));
}

#[test]
fn virtual_mailbox_domains_deliver_to_maildirs() {
    let t = TempDir::new("rw-vmail");
    let base = t.path().join("vmail");
    let maps = build(
        t.path(),
        "vmailbox",
        "joe@vhost.example  vhost.example/joe/\n",
        "map",
    );
    let server = Server::start(&format!(
        "virtual_mailbox_domains = vhost.example\nvirtual_mailbox_base = {}\n\
         virtual_mailbox_maps = {maps}\nrecipient_delimiter = +",
        base.display()
    ));
    send(
        &server,
        "a@example.net",
        &["joe+x@vhost.example"],
        &msg("virtual"),
    );
    server.wait_for_log("status=sent (delivered to maildir)", WAIT);
    let got = read_maildir(&base.join("vhost.example/joe/new"));
    assert_eq!(got.len(), 1, "log:\n{}", server.log());
    assert!(got[0].contains("Delivered-To: joe+x@vhost.example\n"));
}

#[test]
fn filter_action_routes_the_whole_message() {
    let t = TempDir::new("rw-filter");
    let access = build(
        t.path(),
        "access",
        "filtered@localhost  FILTER discard:content filter\n",
        "map",
    );
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_recipient_access {access}, \
         permit_mynetworks, reject_unauth_destination"
    ));
    send(
        &server,
        "a@example.net",
        &["filtered@localhost", "other@localhost"],
        &msg("filtered"),
    );
    let log = server.wait_for_log("to=<other@localhost>", WAIT);
    assert!(
        log.contains("to=<filtered@localhost>, relay=none"),
        "log:\n{log}"
    );
    assert!(log.contains("status=sent (content filter)"), "{log}");
    assert!(read_maildir(&server.maildir_new("filtered")).is_empty());
    assert!(read_maildir(&server.maildir_new("other")).is_empty());
}

#[test]
fn aliases_forward_remote_addresses_and_detect_loops() {
    let t = TempDir::new("rw-forward");
    let aliases = build(
        t.path(),
        "aliases",
        "fwd: someone@elsewhere.example\nloop: back@other.example\n",
        "alias",
    );
    let server = Server::start(&format!(
        "alias_maps = {aliases}\n\
         transport_maps = inline:{{ {{elsewhere.example=discard:forwarded ok}} }}\n\
         virtual_alias_maps = inline:{{ back@other.example=loop@localhost }}"
    ));
    send(
        &server,
        "carol@localhost",
        &["fwd@localhost"],
        &msg("forward me"),
    );
    let log = server.wait_for_log("status=sent (forwarded ok)", WAIT);
    assert!(log.contains("to=<fwd@localhost>, relay=local"), "{log}");
    assert!(log.contains("status=sent (forwarded as "), "{log}");
    assert!(
        log.contains("to=<someone@elsewhere.example>, relay=none"),
        "{log}"
    );

    // loop@localhost → back@other.example → (virtual) loop@localhost: the copy that comes back
    // carries Delivered-To: loop@localhost and bounces instead of circling forever.
    send(
        &server,
        "carol@localhost",
        &["loop@localhost"],
        &msg("loop"),
    );
    let bounce = server.wait_for_mail("carol", 1, WAIT);
    assert_eq!(bounce.len(), 1, "log:\n{}", server.log());
    assert!(
        bounce[0].contains("mail forwarding loop for loop@localhost"),
        "{}",
        bounce[0]
    );
}
