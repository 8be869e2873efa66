//! One SMTP or LMTP client session with one server (Postfix smtp_proto.c): greeting, EHLO
//! (HELO when EHLO is refused) or LHLO, STARTTLS and EHLO again (see `starttls.rs`), MAIL
//! FROM, RCPT TO per recipient, DATA, QUIT — every step bounded by its time limit. With
//! PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go out in one write.
//!
//! SMTP and LMTP differ in two places only ([`Dialect`]): the greeting command (LHLO, no HELO
//! fallback), and what follows the final dot — one reply for the message in SMTP, one reply
//! per accepted recipient, in RCPT order, in LMTP (RFC 2033 §4.2).
//!
//! Results are values: [`Attempt::Next`] says "this server could not be used, try the next
//! one" (connection failure, a greeting that is not 220, a conversation that broke down before
//! MAIL FROM, mandatory TLS that could not be had); [`Attempt::Done`] carries one [`Outcome`]
//! per recipient.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postern_config::Config;
use postern_proto::params::{Body, MailParams, RcptParams, Ret};
use postern_proto::EnhancedCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::cache::{self, Idle};
use super::policy::Tls;
use super::stream::{Stream, Upgrade};
use super::wire::{self, Caps, Reply, MAX_REPLY_LINE, MAX_REPLY_LINES};
use crate::queue::Recipient;
use crate::transport::{Job, Outcome};

/// Content is written in pieces of this size, each under `smtp_data_xfer_timeout`.
const XFER_CHUNK: usize = 64 * 1024;

/// SMTP or LMTP: the two differences between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Smtp,
    Lmtp,
}

/// The per-stage time limits, the EHLO name and the TLS plan, taken from the configuration
/// once per job.
#[derive(Clone, Debug)]
pub struct Settings {
    pub dialect: Dialect,
    pub helo_name: String,
    /// `myhostname`: a server that greets with it is this MTA (a mail loop).
    pub myhostname: String,
    pub connect: Duration,
    pub helo: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_xfer: Duration,
    pub data_done: Duration,
    pub quit: Duration,
    /// STARTTLS and certificate checks for this next hop (SMTP only).
    pub tls: Tls,
    /// Keep the connection for the next delivery to this next hop instead of QUIT.
    pub cache: Option<cache::Policy>,
    /// SMTP AUTH credentials for this next hop (`smtp_sasl_password_maps`).
    pub sasl: Option<std::sync::Arc<super::sasl::Secret>>,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        let helo_name = if cfg.smtp_helo_name.trim().is_empty() {
            cfg.myhostname.clone()
        } else {
            cfg.smtp_helo_name.trim().to_string()
        };
        Settings {
            dialect: Dialect::Smtp,
            helo_name,
            myhostname: cfg.myhostname.clone(),
            connect: cfg.smtp_connect_timeout,
            helo: cfg.smtp_helo_timeout,
            mail: cfg.smtp_mail_timeout,
            rcpt: cfg.smtp_rcpt_timeout,
            data_init: cfg.smtp_data_init_timeout,
            data_xfer: cfg.smtp_data_xfer_timeout,
            data_done: cfg.smtp_data_done_timeout,
            quit: cfg.smtp_quit_timeout,
            tls: Tls::default(),
            cache: None,
            sasl: None,
        }
    }
}

/// What is sent: the envelope and content of one job.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// For log lines about servers that could not be used.
    pub queue_id: String,
    pub sender: &'a str,
    pub rcpts: Vec<&'a Recipient>,
    pub content: &'a [u8],
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// The message of `job`, for the recipients at `rcpts` (indices into the envelope's list).
    /// `Err` when an index names no recipient (never expected): the caller defers.
    pub fn of_job(job: &'a Job, rcpts: &[usize]) -> Result<Message<'a>, Outcome> {
        let mut list = Vec::with_capacity(rcpts.len());
        for &i in rcpts {
            match job.env.recipients.get(i) {
                Some(r) => list.push(r),
                None => {
                    return Err(Outcome::defer(
                        EnhancedCode::new(4, 3, 0),
                        "none",
                        "internal error: no such recipient",
                    ))
                }
            }
        }
        Ok(Message {
            queue_id: job.env.id.to_string(),
            sender: &job.env.sender,
            rcpts: list,
            content: &job.content,
            body: job.env.body,
            smtputf8: job.env.smtputf8,
            ret: job.env.ret,
            envid: job.env.envid.as_deref(),
        })
    }
}

/// The result of trying one server.
#[derive(Debug)]
pub enum Attempt {
    /// One outcome per recipient, in order.
    Done(Vec<Outcome>),
    /// The server was not usable; the outcome is what the recipients get if no server is.
    Next(Outcome),
    /// The TLS handshake failed at level `may`: [`attempt`] connects again without TLS, as
    /// Postfix does. The text says why, for the warning.
    Plaintext(String),
}

/// Why a conversation stopped without a reply to act on.
pub(super) enum Broken {
    Timeout(&'static str),
    Lost(&'static str),
    Garbage(&'static str),
    /// Every RCPT TO was refused (each recipient already has its own result).
    NoRecipients,
}

/// Connects to `addr` (reported as `name[addr]:port`) and delivers `msg`. When a TLS
/// handshake fails at level `may`, the same address is tried again in plaintext.
pub async fn attempt(
    settings: &Settings,
    name: &str,
    addr: SocketAddr,
    msg: &Message<'_>,
) -> Attempt {
    match attempt_once(settings, name, addr, msg, true).await {
        Attempt::Plaintext(why) => {
            crate::warn!(
                "smtp",
                "{}: TLS handshake failed with {name}[{}]:{}: {why}; trying plaintext",
                msg.queue_id,
                addr.ip(),
                addr.port()
            );
            match attempt_once(settings, name, addr, msg, false).await {
                Attempt::Plaintext(why) => Attempt::Next(defer(4, 7, 5, "none", why)),
                a => a,
            }
        }
        a => a,
    }
}

/// Delivers `msg` over a cached connection. `None` when the connection turned out to be
/// closed before the server answered MAIL FROM (nothing was accepted): the caller connects
/// anew.
pub async fn reuse(settings: &Settings, idle: Idle, msg: &Message<'_>) -> Option<Vec<Outcome>> {
    let mut session = Session {
        io: Some(idle.io),
        settings,
        host: idle.host,
        peer: idle.peer,
        relay: idle.relay,
        use_tls: false,
        tls: idle.tls,
        born: idle.born,
        uses: idle.uses,
        clean: false,
        mail_answered: false,
        failed: false,
    };
    let caps = idle.caps;
    let fits = caps
        .size
        .is_none_or(|l| l == 0 || msg.content.len() as u64 <= l);
    if !fits || (msg.smtputf8 && !caps.smtputf8) {
        // The full checks and their bounces are the fresh connection's job.
        session.quit().await;
        return None;
    }
    let mut outcomes = session.transaction(msg, &caps).await;
    if !session.mail_answered {
        return None;
    }
    if let Some(tls) = &session.tls {
        outcomes.iter_mut().for_each(|o| o.tls = Some(tls.clone()));
    }
    session.done(caps).await;
    Some(outcomes)
}

async fn attempt_once(
    settings: &Settings,
    name: &str,
    addr: SocketAddr,
    msg: &Message<'_>,
    use_tls: bool,
) -> Attempt {
    let peer = format!("{name}[{}]", addr.ip());
    let relay = format!("{peer}:{}", addr.port());
    let stream = match timeout(settings.connect, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        // No connection, so no relay: Postfix logs `relay=none` for these.
        Ok(Err(e)) => {
            return Attempt::Next(defer(
                4,
                4,
                1,
                "none",
                format!("connect to {relay}: {}", io_text(&e)),
            ))
        }
        Err(_) => {
            return Attempt::Next(defer(
                4,
                4,
                1,
                "none",
                format!("connect to {relay}: Connection timed out"),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(Stream::Tcp(stream), settings, peer, relay);
    session.host = name.to_string();
    session.use_tls = use_tls;
    session.run(msg).await
}

/// Postfix's wording for the common connect errors.
pub(super) fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => e.to_string(),
    }
}

pub(super) fn defer(class: u8, subject: u16, detail: u16, relay: &str, text: String) -> Outcome {
    Outcome::defer(EnhancedCode::new(class, subject, detail), relay, text)
}

/// A session over any byte stream, so tests can drive it with a scripted peer.
pub struct Session<'s, S> {
    /// Empty only while STARTTLS swaps the stream (and for good when the handshake failed).
    pub(super) io: Option<BufReader<S>>,
    pub(super) settings: &'s Settings,
    /// The server's name as the next hop gave it (MX host), for certificate names.
    pub(super) host: String,
    /// `name[addr]`, for texts.
    pub(super) peer: String,
    /// `name[addr]:port`, the log's `relay=`.
    pub(super) relay: String,
    /// Whether STARTTLS may be tried (false on the plaintext retry).
    pub(super) use_tls: bool,
    /// What TLS established, once it is up, for every outcome of the session.
    pub(super) tls: Option<std::sync::Arc<crate::tls::TlsSummary>>,
    /// When the connection was made and how many transactions it carried (connection cache).
    born: Instant,
    uses: u32,
    /// The server answered the final dot: no transaction is open, the session may be reused.
    clean: bool,
    /// The server answered MAIL FROM: from here on a broken reused connection is a delivery
    /// problem, not a stale cache entry.
    mail_answered: bool,
    /// A read or write failed (timeout, lost connection, garbage): the conversation is over and
    /// no QUIT is sent, as in Postfix (a stalled server would only stall QUIT as well).
    failed: bool,
}

impl<'s, S: Upgrade> Session<'s, S> {
    pub fn new(stream: S, settings: &'s Settings, peer: String, relay: String) -> Self {
        Session {
            io: Some(BufReader::new(stream)),
            settings,
            host: String::new(),
            peer,
            relay,
            use_tls: true,
            tls: None,
            born: Instant::now(),
            uses: 0,
            clean: false,
            mail_answered: false,
            failed: false,
        }
    }

    pub async fn run(mut self, msg: &Message<'_>) -> Attempt {
        let mut a = self.conversation(msg).await;
        if let Some(tls) = &self.tls {
            match &mut a {
                Attempt::Done(outcomes) => {
                    outcomes.iter_mut().for_each(|o| o.tls = Some(tls.clone()))
                }
                Attempt::Next(o) => o.tls = Some(tls.clone()),
                Attempt::Plaintext(_) => {}
            }
        }
        a
    }

    async fn conversation(&mut self, msg: &Message<'_>) -> Attempt {
        let n = msg.rcpts.len();
        let s = self.settings;
        let greeting = match self
            .read(s.helo, "receiving the initial server greeting")
            .await
        {
            Ok(r) => r,
            Err(b) => return Attempt::Next(self.broken(b)),
        };
        if greeting.code != 220 {
            let o = self.refused(&greeting);
            self.quit().await;
            return Attempt::Next(o);
        }
        let (verb, stage) = match s.dialect {
            Dialect::Smtp => ("EHLO", "performing the EHLO handshake"),
            Dialect::Lmtp => ("LHLO", "performing the LHLO handshake"),
        };
        let helo = format!("{verb} {}\r\n", s.helo_name);
        let mut reply = match self.command(&helo, s.helo, stage).await {
            Ok(r) => r,
            Err(b) => return Attempt::Next(self.broken(b)),
        };
        let mut caps = Caps::default();
        if reply.code / 100 == 2 {
            caps = Caps::parse(&reply);
        } else if reply.code / 100 == 5 && s.dialect == Dialect::Smtp {
            // RFC 5321 §4.1.4: a server without ESMTP refuses EHLO; HELO is the fallback.
            let helo = format!("HELO {}\r\n", s.helo_name);
            reply = match self
                .command(&helo, s.helo, "performing the HELO handshake")
                .await
            {
                Ok(r) => r,
                Err(b) => return Attempt::Next(self.broken(b)),
            };
        }
        if reply.code / 100 != 2 {
            let o = self.said(&reply, verb);
            self.quit().await;
            return Attempt::Done(vec![o; n]);
        }
        if let Some(o) = self.loops_back(&reply) {
            self.quit().await;
            return Attempt::Done(vec![o; n]);
        }
        if self.use_tls && s.tls.client.is_some() {
            caps = match self.starttls(caps, &msg.queue_id).await {
                Ok(caps) => caps,
                Err(a) => return a,
            };
        }
        if let Err(a) = self.authenticate(&caps).await {
            return a;
        }

        if let Some(limit) = caps.size.filter(|&l| l > 0 && msg.content.len() as u64 > l) {
            let text = format!(
                "message size {} exceeds size limit {limit} of server {}",
                msg.content.len(),
                self.peer
            );
            let o = Outcome::bounce(EnhancedCode::new(5, 3, 4), &self.relay, text);
            self.quit().await;
            return Attempt::Done(vec![o; n]);
        }
        if msg.smtputf8 && !caps.smtputf8 {
            let text = format!(
                "SMTPUTF8 is required, but was not offered by host {}",
                self.peer
            );
            let o = Outcome::bounce(EnhancedCode::new(5, 6, 7), &self.relay, text);
            self.quit().await;
            return Attempt::Done(vec![o; n]);
        }
        let outcomes = self.transaction(msg, &caps).await;
        self.done(caps).await;
        Attempt::Done(outcomes)
    }

    /// After a transaction: park the connection in the cache when it is clean and the policy
    /// allows, else QUIT.
    async fn done(&mut self, caps: Caps) {
        self.uses += 1;
        let policy = self.settings.cache.as_ref();
        let idle_buffer_empty = self.io.as_ref().is_some_and(|io| io.buffer().is_empty());
        if let (Some(policy), true, true) = (policy, self.clean, idle_buffer_empty) {
            if policy.allows_reuse(self.born, self.uses) {
                if let Some(stream) = self.io.take().and_then(|io| io.into_inner().into_stream()) {
                    let idle = Idle {
                        io: BufReader::new(stream),
                        caps,
                        host: std::mem::take(&mut self.host),
                        peer: std::mem::take(&mut self.peer),
                        relay: std::mem::take(&mut self.relay),
                        tls: self.tls.clone(),
                        born: self.born,
                        uses: self.uses,
                    };
                    cache::park(policy, idle);
                    return;
                }
            }
        }
        self.quit().await;
    }

    /// MAIL, RCPT…, DATA, content, final reply.
    async fn transaction(&mut self, msg: &Message<'_>, caps: &Caps) -> Vec<Outcome> {
        let s = self.settings;
        let mut results: Vec<Option<Outcome>> = vec![None; msg.rcpts.len()];
        let mail = format!(
            "MAIL FROM:<{}>{}\r\n",
            msg.sender,
            mail_params(msg, caps).to_wire()
        );
        let rcpts: Vec<String> = msg
            .rcpts
            .iter()
            .map(|r| {
                format!(
                    "RCPT TO:<{}>{}\r\n",
                    r.address,
                    rcpt_params(r, caps).to_wire()
                )
            })
            .collect();
        // With PIPELINING the whole envelope and DATA go in one write (RFC 2920 §3.1: DATA is
        // the last command of the group); replies are then read in order.
        if caps.pipelining {
            let mut batch = mail.clone();
            rcpts.iter().for_each(|r| batch.push_str(r));
            batch.push_str("DATA\r\n");
            if let Err(b) = self
                .send(batch.as_bytes(), s.mail, "sending MAIL FROM")
                .await
            {
                return fill(results, self.broken(b));
            }
        } else if let Err(b) = self
            .send(mail.as_bytes(), s.mail, "sending MAIL FROM")
            .await
        {
            return fill(results, self.broken(b));
        }
        let reply = match self.read(s.mail, "sending MAIL FROM").await {
            Ok(r) => r,
            Err(b) => return fill(results, self.broken(b)),
        };
        // A 421 here on a reused connection is the server closing an idle session (often an
        // unsolicited "421 timeout" waiting in the socket): `reuse` tries a new connection.
        self.mail_answered = reply.code != 421;
        if reply.code / 100 != 2 {
            return fill(results, self.said(&reply, "MAIL FROM"));
        }
        for (i, line) in rcpts.iter().enumerate() {
            if !caps.pipelining {
                if let Err(b) = self.send(line.as_bytes(), s.rcpt, "sending RCPT TO").await {
                    return fill(results, self.broken(b));
                }
            }
            match self.read(s.rcpt, "sending RCPT TO").await {
                Ok(r) if r.code / 100 == 2 => {}
                Ok(r) => results[i] = Some(self.said(&r, "RCPT TO")),
                Err(b) => return fill(results, self.broken(b)),
            }
        }
        let accepted = results.iter().filter(|r| r.is_none()).count();
        if accepted == 0 && !caps.pipelining {
            return fill(results, self.broken(Broken::NoRecipients));
        }
        if !caps.pipelining {
            if let Err(b) = self
                .send(b"DATA\r\n", s.data_init, "sending DATA command")
                .await
            {
                return fill(results, self.broken(b));
            }
        }
        let reply = match self.read(s.data_init, "sending DATA command").await {
            Ok(r) => r,
            Err(b) => return fill(results, self.broken(b)),
        };
        if accepted == 0 {
            // Pipelined DATA after every RCPT failed: a server that still says 354 gets an
            // empty message, which it must not deliver (no valid recipients).
            if reply.code == 354 {
                let _ = self
                    .send(b".\r\n", s.data_xfer, "sending end of data")
                    .await;
                let _ = self.read(s.data_done, "sending end of data").await;
            }
            return fill(results, self.broken(Broken::NoRecipients));
        }
        if reply.code != 354 {
            return fill(results, self.said(&reply, "DATA"));
        }
        let data = wire::encode_data(msg.content);
        for chunk in data.chunks(XFER_CHUNK) {
            if let Err(b) = self.send(chunk, s.data_xfer, "sending message body").await {
                return fill(results, self.broken(b));
            }
        }
        let stage = "sending end of data -- message may be sent more than once";
        if s.dialect == Dialect::Lmtp {
            // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            for i in 0..results.len() {
                if results[i].is_some() {
                    continue;
                }
                match self.read(s.data_done, stage).await {
                    Ok(r) => results[i] = Some(self.final_reply(&r)),
                    Err(b) => return fill(results, self.broken(b)),
                }
            }
            return fill(results, self.broken(Broken::NoRecipients));
        }
        match self.read(s.data_done, stage).await {
            Ok(r) => {
                self.clean = true;
                fill(results, self.final_reply(&r))
            }
            Err(b) => fill(results, self.broken(b)),
        }
    }

    /// Postfix's loop check (smtp_proto.c): a server whose EHLO/HELO reply names our own
    /// `myhostname` is this MTA, e.g. an MX record or a `transport_maps` entry pointing back
    /// here; the mail bounces with `5.4.6 mail for NEXTHOP loops back to myself` rather than
    /// circling until the hop count stops it. (LMTP servers are local by design: not checked.)
    fn loops_back(&self, reply: &Reply) -> Option<Outcome> {
        let s = self.settings;
        if s.dialect != Dialect::Smtp || s.myhostname.is_empty() {
            return None;
        }
        let name = reply.lines.first()?.split_whitespace().next()?;
        if !name.eq_ignore_ascii_case(&s.myhostname) {
            return None;
        }
        let dest = if s.tls.nexthop.is_empty() {
            &self.peer
        } else {
            &s.tls.nexthop
        };
        let text = format!("mail for {dest} loops back to myself");
        Some(Outcome::bounce(EnhancedCode::new(5, 4, 6), "none", text))
    }

    /// The outcome of a reply to the final dot.
    fn final_reply(&self, r: &Reply) -> Outcome {
        if r.code / 100 == 2 {
            let mut o = Outcome::sent(&self.relay, r.text());
            o.diagnostic = Some(format!("smtp; {}", r.text()));
            o
        } else {
            self.said(r, "end of DATA")
        }
    }

    pub(super) async fn quit(&mut self) {
        let quit = self.settings.quit;
        if !self.failed && self.send(b"QUIT\r\n", quit, "sending QUIT").await.is_ok() {
            let _ = self.read(quit, "sending QUIT").await;
        }
        if let Some(io) = self.io.as_mut() {
            let _ = io.get_mut().shutdown().await;
        }
    }

    pub(super) async fn command(
        &mut self,
        line: &str,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, Broken> {
        self.send(line.as_bytes(), limit, stage).await?;
        self.read(limit, stage).await
    }

    async fn send(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: &'static str,
    ) -> Result<(), Broken> {
        let Some(io) = self.io.as_mut() else {
            return Err(Broken::Lost(stage));
        };
        let io = io.get_mut();
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        let result = match timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Broken::Lost(stage)),
            Err(_) => Err(Broken::Timeout(stage)),
        };
        self.failed |= result.is_err();
        result
    }

    /// One complete (possibly multi-line) reply within `limit`.
    async fn read(&mut self, limit: Duration, stage: &'static str) -> Result<Reply, Broken> {
        let Some(io) = self.io.as_mut() else {
            return Err(Broken::Lost(stage));
        };
        let read = async {
            let mut lines = Vec::new();
            loop {
                let mut buf = Vec::new();
                let n = (&mut *io)
                    .take(MAX_REPLY_LINE)
                    .read_until(b'\n', &mut buf)
                    .await;
                match n {
                    Ok(0) | Err(_) => return Err(Broken::Lost(stage)),
                    Ok(_) => {}
                }
                if buf.last() != Some(&b'\n') {
                    return Err(Broken::Garbage(stage));
                }
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\r', '\n']);
                let Some((code, more, rest)) = wire::parse_line(text) else {
                    return Err(Broken::Garbage(stage));
                };
                lines.push(rest.to_string());
                if !more {
                    return Ok(Reply { code, lines });
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err(Broken::Garbage(stage));
                }
            }
        };
        let result = match timeout(limit, read).await {
            Ok(r) => r,
            Err(_) => Err(Broken::Timeout(stage)),
        };
        self.failed |= result.is_err();
        result
    }

    /// Postfix's texts for a conversation that broke down; always a deferral.
    pub(super) fn broken(&self, b: Broken) -> Outcome {
        let (detail, text) = match b {
            Broken::Timeout(stage) => (
                2,
                format!("conversation with {} timed out while {stage}", self.peer),
            ),
            Broken::NoRecipients => (0, format!("no recipient was accepted by {}", self.peer)),
            Broken::Lost(stage) => (
                2,
                format!("lost connection with {} while {stage}", self.peer),
            ),
            Broken::Garbage(stage) => (
                0,
                format!("host {} sent a malformed reply while {stage}", self.peer),
            ),
        };
        let subject = if detail == 0 { 5 } else { 4 };
        defer(4, subject, detail, &self.relay, text)
    }

    /// A greeting other than 220.
    fn refused(&self, reply: &Reply) -> Outcome {
        let text = format!("host {} refused to talk to me: {}", self.peer, reply.text());
        self.remote(reply, text)
    }

    /// A negative reply to a command: `host X said: 550 … (in reply to RCPT TO command)`.
    pub(super) fn said(&self, reply: &Reply, command: &str) -> Outcome {
        let text = format!(
            "host {} said: {} (in reply to {command} command)",
            self.peer,
            reply.text()
        );
        self.remote(reply, text)
    }

    fn remote(&self, reply: &Reply, text: String) -> Outcome {
        let mut o = if reply.code / 100 == 5 {
            Outcome::bounce(reply.status(), &self.relay, text)
        } else {
            // Anything that is neither 2xx nor 5xx is treated as temporary.
            let st = reply.status();
            let st = if st.class == 4 {
                st
            } else {
                EnhancedCode::new(4, 0, 0)
            };
            Outcome::defer(st, &self.relay, text)
        };
        o.diagnostic = Some(format!("smtp; {}", reply.text()));
        o
    }
}

/// Every recipient without a result gets `o`.
fn fill(results: Vec<Option<Outcome>>, o: Outcome) -> Vec<Outcome> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| o.clone()))
        .collect()
}

/// SIZE, BODY, SMTPUTF8 and the DSN parameters, each only when the server offers it.
fn mail_params(msg: &Message<'_>, caps: &Caps) -> MailParams {
    MailParams {
        size: caps.size.map(|_| msg.content.len() as u64),
        body: match msg.body {
            Some(Body::EightBitMime) if caps.eightbitmime => Some(Body::EightBitMime),
            _ => None,
        },
        smtputf8: msg.smtputf8 && caps.smtputf8,
        ret: msg.ret.filter(|_| caps.dsn),
        envid: msg.envid.filter(|_| caps.dsn).map(str::to_string),
        auth: None,
    }
}

fn rcpt_params(r: &Recipient, caps: &Caps) -> RcptParams {
    if !caps.dsn {
        return RcptParams::default();
    }
    RcptParams {
        notify: r.notify,
        orcpt: r.orcpt.clone(),
    }
}
