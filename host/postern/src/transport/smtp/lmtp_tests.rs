//! lmtp(8) against a scripted LMTP server on a UNIX-domain socket: LHLO, one final reply per
//! accepted recipient (RFC 2033 §4.2), and `lmtp_destination_recipient_limit`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use crate::queue::{Envelope, Origin, QueueId, Recipient};
use crate::transport::{Job, Route, Transport};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("postern-lmtp-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    Dir(d)
}

/// Serves `sessions` LMTP sessions; RCPT for `nobody@` is refused, `full@` is accepted but its
/// final reply is 452. Yields what each session received.
fn serve(path: &std::path::Path, sessions: usize) -> JoinHandle<Vec<String>> {
    let listener = UnixListener::bind(path).expect("bind");
    tokio::spawn(async move {
        let mut all = Vec::new();
        for _ in 0..sessions {
            let Ok(Ok((sock, _))) =
                tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
            else {
                break;
            };
            let mut io = BufReader::new(sock);
            let mut seen = String::new();
            let mut accepted: Vec<String> = Vec::new();
            let _ = io
                .get_mut()
                .write_all(b"220 lmtp.test LMTP ready\r\n")
                .await;
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                seen.push_str(&line);
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply = match verb.as_str() {
                    "LHLO" => {
                        "250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into()
                    }
                    "MAIL" => "250 2.1.0 OK\r\n".to_string(),
                    "RCPT" if line.contains("nobody@") => {
                        "550 5.1.1 <nobody@example.test> User doesn't exist\r\n".into()
                    }
                    "RCPT" => {
                        accepted.push(line.clone());
                        "250 2.1.5 OK\r\n".into()
                    }
                    "DATA" if accepted.is_empty() => "503 5.5.1 No valid recipients\r\n".into(),
                    "DATA" => {
                        let _ = io.get_mut().write_all(b"354 OK\r\n").await;
                        loop {
                            let mut l = String::new();
                            if io.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                                break;
                            }
                        }
                        accepted
                            .drain(..)
                            .map(|r| {
                                if r.contains("full@") {
                                    "452 4.2.2 <full@example.test> Quota exceeded\r\n".to_string()
                                } else {
                                    "250 2.0.0 <x> Saved\r\n".to_string()
                                }
                            })
                            .collect()
                    }
                    "QUIT" => {
                        let _ = io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                        break;
                    }
                    _ => "500 5.5.2 what\r\n".into(),
                };
                if io.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
            all.push(seen);
        }
        all
    })
}

fn job(nexthop: &str, rcpts: &[&str]) -> Job {
    let mut env = Envelope::new(
        QueueId::generate(),
        "alice@example.org",
        Origin::Local {
            user: "test".into(),
        },
    );
    env.recipients = rcpts.iter().map(|r| Recipient::new(*r)).collect();
    Job {
        route: Route {
            transport: Transport::Lmtp,
            nexthop: nexthop.into(),
        },
        env: Arc::new(env),
        content: Arc::new(b"Subject: lmtp\n\nbody\n".to_vec()),
        rcpts: (0..rcpts.len()).collect(),
    }
}

fn config(extra: &[(&str, &str)]) -> Arc<postern_config::Config> {
    let mut over: Vec<(String, String)> = vec![("myhostname".into(), "mx.example.test".into())];
    over.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Arc::new(postern_config::load_with(None, &over).expect("config").main)
}

#[tokio::test]
async fn each_recipient_gets_its_own_final_reply() {
    let d = dir("mixed");
    let sock = d.0.join("lmtp");
    let server = serve(&sock, 1);
    let nexthop = format!("unix:{}", sock.display());
    let j = job(
        &nexthop,
        &[
            "bob@example.test",
            "nobody@example.test",
            "full@example.test",
            "carol@example.test",
        ],
    );
    let out = super::lmtp::deliver(config(&[("lmtp_lhlo_name", "client.test")]), &j).await;
    let seen = server.await.expect("server");
    assert!(
        seen[0].starts_with("LHLO client.test\r\nMAIL FROM:<alice@example.org>"),
        "{}",
        seen[0]
    );
    let relay = format!("mx.example.test[{}]", sock.display());
    assert!(out[0].is_sent(), "{:?}", out[0]);
    assert_eq!(out[0].relay, relay);
    assert_eq!(out[0].text, "250 2.0.0 <x> Saved");
    assert!(out[1].is_bounced());
    assert_eq!(out[1].status.to_string(), "5.1.1");
    assert!(
        out[1].text.ends_with("(in reply to RCPT TO command)"),
        "{}",
        out[1].text
    );
    assert!(out[2].is_deferred());
    assert_eq!(out[2].status.to_string(), "4.2.2");
    assert!(
        out[2].text.ends_with("(in reply to end of DATA command)"),
        "{}",
        out[2].text
    );
    assert!(out[3].is_sent(), "{:?}", out[3]);
}

#[tokio::test]
async fn recipient_limit_splits_the_job_into_transactions() {
    let d = dir("limit");
    let sock = d.0.join("lmtp");
    let server = serve(&sock, 2);
    let j = job(
        &sock.display().to_string(),
        &["a@example.test", "b@example.test", "c@example.test"],
    );
    let out = super::lmtp::deliver(config(&[("lmtp_destination_recipient_limit", "2")]), &j).await;
    let seen = server.await.expect("server");
    assert!(out.iter().all(|o| o.is_sent()), "{out:?}");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].matches("RCPT TO").count(), 2);
    assert_eq!(seen[1].matches("RCPT TO").count(), 1);

    // No server: every recipient is deferred with the connect error.
    drop(d);
    let out = super::lmtp::deliver(config(&[]), &j).await;
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.is_deferred()), "{out:?}");
    assert!(
        out[2].text.starts_with("connect to mx.example.test["),
        "{}",
        out[2].text
    );
}
