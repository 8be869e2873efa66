//! Inbound TLS against the real daemon: swaks delivers over STARTTLS, `postern reload` makes new
//! connections present a replaced certificate, a wrapper-mode (port 465 style) service on its own
//! port, and `postern check` naming a broken certificate file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_tests::{free_port, require, Server, TempDir};
use rustls::pki_types::{CertificateDer, ServerName};

/// A test CA and the server certificates it issues (key + chain PEM files).
struct Pki {
    dir: TempDir,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Postern test CA");
        let key = rcgen::KeyPair::generate().expect("ca key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("ca");
        Pki {
            dir: TempDir::new("pki"),
            ca,
        }
    }

    /// Writes a new key and certificate for mx.example.test to `file` (replacing it); returns
    /// the path and the certificate.
    fn issue(&self, file: &str) -> (PathBuf, Vec<u8>) {
        let params =
            rcgen::CertificateParams::new(vec!["mx.example.test".to_string()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let path = self.dir.path().join(file);
        // Write then rename, as certificate renewal tools do.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        (path, cert.der().to_vec())
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// Reads one SMTP reply (all its lines).
fn read_reply(r: &mut impl BufRead) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return out;
        }
        out.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] == b' ' {
            return out;
        }
    }
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The client side of the handshake on `sock` (SNI mx.example.test).
fn handshake(pki: &Pki, sock: TcpStream) -> Tls {
    let name = ServerName::try_from("mx.example.test").expect("name");
    let conn = rustls::ClientConnection::new(pki.client_config(), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS handshake with the server");
    }
    tls
}

fn peer_certificate(tls: &Tls) -> Vec<u8> {
    tls.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c: &CertificateDer<'_>| c.to_vec())
        .expect("server certificate")
}

/// Connects, does EHLO + STARTTLS + the handshake, EHLO again inside TLS, QUIT; returns the
/// certificate the server presented and the EHLO reply inside TLS.
fn starttls_session(pki: &Pki, port: u16) -> (Vec<u8>, String) {
    let sock = tcp(port);
    let mut plain = BufReader::new(sock.try_clone().expect("clone"));
    assert!(read_reply(&mut plain).starts_with("220 "));
    let mut w = sock.try_clone().expect("clone");
    w.write_all(b"EHLO client.example.org\r\n").expect("write");
    let caps = read_reply(&mut plain);
    assert!(caps.contains("250-STARTTLS"), "{caps}");
    w.write_all(b"STARTTLS\r\n").expect("write");
    let r = read_reply(&mut plain);
    assert_eq!(r, "220 2.0.0 Ready to start TLS\r\n");
    assert!(plain.buffer().is_empty());
    let tls = handshake(pki, sock);
    let peer = peer_certificate(&tls);
    let mut tls = BufReader::new(tls);
    tls.get_mut()
        .write_all(b"EHLO client.example.org\r\n")
        .expect("write");
    let caps = read_reply(&mut tls);
    tls.get_mut().write_all(b"QUIT\r\n").expect("write");
    assert!(read_reply(&mut tls).starts_with("221 "));
    (peer, caps)
}

fn tls_settings(chain: &Path) -> String {
    format!(
        "smtpd_tls_security_level = may\n\
         smtpd_tls_chain_files = {}\n\
         smtpd_tls_received_header = yes\n\
         smtpd_tls_loglevel = 1\n",
        chain.display()
    )
}

#[test]
fn swaks_delivers_over_starttls_and_the_message_says_esmtps() {
    if !require("swaks") {
        return;
    }
    let pki = Pki::new();
    let (chain, _) = pki.issue("mx.pem");
    let server = Server::start(&tls_settings(&chain));
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &server.port.to_string()])
        .args(["--tls", "--ehlo", "client.example.org"])
        .args(["--from", "sender@example.org", "--to", "user@localhost"])
        .args(["--header", "Subject: tls-swaks", "--timeout", "10"])
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("<~  250 2.0.0 Ok: queued as "),
        "{transcript}"
    );

    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "{}", server.log());
    assert!(mail[0].contains(" with ESMTPS id "), "{}", mail[0]);
    assert!(
        mail[0].contains("\t(using TLSv1.3 with cipher TLS_"),
        "{}",
        mail[0]
    );
    let log = server.wait_for_log("Anonymous TLS connection", Duration::from_secs(5));
    assert!(
        log.contains("Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_")
            || log.contains("Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher TLS_"),
        "{log}"
    );
}

#[test]
fn reload_makes_new_connections_present_a_replaced_certificate() {
    let pki = Pki::new();
    let (chain, first) = pki.issue("mx.pem");
    let server = Server::start(&tls_settings(&chain));
    let (peer, caps) = starttls_session(&pki, server.port);
    assert_eq!(peer, first);
    assert!(!caps.contains("STARTTLS"), "{caps}");

    // Renewal: the same file name, a new key and certificate. Without a reload the daemon keeps
    // presenting the certificate it loaded.
    let (_, second) = pki.issue("mx.pem");
    assert_ne!(first, second);
    assert_eq!(starttls_session(&pki, server.port).0, first);

    let out = server.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_for_log("reload --", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (peer, _) = starttls_session(&pki, server.port);
        if peer == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old certificate after reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_wrapper_mode_service_speaks_tls_from_the_first_byte() {
    let pki = Pki::new();
    let (chain, cert) = pki.issue("mx.pem");
    let mut server = Server::start(&format!(
        "smtpd_tls_chain_files = {}\nsmtpd_tls_loglevel = 1\n",
        chain.display()
    ));
    // A second service, as a submissions (port 465) line in master.cf would be.
    let port = free_port();
    server.stop();
    let master = server.dir.path().join("master.cf");
    let mut text = std::fs::read_to_string(&master).expect("master.cf");
    text.push_str(&format!(
        "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n"
    ));
    std::fs::write(&master, text).expect("write master.cf");
    server.spawn();

    let tls = handshake(&pki, tcp(port));
    assert_eq!(peer_certificate(&tls), cert);
    let mut tls = BufReader::new(tls);
    assert!(read_reply(&mut tls).starts_with("220 mx.example.test"));
    tls.get_mut()
        .write_all(b"EHLO client.example.org\r\n")
        .expect("write");
    let caps = read_reply(&mut tls);
    assert!(caps.starts_with("250-mx.example.test"), "{caps}");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    for line in [
        "MAIL FROM:<sender@example.org>\r\n",
        "RCPT TO:<user@localhost>\r\n",
        "DATA\r\n",
    ] {
        tls.get_mut().write_all(line.as_bytes()).expect("write");
        let r = read_reply(&mut tls);
        assert!(r.starts_with('2') || r.starts_with('3'), "{line}: {r}");
    }
    tls.get_mut()
        .write_all(b"Subject: tls-465\r\n\r\nwrapped\r\n.\r\nQUIT\r\n")
        .expect("write");
    assert!(read_reply(&mut tls).starts_with("250 2.0.0 Ok: queued as "));
    assert!(read_reply(&mut tls).starts_with("221 "));
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "{}", server.log());
    assert!(mail[0].contains(" with ESMTPS id "), "{}", mail[0]);

    // A plaintext client on the wrapper port gets no greeting; the plain port is unaffected.
    let mut plain = tcp(port);
    plain
        .write_all(b"EHLO client.example.org\r\n")
        .expect("write");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("220 "), "{buf:?}");
    let log = server.wait_for_log("SSL_accept error from", Duration::from_secs(5));
    assert!(log.contains("SSL_accept error from "), "{log}");
    let s = server.connect();
    assert!(s.banner.starts_with("220 "));
}

#[test]
fn a_broken_certificate_disables_tls_and_check_names_the_file() {
    let dir = TempDir::new("broken-cert");
    let missing = dir.path().join("missing.pem");
    let server = Server::start(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\n",
        missing.display()
    ));
    // The daemon runs, mail flows in plaintext, and the log says why there is no STARTTLS.
    let mut s = server.connect();
    let caps = s.ehlo("client.example.org");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    s.cmd("STARTTLS", "502 5.5.1 Error: command not implemented");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("disabling TLS support", Duration::from_secs(5));
    let want = format!(
        "warning: cannot load TLS certificate: {}: cannot read: ",
        missing.display()
    );
    assert!(log.contains(&want), "{log}");

    let out = server.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "error: main.cf: cannot load TLS certificate: {}: cannot read: ",
            missing.display()
        )),
        "{text}"
    );
}
