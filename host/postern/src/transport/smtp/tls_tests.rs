//! STARTTLS in the smtp client against a scripted server on 127.0.0.1 that does a real rustls
//! handshake with an rcgen certificate: what the server received before and after TLS, and
//! what each TLS security level makes of a missing, broken or untrusted TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_config::ClientTlsLevel;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::client::{Message, Settings};
use super::deliver_to;
use super::policy::{self, Tls};
use crate::queue::Recipient;
use crate::tls::client::ClientTls;
use crate::transport::Outcome;

/// How the fake server treats STARTTLS.
#[derive(Clone)]
enum Starttls {
    NotOffered,
    /// Offered; the handshake uses this certificate.
    Offered(Arc<rustls::ServerConfig>),
    /// Offered, and answered with 220 followed by bytes that are no TLS.
    Broken,
}

/// What one connection saw: lines before TLS, lines after.
#[derive(Debug, Default)]
struct Seen {
    plain: String,
    tls: String,
    /// The SNI name the client sent, if any.
    sni: Option<String>,
}

/// A server for `connections` sessions in a row.
async fn serve(starttls: Starttls, connections: usize) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut all = Vec::new();
        for _ in 0..connections {
            let Ok(Ok((sock, _))) =
                tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
            else {
                break;
            };
            let mut seen = Seen::default();
            let mut io = BufReader::new(sock);
            let _ = io.get_mut().write_all(b"220 fake.test ESMTP\r\n").await;
            let offer = !matches!(starttls, Starttls::NotOffered);
            if dialog(&mut io, &mut seen.plain, offer).await {
                match &starttls {
                    Starttls::Offered(cfg) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
                        if let Ok(tls) = acceptor.accept(io.into_inner()).await {
                            seen.sni = tls.get_ref().1.server_name().map(str::to_string);
                            let mut io = BufReader::new(tls);
                            dialog(&mut io, &mut seen.tls, false).await;
                        }
                    }
                    Starttls::Broken => {
                        // Wait for the ClientHello, then answer with something that is no TLS.
                        let mut hello = [0u8; 64];
                        let _ = tokio::io::AsyncReadExt::read(io.get_mut(), &mut hello).await;
                        let _ = io.get_mut().write_all(b"this is not TLS\r\n").await;
                    }
                    Starttls::NotOffered => {}
                }
            }
            all.push(seen);
        }
        all
    });
    (addr, task)
}

/// One SMTP dialog; true when the client asked for STARTTLS (after the 220 was sent).
async fn dialog<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    seen: &mut String,
    offer_starttls: bool,
) -> bool {
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        seen.push_str(&line);
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_starttls => b"250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-fake.test\r\n250 PIPELINING\r\n",
            "STAR" => {
                let _ = io
                    .get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await;
                return true;
            }
            "MAIL" => b"250 2.1.0 Ok\r\n",
            "RCPT" => b"250 2.1.5 Ok\r\n",
            "DATA" => {
                let _ = io.get_mut().write_all(b"354 go ahead\r\n").await;
                loop {
                    let mut l = String::new();
                    if io.read_line(&mut l).await.unwrap_or(0) == 0 {
                        return false;
                    }
                    seen.push_str(&l);
                    if l == ".\r\n" {
                        break;
                    }
                }
                b"250 2.0.0 Ok: queued as TLS1\r\n"
            }
            "QUIT" => {
                let _ = io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                return false;
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        if io.get_mut().write_all(reply).await.is_err() {
            return false;
        }
    }
}

/// A CA, a server certificate for `names` signed by it, and the CA in a PEM file; also a
/// client certificate (`client.pem`, key in `client.key`) and a server that requires one.
struct Pki {
    server: Arc<rustls::ServerConfig>,
    server_wants_client_cert: Arc<rustls::ServerConfig>,
    ca_file: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(names: &[&str], tag: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Postern Test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let server_key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain.clone(), server_key())
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server_wants_client_cert = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, server_key())
        .expect("server config");
    let client_key = rcgen::KeyPair::generate().expect("key");
    let client = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .expect("params")
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    let dir = std::env::temp_dir().join(format!("postern-smtp-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).expect("write ca");
    std::fs::write(dir.join("client.pem"), client.pem()).expect("write cert");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write key");
    Pki {
        server: Arc::new(server),
        server_wants_client_cert: Arc::new(server_wants_client_cert),
        ca_file,
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        dir,
    }
}

fn settings(level: ClientTlsLevel, ca_file: Option<&PathBuf>, matches: &[&str]) -> Settings {
    let t = Duration::from_secs(5);
    let ca = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
    let client = ClientTls::new(&ca, "", "", "").expect("client tls");
    Settings {
        tls: Tls {
            level,
            client: Some(Arc::new(client)),
            matches: matches.iter().map(|m| m.to_string()).collect(),
            nexthop: "example.test".into(),
            timeout: t,
            loglevel: 1,
            servername: String::new(),
        },
        ..super::tests::settings()
    }
}

async fn send(settings: &Settings, host: &str, addr: SocketAddr) -> Vec<Outcome> {
    let rcpt = Recipient::new("bob@example.test");
    let msg = Message {
        queue_id: "TLSTEST".into(),
        sender: "alice@example.org",
        rcpts: vec![&rcpt],
        content: b"Subject: tls\n\nsecret body\n",
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
    };
    deliver_to(settings, &[(host.into(), addr)], &msg).await
}

#[tokio::test]
async fn may_sends_over_tls_and_reports_the_cipher() {
    let pki = pki(&["mx.example.test"], "may");
    let (addr, server) = serve(Starttls::Offered(pki.server.clone()), 1).await;
    let out = send(
        &settings(ClientTlsLevel::May, None, &[]),
        "mx.example.test",
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent(), "{:?}", out[0]);
    let tls = out[0].tls.as_deref().expect("TLS summary");
    assert_eq!(tls.protocol, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS_"), "{tls:?}");
    assert_eq!(seen[0].plain, "EHLO client.test\r\nSTARTTLS\r\n");
    assert!(
        seen[0]
            .tls
            .starts_with("EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\n"),
        "{}",
        seen[0].tls
    );
    assert!(seen[0].tls.contains("secret body\r\n"), "{}", seen[0].tls);
}

#[tokio::test]
async fn encrypt_without_starttls_defers_4_7_4() {
    let (addr, server) = serve(Starttls::NotOffered, 1).await;
    let out = send(
        &settings(ClientTlsLevel::Encrypt, None, &[]),
        "127.0.0.1",
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(out[0].is_deferred());
    assert_eq!(out[0].status.to_string(), "4.7.4");
    assert_eq!(
        out[0].text,
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    assert!(!seen[0].plain.contains("MAIL FROM"), "{}", seen[0].plain);
}

#[tokio::test]
async fn verify_with_a_trusted_matching_certificate_sends() {
    let pki = pki(&["mx.example.test"], "verify-ok");
    let (addr, server) = serve(Starttls::Offered(pki.server.clone()), 1).await;
    let s = settings(ClientTlsLevel::Verify, Some(&pki.ca_file), &["hostname"]);
    let out = send(&s, "mx.example.test", addr).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent(), "{:?}", out[0]);
    assert!(seen[0].tls.contains("secret body"), "{seen:?}");
}

#[tokio::test]
async fn verify_with_a_wrong_name_or_unknown_ca_defers_4_7_5() {
    let pki_ok = pki(&["mx.example.test"], "verify-name");
    let (addr, server) = serve(Starttls::Offered(pki_ok.server.clone()), 1).await;
    let s = settings(ClientTlsLevel::Verify, Some(&pki_ok.ca_file), &["hostname"]);
    let out = send(&s, "other.example.test", addr).await;
    let seen = server.await.expect("server");
    assert_eq!(out[0].status.to_string(), "4.7.5");
    assert_eq!(out[0].text, "Server certificate not verified");
    assert!(
        seen[0].tls.is_empty(),
        "nothing after the handshake: {seen:?}"
    );

    // The right name, but the client trusts another CA.
    let other = pki(&["mx.example.test"], "verify-ca");
    let (addr, server) = serve(Starttls::Offered(pki_ok.server.clone()), 1).await;
    let s = settings(
        ClientTlsLevel::Secure,
        Some(&other.ca_file),
        &["nexthop", "dot-nexthop"],
    );
    let out = send(&s, "mx.example.test", addr).await;
    let seen = server.await.expect("server");
    assert_eq!(out[0].status.to_string(), "4.7.5");
    assert!(!seen[0].tls.contains("MAIL FROM"), "{seen:?}");

    // secure: the trusted certificate for mx.example.test is below the next hop example.test.
    let (addr, server) = serve(Starttls::Offered(pki_ok.server.clone()), 1).await;
    let s = settings(
        ClientTlsLevel::Secure,
        Some(&pki_ok.ca_file),
        &["nexthop", "dot-nexthop"],
    );
    let out = send(&s, "127.0.0.1", addr).await;
    let _ = server.await;
    assert!(out[0].is_sent(), "{:?}", out[0]);
}

#[tokio::test]
async fn broken_handshake_at_may_retries_in_plaintext() {
    let (addr, server) = serve(Starttls::Broken, 2).await;
    let out = send(&settings(ClientTlsLevel::May, None, &[]), "127.0.0.1", addr).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent(), "{:?}", out[0]);
    assert_eq!(out[0].tls, None);
    assert_eq!(seen.len(), 2);
    assert!(seen[0].plain.ends_with("STARTTLS\r\n"), "{seen:?}");
    assert!(
        !seen[1].plain.contains("STARTTLS") && seen[1].plain.contains("secret body"),
        "{seen:?}"
    );

    // At encrypt the same failure is a deferral, and nothing is sent in plaintext.
    let (addr, server) = serve(Starttls::Broken, 1).await;
    let out = send(
        &settings(ClientTlsLevel::Encrypt, None, &[]),
        "127.0.0.1",
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert_eq!(out[0].status.to_string(), "4.7.5");
    assert_eq!(out[0].text, "Cannot start TLS: handshake failure");
    assert!(!seen[0].plain.contains("MAIL"), "{seen:?}");
}

fn config(extra: &[(&str, &str)]) -> Arc<postern_config::Config> {
    let over: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(postern_config::load_with(None, &over).expect("config").main)
}

#[tokio::test]
async fn policy_map_selects_encrypt_for_one_next_hop() {
    let (addr, server) = serve(Starttls::NotOffered, 2).await;
    let strict = format!("[127.0.0.1]:{}", addr.port());
    let cfg = config(&[
        ("smtp_tls_security_level", "may"),
        (
            "smtp_tls_policy_maps",
            &format!("inline:{{ {{{strict} = encrypt}}, {{.other.test = none}} }}"),
        ),
    ]);
    let hop = super::nexthop::parse(&strict).expect("hop");
    let mut s = settings(ClientTlsLevel::May, None, &[]);
    s.tls = policy::plan(&cfg, &strict, &hop).expect("plan");
    assert_eq!(s.tls.level, ClientTlsLevel::Encrypt);
    let out = send(&s, "127.0.0.1", addr).await;
    assert_eq!(out[0].status.to_string(), "4.7.4");

    // Another next hop keeps the main.cf level and is delivered in plaintext.
    let other = "[localhost]:25";
    let hop = super::nexthop::parse(other).expect("hop");
    s.tls = policy::plan(&cfg, other, &hop).expect("plan");
    assert_eq!(s.tls.level, ClientTlsLevel::May);
    let out = send(&s, "127.0.0.1", addr).await;
    assert!(out[0].is_sent(), "{:?}", out[0]);
    let _ = server.await;

    // A subdomain of a `.domain` entry; a level Postern does not know defers naming the table.
    let hop = super::nexthop::parse("mx.other.test").expect("hop");
    let tls = policy::plan(&cfg, "mx.other.test", &hop).expect("plan");
    assert_eq!(tls.level, ClientTlsLevel::None);
    let cfg = config(&[("smtp_tls_policy_maps", "inline:{ bad.test=dane-only }")]);
    let hop = super::nexthop::parse("bad.test").expect("hop");
    let o = policy::plan(&cfg, "bad.test", &hop).expect_err("bad level");
    assert_eq!(o.status.to_string(), "4.7.5");
    assert!(
        o.text.contains("dane-only") && o.text.contains("smtp_tls_policy_maps inline:"),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn client_certificate_is_presented_when_configured() {
    let pki = pki(&["mx.example.test"], "client-cert");
    // Without a client certificate the server refuses the session (in TLS 1.3 the client
    // learns it from an alert after its side of the handshake): deferred, nothing sent.
    let (addr, server) = serve(Starttls::Offered(pki.server_wants_client_cert.clone()), 1).await;
    let out = send(
        &settings(ClientTlsLevel::Encrypt, None, &[]),
        "127.0.0.1",
        addr,
    )
    .await;
    let seen = server.await.expect("server");
    assert!(out[0].is_deferred(), "{:?}", out[0]);
    assert!(seen[0].tls.is_empty(), "{seen:?}");

    let (addr, server) = serve(Starttls::Offered(pki.server_wants_client_cert.clone()), 1).await;
    let mut s = settings(ClientTlsLevel::Encrypt, None, &[]);
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    s.tls.client = Some(Arc::new(
        ClientTls::new("", "", &cert, &key).expect("client"),
    ));
    let out = send(&s, "127.0.0.1", addr).await;
    let seen = server.await.expect("server");
    assert!(out[0].is_sent(), "{:?}", out[0]);
    assert!(seen[0].tls.contains("secret body"), "{seen:?}");
}

#[tokio::test]
async fn unreadable_tls_files_defer_at_encrypt_and_fall_back_at_may() {
    let dir = std::env::temp_dir().join(format!("postern-smtp-tls-{}-files", std::process::id()));
    let missing = dir.join("no-such-ca.pem").display().to_string();
    let e = ClientTls::new("", "", &dir.join("no-cert.pem").display().to_string(), "")
        .expect_err("missing cert");
    assert!(
        e.starts_with("cannot load smtp_tls_cert_file ") && e.contains("no-cert.pem"),
        "{e}"
    );

    let hop = super::nexthop::parse("[127.0.0.1]:25").expect("hop");
    let cfg = config(&[
        ("smtp_tls_security_level", "encrypt"),
        ("smtp_tls_CAfile", &missing),
    ]);
    let o = policy::plan(&cfg, "[127.0.0.1]:25", &hop).expect_err("defer");
    assert_eq!(o.status.to_string(), "4.7.5");
    assert!(
        o.text.contains("smtp_tls_CAfile") && o.text.contains("no-such-ca.pem"),
        "{}",
        o.text
    );

    let cfg = config(&[
        ("smtp_tls_security_level", "may"),
        ("smtp_tls_CAfile", &missing),
    ]);
    let tls = policy::plan(&cfg, "[127.0.0.1]:25", &hop).expect("plaintext");
    assert_eq!(tls.level, ClientTlsLevel::None);
}

#[tokio::test]
async fn sni_only_when_smtp_tls_servername_asks() {
    let pki = pki(&["mx.example.test"], "sni");
    let (addr, server) = serve(Starttls::Offered(pki.server.clone()), 3).await;
    let mut s = settings(ClientTlsLevel::May, None, &[]);
    assert!(send(&s, "mx.example.test", addr).await[0].is_sent());
    s.tls.servername = "hostname".into();
    assert!(send(&s, "mx.example.test", addr).await[0].is_sent());
    s.tls.servername = "submit.example.net".into();
    assert!(send(&s, "mx.example.test", addr).await[0].is_sent());
    let seen = server.await.expect("server");
    let sni: Vec<Option<&str>> = seen.iter().map(|s| s.sni.as_deref()).collect();
    assert_eq!(
        sni,
        vec![None, Some("mx.example.test"), Some("submit.example.net")]
    );
}
