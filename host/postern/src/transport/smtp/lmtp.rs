//! lmtp(8): delivery to an LMTP server (RFC 2033) such as Dovecot, over a UNIX-domain socket
//! or TCP. The conversation is the smtp client's ([`super::client::Session`] with
//! [`Dialect::Lmtp`]): LHLO instead of EHLO, and one reply per accepted recipient after the
//! final dot, so each recipient gets the mailbox's own answer.
//!
//! Next hops (Postfix lmtp(8)): `unix:/path` or a bare `/path` (a relative path is taken
//! from `queue_directory`, as in `lmtp:unix:private/dovecot-lmtp`), `inet:host:port`,
//! `inet:host` (port `lmtp_tcp_port`), `host:port`, `[host]:port`. Host names are looked up
//! as addresses only — LMTP never uses MX records. No TLS.
//!
//! A job with more than `lmtp_destination_recipient_limit` recipients is delivered in several
//! transactions, each on its own connection. LHLO and the greeting have `lmtp_lhlo_timeout`
//! and the connection `lmtp_connect_timeout` (0: the system's limit); the other stages use
//! the `smtp_*_timeout` values, whose defaults equal Postfix's `lmtp_*_timeout` ones.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_config::Config;
use postern_proto::EnhancedCode;
use tokio::net::{TcpStream, UnixStream};

use super::client::{defer, io_text, Attempt, Dialect, Message, Session, Settings};
use super::stream::Stream;
use crate::transport::{Job, Outcome};

/// Where the LMTP server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Inet { host: String, port: u16 },
}

/// Parses an lmtp next hop; `None` for text that is none of the forms.
pub fn parse(text: &str, default_port: u16) -> Option<Target> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix:") {
        return (!path.is_empty()).then(|| Target::Unix(PathBuf::from(path)));
    }
    if text.starts_with('/') {
        return Some(Target::Unix(PathBuf::from(text)));
    }
    let rest = text.strip_prefix("inet:").unwrap_or(text);
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (host, after) = r.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else if rest.parse::<IpAddr>().is_ok() {
        (rest, None)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) if p.eq_ignore_ascii_case("lmtp") => 24,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
    };
    Some(Target::Inet { host, port })
}

/// The session settings for LMTP: `lmtp_lhlo_name`, `lmtp_*` time limits, no TLS.
pub fn settings(cfg: &Config) -> Settings {
    let mut s = Settings::from_config(cfg);
    s.dialect = Dialect::Lmtp;
    let lhlo = cfg.delivery.lmtp_lhlo_name.trim();
    s.helo_name = if lhlo.is_empty() {
        cfg.myhostname.clone()
    } else {
        lhlo.to_string()
    };
    s.helo = cfg.delivery.lmtp_lhlo_timeout;
    s.connect = cfg.delivery.lmtp_connect_timeout;
    s
}

/// Delivers one job and returns one outcome per entry of `job.rcpts`, in order.
pub async fn deliver(cfg: Arc<Config>, job: &Job) -> Vec<Outcome> {
    let n = job.rcpts.len();
    let Some(mut target) = parse(&job.route.nexthop, cfg.delivery.lmtp_tcp_port) else {
        let text = format!(
            "bad lmtp next hop \"{}\" (use unix:/path, inet:host:port or host:port)",
            job.route.nexthop
        );
        return vec![Outcome::defer(EnhancedCode::new(4, 3, 5), "none", text); n];
    };
    if let Target::Unix(p) = &mut target {
        if p.is_relative() {
            *p = cfg.queue_directory.join(&*p);
        }
    }
    let settings = settings(&cfg);
    let limit = match cfg.delivery.lmtp_recipient_limit {
        0 => n.max(1),
        l => l,
    };
    let mut out = Vec::with_capacity(n);
    for chunk in job.rcpts.chunks(limit) {
        let msg = match Message::of_job(job, chunk) {
            Ok(m) => m,
            Err(o) => {
                out.extend(std::iter::repeat_n(o, chunk.len()));
                continue;
            }
        };
        match deliver_to(
            &settings,
            &target,
            &job.route.nexthop,
            &cfg.myhostname,
            &msg,
        )
        .await
        {
            Ok(outcomes) => out.extend(outcomes),
            Err(o) => {
                // The server cannot be used: the rest of the job gets the same answer rather
                // than one more failed connection per transaction.
                out.extend(std::iter::repeat_n(o, n - out.len()));
                break;
            }
        }
    }
    out
}

/// One transaction with the server of `target`. `Err` when no connection could be used.
pub async fn deliver_to(
    settings: &Settings,
    target: &Target,
    written: &str,
    myhostname: &str,
    msg: &Message<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let attempt = match target {
        Target::Unix(path) => {
            // Postfix's `relay=myhostname[private/dovecot-lmtp]`: the path as written.
            let shown = written
                .trim()
                .strip_prefix("unix:")
                .unwrap_or(written.trim());
            let peer = format!("{myhostname}[{shown}]");
            match bounded(settings.connect, UnixStream::connect(path)).await {
                Ok(s) => {
                    Session::new(Stream::Unix(s), settings, peer.clone(), peer)
                        .run(msg)
                        .await
                }
                Err(e) => Attempt::Next(defer(
                    4,
                    4,
                    1,
                    &peer,
                    format!("connect to {peer}: {}", io_text(&e)),
                )),
            }
        }
        Target::Inet { host, port } => return inet(settings, host, *port, msg).await,
    };
    finish(attempt, msg)
}

async fn inet(
    settings: &Settings,
    host: &str,
    port: u16,
    msg: &Message<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                let text = format!(
                    "Host or domain name not found. Name service error for name={host}: {e}"
                );
                return Err(defer(4, 4, 3, "none", text));
            }
        },
    };
    let mut last = defer(4, 4, 1, "none", format!("no address for {host}"));
    for addr in addrs {
        let peer = format!("{host}[{}]", addr.ip());
        let relay = format!("{peer}:{port}");
        let attempt = match bounded(settings.connect, TcpStream::connect(addr)).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Session::new(Stream::Tcp(s), settings, peer, relay)
                    .run(msg)
                    .await
            }
            Err(e) => Attempt::Next(defer(
                4,
                4,
                1,
                &relay,
                format!("connect to {relay}: {}", io_text(&e)),
            )),
        };
        match finish(attempt, msg) {
            Ok(outcomes) => return Ok(outcomes),
            Err(o) => last = o,
        }
    }
    Err(last)
}

fn finish(attempt: Attempt, msg: &Message<'_>) -> Result<Vec<Outcome>, Outcome> {
    match attempt {
        Attempt::Done(outcomes) => Ok(outcomes),
        Attempt::Next(o) => {
            crate::info!("lmtp", "{}: {}", msg.queue_id, o.text);
            Err(o)
        }
        Attempt::Plaintext(why) => Err(defer(4, 7, 5, "none", why)),
    }
}

/// `connect` within `limit`; a zero limit leaves it to the system (`lmtp_connect_timeout = 0`).
async fn bounded<T>(
    limit: Duration,
    connect: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    if limit.is_zero() {
        return connect.await;
    }
    match tokio::time::timeout(limit, connect).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "Connection timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: &str, port: u16) -> Option<Target> {
        Some(Target::Inet {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn next_hops() {
        let unix = |p: &str| Some(Target::Unix(PathBuf::from(p)));
        assert_eq!(
            parse("unix:/run/dovecot/lmtp", 24),
            unix("/run/dovecot/lmtp")
        );
        assert_eq!(
            parse("unix:private/dovecot-lmtp", 24),
            unix("private/dovecot-lmtp")
        );
        assert_eq!(parse("/run/dovecot/lmtp", 24), unix("/run/dovecot/lmtp"));
        assert_eq!(
            parse("inet:mail.example:2424", 24),
            inet("mail.example", 2424)
        );
        assert_eq!(parse("inet:mail.example", 24), inet("mail.example", 24));
        assert_eq!(parse("mail.example", 2003), inet("mail.example", 2003));
        assert_eq!(parse("127.0.0.1:24", 24), inet("127.0.0.1", 24));
        assert_eq!(parse("[127.0.0.1]:2003", 24), inet("127.0.0.1", 2003));
        assert_eq!(parse("inet:[::1]:24", 24), inet("::1", 24));
        assert_eq!(parse("::1", 24), inet("::1", 24));
        for bad in ["", "unix:", "inet:", "host:0", "host:x", "[h", "a b"] {
            assert_eq!(parse(bad, 24), None, "{bad}");
        }
    }
}
