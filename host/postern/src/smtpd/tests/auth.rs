//! AUTH dialogs (RFC 4954) against a passwd-file back end, without TLS
//! (`smtpd_tls_auth_only = no`), and the restrictions that look at the login.

use std::path::PathBuf;

use super::{envelope, OUTSIDER};
use postern_config::Config;

use crate::smtpd::testkit::{config, Dialog, TempSpool};

/// `alice` / `wonderland` (clear text, fast) and `bob` / `builder` (bcrypt).
struct Users(PathBuf);

impl Users {
    fn new(tag: &str) -> Users {
        let p =
            std::env::temp_dir().join(format!("postern-auth-users-{tag}-{}", std::process::id()));
        let bob = bcrypt::hash("builder", 4).expect("bcrypt");
        std::fs::write(&p, format!("alice:{{PLAIN}}wonderland\nbob:{bob}\n")).expect("write");
        Users(p)
    }
}

impl Users {
    /// AUTH on against these users, allowed without TLS, plus `extra` (later entries win).
    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let path = self.0.display().to_string();
        let mut o: Vec<(&str, &str)> = vec![
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_path", &path),
            ("smtpd_tls_auth_only", "no"),
        ];
        o.extend_from_slice(extra);
        config(&o)
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `AUTH PLAIN` initial response for `user` / `pw`.
fn plain(user: &str, pw: &str) -> String {
    b64(&format!("\0{user}\0{pw}"))
}

/// A session with AUTH on (no TLS needed) and relaying only for logged-in clients.
async fn auth_session(users: &Users, spool: &TempSpool, extra: &[(&str, &str)]) -> Dialog {
    let mut o: Vec<(&str, &str)> = vec![
        ("smtpd_sasl_failure_delay", "0"),
        (
            "smtpd_relay_restrictions",
            "permit_sasl_authenticated, reject_unauth_destination",
        ),
    ];
    o.extend_from_slice(extra);
    let mut d = Dialog::start(users.config(&o), spool, OUTSIDER).await;
    d.cmd("EHLO client.example.org", "250-mx.example.test")
        .await;
    d
}

#[tokio::test]
async fn plain_with_and_without_initial_response() {
    let users = Users::new("plain");
    let spool = TempSpool::new("smtpd-auth-plain");
    let mut d = Dialog::start(users.config(&[]), &spool, OUTSIDER).await;
    let ehlo = d.cmd("EHLO client.example.org", "250-").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH="), "{ehlo}");
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "235 2.7.0 Authentication successful",
    )
    .await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "503 5.5.1 Error: already authenticated",
    )
    .await;

    let mut d = auth_session(&users, &spool, &[]).await;
    let r = d.cmd("AUTH PLAIN", "334").await;
    assert_eq!(
        r, "334 \r\n",
        "an empty challenge keeps its space (RFC 4954 §4)"
    );
    d.cmd(&plain("bob", "builder"), "235 2.7.0").await;
}

#[tokio::test]
async fn login_mechanism_and_initial_user_name() {
    let users = Users::new("login");
    let spool = TempSpool::new("smtpd-auth-login");
    let mut d = auth_session(&users, &spool, &[]).await;
    d.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    d.cmd(&b64("alice"), "334 UGFzc3dvcmQ6").await;
    d.cmd(&b64("wonderland"), "235 2.7.0 Authentication successful")
        .await;

    let mut d = auth_session(&users, &spool, &[]).await;
    d.cmd(&format!("auth login {}", b64("bob")), "334 UGFzc3dvcmQ6")
        .await;
    d.cmd(&b64("builder"), "235 2.7.0").await;
    // RFC 4954 §5: where AUTH is offered, MAIL FROM may carry AUTH=.
    d.cmd("MAIL FROM:<bob@example.org> AUTH=<>", "250 2.1.0")
        .await;
}

#[tokio::test]
async fn cancel_bad_base64_and_unknown_mechanism() {
    let users = Users::new("cancel");
    let spool = TempSpool::new("smtpd-auth-cancel");
    let mut d = auth_session(&users, &spool, &[]).await;
    d.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    d.cmd("*", "501 5.7.0 Authentication aborted").await;
    d.cmd(
        "AUTH PLAIN !!!notbase64",
        "501 5.5.2 Cannot decode response",
    )
    .await;
    d.cmd("AUTH PLAIN", "334").await;
    d.cmd("###", "501 5.5.2 Cannot decode response").await;
    d.cmd(
        "AUTH CRAM-MD5",
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
    )
    .await;
    d.cmd("AUTH", "501 5.5.4").await;
    d.cmd("AUTH PLAIN a b", "501 5.5.4 Syntax: AUTH mechanism")
        .await;
    // Nothing of the above logged the client in.
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<friend@remote.example>",
        "554 5.7.1 <friend@remote.example>: Relay access denied",
    )
    .await;
}

#[tokio::test]
async fn failures_count_as_errors() {
    let users = Users::new("fail");
    let spool = TempSpool::new("smtpd-auth-fail");
    let mut d = auth_session(&users, &spool, &[("smtpd_hard_error_limit", "3")]).await;
    for pw in ["wrong", "wronger"] {
        d.cmd(
            &format!("AUTH PLAIN {}", plain("alice", pw)),
            "535 5.7.8 Error: authentication failed: authentication failure",
        )
        .await;
    }
    // An unknown user gets the very same answer.
    d.cmd(
        &format!("AUTH PLAIN {}", plain("mallory", "wonderland")),
        "535 5.7.8 Error: authentication failed: authentication failure",
    )
    .await;
    let r = d.reply().await;
    assert!(
        r.starts_with("421 4.7.0 mx.example.test Error: too many errors"),
        "{r}"
    );
}

#[tokio::test]
async fn failure_delay_is_applied() {
    let users = Users::new("delay");
    let spool = TempSpool::new("smtpd-auth-delay");
    let mut d = auth_session(&users, &spool, &[("smtpd_sasl_failure_delay", "1s")]).await;
    let start = std::time::Instant::now();
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "nope")),
        "535 5.7.8",
    )
    .await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn state_checks() {
    let users = Users::new("state");
    let spool = TempSpool::new("smtpd-auth-state");
    let mut d = auth_session(&users, &spool, &[]).await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "503 5.5.1 Error: MAIL transaction in progress",
    )
    .await;
    d.cmd("RSET", "250").await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "235",
    )
    .await;

    // Not enabled.
    let mut d = Dialog::start(config(&[]), &spool, OUTSIDER).await;
    let ehlo = d.cmd("EHLO client.example.org", "250-").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    d.cmd(
        "AUTH PLAIN AGFsaWNlAHg=",
        "503 5.5.1 Error: authentication not enabled",
    )
    .await;

    // smtpd_tls_auth_only = yes (Postern's default) without TLS: not offered, and refused.
    let path = users.0.display().to_string();
    let cfg = config(&[
        ("smtpd_sasl_auth_enable", "yes"),
        ("smtpd_sasl_path", &path),
    ]);
    let mut d = Dialog::start(cfg, &spool, OUTSIDER).await;
    let ehlo = d.cmd("EHLO client.example.org", "250-").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "504 5.5.4 Encryption required for requested authentication mechanism",
    )
    .await;

    // noplaintext: PLAIN and LOGIN are not allowed.
    let mut d = auth_session(
        &users,
        &spool,
        &[("smtpd_sasl_security_options", "noanonymous, noplaintext")],
    )
    .await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
    )
    .await;
}

#[tokio::test]
async fn broken_clients_get_auth_equals() {
    let users = Users::new("broken");
    let spool = TempSpool::new("smtpd-auth-broken");
    let cfg = users.config(&[("broken_sasl_auth_clients", "yes")]);
    let mut d = Dialog::start(cfg, &spool, OUTSIDER).await;
    let ehlo = d.cmd("EHLO client.example.org", "250-").await;
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n"),
        "{ehlo}"
    );
}

#[tokio::test]
async fn rate_limit_per_client() {
    let users = Users::new("rate");
    let spool = TempSpool::new("smtpd-auth-rate");
    let cfg = || {
        users.config(&[
            ("smtpd_sasl_failure_delay", "0"),
            ("smtpd_client_auth_rate_limit", "2"),
        ])
    };
    // An address of its own: the table is shared by every session of the service.
    let addr = "198.51.100.77";
    let mut d = Dialog::start(cfg(), &spool, addr).await;
    d.cmd("EHLO client.example.org", "250").await;
    d.cmd(&format!("AUTH PLAIN {}", plain("alice", "x")), "535")
        .await;
    let mut d = Dialog::start(cfg(), &spool, addr).await;
    d.cmd("EHLO client.example.org", "250").await;
    d.cmd(&format!("AUTH PLAIN {}", plain("alice", "y")), "535")
        .await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "450 4.7.1 Error: too many AUTH commands from 198.51.100.77",
    )
    .await;
    // Another client is not affected.
    let mut d = Dialog::start(cfg(), &spool, "198.51.100.78").await;
    d.cmd("EHLO client.example.org", "250").await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "235",
    )
    .await;
}

#[tokio::test]
async fn relay_needs_authentication() {
    let users = Users::new("relay");
    let spool = TempSpool::new("smtpd-auth-relay");
    let mut d = auth_session(&users, &spool, &[]).await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<friend@remote.example>",
        "554 5.7.1 <friend@remote.example>: Relay access denied",
    )
    .await;
    d.cmd("RSET", "250").await;
    d.cmd(
        &format!("AUTH PLAIN {}", plain("alice", "wonderland")),
        "235",
    )
    .await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd("RCPT TO:<friend@remote.example>", "250 2.1.5 Ok")
        .await;
    // Local delivery is unaffected.
    d.cmd("RSET", "250").await;
    envelope(&mut d).await;
}

#[tokio::test]
async fn sender_login_mismatch() {
    let users = Users::new("owner");
    let spool = TempSpool::new("smtpd-auth-owner");
    let maps = "inline:{ alice@example.org=alice, { shared@example.org = alice bob } }";
    let extra = [
        ("smtpd_sender_login_maps", maps),
        ("smtpd_sender_restrictions", "reject_sender_login_mismatch"),
    ];
    // Not logged in: a listed sender is refused, others pass.
    let mut d = auth_session(&users, &spool, &extra).await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<user@localhost>",
        "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in",
    )
    .await;
    d.cmd("RSET", "250").await;
    d.cmd("MAIL FROM:<other@example.org>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;

    // Logged in as bob: only the addresses bob owns.
    let mut d = auth_session(&users, &spool, &extra).await;
    d.cmd(&format!("AUTH PLAIN {}", plain("bob", "builder")), "235")
        .await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<user@localhost>",
        "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user bob",
    )
    .await;
    d.cmd("RSET", "250").await;
    d.cmd("MAIL FROM:<shared@example.org>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;
    d.cmd("RSET", "250").await;
    d.cmd("MAIL FROM:<other@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<user@localhost>",
        "553 5.7.1 <other@example.org>: Sender address rejected: not owned by user bob",
    )
    .await;
    d.cmd("RSET", "250").await;
    // The null sender is never checked.
    d.cmd("MAIL FROM:<>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;

    // reject_known_sender_login_mismatch: unlisted senders are fine for logged-in users.
    let extra = [
        ("smtpd_sender_login_maps", maps),
        (
            "smtpd_sender_restrictions",
            "reject_known_sender_login_mismatch",
        ),
    ];
    let mut d = auth_session(&users, &spool, &extra).await;
    d.cmd(&format!("AUTH PLAIN {}", plain("bob", "builder")), "235")
        .await;
    d.cmd("MAIL FROM:<other@example.org>", "250").await;
    d.cmd("RCPT TO:<user@localhost>", "250").await;
}

#[tokio::test]
async fn plaintext_session_is_refused() {
    let spool = TempSpool::new("smtpd-auth-plaintext");
    let mut d = Dialog::start(
        config(&[("smtpd_sender_restrictions", "reject_plaintext_session")]),
        &spool,
        OUTSIDER,
    )
    .await;
    d.cmd("EHLO client.example.org", "250").await;
    d.cmd("MAIL FROM:<alice@example.org>", "250").await;
    d.cmd(
        "RCPT TO:<user@localhost>",
        "450 4.7.1 Session encryption is required",
    )
    .await;
}
