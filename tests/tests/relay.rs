//! Remote delivery through the smtp client: the real daemon relays to a server on 127.0.0.1
//! named by `relayhost = [127.0.0.1]:PORT` — Postfix's `smtp-sink` where installed, and a
//! scripted fake server in this file.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use postern_tests::{free_port, require, Server};

const WAIT: Duration = Duration::from_secs(20);

/// Submits one message for a remote recipient to `server`.
fn submit(server: &Server, rcpt: &str, body: &str) {
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("alice@example.org", "250");
    s.rcpt_to(rcpt, "250");
    s.data(body, "250 2.0.0");
    s.cmd("QUIT", "221");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn relays_to_smtp_sink() {
    if !require("smtp-sink") {
        return;
    }
    let port = free_port();
    let mut sink = Command::new("smtp-sink");
    // smtp-sink refuses to run as root without a user to switch to.
    if is_root() {
        sink.args(["-u", "nobody"]);
    }
    let mut sink = sink
        .args(["-c", &format!("127.0.0.1:{port}"), "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    // Wait until it listens.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = Server::start(&format!("relayhost = [127.0.0.1]:{port}"));
    submit(
        &server,
        "bob@remote.example",
        "Subject: to the sink\r\n\r\n.dot\r\n",
    );
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{port}");
    let log = server.wait_for_log("status=sent (250", WAIT);
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(
        log.contains("to=<bob@remote.example>, ") && log.contains(&relay),
        "{log}"
    );
    assert!(log.contains("status=sent (250"), "{log}");
}

#[test]
fn relays_to_a_scripted_server_with_per_recipient_results() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut w = sock.try_clone().expect("clone");
        let mut r = BufReader::new(sock);
        let mut seen = String::new();
        w.write_all(b"220 fake.test ESMTP\r\n").expect("greet");
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 2.0.0 Ok: queued as FAKE1\r\n")
                        .expect("done");
                }
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("") {
                "EHLO" => b"250-fake.test\r\n250-PIPELINING\r\n250 SIZE 100000\r\n",
                "MAIL" => b"250 2.1.0 Ok\r\n",
                "RCPT" if line.contains("nobody@") => {
                    b"550 5.1.1 <nobody@remote.example>: unknown\r\n"
                }
                "RCPT" => b"250 2.1.5 Ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 Bye\r\n");
                    break;
                }
                _ => b"502 5.5.2 what\r\n",
            };
            w.write_all(reply).expect("reply");
        }
        seen
    });
    let server = Server::start(&format!("relayhost = [127.0.0.1]:{port}"));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("alice@example.org", "250");
    s.rcpt_to("bob@remote.example", "250");
    s.rcpt_to("nobody@remote.example", "250");
    s.data(
        "Subject: scripted\r\n\r\n.leading dot\r\nbye\r\n",
        "250 2.0.0",
    );
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("status=bounced", WAIT);
    let seen = peer.join().expect("peer");
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{port}");
    assert!(
        log.contains(&format!("to=<bob@remote.example>, {relay}"))
            && log.contains("status=sent (250 2.0.0 Ok: queued as FAKE1)"),
        "{log}"
    );
    assert!(
        log.contains(&format!("to=<nobody@remote.example>, {relay}"))
            && log.contains("status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1"),
        "{log}"
    );
    assert!(seen.contains("EHLO mx.example.test\r\n"), "{seen}");
    assert!(seen.contains("\r\n..leading dot\r\nbye\r\n.\r\n"), "{seen}");
}

/// A one-session SMTP server on its own thread that offers STARTTLS when given a rustls
/// configuration. Yields what it read before TLS and after.
fn tls_peer(
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> std::thread::JoinHandle<(String, String)> {
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut r = BufReader::new(sock);
        let mut plain = String::new();
        let mut secure = String::new();
        r.get_mut()
            .write_all(b"220 fake.test ESMTP\r\n")
            .expect("greet");
        if smtp_dialog(&mut r, &mut plain, tls.is_some()) {
            if let Some(cfg) = tls {
                let conn = rustls::ServerConnection::new(cfg).expect("server connection");
                let mut r = BufReader::new(rustls::StreamOwned::new(conn, r.into_inner()));
                smtp_dialog(&mut r, &mut secure, false);
            }
        }
        (plain, secure)
    })
}

/// Serves SMTP until QUIT or EOF; true when the client sent STARTTLS (and got its 220).
fn smtp_dialog<S: std::io::Read + Write>(
    r: &mut BufReader<S>,
    seen: &mut String,
    starttls: bool,
) -> bool {
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        seen.push_str(&line);
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let _ = r.get_mut().write_all(b"250 2.0.0 Ok: queued as TLS1\r\n");
            }
            continue;
        }
        let reply: &[u8] = match line.get(..4).unwrap_or("") {
            "EHLO" if starttls => b"250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-fake.test\r\n250 PIPELINING\r\n",
            "STAR" => {
                let _ = r.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n");
                return true;
            }
            "MAIL" => b"250 2.1.0 Ok\r\n",
            "RCPT" => b"250 2.1.5 Ok\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                let _ = r.get_mut().write_all(b"221 Bye\r\n");
                return false;
            }
            _ => b"502 5.5.2 what\r\n",
        };
        if r.get_mut().write_all(reply).is_err() {
            return false;
        }
    }
}

/// A server certificate for 127.0.0.1 signed by a fresh CA, whose PEM is written to `ca_file`.
fn tls_server_config(ca_file: &std::path::Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    std::fs::write(ca_file, ca_cert.pem()).expect("write CA");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    std::sync::Arc::new(cfg)
}

#[test]
fn relays_over_starttls_and_logs_the_cipher() {
    let dir = postern_tests::TempDir::new("tls-ca");
    let ca_file = dir.path().join("ca.pem");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = tls_peer(listener, Some(tls_server_config(&ca_file)));
    let server = Server::start(&format!(
        "relayhost = [127.0.0.1]:{port}\n\
         smtp_tls_security_level = verify\n\
         smtp_tls_CAfile = {}\n\
         smtp_tls_loglevel = 1",
        ca_file.display()
    ));
    submit(
        &server,
        "bob@remote.example",
        "Subject: tls\r\n\r\nsecret\r\n",
    );
    let log = server.wait_for_log("status=sent", WAIT);
    let (plain, secure) = peer.join().expect("peer");
    assert_eq!(plain, "EHLO mx.example.test\r\nSTARTTLS\r\n");
    assert!(secure.contains("MAIL FROM:<alice@example.org>") && secure.contains("secret\r\n"));
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3 with \
             cipher TLS_"
        )),
        "{log}"
    );
    assert!(
        log.contains("status=sent (250 2.0.0 Ok: queued as TLS1) tls=TLSv1.3:TLS_"),
        "{log}"
    );
}

#[test]
fn mandatory_tls_not_offered_defers() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = tls_peer(listener, None);
    let server = Server::start(&format!(
        "relayhost = [127.0.0.1]:{port}\nsmtp_tls_security_level = encrypt"
    ));
    submit(
        &server,
        "bob@remote.example",
        "Subject: must be tls\r\n\r\nx\r\n",
    );
    let log = server.wait_for_log("status=deferred", WAIT);
    let (plain, _) = peer.join().expect("peer");
    assert!(!plain.contains("MAIL FROM"), "{plain}");
    assert!(
        log.contains(
            "dsn=4.7.4, status=deferred (TLS is required, but was not offered by host \
             127.0.0.1[127.0.0.1])"
        ),
        "{log}"
    );
}

#[test]
fn fallback_relay_takes_mail_the_destination_refuses() {
    let closed = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = tls_peer(listener, None);
    let server = Server::start(&format!(
        "transport_maps = inline:{{ remote.example=smtp:[127.0.0.1]:{closed} }}\n\
         smtp_fallback_relay = [127.0.0.1]:{port}\n\
         smtp_tls_security_level = none"
    ));
    submit(
        &server,
        "bob@remote.example",
        "Subject: fallback\r\n\r\nx\r\n",
    );
    let log = server.wait_for_log("status=sent", WAIT);
    let (plain, _) = peer.join().expect("peer");
    assert!(plain.contains("RCPT TO:<bob@remote.example>"), "{plain}");
    assert!(
        log.contains(&format!(
            "connect to 127.0.0.1[127.0.0.1]:{closed}: Connection refused"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<bob@remote.example>, relay=127.0.0.1[127.0.0.1]:{port}"
        )) && log.contains("status=sent (250 2.0.0 Ok: queued as TLS1)"),
        "{log}"
    );
}

/// Postern relaying to another Postern that requires AUTH: `smtp_sasl_password_maps` gives the
/// credentials for the relayhost; the receiving side logs the login; no password in any log.
#[test]
fn authenticates_to_a_relay_that_requires_auth() {
    let secrets = postern_tests::TempDir::new("sasl-relay");
    let passwd = secrets.path().join("sasl_passwd");
    std::fs::write(&passwd, "alice:{PLAIN}wonderland\n").expect("passwd");
    let relay = Server::start(&format!(
        "myhostname = relay.example.test\n\
         mydestination = final.example\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_path = {}\n\
         smtpd_tls_auth_only = no\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
         smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n",
        passwd.display()
    ));
    let hop = format!("[127.0.0.1]:{}", relay.port);
    let client = Server::start(&format!(
        "relayhost = {hop}\n\
         smtp_sasl_auth_enable = yes\n\
         smtp_sasl_password_maps = inline:{{ {{{hop} = alice:wonderland}} }}\n\
         smtp_sasl_security_options = noanonymous\n"
    ));
    submit(
        &client,
        "bob@final.example",
        "Subject: through an authenticated relay\r\n\r\nhi\r\n",
    );
    let mail = relay.wait_for_mail("bob", 1, WAIT);
    assert_eq!(
        mail.len(),
        1,
        "client log:\n{}\nrelay log:\n{}",
        client.log(),
        relay.log()
    );
    client.wait_for_log("status=sent", WAIT);
    relay.wait_for_log("sasl_method=PLAIN, sasl_username=alice", WAIT);
    for log in [client.log(), relay.log()] {
        assert!(!log.contains("wonderland"), "{log}");
        assert!(!log.contains("d29uZGVybGFuZA"), "{log}");
        assert!(!log.contains("AGFsaWNlAHdvbmRlcmxhbmQ"), "{log}");
    }
}
