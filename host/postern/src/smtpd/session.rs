//! One SMTP session: the command loop, error accounting, replies and the Postfix-style session
//! log. Each verb's handler lives in its own file (`ehlo.rs`, `mail.rs`, …).
//!
//! State is kept in three places, as STYLE.md asks:
//! - [`SessionContext`]: fixed for the session — the configuration epoch it started with, the
//!   client, the spool and queue manager handles;
//! - [`ProtocolState`]: what the conversation has established — greeting, error counts,
//!   per-command statistics, BDAT error mode;
//! - [`Transaction`]: the envelope of the mail transaction in progress (RFC 5321 §3.3), which
//!   MAIL starts and RSET, HELO/EHLO or the end of data clear.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_proto::line::LineReader;
use postern_proto::{parse_command, BareNewline, Command, CommandError, MailParams, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::io::{IoError, Line, SmtpIo, FLUSH_THRESHOLD};
use super::stats::{stats_name, verb_upper, Stats};
use super::Settings;
use crate::qmgr::QmgrHandle;
use crate::queue::{Recipient, Reservation, Spool};
use crate::restrictions::{Actions, Stage, Verdict};

/// Postfix `smtpd_junk_command_limit` (default 100): after this many HELO/EHLO/RSET/NOOP/VRFY/
/// ETRN commands without delivering mail, each one also counts as an error, so that a client
/// idling with NOOPs eventually meets `smtpd_hard_error_limit`. Reset by a delivered message.
pub const JUNK_COMMAND_LIMIT: u32 = 100;

/// Who is on the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client address; IPv4-mapped IPv6 addresses are shown as IPv4.
    pub addr: IpAddr,
    pub port: u16,
    /// Verified host name; `unknown` until reverse DNS exists (Postfix's word for "none").
    pub name: String,
    /// Unverified reverse (PTR) name, `unknown` when there is none.
    pub reverse_name: String,
}

impl ClientInfo {
    pub fn new(addr: IpAddr, port: u16) -> ClientInfo {
        ClientInfo {
            addr: addr.to_canonical(),
            port,
            name: "unknown".to_string(),
            reverse_name: "unknown".to_string(),
        }
    }

    /// `name[addr]`, as in every Postfix log line about a client.
    pub fn namaddr(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }
}

/// What a session is given when it starts; nothing in it changes during the session, so a
/// configuration reload never affects a conversation in progress.
#[derive(Clone)]
pub struct SessionContext {
    pub settings: Arc<Settings>,
    pub spool: Spool,
    pub qmgr: QmgrHandle,
    pub client: ClientInfo,
    /// master.cf service name, for log lines.
    pub service: String,
    /// When it becomes true, a session waiting for a command says 421 and closes.
    pub shutdown: Option<watch::Receiver<bool>>,
}

/// What the conversation has established so far.
pub(super) struct ProtocolState {
    /// HELO/EHLO argument.
    pub helo: Option<String>,
    /// The last greeting was EHLO (`proto=ESMTP` in logs, `with ESMTP` in `Received:`).
    pub esmtp: bool,
    /// Replies carry RFC 3463 enhanced status codes. RFC 2034 §3 ties them to EHLO, so a client
    /// that greeted with HELO gets plain replies; before any greeting they are sent, as Postfix
    /// always does (most such replies are errors that clients log verbatim).
    pub enhanced: bool,
    pub error_count: u32,
    pub junk_commands: u32,
    /// After a failed BDAT chunk: discard further chunks until BDAT LAST or RSET (RFC 3030 §2
    /// keeps the client and server in step this way).
    pub bdat_error: bool,
    /// Where the session is, for "lost connection after DATA" (Postfix `state->where`).
    pub stage: &'static str,
    /// Message bytes received in the current DATA/BDAT (for the lost-connection log line).
    pub data_bytes: u64,
    pub stats: Stats,
    /// The client restrictions' verdict, once evaluated (at connect with
    /// `smtpd_delay_reject = no`, else at the first RCPT TO).
    pub client_verdict: Option<Verdict>,
    /// The HELO restrictions' verdict for the current HELO name.
    pub helo_verdict: Option<Verdict>,
    /// `smtpd_delay_reject = no` and the client restrictions refused the client: every command
    /// but QUIT gets `503 5.7.0 Error: access denied for <client>`.
    pub access_denied: Option<Reply>,
    /// The current command arrived before the previous reply was sent without PIPELINING
    /// having been negotiated (`reject_unauth_pipelining`).
    pub unauth_pipelining: bool,
    /// The session is encrypted (STARTTLS done, or a wrapper-mode service).
    pub tls: Option<crate::tls::TlsSummary>,
    /// A successful AUTH (RFC 4954 §4: at most one per session).
    pub login: Option<crate::sasl::Login>,
}

/// The mail transaction in progress: MAIL FROM, accepted RCPTs and, during BDAT, the content.
pub(super) struct Transaction {
    /// Assigned at the first accepted recipient (Postfix opens its queue file then, with
    /// `smtpd_delay_open_until_valid_rcpt = yes`).
    pub id: Option<Reservation>,
    pub sender: String,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// A RCPT command was given in this transaction (accepted or not).
    pub rcpt_tried: bool,
    /// Content of BDAT chunks received so far; `Some` once the first chunk arrived.
    pub bdat: Option<super::bdat::Chunks>,
    /// Postfix's policy `instance`: the same for every request of this transaction.
    pub instance: String,
    /// When MAIL FROM was accepted (Unix microseconds): the message's arrival, so that the
    /// log's `delay=` includes its transmission, as in Postfix.
    pub started_us: u64,
    /// The plugin scope of this transaction: what Wasm plugins recorded for later plugins
    /// (e.g. an SPF result a DMARC plugin reads) and the instances they keep until it ends.
    pub plugins: postern_runtime::Transaction,
    /// The sender restrictions' verdict, once evaluated.
    pub sender_verdict: Option<Verdict>,
    /// The client/HELO/sender verdicts' actions were merged into `actions`.
    pub early_merged: bool,
    /// Side effects the restrictions asked for, handed to cleanup with the message.
    pub actions: Actions,
}

/// Result of one command, for error counting and statistics.
pub(super) enum Flow {
    /// The command succeeded.
    Ok,
    /// The command failed; counts towards the error limits.
    Error,
    /// End the session (QUIT, or a reply that closes the connection).
    Close,
}

/// Why a session ended abnormally (Postfix `state->reason`).
enum Ending {
    Quit,
    Lost,
    Timeout,
    TooManyErrors,
    Shutdown,
    Closed,
}

pub struct Session<S: AsyncRead + AsyncWrite + Unpin> {
    pub(super) io: SmtpIo<S>,
    pub(super) ctx: SessionContext,
    pub(super) proto: ProtocolState,
    pub(super) txn: Option<Transaction>,
    lines: LineReader,
    /// `smtpd_forbid_bare_newline` for this client (exclusions get `normalize`).
    pub(super) bare_newline: BareNewline,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn new(stream: S, ctx: SessionContext) -> Session<S> {
        let cfg = &ctx.settings.config;
        let bare_newline = cfg.smtpd_forbid_bare_newline;
        // postconf(5) smtpd_forbid_bare_newline_exclusions: trusted clients that are known to
        // send bare LF are not refused, but still get the strict end-of-data rule.
        let bare_newline = if bare_newline == BareNewline::Reject
            && cfg
                .smtpd_forbid_bare_newline_exclusions
                .iter()
                .any(|c| c.contains(ctx.client.addr))
        {
            BareNewline::Normalize
        } else {
            bare_newline
        };
        Session {
            io: SmtpIo::new(stream, cfg.smtpd_timeout, ctx.shutdown.clone()),
            lines: LineReader::new(cfg.line_length_limit, bare_newline),
            bare_newline,
            proto: ProtocolState {
                helo: None,
                esmtp: false,
                enhanced: true,
                error_count: 0,
                junk_commands: 0,
                bdat_error: false,
                stage: "CONNECT",
                data_bytes: 0,
                stats: Stats::default(),
                client_verdict: None,
                helo_verdict: None,
                access_denied: None,
                unauth_pipelining: false,
                tls: None,
                login: None,
            },
            txn: None,
            ctx,
        }
    }

    pub(super) fn cfg(&self) -> &postern_config::Config {
        &self.ctx.settings.config
    }

    pub(super) fn hostname(&self) -> String {
        self.cfg().myhostname.clone()
    }

    /// Runs the whole conversation: greeting, commands until QUIT, disconnect or a limit.
    pub async fn run(mut self) {
        // Postfix looks the client up before it logs the connection: PTR, then the forward
        // lookup that must lead back to the address ("unknown" otherwise).
        if let Some(resolver) = self.ctx.settings.policy.resolver().cloned() {
            let (name, reverse) =
                crate::dns::client_names(resolver.as_ref(), self.ctx.client.addr).await;
            self.ctx.client.name = name;
            self.ctx.client.reverse_name = reverse;
        }
        crate::info!("smtpd", "connect from {}", self.ctx.client.namaddr());
        if !self.wrapper_handshake().await {
            self.finish(Ending::Lost).await;
            return;
        }
        let mut banner = Reply::new(220, "", self.cfg().smtpd_banner.clone());
        // smtpd_delay_reject = no: the client restrictions run now; a refusal replaces the
        // greeting (RFC 5321 §3.1 allows a 554 greeting) and later commands get 503.
        if !self.ctx.settings.policy.delay_reject() {
            let facts = self.facts("CONNECT");
            let v = self.run_stage(Stage::Client, &facts).await;
            if let Some(r) = v.decision.reply() {
                self.log_reject("CONNECT", r, None);
                self.proto.access_denied = Some(r.clone());
                self.proto.error_count += 1;
                banner = r.clone();
            }
            self.proto.client_verdict = Some(v);
        }
        let ending = match self.send(banner).await {
            Ok(()) => self.command_loop().await,
            Err(e) => ending_of(e),
        };
        self.finish(ending).await;
    }

    /// Refuses the connection with `reply` instead of the greeting (connection limits), logging
    /// it like any other session.
    pub async fn refuse(mut self, reply: Reply) {
        crate::info!("smtpd", "connect from {}", self.ctx.client.namaddr());
        // A wrapper-mode client understands nothing outside TLS.
        if !self.wrapper_handshake().await {
            self.finish(Ending::Lost).await;
            return;
        }
        self.io.queue(&reply, true);
        self.finish(Ending::Closed).await;
    }

    async fn command_loop(&mut self) -> Ending {
        loop {
            if self.proto.error_count >= self.cfg().smtpd_hard_error_limit {
                let r = Reply::new(
                    421,
                    "4.7.0",
                    format!("{} Error: too many errors", self.hostname()),
                );
                let _ = self.send(r).await;
                return Ending::TooManyErrors;
            }
            let line = match self.io.read_line(&mut self.lines).await {
                Ok(line) => line,
                Err(e) => return ending_of(e),
            };
            let flow = match line {
                Line::Command(bytes) => match self.dispatch(&bytes).await {
                    Ok(flow) => flow,
                    Err(e) => return ending_of(e),
                },
                Line::TooLong => {
                    self.proto.stats.count("unknown", false);
                    let r = Reply::new(
                        500,
                        "5.5.2",
                        format!("{} Error: command too long", self.hostname()),
                    );
                    match self.reply(r).await {
                        Ok(()) => Flow::Error,
                        Err(e) => return ending_of(e),
                    }
                }
                Line::BareNewline => {
                    self.proto.stats.count("unknown", false);
                    self.log_reject(self.proto.stage, &self.bare_newline_reply(), None);
                    let _ = self.send(self.bare_newline_reply()).await;
                    return Ending::Closed;
                }
            };
            match flow {
                Flow::Ok => {}
                Flow::Error => self.proto.error_count += 1,
                Flow::Close => return Ending::Quit,
            }
        }
    }

    async fn dispatch(&mut self, line: &[u8]) -> Result<Flow, IoError> {
        let smtputf8 =
            self.cfg().smtputf8_enable && self.txn.as_ref().is_some_and(|t| t.params.smtputf8);
        let verb = stats_name(line);
        // RFC 2920 §3.2: without PIPELINING (HELO clients) a client must wait for each reply;
        // DATA must always be the last command of a group.
        self.proto.unauth_pipelining =
            !self.io.pending().is_empty() && (!self.proto.esmtp || verb == "data");
        if self.proto.access_denied.is_some() && verb != "quit" {
            self.proto.stats.count(verb, false);
            let r = Reply::new(
                503,
                "5.7.0",
                format!("Error: access denied for {}", self.ctx.client.namaddr()),
            );
            return self.fail(r).await;
        }
        if let Some(r) = self.tls_required(verb) {
            self.proto.stats.count(verb, false);
            return self.fail(r).await;
        }
        if verb == "rcpt" {
            if let Some(t) = self.txn.as_mut() {
                t.rcpt_tried = true;
            }
        }
        let flow = match parse_command(line, smtputf8) {
            Ok(cmd) => {
                self.proto.stage = cmd.verb();
                self.execute(cmd).await?
            }
            Err(err) => {
                self.proto.stage = if verb == "unknown" {
                    "UNKNOWN"
                } else {
                    verb_upper(verb)
                };
                self.command_error(verb, line, err).await?
            }
        };
        let ok = matches!(flow, Flow::Ok) || (verb == "quit" && matches!(flow, Flow::Close));
        self.proto.stats.count(verb, ok);
        if matches!(verb, "helo" | "ehlo" | "rset" | "noop" | "vrfy" | "etrn") {
            self.proto.junk_commands += 1;
            if self.proto.junk_commands > JUNK_COMMAND_LIMIT {
                self.proto.error_count += 1;
            }
        }
        Ok(flow)
    }

    async fn execute(&mut self, cmd: Command) -> Result<Flow, IoError> {
        match cmd {
            Command::Helo(name) => self.helo(name).await,
            Command::Ehlo(name) => self.ehlo(name).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => self.rset().await,
            Command::Noop => self.noop().await,
            Command::Quit => self.quit().await,
            Command::Vrfy(arg) => self.vrfy(arg).await,
            Command::Expn(_) => self.expn().await,
            Command::Help(_) => self.help().await,
            Command::Etrn(arg) => self.etrn(arg).await,
            Command::Starttls => self.starttls().await,
            Command::Auth(arg) => self.auth(arg).await,
        }
    }

    async fn command_error(
        &mut self,
        verb: &'static str,
        line: &[u8],
        err: CommandError,
    ) -> Result<Flow, IoError> {
        let sequence = match verb {
            "mail" => self.mail_sequence(),
            "rcpt" => self.rcpt_sequence(),
            "data" => self.data_sequence(),
            _ => None,
        };
        if let Some(r) = sequence {
            return self.fail(r).await;
        }
        match (&err, verb) {
            // A mail header sent as a command: a client (or an attacker's web form) is talking
            // to the wrong port. Postfix hangs up with this reply (smtpd.c "non-SMTP command").
            (CommandError::Unrecognized(word), _) if word.ends_with(':') => {
                crate::warn!(
                    "smtpd",
                    "non-SMTP command from {}: {}",
                    self.ctx.client.namaddr(),
                    printable(line)
                );
                self.reply(Reply::new(
                    221,
                    "2.7.0",
                    "Error: I can break rules, too. Goodbye.",
                ))
                .await?;
                Ok(Flow::Close)
            }
            // After a malformed BDAT the next bytes are raw content that would be read as
            // commands; Postfix hangs up (521, RFC 7504).
            (CommandError::Usage(_), "bdat") => {
                crate::warn!(
                    "smtpd",
                    "{}: malformed BDAT command syntax from {}: {}",
                    self.queue_id_or_noqueue(),
                    self.ctx.client.namaddr(),
                    printable(line)
                );
                self.reply(Reply::new(521, "5.5.4", "Syntax: BDAT count [LAST]"))
                    .await?;
                Ok(Flow::Close)
            }
            // Postfix sends HELO/EHLO usage errors without an enhanced code.
            (CommandError::Usage(usage), "helo" | "ehlo") => {
                self.fail(Reply::new(501, "", format!("Syntax: {usage}")))
                    .await
            }
            _ => self.fail(err.reply()).await,
        }
    }

    /// Sends a reply to a command (see [`Session::send`] for the error-sleep rule).
    pub(super) async fn reply(&mut self, reply: Reply) -> Result<(), IoError> {
        // postconf(5) smtpd_soft_error_limit / smtpd_error_sleep_time: slow down clients that
        // make many errors (a tarpit for address harvesters). Flush first so the delay does not
        // also hold back replies the client is already waiting for.
        if self.proto.error_count >= self.cfg().smtpd_soft_error_limit {
            let delay = self.cfg().smtpd_error_sleep_time;
            if delay > Duration::ZERO {
                self.io.flush().await?;
                tokio::time::sleep(delay).await;
            }
        }
        self.send(reply).await
    }

    /// Queues a reply without the error sleep. `soft_bounce = yes` turns 5xx into 4xx, as
    /// Postfix's smtpd_chat does for every reply.
    pub(super) async fn send(&mut self, mut reply: Reply) -> Result<(), IoError> {
        if self.cfg().soft_bounce && reply.is_permanent() {
            reply.code -= 100;
            if let Some(e) = reply.enhanced.as_mut() {
                e.class = 4;
            }
        }
        let closes = reply.closes_connection();
        self.io.queue(&reply, self.proto.enhanced);
        if closes || self.io.queued() >= FLUSH_THRESHOLD {
            self.io.flush().await?;
        }
        Ok(())
    }

    /// Replies and reports success.
    pub(super) async fn ok(&mut self, reply: Reply) -> Result<Flow, IoError> {
        self.reply(reply).await?;
        Ok(Flow::Ok)
    }

    /// Replies and reports an error.
    pub(super) async fn fail(&mut self, reply: Reply) -> Result<Flow, IoError> {
        self.reply(reply).await?;
        Ok(Flow::Error)
    }

    /// Replies with a restriction's refusal; 421 and 521 (an access(5) `421 text`) also end
    /// the session, as in Postfix.
    pub(super) async fn refused(&mut self, reply: Reply) -> Result<Flow, IoError> {
        let closes = reply.closes_connection();
        self.reply(reply).await?;
        Ok(if closes { Flow::Close } else { Flow::Error })
    }

    /// `<code> 5.5.2 <host> Error: bare <LF> received` (Postfix 3.9 smtpd, code from
    /// `smtpd_forbid_bare_newline_reject_code`).
    pub(super) fn bare_newline_reply(&self) -> Reply {
        let code = self.cfg().smtpd_forbid_bare_newline_reject_code;
        let enh = if code < 500 { "4.5.2" } else { "5.5.2" };
        Reply::new(
            code,
            enh,
            format!("{} Error: bare <LF> received", self.hostname()),
        )
    }

    pub(super) fn queue_id_or_noqueue(&self) -> String {
        self.txn
            .as_ref()
            .and_then(|t| t.id.as_ref())
            .map(Reservation::id)
            .map_or_else(|| "NOQUEUE".to_string(), |id| id.to_string())
    }

    /// Postfix's reject log line: `NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 …;
    /// from=<…> to=<…> proto=ESMTP helo=<…>`.
    pub(super) fn log_reject(&self, stage: &str, reply: &Reply, to: Option<&str>) {
        let from = self.txn.as_ref().map(|t| t.sender.as_str());
        self.log_reject_from(stage, reply, from, to);
    }

    /// [`Session::log_reject`] with an explicit sender (MAIL is refused before the transaction
    /// exists).
    pub(super) fn log_reject_from(
        &self,
        stage: &str,
        reply: &Reply,
        from: Option<&str>,
        to: Option<&str>,
    ) {
        self.log_event("reject", stage, &reply.to_string(), from, to);
    }

    /// `<qid>: <kind>: <STAGE> from <client>: <text>; from=<…> to=<…> proto=… helo=<…>`, the
    /// shape of Postfix's reject, warn, hold, discard, … lines.
    pub(super) fn log_event(
        &self,
        kind: &str,
        stage: &str,
        text: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) {
        let mut line = format!(
            "{}: {kind}: {stage} from {}: {text};",
            self.queue_id_or_noqueue(),
            self.ctx.client.namaddr()
        );
        if let Some(from) = from {
            line.push_str(&format!(" from=<{from}>"));
        }
        if let Some(to) = to {
            line.push_str(&format!(" to=<{to}>"));
        }
        line.push_str(if self.proto.esmtp {
            " proto=ESMTP"
        } else {
            " proto=SMTP"
        });
        if let Some(h) = &self.proto.helo {
            line.push_str(&format!(" helo=<{h}>"));
        }
        crate::info!("smtpd", "{line}");
    }

    /// Closes the connection and writes the session's log lines.
    async fn finish(&mut self, ending: Ending) {
        if matches!(ending, Ending::Shutdown) {
            let r = Reply::new(
                421,
                "4.3.2",
                format!("{} Service shutting down", self.hostname()),
            );
            self.io.queue(&r, self.proto.enhanced);
        }
        if matches!(ending, Ending::Timeout) {
            let r = Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", self.hostname()),
            );
            self.io.queue(&r, self.proto.enhanced);
        }
        self.io.close().await;
        let reason = match ending {
            Ending::Lost => Some("lost connection"),
            Ending::Timeout => Some("timeout"),
            Ending::TooManyErrors => Some("too many errors"),
            Ending::Quit | Ending::Shutdown | Ending::Closed => None,
        };
        let namaddr = self.ctx.client.namaddr();
        if let Some(reason) = reason {
            let stage = self.proto.stage;
            if stage == "DATA" || stage == "BDAT" {
                let n = self.proto.data_bytes;
                crate::info!("smtpd", "{reason} after {stage} ({n} bytes) from {namaddr}");
            } else if stage != "END-OF-MESSAGE" || reason != "lost connection" {
                crate::info!("smtpd", "{reason} after {stage} from {namaddr}");
            }
        }
        crate::info!(
            "smtpd",
            "disconnect from {namaddr}{}",
            self.proto.stats.summary()
        );
    }
}

fn ending_of(e: IoError) -> Ending {
    match e {
        IoError::Lost => Ending::Lost,
        IoError::Timeout => Ending::Timeout,
        IoError::Shutdown => Ending::Shutdown,
    }
}

/// Command line for a log line: at most 100 characters, non-printables as `?`.
pub(super) fn printable(line: &[u8]) -> String {
    crate::log::printable(&String::from_utf8_lossy(&line[..line.len().min(100)]))
}
