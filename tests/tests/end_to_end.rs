//! Real clients as users use them: swaks, Python's smtplib and `postern sendmail`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use postern_tests::{postern_bin, require, Server};

#[test]
fn swaks_delivers_to_maildir() {
    if !require("swaks") {
        return;
    }
    let server = Server::start("");
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &server.port.to_string()])
        .args(["--from", "alice@example.org", "--to", "bob@localhost"])
        .args([
            "--helo",
            "client.example.org",
            "--header",
            "Subject: via swaks",
        ])
        .args(["--timeout", "10"])
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let mail = server.wait_for_mail("bob", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    assert!(mail[0].contains("Subject: via swaks"));
}

#[test]
fn python_smtplib_sends_with_pipelining_and_dsn() {
    if !require("python3") {
        return;
    }
    // 127.0.0.1 must not be a trusted network here, so the relay check applies.
    let server = Server::start("mynetworks = 192.0.2.0/24");
    let script = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "carol@example.org"
m["To"] = "dave@localhost"
m["Subject"] = "via smtplib"
m.set_content("héllo wörld\n" * 3)
with smtplib.SMTP("127.0.0.1", {port}, timeout=10) as s:
    s.ehlo("client.example.org")
    assert s.has_extn("pipelining") and s.has_extn("dsn") and s.has_extn("smtputf8")
    refused = s.send_message(m, mail_options=["RET=HDRS", "ENVID=abc123"], rcpt_options=["NOTIFY=FAILURE,DELAY"])
    assert refused == {{}}, refused
    try:
        s.sendmail("carol@example.org", ["x@not-ours.example"], "Subject: relay\r\n\r\nno\r\n")
        raise SystemExit("relay was accepted from a non-mynetworks client")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["x@not-ours.example"][0]
        assert code == 454, code
print("ok")
"#,
        port = server.port
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "smtplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = server.wait_for_mail("dave", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: via smtplib"));
}

#[test]
fn sendmail_submission_is_picked_up_by_the_daemon() {
    let server = Server::start("");
    let mut child = Command::new(postern_bin())
        .arg("-c")
        .arg(server.dir.path())
        .args(["sendmail", "-f", "root@localhost", "erin@localhost"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("postern sendmail");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"Subject: via sendmail\n\nlocal submission\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let mail = server.wait_for_mail("erin", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
    let m = &mail[0];
    assert!(m.contains("Subject: via sendmail"));
    assert!(
        m.contains("\nlocal submission\n"),
        "line endings normalised: {m:?}"
    );
    assert!(m.contains("Date: ") && m.contains("Message-ID: "), "{m}");
}

#[test]
fn sendmail_works_while_the_daemon_is_down() {
    let mut server = Server::start("");
    server.stop();
    let mut child = Command::new(postern_bin())
        .arg("-c")
        .arg(server.dir.path())
        .args(["sendmail", "-t"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("postern sendmail");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"To: Frank <frank@localhost>\nSubject: queued offline\n\nhi\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    assert_eq!(server.queue_files("maildrop").len(), 1);
    server.spawn();
    let mail = server.wait_for_mail("frank", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "log:\n{}", server.log());
}
