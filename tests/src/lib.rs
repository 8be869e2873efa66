//! # Layout
//!
//! Test support for Postern's integration tests (`tests/tests/*.rs`): start the real `postern`
//! binary on a loopback port with a throw-away configuration directory ([`Server`]), and speak
//! SMTP to it one scripted step at a time ([`TestSession`]), asserting exact reply codes the way
//! the conversation reads. Everything talks to 127.0.0.1 only, every wait is bounded, and every
//! process and directory is cleaned up on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `postern` binary built by the same `cargo test` run (or `$POSTERN_BIN`).
pub fn postern_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("POSTERN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> → target/<profile>/postern
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    profile_dir.join("postern")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "postern-it-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `postern run` with its own config directory, spool and Maildir root.
pub struct Server {
    pub dir: TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts Postern with a test main.cf; `extra` lines are appended (later lines win).
    pub fn start(extra: &str) -> Server {
        let dir = TempDir::new("srv");
        let port = free_port();
        Self::write_config(dir.path(), port, extra);
        let mut server = Server {
            dir,
            port,
            child: None,
        };
        server.spawn();
        server
    }

    fn write_config(dir: &Path, port: u16, extra: &str) {
        let d = dir.display();
        let main_cf = format!(
            "# written by the Postern integration tests\n\
             myhostname = mx.example.test\n\
             mydomain = example.test\n\
             mydestination = localhost, $myhostname, example.test\n\
             inet_interfaces = 127.0.0.1\n\
             queue_directory = {d}/queue\n\
             mail_spool_directory = {d}/mail/\n\
             maillog_file = {d}/maillog\n\
             # Hermetic: remote mail (bounces to remote senders too) goes to a closed loopback\n\
             # port, never to DNS and the Internet; tests that relay set their own relayhost.\n\
             relayhost = [127.0.0.1]:1\n\
             {extra}\n"
        );
        std::fs::write(dir.join("main.cf"), main_cf).expect("write main.cf");
        let master_cf = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        std::fs::write(dir.join("master.cf"), master_cf).expect("write master.cf");
    }

    /// Runs `postern -c DIR ARGS…` to completion (a CLI command against this server's config).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(postern_bin())
            .arg("-c")
            .arg(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run postern")
    }

    /// Starts (or restarts) the daemon and waits for its banner.
    pub fn spawn(&mut self) {
        let child = Command::new(postern_bin())
            .arg("-c")
            .arg(self.dir.path())
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn postern run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                if r.read_line(&mut line).is_ok() && line.starts_with("220") {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("postern exited early with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postern did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no cleanup: the crash the durability tests simulate.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
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

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The log, once it contains `needle` (or when `timeout` has passed).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    pub fn connect(&self) -> TestSession {
        TestSession::connect(self.port)
    }

    /// Maildir `new/` of a local user.
    pub fn maildir_new(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("new")
    }

    /// Messages delivered to `user` (contents), waiting up to `timeout` for at least `want`.
    pub fn wait_for_mail(&self, user: &str, want: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mail = read_maildir(&self.maildir_new(user));
            if mail.len() >= want || Instant::now() >= deadline {
                return mail;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Messages in one queue directory (e.g. "deferred"): complete queue files only. Files
    /// still being written, and the empty files Postern keeps ready in `incoming/`, have mode
    /// 0600; a complete queue file is marked with the owner-execute bit, as in Postfix.
    pub fn queue_files(&self, queue: &str) -> Vec<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        list_files(&self.dir.path().join("queue").join(queue))
            .into_iter()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o100 != 0))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn read_maildir(dir: &Path) -> Vec<String> {
    list_files(dir)
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// One SMTP connection driven step by step; every step asserts the reply.
pub struct TestSession {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub banner: String,
}

impl TestSession {
    pub fn connect(port: u16) -> TestSession {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = s.try_clone().expect("clone");
        let mut t = TestSession {
            reader: BufReader::new(s),
            writer,
            banner: String::new(),
        };
        t.banner = t.read_reply();
        assert!(t.banner.starts_with("220 "), "banner: {}", t.banner);
        t
    }

    /// Sends raw bytes (nothing appended).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads one complete (possibly multi-line) reply, lines joined with "\n".
    pub fn read_reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                return out; // connection closed
            }
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            out.push_str(line.trim_end_matches(['\r', '\n']));
            if last {
                return out;
            }
            out.push('\n');
        }
    }

    /// Sends `line` + CRLF and asserts that the reply starts with `expect` (e.g. "250 2.1.0").
    pub fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        let reply = self.read_reply();
        assert!(
            reply.starts_with(expect),
            "after {line:?} expected {expect:?}, got {reply:?}"
        );
        reply
    }

    pub fn ehlo(&mut self, name: &str) -> String {
        self.cmd(&format!("EHLO {name}"), "250")
    }

    pub fn mail_from(&mut self, addr: &str, expect: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{addr}>"), expect)
    }

    pub fn rcpt_to(&mut self, addr: &str, expect: &str) -> String {
        self.cmd(&format!("RCPT TO:<{addr}>"), expect)
    }

    /// DATA, the message (dot-stuffed here), end-of-data; asserts the final reply.
    pub fn data(&mut self, message: &str, expect: &str) -> String {
        self.cmd("DATA", "354");
        let mut body = String::new();
        for line in message.split("\r\n") {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        if message.ends_with("\r\n") {
            body.truncate(body.len() - 2);
        }
        body.push_str(".\r\n");
        self.send_raw(body.as_bytes());
        let reply = self.read_reply();
        assert!(
            reply.starts_with(expect),
            "after DATA expected {expect:?}, got {reply:?}"
        );
        reply
    }

    /// True when the server has closed the connection (EOF within the read timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }

    /// Queue ID from a `250 2.0.0 Ok: queued as ID` reply.
    pub fn queue_id(reply: &str) -> String {
        reply.rsplit(' ').next().unwrap_or_default().to_string()
    }
}

/// A small RFC 5322 message with a marker in the subject.
pub fn message(subject: &str) -> String {
    format!(
        "From: sender@example.org\r\nTo: user@localhost\r\nSubject: {subject}\r\n\r\nHello from the tests.\r\n"
    )
}

/// True when a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Skips a test when an external tool is missing, except in CI where `.ci/run` installs it.
pub fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is required in CI (.ci/run installs it)"
    );
    eprintln!("skipping: {program} is not installed");
    false
}
