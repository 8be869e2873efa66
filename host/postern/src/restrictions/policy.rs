//! `check_policy_service`: the client side of Postfix's SMTPD policy delegation protocol
//! (SMTPD_POLICY_README, postconf(5) `smtpd_policy_service_*`).
//!
//! smtpd sends one request per restriction evaluation — `name=value\n` lines, then an empty
//! line — and the policy server answers `action=…\n` plus optional other attributes, then an
//! empty line. The action is an access(5) action (`DUNNO`, `DEFER_IF_PERMIT text`,
//! `PREPEND header`, …) that the caller parses with its access-action parser; this module only
//! moves bytes and owns the failure policy.
//!
//! Services are named `inet:host:port` or `unix:/path` (a relative unix path is resolved against
//! `queue_directory`, where Postfix's daemons run, so `unix:private/policy` works as in Postfix).
//! Postfix 3.0's per-service overrides are accepted too:
//! `{ inet:host:port, timeout=10s, default_action=DUNNO, policy_context=… }`, with the names
//! `timeout`, `default_action`, `max_idle`, `max_ttl`, `request_limit`, `retry_delay`,
//! `try_limit` and `policy_context`; a value with spaces goes in its own braces
//! (`{ default_action = 451 4.3.5 try later }`).
//!
//! Failures (refused connection, timeout, a server that closes, a malformed reply) never become
//! SMTP errors of their own: after `smtpd_policy_service_try_limit` attempts the result is
//! `smtpd_policy_service_default_action`, and each failed attempt logs Postfix's
//! `warning: problem talking to server inet:127.0.0.1:10023: …`. Only a spec that cannot be
//! parsed is an error ([`LookupError::Config`] → `451 4.3.5` at the caller).
//!
//! `policy_time_limit` is not used here: in Postfix it is the time limit that spawn(8) puts on
//! a policy server *process* it runs from master.cf; Postern does not spawn policy servers, so
//! the client side is bounded by `smtpd_policy_service_timeout` alone.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postern_config::{parse_time, Config};
use postern_maps::LookupError;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpStream, UnixStream};

/// Idle connections kept per service. Postfix keeps one per smtpd process (up to
/// `default_process_limit` of them); Postern's sessions share one process, so the pool is
/// bounded explicitly to keep a burst of sessions from holding the server's sockets forever.
const MAX_IDLE_PER_SERVICE: usize = 64;

/// Longest reply accepted. A real reply is one short line; anything this long is a server that
/// is not speaking the protocol, and reading on would only let it use our memory.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Connections to policy servers, shared by all sessions of one configuration (`Arc` it).
/// Idle connections are reused per service until `smtpd_policy_service_max_idle` of idleness,
/// `smtpd_policy_service_max_ttl` since connecting, or `smtpd_policy_service_request_limit`
/// requests; expired ones are closed the next time their service is used, or when this value
/// is dropped (on reload).
#[derive(Default)]
pub struct PolicyClients {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl fmt::Debug for PolicyClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle: usize = self.lock().values().map(Vec::len).sum();
        f.debug_struct("PolicyClients")
            .field("idle", &idle)
            .finish()
    }
}

impl PolicyClients {
    pub fn new() -> PolicyClients {
        PolicyClients::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Conn>>> {
        // A panic while holding the lock leaves only a list of sockets behind: still usable.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still within its limits.
    fn take(&self, svc: &Service) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.get_mut(&svc.name)?;
        while let Some(conn) = list.pop() {
            if conn.reusable(svc, now) {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, svc: &Service, conn: Conn) {
        let now = Instant::now();
        if !conn.reusable(svc, now) {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(svc.name.clone()).or_default();
        list.retain(|c| c.reusable(svc, now));
        if list.len() >= MAX_IDLE_PER_SERVICE {
            list.remove(0);
        }
        list.push(conn);
    }
}

/// Sends `attrs` to the policy service `spec` (the text after `check_policy_service`) and
/// returns its `action=` value, or `smtpd_policy_service_default_action` when the server could
/// not be reached or did not answer properly within the try limit.
///
/// `policy_context` is always sent, set from the service's `policy_context=` override or
/// `smtpd_policy_service_policy_context`, replacing any value in `attrs`. Newlines in values
/// are sent as spaces: a value must never be able to end the request or add attributes.
pub async fn query(
    clients: &PolicyClients,
    spec: &str,
    attrs: &[(&'static str, String)],
    cfg: &Config,
) -> Result<String, LookupError> {
    let svc = Service::parse(spec, cfg)?;
    let request = encode_request(attrs, &svc.policy_context);
    let tries = svc.try_limit.max(1);
    let mut attempt = 0;
    // A pooled connection the server has closed meanwhile is not the server's fault: try once
    // more on a fresh connection before counting an attempt (Postfix relies on try_limit).
    let mut stale_retry = true;
    loop {
        let (conn, reused) = match clients.take(&svc) {
            Some(conn) => (Ok(conn), true),
            None => (connect(&svc).await, false),
        };
        let problem = match conn {
            Err(problem) => problem,
            Ok(mut conn) => match conn.request(&svc, &request).await {
                Ok(action) => {
                    if conn.clean() {
                        clients.put(&svc, conn);
                    }
                    return Ok(action);
                }
                Err(problem) if reused && stale_retry && problem.is_stale() => {
                    stale_retry = false;
                    continue;
                }
                Err(problem) => problem,
            },
        };
        crate::warn!("smtpd", "problem talking to server {}: {problem}", svc.name);
        attempt += 1;
        if attempt >= tries {
            return Ok(svc.default_action);
        }
        tokio::time::sleep(svc.retry_delay).await;
    }
}

/// The request bytes: `name=value\n` per attribute, then the empty line.
fn encode_request(attrs: &[(&'static str, String)], policy_context: &str) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let mut line = |name: &str, value: &str| {
        out.push_str(name);
        out.push('=');
        out.extend(value.chars().map(|c| match c {
            '\n' | '\r' => ' ',
            c => c,
        }));
        out.push('\n');
    };
    for (name, value) in attrs {
        if *name != "policy_context" {
            line(name, value);
        }
    }
    line("policy_context", policy_context);
    out.push('\n');
    out.into_bytes()
}

/// Where a service lives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

/// One `check_policy_service` target with its effective settings.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Service {
    /// As written (`inet:127.0.0.1:10023`): the pool key and the name in warnings.
    name: String,
    endpoint: Endpoint,
    timeout: Duration,
    default_action: String,
    max_idle: Duration,
    max_ttl: Duration,
    request_limit: u32,
    retry_delay: Duration,
    try_limit: u32,
    policy_context: String,
}

impl Service {
    fn parse(spec: &str, cfg: &Config) -> Result<Service, LookupError> {
        let bad = |why: String| LookupError::Config(format!("check_policy_service {spec}: {why}"));
        let text = spec.trim();
        let items = match text.strip_prefix('{') {
            Some(rest) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| bad("missing '}'".into()))?;
                split_items(inner).map_err(bad)?
            }
            None => vec![text.to_string()],
        };
        let mut items = items.into_iter();
        let name = items
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no server name".into()))?;
        let endpoint = parse_endpoint(&name, &cfg.queue_directory).map_err(bad)?;
        let mut svc = Service {
            name,
            endpoint,
            timeout: cfg.smtpd_policy_service_timeout,
            default_action: cfg.smtpd_policy_service_default_action.clone(),
            max_idle: cfg.smtpd_policy_service_max_idle,
            max_ttl: cfg.smtpd_policy_service_max_ttl,
            request_limit: cfg.smtpd_policy_service_request_limit,
            retry_delay: cfg.smtpd_policy_service_retry_delay,
            try_limit: cfg.smtpd_policy_service_try_limit,
            policy_context: cfg.smtpd_policy_service_policy_context.clone(),
        };
        for item in items {
            let item = item.strip_prefix('{').unwrap_or(&item);
            let item = item.strip_suffix('}').unwrap_or(item);
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("expected name=value, found \"{item}\"")))?;
            let (key, value) = (key.trim(), value.trim());
            let time = || {
                parse_time(value, 's').ok_or_else(|| bad(format!("bad time value {key}={value}")))
            };
            let count = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(format!("bad number {key}={value}")))
            };
            match key {
                "timeout" => svc.timeout = time()?,
                "max_idle" => svc.max_idle = time()?,
                "max_ttl" => svc.max_ttl = time()?,
                "retry_delay" => svc.retry_delay = time()?,
                "request_limit" => svc.request_limit = count()?,
                "try_limit" => svc.try_limit = count()?,
                "default_action" => svc.default_action = value.to_string(),
                "policy_context" => svc.policy_context = value.to_string(),
                _ => return Err(bad(format!("unknown attribute \"{key}\""))),
            }
        }
        Ok(svc)
    }
}

/// Splits the inside of `{ … }` at commas and white space, keeping nested `{ … }` whole
/// (Postfix's `mystrtokq` with brace quoting).
fn split_items(text: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.checked_sub(1).ok_or("unbalanced '}'")?;
                cur.push(c);
            }
            c if depth == 0 && (c == ',' || c.is_whitespace()) => {
                if !cur.is_empty() {
                    items.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return Err("unbalanced '{'".into());
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    Ok(items)
}

fn parse_endpoint(name: &str, queue_directory: &Path) -> Result<Endpoint, String> {
    let (transport, rest) = name
        .split_once(':')
        .ok_or_else(|| format!("need inet:host:port or unix:/path, found \"{name}\""))?;
    match transport {
        "inet" => {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("missing port in \"{name}\""))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port in \"{name}\" (a number is required)"))?;
            if host.is_empty() {
                return Err(format!("missing host in \"{name}\""));
            }
            Ok(Endpoint::Inet {
                host: host.to_string(),
                port,
            })
        }
        "unix" if !rest.is_empty() => Ok(Endpoint::Unix(queue_directory.join(rest))),
        _ => Err(format!(
            "need inet:host:port or unix:/path, found \"{name}\""
        )),
    }
}

/// Why one attempt failed; its Display is the tail of Postfix's warning.
#[derive(Debug)]
enum Problem {
    Io(std::io::Error),
    Timeout,
    /// EOF before the reply was complete.
    Closed,
    Malformed(String),
}

impl Problem {
    /// What a server that closed an idle connection looks like to the next request.
    fn is_stale(&self) -> bool {
        match self {
            Problem::Closed => true,
            Problem::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // strerror text as Postfix's %m gives it, without Rust's " (os error N)".
            Problem::Io(e) => {
                let text = e.to_string();
                let suffix = e.raw_os_error().map(|n| format!(" (os error {n})"));
                let text = suffix
                    .as_deref()
                    .and_then(|s| text.strip_suffix(s))
                    .unwrap_or(&text);
                f.write_str(text)
            }
            Problem::Timeout => f.write_str("Connection timed out"),
            Problem::Closed => f.write_str("Connection closed by server"),
            Problem::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

impl From<std::io::Error> for Problem {
    fn from(e: std::io::Error) -> Problem {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Problem::Closed
        } else {
            Problem::Io(e)
        }
    }
}

enum Stream {
    Tcp(BufReader<TcpStream>),
    Unix(BufReader<UnixStream>),
}

/// One open connection and what counts against its reuse.
struct Conn {
    stream: Stream,
    born: Instant,
    last_used: Instant,
    requests: u32,
}

impl Conn {
    fn reusable(&self, svc: &Service, now: Instant) -> bool {
        now.duration_since(self.last_used) < svc.max_idle
            && now.duration_since(self.born) < svc.max_ttl
            && (svc.request_limit == 0 || self.requests < svc.request_limit)
    }

    /// No unread bytes: a reply followed by anything else means we are out of step with the
    /// server, and the next request would read stale data.
    fn clean(&self) -> bool {
        match &self.stream {
            Stream::Tcp(s) => s.buffer().is_empty(),
            Stream::Unix(s) => s.buffer().is_empty(),
        }
    }

    /// One request/reply within `smtpd_policy_service_timeout`.
    async fn request(&mut self, svc: &Service, request: &[u8]) -> Result<String, Problem> {
        self.requests += 1;
        let exchange = async {
            match &mut self.stream {
                Stream::Tcp(s) => exchange(s, request).await,
                Stream::Unix(s) => exchange(s, request).await,
            }
        };
        let result = tokio::time::timeout(svc.timeout, exchange)
            .await
            .map_err(|_| Problem::Timeout)?;
        self.last_used = Instant::now();
        result
    }
}

async fn connect(svc: &Service) -> Result<Conn, Problem> {
    let stream = async {
        Ok::<_, std::io::Error>(match &svc.endpoint {
            Endpoint::Inet { host, port } => Stream::Tcp(BufReader::new(
                TcpStream::connect((host.as_str(), *port)).await?,
            )),
            Endpoint::Unix(path) => Stream::Unix(BufReader::new(UnixStream::connect(path).await?)),
        })
    };
    let stream = tokio::time::timeout(svc.timeout, stream)
        .await
        .map_err(|_| Problem::Timeout)??;
    let now = Instant::now();
    Ok(Conn {
        stream,
        born: now,
        last_used: now,
        requests: 0,
    })
}

async fn exchange<S>(stream: &mut S, request: &[u8]) -> Result<String, Problem>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.flush().await?;
    read_reply(stream).await
}

/// Reads attributes up to the empty line; returns the first `action=` value. Other attributes
/// are ignored, as Postfix does.
async fn read_reply<S: AsyncBufRead + Unpin>(stream: &mut S) -> Result<String, Problem> {
    let mut action: Option<String> = None;
    let mut total = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let room = (MAX_REPLY_BYTES - total) as u64;
        let n = (&mut *stream)
            .take(room)
            .read_until(b'\n', &mut line)
            .await?;
        total += n;
        if line.last() != Some(&b'\n') {
            return Err(if total >= MAX_REPLY_BYTES {
                Problem::Malformed(format!("longer than {MAX_REPLY_BYTES} bytes"))
            } else {
                Problem::Closed
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| Problem::Malformed(format!("no '=' in \"{}\"", truncate(&text))))?;
        if name == "action" && action.is_none() {
            action = Some(value.trim().to_string());
        }
    }
    match action {
        Some(a) if !a.is_empty() => Ok(a),
        Some(_) => Err(Problem::Malformed("empty action".into())),
        None => Err(Problem::Malformed("missing attribute action".into())),
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
