//! Test support for smtpd, cleanup and restrictions: configurations, throw-away spools and a
//! scripted SMTP dialog over an in-memory stream.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use postern_config::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{ClientInfo, Session, SessionContext, Settings};
use crate::qmgr::QmgrHandle;
use crate::queue::{QueueDir, QueueId, Spool};

/// A configuration for tests: the embedded defaults plus a fixed host name and local domains,
/// then `overrides`.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let all: Vec<(String, String)> = [
        ("myhostname", "mx.example.test"),
        ("mydomain", "example.test"),
        ("mydestination", "localhost, $myhostname, example.test"),
        ("smtpd_error_sleep_time", "0"),
    ]
    .iter()
    .chain(overrides.iter())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match postern_config::load_with(None, &all) {
        Ok(loaded) => loaded.main,
        Err(e) => panic!("test config: {e}"),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A spool in a fresh temporary directory, removed on drop.
pub struct TempSpool {
    spool: Spool,
    root: PathBuf,
}

impl TempSpool {
    pub fn new(tag: &str) -> TempSpool {
        let root = std::env::temp_dir().join(format!(
            "postern-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let spool = Spool::open(&root).expect("open spool");
        TempSpool { spool, root }
    }

    /// Messages in `incoming/`.
    pub fn incoming(&self) -> Vec<QueueId> {
        self.spool.list(QueueDir::Incoming).expect("list incoming")
    }
}

impl std::ops::Deref for TempSpool {
    type Target = Spool;
    fn deref(&self) -> &Spool {
        &self.spool
    }
}

impl Drop for TempSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Any client stream: an in-memory duplex or a TCP connection.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for T {}

/// The client side of an SMTP conversation: a [`Session`] over `tokio::io::duplex`
/// ([`Dialog::start`]) or a TCP connection to [`super::serve`] ([`Dialog::connect`]).
pub struct Dialog {
    stream: Box<dyn ClientStream>,
    input: Vec<u8>,
    task: Option<JoinHandle<()>>,
    pub greeting: String,
}

impl Dialog {
    /// Starts a session for a client at `addr` and reads the greeting.
    pub async fn start(cfg: Config, spool: &TempSpool, addr: &str) -> Dialog {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ctx = SessionContext {
            settings: Settings::new(Arc::new(cfg)),
            spool: spool.spool.clone(),
            qmgr: QmgrHandle::detached(),
            client: ClientInfo::new(addr.parse().expect("client ip"), 4711),
            service: "smtp".into(),
            shutdown: None,
        };
        let task = tokio::spawn(Session::new(server, ctx).run());
        let mut d = Dialog {
            stream: Box::new(client),
            input: Vec::new(),
            task: Some(task),
            greeting: String::new(),
        };
        d.greeting = d.reply().await;
        d
    }

    /// Connects over TCP without waiting for the greeting.
    pub async fn connect(addr: std::net::SocketAddr) -> Dialog {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Dialog {
            stream: Box::new(stream),
            input: Vec::new(),
            task: None,
            greeting: String::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one complete (possibly multi-line) reply; "" when the server closed.
    pub async fn reply(&mut self) -> String {
        match self.reply_within(Duration::from_secs(10)).await {
            Some(r) => r,
            None => panic!(
                "no reply within 10 s; have {:?}",
                String::from_utf8_lossy(&self.input)
            ),
        }
    }

    /// Like [`Dialog::reply`], but `None` when nothing complete arrives within `wait`.
    pub async fn reply_within(&mut self, wait: Duration) -> Option<String> {
        let read = async {
            loop {
                if let Some(end) = reply_end(&self.input) {
                    let r: Vec<u8> = self.input.drain(..end).collect();
                    return String::from_utf8_lossy(&r).into_owned();
                }
                let mut buf = [0u8; 4096];
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let rest: Vec<u8> = self.input.drain(..).collect();
                        return String::from_utf8_lossy(&rest).into_owned();
                    }
                    Ok(n) => self.input.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(wait, read).await.ok()
    }

    /// Sends one command line and checks that the reply starts with `want`.
    pub async fn cmd(&mut self, line: &str, want: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(want), "{line:?}: wanted {want:?}, got {r:?}");
        r
    }

    /// True when the server has closed the connection (after any unread replies).
    pub async fn closed(&mut self) -> bool {
        self.reply().await.is_empty()
    }

    /// Closes the client side without QUIT and waits (at most 10 s) for the session to end;
    /// returns whether it ended.
    pub async fn hang_up(self) -> bool {
        let Dialog { stream, task, .. } = self;
        drop(stream);
        match task {
            Some(task) => tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_ok(),
            None => true,
        }
    }

    /// Waits for the session task to end.
    pub async fn finished(self) {
        if let Some(task) = self.task {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// End of the first complete reply in `buf`: the line whose code is followed by a space.
fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(lf) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + lf + 1];
        start += lf + 1;
        if line.len() < 4 || line[3] != b'-' {
            return Some(start);
        }
    }
    None
}
