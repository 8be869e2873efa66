//! The restriction language end to end: the real daemon, tables built with `postern map
//! build`, and the replies, queue placement and delivered content a Postfix admin expects.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postern_tests::{message, postern_bin, Server, TempDir};

/// Writes `text` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write table source");
    p.display().to_string()
}

/// `postern map build hash:PATH`, as `postmap` would.
fn map_build(path: &str) {
    let out = Command::new(postern_bin())
        .args(["map", "build", &format!("hash:{path}")])
        .stdin(Stdio::null())
        .output()
        .expect("run postern map build");
    assert!(
        out.status.success(),
        "map build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn postfix_access_example_works_verbatim() {
    let tables = TempDir::new("access");
    let access = write(
        tables.path(),
        "access",
        "user@example.org OK\nexample.org REJECT\n",
    );
    map_build(&access);
    let server = Server::start(&format!(
        "smtpd_recipient_restrictions = check_recipient_access hash:{access}, \
         permit_mynetworks, reject_unauth_destination"
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("user@example.org", "250 2.1.5");
    s.rcpt_to(
        "other@example.org",
        "554 5.7.1 <other@example.org>: Recipient address rejected: Access denied",
    );
    s.rcpt_to(
        "x@sub.example.org",
        "554 5.7.1 <x@sub.example.org>: Recipient address rejected: Access denied",
    );
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("reject: RCPT", Duration::from_secs(5));
    assert!(
        log.contains("reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <other@example.org>"),
        "{log}"
    );

    // Rebuilt while the server runs: the next session sees the new table.
    write(
        tables.path(),
        "access",
        "user@example.org OK\nother@example.org OK\nexample.org REJECT\n",
    );
    map_build(&access);
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    s.rcpt_to("other@example.org", "250 2.1.5");
}

#[test]
fn sender_access_rejects_at_rcpt_time() {
    let server = Server::start(
        "smtpd_sender_restrictions = check_sender_access inline:{ bad@example.org=REJECT }",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    // smtpd_delay_reject = yes: MAIL is accepted, every RCPT gets the sender's refusal.
    s.mail_from("bad@example.org", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "554 5.7.1 <bad@example.org>: Sender address rejected: Access denied",
    );
    s.cmd("RSET", "250");
    s.mail_from("good@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
}

#[test]
fn client_access_by_cidr() {
    let tables = TempDir::new("cidr");
    let cidr = write(
        tables.path(),
        "clients.cidr",
        "192.0.2.0/24 OK\n127.0.0.0/8 REJECT 5.7.9 go away\n",
    );
    // The resolver names 127.0.0.1 "localhost" itself (RFC 6761 special-use names).
    let dns = DnsServer::start(Vec::new());
    let server = Server::start(&format!(
        "smtpd_client_restrictions = check_client_access cidr:{cidr}\n{}",
        dns.main_cf()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "554 5.7.9 <localhost[127.0.0.1]>: Client host rejected: go away",
    );
}

#[test]
fn without_delay_reject_each_list_runs_at_its_command() {
    let server = Server::start(
        "smtpd_delay_reject = no\n\
         smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n\
         smtpd_sender_restrictions = check_sender_access inline:{ bad@example.org=REJECT }",
    );
    let mut s = server.connect();
    s.cmd(
        "EHLO localhost",
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
    );
    s.ehlo("client.example.org");
    s.mail_from(
        "bad@example.org",
        "554 5.7.1 <bad@example.org>: Sender address rejected: Access denied",
    );
    s.mail_from("good@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
}

#[test]
fn hold_puts_mail_in_hold_queue() {
    let server = Server::start(
        "smtpd_recipient_restrictions = check_recipient_access inline:{ user@localhost=HOLD }, \
         permit_mynetworks, reject_unauth_destination",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.data(&message("held"), "250 2.0.0 Ok: queued as");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("hold:", Duration::from_secs(5));
    assert!(
        log.contains("hold: RCPT from unknown[127.0.0.1]: <user@localhost>: Recipient address triggers HOLD action"),
        "{log}"
    );
    assert_eq!(server.queue_files("hold").len(), 1, "{log}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server
        .wait_for_mail("user", 1, Duration::from_millis(200))
        .is_empty());
}

#[test]
fn discard_claims_delivery_and_drops() {
    let server = Server::start(
        "smtpd_sender_restrictions = check_sender_access inline:{ spam@example.org=DISCARD }",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("spam@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.data(&message("dropped"), "250 2.0.0");
    s.cmd("QUIT", "221");
    let log = server.wait_for_log("discard:", Duration::from_secs(5));
    assert!(
        log.contains("Sender address triggers DISCARD action"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(server
        .wait_for_mail("user", 1, Duration::from_millis(200))
        .is_empty());
    assert!(server.queue_files("hold").is_empty());
}

#[test]
fn prepend_adds_a_header() {
    let server = Server::start(
        "smtpd_recipient_restrictions = check_recipient_access \
         inline:{ {user@localhost=PREPEND X-Checked: by postern} }, \
         permit_mynetworks, reject_unauth_destination",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.data(&message("tagged"), "250 2.0.0");
    s.cmd("QUIT", "221");
    let mail = server.wait_for_mail("user", 1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1, "{}", server.log());
    assert!(
        mail[0].contains("X-Checked: by postern\r\n")
            || mail[0].contains("X-Checked: by postern\n")
    );
}

#[test]
fn restriction_classes() {
    let server = Server::start(
        "smtpd_restriction_classes = restrictive\n\
         restrictive = reject_non_fqdn_sender, reject\n\
         smtpd_recipient_restrictions = check_recipient_access \
         inline:{ chef@localhost=restrictive }, permit_mynetworks, reject_unauth_destination",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.rcpt_to(
        "chef@localhost",
        "554 5.7.1 <chef@localhost>: Recipient address rejected: Access denied",
    );
}

#[test]
fn unknown_restriction_is_a_server_configuration_error() {
    let server = Server::start(
        "smtpd_recipient_restrictions = permit_mynetworks_typo, reject_unauth_destination",
    );
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to("user@localhost", "451 4.3.5 Server configuration error");
    let log = server.wait_for_log("unknown smtpd restriction", Duration::from_secs(5));
    assert!(log.contains("permit_mynetworks_typo"), "{log}");
}

/// A DNS server on loopback answering from fixture records (name, type, rdata); names it does
/// not know are NXDOMAIN, known names without the type asked for are NODATA. Enough of RFC 1035
/// for a stub resolver's queries: one question, answers by name compression pointer.
struct DnsServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const A: u16 = 1;
const MX: u16 = 15;
const TXT: u16 = 16;

fn a(ip: [u8; 4]) -> Vec<u8> {
    ip.to_vec()
}

fn txt(text: &str) -> Vec<u8> {
    let mut v = vec![text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

fn mx(pref: u16, host: &str) -> Vec<u8> {
    let mut v = pref.to_be_bytes().to_vec();
    for label in host.split('.').filter(|l| !l.is_empty()) {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

impl DnsServer {
    fn start(records: Vec<(&str, u16, Vec<u8>)>) -> DnsServer {
        let records: Vec<(String, u16, Vec<u8>)> = records
            .into_iter()
            .map(|(n, t, d)| (n.to_ascii_lowercase(), t, d))
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &records) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        DnsServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn main_cf(&self) -> String {
        format!(
            "dns_nameservers = 127.0.0.1:{}\ndns_timeout = 2s",
            self.port
        )
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(query: &[u8], records: &[(String, u16, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question = query.get(12..pos + 4)?;
    let name = labels.join(".");
    let found: Vec<&Vec<u8>> = records
        .iter()
        .filter(|(n, t, _)| *n == name && *t == qtype)
        .map(|(_, _, d)| d)
        .collect();
    let known = records.iter().any(|(n, _, _)| *n == name);
    let rcode = if known { 0 } else { 3 };
    let mut out = vec![query[0], query[1], 0x80 | (query[2] & 0x01), 0x80 | rcode];
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(found.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    for data in found {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    Some(out)
}

#[test]
fn dns_blocklist_rejects_listed_clients() {
    let dns = DnsServer::start(vec![
        ("1.0.0.127.zen.example", A, a([127, 0, 0, 2])),
        ("1.0.0.127.zen.example", TXT, txt("listed for testing")),
        ("1.0.0.127.other.example", A, a([127, 0, 0, 4])),
    ]);
    let server = Server::start(&format!(
        "{}\nsmtpd_client_restrictions = reject_rbl_client other.example=127.0.0.2, \
         reject_rbl_client zen.example",
        dns.main_cf()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.example; \
         listed for testing",
    );
}

#[test]
fn dns_allow_list_and_unknown_domains() {
    let dns = DnsServer::start(vec![
        ("1.0.0.127.wl.example", A, a([127, 0, 10, 1])),
        ("good.example", MX, mx(10, "mx.good.example")),
        ("www.good.example", A, a([192, 0, 2, 1])),
    ]);
    let server = Server::start(&format!(
        "{}\nsmtpd_sender_restrictions = reject_unknown_sender_domain\n\
         smtpd_helo_restrictions = reject_unknown_helo_hostname\n\
         smtpd_client_restrictions = permit_dnswl_client wl.example, \
         reject_unknown_client_hostname",
        dns.main_cf()
    ));
    let mut s = server.connect();
    s.ehlo("www.good.example");
    s.mail_from("a@nosuch.example", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "450 4.1.8 <a@nosuch.example>: Sender address rejected: Domain not found",
    );
    s.cmd("RSET", "250");
    s.mail_from("a@good.example", "250 2.1.0");
    s.rcpt_to("user@localhost", "250 2.1.5");
    s.ehlo("nohost.example");
    s.mail_from("a@good.example", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "450 4.7.1 <nohost.example>: Helo command rejected: Host not found",
    );
}

#[test]
fn rhsbl_uses_the_verified_client_name() {
    let dns = DnsServer::start(vec![("localhost.rhs.example", A, a([127, 0, 0, 2]))]);
    let server = Server::start(&format!(
        "{}\nsmtpd_client_restrictions = reject_unknown_client_hostname, \
         reject_rhsbl_client rhs.example",
        dns.main_cf()
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("a@example.org", "250 2.1.0");
    s.rcpt_to(
        "user@localhost",
        "554 5.7.1 Service unavailable; Client host [localhost] blocked using rhs.example",
    );
    let log = server.wait_for_log("connect from localhost[127.0.0.1]", Duration::from_secs(5));
    assert!(log.contains("connect from localhost[127.0.0.1]"), "{log}");
}

#[test]
fn relocated_users_are_refused_with_their_new_address() {
    let tables = TempDir::new("relocated");
    let relocated = write(
        tables.path(),
        "relocated",
        "# relocated(5)\nbob@localhost bob@new.example\n@old.example contact@new.example\n",
    );
    map_build(&relocated);
    let server = Server::start(&format!(
        "relocated_maps = hash:{relocated}\nmydestination = localhost, $myhostname, old.example"
    ));
    let mut s = server.connect();
    s.ehlo("client.example.org");
    s.mail_from("sender@example.net", "250 2.1.0");
    let r = s.rcpt_to("bob@localhost", "550 5.1.6");
    assert!(r.contains("User has moved to bob@new.example"), "{r}");
    let r = s.rcpt_to("anyone@old.example", "550 5.1.6");
    assert!(r.contains("contact@new.example"), "{r}");
    s.rcpt_to("alice@localhost", "250 2.1.5");
    s.cmd("QUIT", "221");
}
