//! `smtpd_sasl_type = dovecot`: a client of Dovecot's authentication protocol (version 1.2,
//! the one Postfix's `xsasl_dovecot_server.c` speaks), over the auth service's unix socket or
//! `inet:host:port`.
//!
//! One connection per AUTH command: `VERSION\t1\t2`, `CPID\t<pid>`, the server's handshake up
//! to `DONE` (its `MECH` lines must include `PLAIN`), then
//! `AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip=<client>\t[secured\t]resp=<base64>` and one
//! `OK`, `FAIL` or `CONT` reply. smtpd has already run the client's SASL exchange (PLAIN or
//! LOGIN), so Dovecot is always asked with PLAIN. `FAIL` with `temp` is a temporary failure.
//!
//! Every step is time-limited: connecting and the handshake take at most [`CONNECT_TIMEOUT`],
//! the answer at most [`REPLY_TIMEOUT`] (Dovecot delays failures by `auth_failure_delay`).

use std::time::Duration;

use base64::Engine;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

use super::{
    AuthContext, AuthFuture, AuthResult, Authenticator, Credentials, Login, Target, FAILURE_TEXT,
};

/// Connecting and reading the server's handshake (Postfix uses 10s too).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for `OK`/`FAIL` (covers Dovecot's `auth_failure_delay`, 2s by default).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line accepted from the server.
const MAX_LINE: usize = 16 * 1024;

/// The Dovecot back end.
#[derive(Debug, Clone)]
pub struct DovecotAuth {
    target: Target,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl DovecotAuth {
    pub fn new(target: Target) -> DovecotAuth {
        DovecotAuth { target }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        match &self.target {
            Target::Unix(path) => {
                #[cfg(unix)]
                {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok(Box::new(s))
                }
                #[cfg(not(unix))]
                {
                    let _ = path;
                    Err(std::io::Error::other("unix sockets are not supported here"))
                }
            }
            Target::Inet(addr) => {
                let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
        }
    }

    async fn ask(&self, creds: &Credentials, ctx: &AuthContext) -> AuthResult {
        let target = &self.target;
        let setup = async {
            let stream = self.connect().await.map_err(|e| {
                // Postfix: "SASL: Connect to private/auth failed: No such file or directory".
                crate::warn!("smtpd", "SASL: Connect to {target} failed: {e}");
                "Can't connect to authentication server".to_string()
            })?;
            let mut conn = BufReader::new(stream);
            let hello = format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id());
            conn.get_mut()
                .write_all(hello.as_bytes())
                .await
                .map_err(|e| lost(target, &e.to_string()))?;
            handshake(&mut conn).await.map_err(|e| lost(target, &e))?;
            Ok::<_, String>(conn)
        };
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, setup).await {
            Ok(Ok(c)) => c,
            Ok(Err(reason)) => return AuthResult::TempFail(reason),
            Err(_) => {
                crate::warn!("smtpd", "SASL: {target}: timeout during the handshake");
                return AuthResult::TempFail("Authentication server timeout".to_string());
            }
        };
        let request = auth_request(creds, ctx);
        let exchange = async {
            conn.get_mut().write_all(request.as_bytes()).await?;
            conn.get_mut().flush().await?;
            loop {
                let Some(line) = read_line(&mut conn).await? else {
                    return Ok::<_, std::io::Error>(None);
                };
                if let Some(r) = parse_reply(&line, ctx) {
                    return Ok(Some(r));
                }
            }
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) | Ok(Err(_)) => {
                crate::warn!("smtpd", "SASL: {target}: connection lost during AUTH");
                AuthResult::TempFail("Connection lost to authentication server".to_string())
            }
            Err(_) => {
                crate::warn!("smtpd", "SASL: {target}: no answer to AUTH");
                AuthResult::TempFail("Authentication server timeout".to_string())
            }
        }
    }
}

impl Authenticator for DovecotAuth {
    fn verify<'a>(&'a self, creds: &'a Credentials, ctx: &'a AuthContext) -> AuthFuture<'a> {
        Box::pin(self.ask(creds, ctx))
    }
}

fn lost(target: &super::Target, what: &str) -> String {
    crate::warn!("smtpd", "SASL: {target}: handshake failed: {what}");
    "Can't connect to authentication server".to_string()
}

/// One line without its LF; `None` at end of input. Over-long lines are an error.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
        return Err(std::io::Error::other("line too long"));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads the server's handshake through `DONE`; the server must speak major version 1 and
/// offer PLAIN.
async fn handshake<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<(), String> {
    let mut plain = false;
    loop {
        let Some(line) = read_line(r).await.map_err(|e| e.to_string())? else {
            return Err("connection closed during the handshake".to_string());
        };
        let mut f = line.split('\t');
        match f.next() {
            Some("VERSION") if f.next() != Some("1") => {
                return Err(format!("protocol version mismatch: {line}"));
            }
            Some("MECH") => plain |= f.next().is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")),
            Some("DONE") => break,
            _ => {}
        }
    }
    if plain {
        Ok(())
    } else {
        Err("the server does not offer PLAIN (auth_mechanisms)".to_string())
    }
}

/// A request field value: Dovecot's protocol is tab- and line-separated.
fn clean(v: &str) -> String {
    v.chars()
        .map(|c| if c == '\t' || c.is_control() { '?' } else { c })
        .collect()
}

/// The AUTH line (request id 1: one request per connection).
fn auth_request(creds: &Credentials, ctx: &AuthContext) -> String {
    let mut raw = Vec::new();
    raw.extend_from_slice(creds.authzid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(creds.username.as_bytes());
    raw.push(0);
    raw.extend_from_slice(creds.password.as_bytes());
    let resp = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut line = format!(
        "AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip={}\trport={}",
        ctx.client_addr, ctx.client_port
    );
    if ctx.secured {
        line.push_str("\tsecured");
    }
    line.push_str("\tresp=");
    line.push_str(&resp);
    line.push('\n');
    line
}

/// The answer to request 1, or `None` for lines about something else.
fn parse_reply(line: &str, ctx: &AuthContext) -> Option<AuthResult> {
    let mut f = line.split('\t');
    let cmd = f.next()?;
    if !matches!(cmd, "OK" | "FAIL" | "CONT") || f.next() != Some("1") {
        return None;
    }
    let mut user = None;
    let mut reason = None;
    let mut temp = false;
    for arg in f {
        if let Some(u) = arg.strip_prefix("user=") {
            user = Some(clean(u));
        } else if let Some(r) = arg.strip_prefix("reason=") {
            reason = Some(super::printable(&clean(r)));
        } else if arg == "temp" {
            temp = true;
        }
    }
    Some(match cmd {
        "OK" => match user {
            Some(username) if !username.is_empty() => AuthResult::Ok(Login {
                username,
                method: ctx.method.clone(),
            }),
            _ => AuthResult::TempFail("authentication server sent no user name".to_string()),
        },
        // PLAIN with an initial response needs no further round; a challenge means the
        // server and smtpd disagree about the mechanism.
        "CONT" => AuthResult::TempFail("unexpected challenge from authentication server".into()),
        _ if temp => AuthResult::TempFail(reason.unwrap_or_else(|| "temporary failure".into())),
        _ => AuthResult::Failed(reason.unwrap_or_else(|| FAILURE_TEXT.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> AuthContext {
        AuthContext {
            method: "PLAIN".into(),
            client_addr: "192.0.2.7".parse().expect("ip"),
            client_port: 4711,
            secured: true,
        }
    }

    fn creds() -> Credentials {
        Credentials {
            authzid: String::new(),
            username: "alice".into(),
            password: "pw".into(),
        }
    }

    #[test]
    fn request_line_carries_plain_response() {
        let line = auth_request(&creds(), &ctx());
        assert_eq!(
            line,
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip=192.0.2.7\trport=4711\tsecured\t\
             resp=AGFsaWNlAHB3\n"
        );
    }

    #[test]
    fn replies() {
        let c = ctx();
        assert_eq!(
            parse_reply("OK\t1\tuser=alice@example.org", &c),
            Some(AuthResult::Ok(Login {
                username: "alice@example.org".into(),
                method: "PLAIN".into()
            }))
        );
        assert_eq!(
            parse_reply("FAIL\t1\tuser=alice", &c),
            Some(AuthResult::Failed(FAILURE_TEXT.into()))
        );
        assert_eq!(
            parse_reply("FAIL\t1\ttemp\treason=db down", &c),
            Some(AuthResult::TempFail("db down".into()))
        );
        assert_eq!(parse_reply("FAIL\t2", &c), None);
        assert_eq!(parse_reply("SPID\t1", &c), None);
    }

    /// A scripted Dovecot auth server on a loopback port.
    async fn fake_server(
        handshake: &'static str,
        answer: &'static str,
    ) -> (Target, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            s.write_all(handshake.as_bytes()).await.expect("write");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&got).contains("AUTH\t") || !got.ends_with(b"\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            s.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&got).into_owned()
        });
        (Target::Inet(addr.to_string()), task)
    }

    const HELLO: &str = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
                         SPID\t1\nCUID\t1\nCOOKIE\tab\nDONE\n";

    #[tokio::test]
    async fn talks_to_a_scripted_server() {
        let (target, task) = fake_server(HELLO, "OK\t1\tuser=alice\n").await;
        let r = DovecotAuth::new(target).verify(&creds(), &ctx()).await;
        assert!(
            matches!(r, AuthResult::Ok(ref l) if l.username == "alice"),
            "{r:?}"
        );
        let seen = task.await.expect("server");
        assert!(seen.starts_with("VERSION\t1\t2\nCPID\t"), "{seen:?}");

        let (target, _t) = fake_server(HELLO, "FAIL\t1\tuser=alice\n").await;
        let r = DovecotAuth::new(target).verify(&creds(), &ctx()).await;
        assert_eq!(r, AuthResult::Failed(FAILURE_TEXT.into()));

        let (target, _t) = fake_server("VERSION\t1\t2\nMECH\tCRAM-MD5\nDONE\n", "").await;
        let r = DovecotAuth::new(target).verify(&creds(), &ctx()).await;
        assert!(matches!(r, AuthResult::TempFail(_)), "{r:?}");
    }

    #[tokio::test]
    async fn missing_socket_is_a_temporary_failure() {
        let target = Target::Unix("/nonexistent/postern-test/auth".into());
        let r = DovecotAuth::new(target).verify(&creds(), &ctx()).await;
        assert_eq!(
            r,
            AuthResult::TempFail("Can't connect to authentication server".into())
        );
    }
}
