//! STARTTLS and wrapper mode: scripted dialogs whose client side really speaks TLS (rustls,
//! trusting a throw-away CA made with rcgen), over in-memory streams and loopback TCP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_config::Config;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;
use crate::qmgr::QmgrHandle;
use crate::queue::QueueDir;
use crate::smtpd::testkit::ClientStream;
use crate::smtpd::{serve, ClientInfo, Session, SessionContext, Settings};
use crate::tls::server::{CertError, ServerTls};

/// A CA and the certificates it issued, as PEM files in a directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postern-tls-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Postern test CA");
        let key = rcgen::KeyPair::generate().expect("ca key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("ca");
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Issues a certificate for `names` and writes the key followed by the certificate to
    /// `file` (the `smtpd_tls_chain_files` layout); returns the path and the certificate.
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, CertificateDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let path = self.path(file);
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
        (path, cert.der().clone())
    }

    fn client(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("ca root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server configuration with TLS from `pki` (a certificate for mx.example.test).
fn tls_config(pki: &Pki, overrides: &[(&str, &str)]) -> Config {
    let (chain, _) = pki.issue("mx.pem", &["mx.example.test"]);
    let chain = chain.display().to_string();
    let mut all = vec![("smtpd_tls_chain_files", chain.as_str())];
    all.extend_from_slice(overrides);
    config(&all)
}

/// The client end of a session that can switch to TLS mid-conversation.
struct TlsClient {
    stream: Option<Box<dyn ClientStream>>,
    input: Vec<u8>,
    task: Option<JoinHandle<()>>,
    /// The certificate the server presented, once TLS is up.
    peer: Option<CertificateDer<'static>>,
}

impl TlsClient {
    /// A session over an in-memory stream; the greeting is left unread.
    fn start(cfg: Config, spool: &TempSpool) -> TlsClient {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ctx = SessionContext {
            settings: Settings::new(Arc::new(cfg)),
            spool: (**spool).clone(),
            qmgr: QmgrHandle::detached(),
            client: ClientInfo::new(OUTSIDER.parse().expect("ip"), 4711),
            service: "smtp".into(),
            shutdown: None,
        };
        let task = tokio::spawn(Session::new(server, ctx).run());
        TlsClient {
            stream: Some(Box::new(client)),
            input: Vec::new(),
            task: Some(task),
            peer: None,
        }
    }

    async fn connect(addr: std::net::SocketAddr) -> TlsClient {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        TlsClient {
            stream: Some(Box::new(stream)),
            input: Vec::new(),
            task: None,
            peer: None,
        }
    }

    fn stream(&mut self) -> &mut Box<dyn ClientStream> {
        self.stream.as_mut().expect("stream")
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).await.expect("send");
        self.stream().flush().await.expect("flush");
    }

    /// One complete reply; "" when the server closed the connection.
    async fn reply(&mut self) -> String {
        let read = async {
            loop {
                if let Some(end) = reply_end(&self.input) {
                    let r: Vec<u8> = self.input.drain(..end).collect();
                    return String::from_utf8_lossy(&r).into_owned();
                }
                let mut buf = [0u8; 4096];
                match self.stream().read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let rest: Vec<u8> = self.input.drain(..).collect();
                        return String::from_utf8_lossy(&rest).into_owned();
                    }
                    Ok(n) => self.input.extend_from_slice(&buf[..n]),
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(r) => r,
            Err(_) => panic!("no reply within 10 s; have {:?}", self.input),
        }
    }

    async fn cmd(&mut self, line: &str, want: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(want), "{line:?}: wanted {want:?}, got {r:?}");
        r
    }

    /// The client side of the handshake, asking for `sni`.
    async fn handshake(&mut self, pki: &Pki, sni: &str) -> std::io::Result<()> {
        assert!(
            self.input.is_empty(),
            "unread input before TLS: {:?}",
            self.input
        );
        let plain = self.stream.take().expect("stream");
        let name = ServerName::try_from(sni.to_string()).expect("server name");
        let connect = pki.client().connect(name, plain);
        let tls = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .expect("handshake within 10 s")?;
        self.peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned());
        self.stream = Some(Box::new(tls));
        Ok(())
    }

    /// STARTTLS, its 220 and the handshake.
    async fn starttls(&mut self, pki: &Pki) {
        self.cmd("STARTTLS", "220 2.0.0 Ready to start TLS").await;
        self.handshake(pki, "mx.example.test")
            .await
            .expect("handshake");
    }

    /// Waits for the session task to end; whether it did within 10 s.
    async fn ended(&mut self) -> bool {
        match self.task.take() {
            Some(t) => tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_ok(),
            None => true,
        }
    }
}

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

/// MAIL, RCPT and DATA of a small message; the queued reply.
async fn deliver(c: &mut TlsClient) -> String {
    c.cmd("MAIL FROM:<alice@example.org>", "250 2.1.0 Ok").await;
    c.cmd("RCPT TO:<user@localhost>", "250 2.1.5 Ok").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: tls\r\n\r\nsecret\r\n.\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    r
}

fn stored_message(spool: &TempSpool) -> String {
    let ids = spool.incoming();
    assert_eq!(ids.len(), 1, "one message queued");
    let (_, content) = spool.load(QueueDir::Incoming, &ids[0]).expect("load");
    String::from_utf8_lossy(&content).into_owned()
}

#[tokio::test]
async fn starttls_upgrades_the_session_and_mail_is_received_with_esmtps() {
    let pki = Pki::new("upgrade");
    let spool = TempSpool::new("tls-upgrade");
    let cfg = tls_config(
        &pki,
        &[
            ("smtpd_tls_security_level", "may"),
            ("smtpd_tls_received_header", "yes"),
            ("smtpd_helo_required", "yes"),
        ],
    );
    let mut c = TlsClient::start(cfg, &spool);
    assert!(c.reply().await.starts_with("220 mx.example.test"));
    let caps = c
        .cmd("EHLO client.example.org", "250-mx.example.test")
        .await;
    assert!(caps.contains("250-STARTTLS\r\n"), "{caps}");
    c.starttls(&pki).await;
    // RFC 3207 §4.2: the EHLO before TLS is forgotten.
    c.cmd(
        "MAIL FROM:<alice@example.org>",
        "503 5.5.1 Error: send HELO/EHLO first",
    )
    .await;
    let caps = c
        .cmd("EHLO client.example.org", "250-mx.example.test")
        .await;
    assert!(!caps.contains("STARTTLS"), "{caps}");
    deliver(&mut c).await;
    c.cmd("QUIT", "221 2.0.0 Bye").await;
    assert!(c.ended().await);
    let msg = stored_message(&spool);
    let received = msg.split("\r\n\tfor <").next().unwrap_or_default();
    assert!(
        received.starts_with(
            "Received: from client.example.org (unknown [192.0.2.10])\r\n\
             \t(using TLSv1.3 with cipher TLS_"
        ),
        "{msg}"
    );
    assert!(
        received.contains(" bits))\r\n\t(No client certificate requested)\r\n\tby "),
        "{msg}"
    );
    assert!(received.contains(" with ESMTPS id "), "{msg}");
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded_not_run_inside_tls() {
    let pki = Pki::new("inject");
    let spool = TempSpool::new("tls-inject");
    let cfg = tls_config(&pki, &[("smtpd_tls_security_level", "may")]);
    let mut c = TlsClient::start(cfg, &spool);
    c.reply().await;
    c.cmd("EHLO client.example.org", "250-").await;
    // The CVE-2011-0411 attack: a man in the middle appends plaintext commands to STARTTLS,
    // hoping the server runs them as if the client had sent them inside TLS.
    c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<mallory@example.org>\r\n")
        .await;
    assert_eq!(c.reply().await, "220 2.0.0 Ready to start TLS\r\n");
    c.handshake(&pki, "mx.example.test")
        .await
        .expect("handshake");
    // The first reply inside TLS answers the first command sent inside TLS: not RSET's 250 Ok.
    let caps = c
        .cmd("EHLO client.example.org", "250-mx.example.test")
        .await;
    assert!(!caps.contains("STARTTLS"), "{caps}");
    // The injected MAIL never started a transaction.
    c.cmd("MAIL FROM:<alice@example.org>", "250 2.1.0 Ok").await;
    c.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn encrypt_level_allows_only_greeting_noop_and_quit_before_tls() {
    let pki = Pki::new("encrypt");
    let spool = TempSpool::new("tls-encrypt");
    let cfg = tls_config(&pki, &[("smtpd_tls_security_level", "encrypt")]);
    let mut c = TlsClient::start(cfg, &spool);
    c.reply().await;
    let caps = c.cmd("EHLO client.example.org", "250-").await;
    assert!(caps.contains("STARTTLS"), "{caps}");
    let must = "530 5.7.0 Must issue a STARTTLS command first";
    c.cmd("MAIL FROM:<alice@example.org>", must).await;
    c.cmd("RCPT TO:<user@localhost>", must).await;
    c.cmd("AUTH PLAIN", must).await;
    c.cmd("RSET", must).await;
    c.cmd("VRFY user", must).await;
    c.cmd("NOOP", "250 2.0.0 Ok").await;
    c.cmd("XYZZY", "500 5.5.2 Error: command not recognized")
        .await;
    c.starttls(&pki).await;
    c.cmd("EHLO client.example.org", "250-").await;
    deliver(&mut c).await;
    c.cmd("QUIT", "221").await;
    assert!(stored_message(&spool).contains(" with ESMTPS id "));
}

#[tokio::test]
async fn starttls_replies_follow_postfix() {
    let pki = Pki::new("replies");
    let spool = TempSpool::new("tls-replies");
    // TLS off: not offered, not implemented.
    let mut c = TlsClient::start(config(&[]), &spool);
    c.reply().await;
    let caps = c.cmd("EHLO client.example.org", "250-").await;
    assert!(!caps.contains("STARTTLS"), "{caps}");
    c.cmd("STARTTLS", "502 5.5.1 Error: command not implemented")
        .await;

    let cfg = tls_config(&pki, &[("smtpd_tls_security_level", "may")]);
    let mut c = TlsClient::start(cfg, &spool);
    c.reply().await;
    c.cmd("EHLO client.example.org", "250-").await;
    c.cmd("STARTTLS now", "501 5.5.4 Syntax: STARTTLS").await;
    // Allowed during a transaction (as in Postfix), which it discards.
    c.cmd("MAIL FROM:<alice@example.org>", "250 2.1.0 Ok").await;
    c.cmd("RCPT TO:<user@localhost>", "250 2.1.5 Ok").await;
    c.starttls(&pki).await;
    c.cmd("EHLO client.example.org", "250-").await;
    c.cmd(
        "RCPT TO:<user@localhost>",
        "503 5.5.1 Error: need MAIL command",
    )
    .await;
    c.cmd("STARTTLS", "554 5.5.1 Error: TLS already active")
        .await;
    c.cmd("QUIT", "221").await;
    assert!(spool.incoming().is_empty());
}

#[tokio::test]
async fn the_server_presents_the_sni_certificate_and_falls_back_to_the_default() {
    let pki = Pki::new("sni");
    let spool = TempSpool::new("tls-sni");
    let (other, other_der) = pki.issue("other.pem", &["mail.other.test"]);
    let (wild, wild_der) = pki.issue("wild.pem", &["*.sub.other.test"]);
    let maps = format!(
        "inline:{{ mail.other.test={}, .sub.other.test={} }}",
        other.display(),
        wild.display()
    );
    let cfg = tls_config(
        &pki,
        &[
            ("smtpd_tls_security_level", "may"),
            ("tls_server_sni_maps", &maps),
        ],
    );
    let settings = Settings::new(Arc::new(cfg.clone()));
    assert!(settings.tls.is_some());
    for (sni, want) in [
        ("mail.other.test", Some(&other_der)),
        ("a.sub.other.test", Some(&wild_der)),
        ("mx.example.test", None),
    ] {
        let mut c = TlsClient::start(cfg.clone(), &spool);
        c.reply().await;
        c.cmd("EHLO client.example.org", "250-").await;
        c.cmd("STARTTLS", "220").await;
        c.handshake(&pki, sni).await.expect("handshake");
        let peer = c.peer.clone().expect("peer certificate");
        match want {
            Some(der) => assert_eq!(&peer, der, "certificate for {sni}"),
            None => assert!(peer != other_der && peer != wild_der, "default for {sni}"),
        }
        c.cmd("QUIT", "221").await;
    }
}

#[tokio::test]
async fn wrapper_mode_handshakes_before_the_greeting() {
    let pki = Pki::new("wrapper");
    let spool = TempSpool::new("tls-wrapper");
    let cfg = tls_config(&pki, &[("smtpd_tls_wrappermode", "yes")]);
    let mut c = TlsClient::start(cfg, &spool);
    c.handshake(&pki, "mx.example.test")
        .await
        .expect("handshake");
    assert!(c.reply().await.starts_with("220 mx.example.test"));
    let caps = c.cmd("EHLO client.example.org", "250-").await;
    assert!(!caps.contains("STARTTLS"), "{caps}");
    c.cmd("STARTTLS", "554 5.5.1 Error: TLS already active")
        .await;
    deliver(&mut c).await;
    c.cmd("QUIT", "221").await;
    assert!(stored_message(&spool).contains(" with ESMTPS id "));
}

#[tokio::test]
async fn a_plaintext_client_on_a_wrapper_mode_service_gets_no_greeting() {
    let pki = Pki::new("wrapper-plain");
    let spool = TempSpool::new("tls-wrapper-plain");
    let cfg = tls_config(&pki, &[("smtpd_tls_wrappermode", "yes")]);
    let mut c = TlsClient::start(cfg, &spool);
    c.send(b"EHLO client.example.org\r\n").await;
    let r = c.reply().await;
    assert!(!r.contains("250"), "{r:?}");
    assert!(c.ended().await);
}

/// A certificate file that does not exist, and one whose key belongs to another certificate.
fn broken_configs(pki: &Pki) -> Vec<Vec<(String, String)>> {
    let (a, _) = pki.issue("a.pem", &["mx.example.test"]);
    let (b, _) = pki.issue("b.pem", &["mx.example.test"]);
    vec![
        vec![(
            "smtpd_tls_cert_file".into(),
            pki.path("missing.pem").display().to_string(),
        )],
        vec![
            ("smtpd_tls_cert_file".into(), a.display().to_string()),
            ("smtpd_tls_key_file".into(), b.display().to_string()),
        ],
    ]
}

fn with(base: &[(String, String)], more: &[(&str, &str)]) -> Config {
    let mut all: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(more);
    config(&all)
}

#[tokio::test]
async fn a_broken_certificate_disables_tls_instead_of_the_service() {
    let pki = Pki::new("broken");
    let spool = TempSpool::new("tls-broken");
    for broken in broken_configs(&pki) {
        let cfg = with(&broken, &[("smtpd_tls_security_level", "may")]);
        let mut c = TlsClient::start(cfg, &spool);
        c.reply().await;
        let caps = c.cmd("EHLO client.example.org", "250-").await;
        assert!(!caps.contains("STARTTLS"), "{caps}");
        c.cmd("STARTTLS", "502 5.5.1 Error: command not implemented")
            .await;
        // Mail still flows in plaintext.
        deliver(&mut c).await;
        c.cmd("QUIT", "221").await;

        let cfg = with(&broken, &[("smtpd_tls_security_level", "encrypt")]);
        let mut c = TlsClient::start(cfg, &spool);
        c.reply().await;
        let caps = c.cmd("EHLO client.example.org", "250-").await;
        assert!(!caps.contains("STARTTLS"), "{caps}");
        c.cmd(
            "STARTTLS",
            "454 4.7.0 TLS not available due to local problem",
        )
        .await;
        c.cmd(
            "MAIL FROM:<alice@example.org>",
            "530 5.7.0 Must issue a STARTTLS command first",
        )
        .await;
        c.cmd("QUIT", "221").await;

        let cfg = with(&broken, &[("smtpd_tls_wrappermode", "yes")]);
        let mut c = TlsClient::start(cfg, &spool);
        assert_eq!(
            c.reply().await,
            "",
            "wrapper mode without a certificate: closed"
        );
        assert!(c.ended().await);
    }
}

#[test]
fn certificate_errors_name_the_file_and_the_problem() {
    let pki = Pki::new("errors");
    let load = |overrides: &[(&str, &str)]| ServerTls::new(&config(overrides).smtpd_tls);
    let missing = pki.path("missing.pem").display().to_string();
    match load(&[("smtpd_tls_cert_file", &missing)]) {
        Err(e @ CertError::Read { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{missing}: cannot read: ")),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A certificate without its key.
    let (chain, _) = pki.issue("c.pem", &["mx.example.test"]);
    let text = std::fs::read_to_string(&chain).expect("read");
    let cert_only = pki.path("cert-only.pem");
    let start = text.find("-----BEGIN CERTIFICATE").expect("cert");
    std::fs::write(&cert_only, &text[start..]).expect("write");
    let cert_only = cert_only.display().to_string();
    assert_eq!(
        load(&[("smtpd_tls_chain_files", &cert_only)]).err(),
        Some(CertError::NoKey {
            file: cert_only.clone()
        })
    );
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let garbage = garbage.display().to_string();
    assert_eq!(
        load(&[
            ("smtpd_tls_cert_file", &garbage),
            ("smtpd_tls_key_file", &garbage)
        ])
        .err(),
        Some(CertError::NoCertificate {
            file: garbage.clone()
        })
    );
    let (other, _) = pki.issue("d.pem", &["mx.example.test"]);
    let other = other.display().to_string();
    let chain = chain.display().to_string();
    let err = load(&[
        ("smtpd_tls_cert_file", &chain),
        ("smtpd_tls_key_file", &other),
    ])
    .err();
    assert_eq!(
        err,
        Some(CertError::Mismatch {
            cert: chain.clone(),
            key: other.clone()
        })
    );
    // cert_file alone: the key is read from the same file ($smtpd_tls_cert_file).
    assert!(load(&[("smtpd_tls_cert_file", &chain)]).is_ok());
}

#[test]
fn a_chain_file_may_hold_several_keys_each_followed_by_its_chain() {
    let pki = Pki::new("multi");
    let (a, _) = pki.issue("a.pem", &["mx.example.test"]);
    let (b, _) = pki.issue("b.pem", &["mx.example.test"]);
    let both = pki.path("both.pem");
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&a).expect("a"),
        std::fs::read_to_string(&b).expect("b")
    );
    std::fs::write(&both, text).expect("write");
    let both = both.display().to_string();
    let cfg = config(&[("smtpd_tls_chain_files", &both)]);
    assert!(ServerTls::new(&cfg.smtpd_tls).is_ok());
    // A certificate before the first of several keys is ambiguous.
    let text = std::fs::read_to_string(&both).expect("both");
    let start = text.find("-----BEGIN CERTIFICATE").expect("cert");
    let bad = pki.path("bad.pem");
    std::fs::write(&bad, format!("{}{}", &text[start..], &text[..start])).expect("write");
    let bad = bad.display().to_string();
    let cfg = config(&[("smtpd_tls_chain_files", &bad)]);
    assert!(matches!(
        ServerTls::new(&cfg.smtpd_tls),
        Err(CertError::Layout { .. })
    ));
}

#[tokio::test]
async fn a_failed_handshake_ends_the_session_and_the_server_keeps_serving() {
    let pki = Pki::new("garbage");
    let spool = TempSpool::new("tls-garbage");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = tls_config(&pki, &[("smtpd_tls_security_level", "may")]);
    let (_config, config_rx) = watch::channel(Arc::new(cfg));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        "smtp".into(),
        config_rx,
        (*spool).clone(),
        QmgrHandle::detached(),
        shutdown_rx,
    ));
    let mut c = TlsClient::connect(addr).await;
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.example.org", "250-").await;
    c.cmd("STARTTLS", "220 2.0.0").await;
    // Not a ClientHello: the server gives up on this connection (a TLS alert at most).
    c.send(b"GET / HTTP/1.0\r\n\r\n").await;
    let r = c.reply().await;
    assert!(!r.contains("250") && !r.contains("500"), "{r:?}");
    // The listener is unaffected: a new client gets TLS.
    let mut c = TlsClient::connect(addr).await;
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.example.org", "250-").await;
    c.starttls(&pki).await;
    c.cmd("EHLO client.example.org", "250-").await;
    c.cmd("QUIT", "221").await;
    let _ = shutdown.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

/// The certificate files are not read again for each session: only a new configuration epoch
/// (reload) picks up a replaced certificate.
#[tokio::test]
async fn sessions_use_the_certificate_of_their_epoch() {
    let pki = Pki::new("epoch");
    let spool = TempSpool::new("tls-epoch");
    let cfg = tls_config(&pki, &[("smtpd_tls_security_level", "may")]);
    let settings = Settings::new(Arc::new(cfg.clone()));
    let first = first_peer(&pki, settings.clone(), &spool).await;
    pki.issue("mx.pem", &["mx.example.test"]);
    assert_eq!(first_peer(&pki, settings, &spool).await, first);
    let reloaded = Settings::new(Arc::new(cfg));
    assert_ne!(first_peer(&pki, reloaded, &spool).await, first);
}

async fn first_peer(pki: &Pki, settings: Arc<Settings>, spool: &TempSpool) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let ctx = SessionContext {
        settings,
        spool: (**spool).clone(),
        qmgr: QmgrHandle::detached(),
        client: ClientInfo::new(OUTSIDER.parse().expect("ip"), 4711),
        service: "smtp".into(),
        shutdown: None,
    };
    let task = tokio::spawn(Session::new(server, ctx).run());
    let mut c = TlsClient {
        stream: Some(Box::new(client)),
        input: Vec::new(),
        task: Some(task),
        peer: None,
    };
    c.reply().await;
    c.cmd("EHLO client.example.org", "250-").await;
    c.starttls(pki).await;
    c.cmd("QUIT", "221").await;
    c.peer.expect("peer").to_vec()
}
