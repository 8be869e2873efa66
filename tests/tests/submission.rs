//! Authenticated submission (RFC 4954 AUTH, RFC 6409 port-587 style): a `submission` service
//! in master.cf with `-o smtpd_sasl_auth_enable=yes -o
//! smtpd_relay_restrictions=permit_sasl_authenticated,reject`, driven by swaks. Mail from a
//! logged-in client is relayed to a scripted server on 127.0.0.1 (the test's relayhost); the
//! same mail without AUTH, or with a wrong password, is refused. Run once against the built-in
//! passwd-file back end and once against a real Dovecot auth service started by the test.
//! The password must never show up in the daemon's log.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_tests::{free_port, have, postern_bin, require, Server, TempDir};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "Tr0ub4dor&3-horse";

/// A relay peer that accepts every message and remembers what it was sent.
struct Peer {
    port: u16,
    seen: Arc<Mutex<String>>,
}

impl Peer {
    fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(String::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve_peer(sock, &log));
            }
        });
        Peer { port, seen }
    }

    fn seen(&self) -> String {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until the peer has received `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.seen();
            if s.contains(needle) || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn serve_peer(sock: TcpStream, seen: &Mutex<String>) {
    let _ = sock.set_read_timeout(Some(WAIT));
    let Ok(mut w) = sock.try_clone() else { return };
    let mut r = BufReader::new(sock);
    let _ = w.write_all(b"220 peer.test ESMTP\r\n");
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Ok(mut s) = seen.lock() {
            s.push_str(&line);
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let _ = w.write_all(b"250 2.0.0 Ok: queued as PEER1\r\n");
            }
            continue;
        }
        let reply: &[u8] = match line.get(..4).map(|v| v.to_ascii_uppercase()).as_deref() {
            Some("EHLO") => b"250-peer.test\r\n250 PIPELINING\r\n",
            Some("DATA") => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            Some("QUIT") => {
                let _ = w.write_all(b"221 Bye\r\n");
                return;
            }
            Some("MAIL" | "RCPT" | "RSET" | "NOOP") => b"250 Ok\r\n",
            _ => b"502 5.5.2 what\r\n",
        };
        let _ = w.write_all(reply);
    }
}

/// The submission service's options without TLS.
const NO_TLS: &str = "-o smtpd_tls_auth_only=no";

/// A Postern with a `submission` service (AUTH on, relay only after AUTH, plus `options`) next
/// to the plain smtpd; `main_cf` names the back end. Returns the server and the submission port.
fn submission_server(peer: &Peer, main_cf: &str, options: &str) -> (Server, u16) {
    let extra = format!("relayhost = [127.0.0.1]:{}\n{main_cf}", peer.port);
    let mut server = Server::start(&extra);
    server.stop();
    let sub = free_port();
    let master_cf = format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         127.0.0.1:{sub} inet n - n - - smtpd\n  \
           -o smtpd_sasl_auth_enable=yes\n  \
           -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n  \
           -o smtpd_sasl_failure_delay=0\n  \
           {options}\n",
        server.port
    );
    std::fs::write(server.dir.path().join("master.cf"), master_cf).expect("master.cf");
    server.spawn();
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", sub)).is_err() {
        assert!(
            Instant::now() < deadline,
            "submission port not up:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    (server, sub)
}

/// Runs swaks against the submission port; `(succeeded, transcript)`.
fn swaks(port: u16, to: &str, subject: &str, auth: Option<(&str, &str, &str)>) -> (bool, String) {
    swaks_with(port, to, subject, auth, &[])
}

fn swaks_with(
    port: u16,
    to: &str,
    subject: &str,
    auth: Option<(&str, &str, &str)>,
    extra: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("swaks");
    cmd.args(extra);
    cmd.args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--ehlo",
            "client.example.org",
            "--from",
            "alice@example.org",
        ])
        .args(["--to", to, "--header", &format!("Subject: {subject}")])
        .args(["--timeout", "20"])
        .stdin(Stdio::null());
    if let Some((mech, user, pw)) = auth {
        cmd.args(["--auth", mech, "--auth-user", user, "--auth-password", pw]);
    }
    let out = cmd.output().expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `user:hash` with a SHA512-CRYPT hash when openssl is there, `{PLAIN}` otherwise.
fn passwd_line(user: &str) -> String {
    let hashed = Command::new("openssl")
        .args(["passwd", "-6", PASSWORD])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match hashed {
        Some(h) if h.starts_with("$6$") => format!("{user}:{h}\n"),
        _ => format!("{user}:{{PLAIN}}{PASSWORD}\n"),
    }
}

/// The submission scenario common to both back ends.
fn check_submission(server: &Server, peer: &Peer, sub: u16) {
    // Without AUTH: refused.
    let (ok, out) = swaks(sub, "bob@remote.example", "no auth", None);
    assert!(!ok, "relayed without AUTH:\n{out}");
    assert!(out.contains("554 5.7.1"), "{out}");

    // Wrong password: 535 after the delay, nothing relayed.
    let (ok, out) = swaks(
        sub,
        "bob@remote.example",
        "wrong password",
        Some(("PLAIN", "alice", "not-the-password")),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("535 5.7.8 Error: authentication failed"),
        "{out}"
    );

    // PLAIN and LOGIN: relayed to the peer.
    for mech in ["PLAIN", "LOGIN"] {
        let subject = format!("via {mech}");
        let (ok, out) = swaks(
            sub,
            "bob@remote.example",
            &subject,
            Some((mech, "alice", PASSWORD)),
        );
        assert!(
            ok,
            "{mech} submission failed:\n{out}\nlog:\n{}",
            server.log()
        );
        assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
        let seen = peer.wait_for(&format!("Subject: {subject}"));
        assert!(seen.contains(&format!("Subject: {subject}")), "{seen}");
    }
    assert!(!peer.seen().contains("Subject: no auth"));
    assert!(!peer.seen().contains("Subject: wrong password"));

    let log = server.wait_for_log("sasl_method=LOGIN", WAIT);
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=alice"),
        "{log}"
    );
    assert!(log.contains("SASL PLAIN authentication failed"), "{log}");
    // Neither the password nor the base64 that carries it is ever logged.
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    for blob in [
        base64(&format!("\0alice\0{PASSWORD}")),
        base64(PASSWORD),
        base64("\0alice\0not-the-password"),
    ] {
        assert!(
            !log.contains(&blob),
            "base64 credentials in the log:\n{log}"
        );
    }
    assert!(!log.contains("not-the-password"), "{log}");
}

/// Standard base64 (the tests crate has no base64 dependency).
fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn submission_with_passwd_file() {
    if !require("swaks") {
        return;
    }
    let peer = Peer::start();
    let secrets = TempDir::new("sasl-users");
    let users = secrets.path().join("users");
    // carol's Argon2id hash comes from `postern sasl hash`.
    let argon = argon2_hash("carol-pass-9");
    assert!(argon.starts_with("$argon2id$"), "{argon}");
    let file = format!("{}# comment\ncarol:{argon}\n", passwd_line("alice"));
    std::fs::write(&users, file).expect("users");
    let (server, sub) = submission_server(
        &peer,
        &format!(
            "smtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {}",
            users.display()
        ),
        NO_TLS,
    );
    // The plain smtpd service does not offer AUTH.
    let mut s = server.connect();
    let ehlo = s.ehlo("client.example.org");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let mut s = postern_tests::TestSession::connect(sub);
    let ehlo = s.ehlo("client.example.org");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    s.cmd("QUIT", "221");

    check_submission(&server, &peer, sub);
    let (ok, out) = swaks(
        sub,
        "bob@remote.example",
        "from carol",
        Some(("LOGIN", "carol", "carol-pass-9")),
    );
    assert!(ok, "{out}");
    peer.wait_for("Subject: from carol");
    let log = server.wait_for_log("sasl_username=carol", WAIT);
    assert!(!log.contains("carol-pass-9"), "{log}");
}

/// `postern sasl hash` with the password on standard input.
fn argon2_hash(password: &str) -> String {
    let mut child = Command::new(postern_bin())
        .args(["sasl", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("postern sasl hash");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(password.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Dovecot instance with a throw-away configuration, killed on drop.
struct Dovecot {
    child: Child,
    dir: TempDir,
}

impl Dovecot {
    fn start(users: &Path) -> Option<Dovecot> {
        let dir = TempDir::new("dovecot");
        let d = dir.path().display().to_string();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).ok()?;
        }
        let conf = format!(
            "protocols = none\n\
             listen = 127.0.0.1\n\
             base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             auth_failure_delay = 0\n\
             default_internal_user = root\n\
             default_internal_group = root\n\
             default_login_user = root\n\
             passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/home\n}}\n\
             service auth {{\n  unix_listener {d}/auth {{\n    mode = 0666\n  }}\n}}\n",
            users = users.display()
        );
        let conf_path = dir.path().join("dovecot.conf");
        std::fs::write(&conf_path, conf).ok()?;
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let dovecot = Dovecot { child, dir };
        let deadline = Instant::now() + WAIT;
        while !dovecot.socket().exists() {
            if Instant::now() >= deadline {
                eprintln!(
                    "dovecot did not start: {}",
                    std::fs::read_to_string(dovecot.dir.path().join("dovecot.log"))
                        .unwrap_or_default()
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dovecot)
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("auth")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM to the process this test started, so it removes its sockets and children.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn submission_with_dovecot() {
    if !require("swaks") {
        return;
    }
    if !have("dovecot") {
        eprintln!("dovecot is not installed: skipping the Dovecot SASL test");
        return;
    }
    let secrets = TempDir::new("dovecot-users");
    let users = secrets.path().join("users");
    std::fs::write(&users, passwd_line("alice")).expect("users");
    let Some(dovecot) = Dovecot::start(&users) else {
        panic!("dovecot is installed but did not start");
    };
    let peer = Peer::start();
    let (server, sub) = submission_server(
        &peer,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}",
            dovecot.socket().display()
        ),
        NO_TLS,
    );
    check_submission(&server, &peer, sub);

    // Dovecot gone: a temporary failure, not a refusal.
    drop(dovecot);
    let (ok, out) = swaks(
        sub,
        "bob@remote.example",
        "auth server down",
        Some(("PLAIN", "alice", PASSWORD)),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("454 4.7.0 Temporary authentication failure"),
        "{out}"
    );
    let log = server.wait_for_log("SASL: Connect to", WAIT);
    assert!(log.contains("SASL: Connect to"), "{log}");
}

#[test]
fn submission_over_starttls() {
    if !require("swaks") || !require("openssl") {
        return;
    }
    let peer = Peer::start();
    let secrets = TempDir::new("sasl-tls");
    let dir = secrets.path();
    let users = dir.join("users");
    std::fs::write(&users, passwd_line("alice")).expect("users");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=mx.example.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(made.success(), "could not make a test certificate");
    let (server, sub) = submission_server(
        &peer,
        &format!(
            "smtpd_sasl_path = {}\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}",
            users.display(),
            cert.display(),
            key.display()
        ),
        // smtpd_tls_auth_only stays at Postern's default (yes).
        "-o smtpd_tls_security_level=encrypt",
    );
    // Before STARTTLS: no AUTH offered, and AUTH is refused.
    let mut s = postern_tests::TestSession::connect(sub);
    let ehlo = s.ehlo("client.example.org");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    s.cmd(
        "AUTH PLAIN AGFsaWNlAHg=",
        "530 5.7.0 Must issue a STARTTLS command first",
    );
    s.cmd("QUIT", "221");

    let (ok, out) = swaks_with(
        sub,
        "bob@remote.example",
        "over TLS",
        Some(("PLAIN", "alice", PASSWORD)),
        &["--tls"],
    );
    assert!(ok, "{out}\nlog:\n{}", server.log());
    assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
    let seen = peer.wait_for("Subject: over TLS");
    assert!(seen.contains("Subject: over TLS"), "{seen}");
    let log = server.wait_for_log("sasl_method=PLAIN", WAIT);
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=alice"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
}
