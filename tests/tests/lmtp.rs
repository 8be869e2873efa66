//! LMTP delivery against a real Dovecot LMTP server: the daemon receives a message for two
//! mailboxes and one unknown user, and hands it to Dovecot over a UNIX-domain socket
//! (`local_transport = lmtp:unix:…`). Skipped, with a message, where Dovecot is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postern_tests::{read_maildir, Server, TempDir};

const DOVECOT: &str = "/usr/sbin/dovecot";
const WAIT: Duration = Duration::from_secs(20);

/// A throw-away Dovecot serving LMTP on `DIR/lmtp`; killed on drop.
struct Dovecot {
    child: Option<Child>,
    dir: TempDir,
}

impl Dovecot {
    fn start() -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() || !Path::new("/usr/lib/dovecot/lmtp").exists() {
            // CI installs dovecot-core and dovecot-lmtpd (.ci/run): there it must be present.
            assert!(
                std::env::var_os("CI").is_none(),
                "dovecot is required in CI (.ci/run installs it)"
            );
            eprintln!("skipping: dovecot (with its lmtp service) is not installed");
            return None;
        }
        let dir = TempDir::new("dovecot");
        let d = dir.path().display().to_string();
        // Dovecot refuses to deliver as root, so mail is written as nobody (65534) into a
        // world-writable directory; the temp dir itself must be traversable.
        let mail = dir.path().join("mail");
        std::fs::create_dir_all(&mail).expect("mail dir");
        chmod(dir.path(), 0o755);
        chmod(&mail, 0o777);
        let conf = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             protocols = lmtp\n\
             ssl = no\n\
             first_valid_uid = 0\n\
             first_valid_gid = 0\n\
             default_internal_user = root\n\
             default_internal_group = root\n\
             default_login_user = root\n\
             mail_location = maildir:{d}/mail/%u/Maildir\n\
             auth_username_format = %Ln\n\
             service lmtp {{\n  unix_listener {d}/lmtp {{\n    mode = 0666\n  }}\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/mail/%u\n}}\n"
        );
        std::fs::write(dir.path().join("dovecot.conf"), conf).expect("dovecot.conf");
        std::fs::write(dir.path().join("users"), "bob:{PLAIN}x\ncarol:{PLAIN}x\n").expect("users");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dovecot");
        let dovecot = Dovecot {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(dovecot.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start; log:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dovecot)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("lmtp")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Messages in `user`'s INBOX (`new/`), waiting up to `WAIT` for at least `want`.
    fn mailbox(&self, user: &str, want: usize) -> Vec<String> {
        let new = self.dir.path().join(format!("mail/{user}/Maildir/new"));
        let deadline = Instant::now() + WAIT;
        loop {
            let mail = read_maildir(&new);
            if mail.len() >= want || Instant::now() >= deadline {
                return mail;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets the master stop its lmtp and auth children; SIGKILL if it lingers.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn delivers_to_dovecot_over_lmtp() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let server = Server::start(&format!(
        "local_transport = lmtp:unix:{}\nlmtp_lhlo_name = postern.example.test",
        dovecot.socket().display()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("alice@example.org", "250");
    s.rcpt_to("bob@example.test", "250");
    s.rcpt_to("carol@example.test", "250");
    s.rcpt_to("nobody@example.test", "250");
    s.data("Subject: over lmtp\r\n\r\nHello, Dovecot.\r\n", "250 2.0.0");
    s.cmd("QUIT", "221");

    let bob = dovecot.mailbox("bob", 1);
    let carol = dovecot.mailbox("carol", 1);
    let log = server.wait_for_log("status=bounced", WAIT);
    assert_eq!(bob.len(), 1, "log:\n{log}\ndovecot:\n{}", dovecot.log());
    assert_eq!(carol.len(), 1, "log:\n{log}");
    assert!(bob[0].contains("Subject: over lmtp") && bob[0].contains("Hello, Dovecot."));
    let relay = format!("relay=mx.example.test[{}]", dovecot.socket().display());
    for who in ["bob", "carol"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("to=<{who}@example.test>")) && l.contains("status="))
            .unwrap_or_default();
        assert!(
            line.contains("postern/lmtp[") && line.contains(&relay),
            "{line}\n{log}"
        );
        assert!(line.contains("status=sent (250 2.0.0 <"), "{line}");
    }
    let line = log
        .lines()
        .find(|l| l.contains("to=<nobody@example.test>") && l.contains("status="))
        .unwrap_or_default();
    assert!(
        line.contains("dsn=5.1.1, status=bounced (host mx.example.test[")
            && line.contains("said: 550 5.1.1 <nobody@example.test> User doesn't exist")
            && line.ends_with("(in reply to RCPT TO command))"),
        "{line}"
    );
    assert!(
        dovecot.log().contains("lmtp("),
        "dovecot log:\n{}",
        dovecot.log()
    );
}
