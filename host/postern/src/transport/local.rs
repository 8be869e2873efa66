//! local(8): final delivery for domains in `mydestination`.
//!
//! Mailbox selection follows Postfix local(8) "MAILBOX DELIVERY":
//! - `home_mailbox` non-empty: the mailbox is `$HOME/$home_mailbox`; a trailing `/` means Maildir.
//!   The home directory comes from `/etc/passwd`; an unknown user bounces with `5.1.1`.
//! - otherwise `mail_spool_directory`; a trailing `/` means a Maildir at
//!   `$mail_spool_directory/USER/`. Users need not exist in `/etc/passwd` here: this is the mode
//!   Postern's embedded defaults use (`./postern-data/mail/`).
//!
//! mbox files are not implemented: such recipients are deferred with `4.3.0 mbox delivery not
//! implemented` so that nothing is lost while the administrator switches to Maildir.
//!
//! Before that, the local part is expanded through `alias_maps` ([`super::alias`]): mailbox
//! targets are delivered here, `/file` targets by [`super::file`], `|command` targets by
//! [`super::pipe`], and other addresses are forwarded in one new message queued through
//! cleanup (with a `Delivered-To:` header; a message that already carries `Delivered-To:` for
//! this recipient bounces as a forwarding loop, `5.4.6`, as in Postfix). The recipient's result
//! is the worst of its targets' results: any deferral defers it (the targets that succeeded
//! are delivered again at the retry), else any bounce bounces it.
//!
//! The user is the address's local part, lowercased, with the `recipient_delimiter` extension
//! removed (`Bob+lists@…` → `bob`). `.forward`, `mailbox_command` and delivery as the
//! recipient's uid are not implemented: files are written with the daemon's own uid.

use std::path::{Path, PathBuf};

use postern_config::Config;
use postern_proto::EnhancedCode;

use super::alias::{Expander, Target};
use super::{file, maildir, pipe, DestinationSlot, Job, Outcome};
use crate::queue::{Envelope, Recipient};

const RELAY: &str = "local";

/// Delivers every recipient of a local job (normally one: `local_destination_recipient_limit`).
pub fn deliver_job(cfg: &Config, job: &Job, mut slot: DestinationSlot) -> Vec<Outcome> {
    let passwd = Path::new("/etc/passwd");
    super::per_recipient(job, RELAY, |rcpt| {
        deliver(cfg, passwd, &job.env, &job.content, rcpt, &mut slot)
    })
}

/// Delivers one message to one local recipient. `passwd` is the password file used for
/// `home_mailbox` lookups (`/etc/passwd` in production).
pub fn deliver(
    cfg: &Config,
    passwd: &Path,
    env: &Envelope,
    content: &[u8],
    rcpt: &Recipient,
    slot: &mut DestinationSlot,
) -> Outcome {
    let user = match mailbox_user(&rcpt.address, &cfg.recipient_delimiter) {
        Ok(u) => u,
        Err(o) => return o,
    };
    if cfg.alias_maps.is_empty() {
        return deliver_mailbox(cfg, passwd, env, content, rcpt, &user, slot);
    }
    if delivered_to(content, &rcpt.address) {
        return Outcome::bounce(
            EnhancedCode::new(5, 4, 6),
            RELAY,
            format!(
                "mail forwarding loop for {}",
                maildir::one_line(&rcpt.address)
            ),
        );
    }
    let tables = match crate::cleanup::tables::open(&cfg.alias_maps) {
        Ok(t) => t,
        Err(e) => {
            let text = format!("alias_maps lookup: {e}");
            return Outcome::defer(EnhancedCode::new(4, 3, 0), RELAY, text);
        }
    };
    let is_local = |d: &str| crate::cleanup::rewrite::is_local_domain(cfg, d);
    let (local, _) = crate::address::split_address(&rcpt.address);
    let expander = Expander {
        cfg,
        tables: &tables,
        is_local: &is_local,
    };
    let targets = match expander.expand(local) {
        Ok(t) => t,
        Err(o) => return o,
    };
    if let [Target::Mailbox(u)] = targets.as_slice() {
        if *u == user {
            return deliver_mailbox(cfg, passwd, env, content, rcpt, &user, slot);
        }
    }
    let head = maildir::delivery_head(&env.sender, &rcpt.address);
    let mut outcomes = Vec::with_capacity(targets.len());
    let mut forward = Vec::new();
    for t in targets {
        let o = match t {
            Target::Mailbox(u) => match mailbox_user(&u, "") {
                Ok(u) => deliver_mailbox(cfg, passwd, env, content, rcpt, &u, slot),
                Err(o) => o,
            },
            Target::Forward(a) => {
                forward.push(a);
                continue;
            }
            Target::File(p) => file::deliver(&p, &cfg.myhostname, &env.sender, &head, content),
            Target::Command(c) => {
                let mut msg = file::from_line(&env.sender).into_bytes();
                msg.extend_from_slice(head.as_bytes());
                maildir::crlf_to_lf(content, &mut msg);
                let original = rcpt.orcpt.as_ref().map_or(&rcpt.address, |(_, a)| a);
                let who = pipe::Env {
                    sender: &env.sender,
                    recipient: &rcpt.address,
                    original,
                    delimiter: &cfg.recipient_delimiter,
                };
                pipe::deliver(&c, &msg, &who, pipe::TIME_LIMIT)
            }
            Target::Refused(text) => Outcome::bounce(EnhancedCode::new(5, 7, 1), RELAY, text),
        };
        outcomes.push(o);
    }
    if !forward.is_empty() {
        outcomes.push(forward_to(cfg, env, content, rcpt, forward));
    }
    worst(outcomes)
}

/// Queues a copy of the message for `to` (an alias naming remote addresses), marked with
/// `Delivered-To:` so that a forwarding loop is found when it comes back.
fn forward_to(
    cfg: &Config,
    env: &Envelope,
    content: &[u8],
    rcpt: &Recipient,
    to: Vec<String>,
) -> Outcome {
    let spool = match crate::queue::Spool::open(&cfg.queue_directory) {
        Ok(s) => s,
        Err(e) => {
            let text = format!("cannot open queue to forward mail: {e}");
            return Outcome::defer(EnhancedCode::new(4, 3, 0), RELAY, text);
        }
    };
    let mut new = Envelope::new(
        crate::queue::QueueId::generate(),
        env.sender.clone(),
        env.origin.clone(),
    );
    new.smtputf8 = env.smtputf8;
    new.body = env.body;
    new.recipients = to.iter().map(Recipient::new).collect();
    let actions = crate::cleanup::Actions {
        prepend: vec![format!(
            "Delivered-To: {}",
            maildir::one_line(&rcpt.address)
        )],
        ..Default::default()
    };
    let protocol = crate::cleanup::Protocol::default();
    match crate::cleanup::enqueue_full(cfg, &spool, new, content, protocol, &actions) {
        Ok(stored) => {
            let id = stored.env.id.clone();
            crate::info!(
                "local",
                "{}: forwarded as {id} to {}",
                env.id,
                to.join(", ")
            );
            let mut o = Outcome::sent(RELAY, format!("forwarded as {id}"));
            if !stored.held && !stored.discarded {
                o.queued = Some(id);
            }
            o
        }
        Err(crate::cleanup::CleanupError::Rejected(r)) => {
            let status = r.enhanced.unwrap_or(EnhancedCode::new(4, 3, 0));
            Outcome::bounce(status, RELAY, format!("cannot forward: {r}"))
        }
        Err(e) => Outcome::defer(
            EnhancedCode::new(4, 3, 0),
            RELAY,
            format!("cannot forward: {e}"),
        ),
    }
}

/// One result for a recipient that expanded to several targets: a deferral wins (the message
/// stays queued), then a bounce, else the delivery succeeded.
fn worst(outcomes: Vec<Outcome>) -> Outcome {
    let pick = |pred: fn(&Outcome) -> bool| outcomes.iter().find(|o| pred(o)).cloned();
    let queued = outcomes.iter().find_map(|o| o.queued.clone());
    let mut o = pick(Outcome::is_deferred)
        .or_else(|| pick(Outcome::is_bounced))
        .or_else(|| {
            let texts: Vec<&str> = outcomes.iter().map(|o| o.text.as_str()).collect();
            Some(Outcome::sent(RELAY, texts.join("; ")))
        })
        .unwrap_or_else(|| Outcome::sent(RELAY, "delivered"));
    o.queued = queued;
    o
}

/// True when the header section already has `Delivered-To: address`.
fn delivered_to(content: &[u8], address: &str) -> bool {
    let end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(content.len());
    String::from_utf8_lossy(&content[..end])
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .any(|(n, v)| {
            n.eq_ignore_ascii_case("delivered-to") && v.trim().eq_ignore_ascii_case(address)
        })
}

/// Maildir delivery to local user `user`'s mailbox.
fn deliver_mailbox(
    cfg: &Config,
    passwd: &Path,
    env: &Envelope,
    content: &[u8],
    rcpt: &Recipient,
    user: &str,
    slot: &mut DestinationSlot,
) -> Outcome {
    let dir = match mailbox_path(cfg, passwd, user) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let head = maildir::delivery_head(&env.sender, &rcpt.address);
    maildir::deliver_outcome(&dir, &cfg.myhostname, head.as_bytes(), content, slot, RELAY)
}

/// The mailbox owner for `address`: local part (quotes removed), extension removed, lowercased.
///
/// Names that could leave the mailbox directory or hide in it — empty, containing `/` or NUL or
/// control characters, starting with `.` (which also covers `..`) — are refused with `5.1.3`
/// (bad destination mailbox address syntax), never "cleaned up" into another user's mailbox.
pub fn mailbox_user(address: &str, delimiter: &str) -> Result<String, Outcome> {
    let (local, _) = crate::address::split_address(address);
    let local = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(local);
    let mut user = local.to_lowercase();
    if !delimiter.is_empty() {
        // Postfix splits at the first delimiter character but never empties the name.
        if let Some(pos) = user.find(|c| delimiter.contains(c)) {
            if pos > 0 {
                user.truncate(pos);
            }
        }
    }
    let bad = user.is_empty()
        || user.starts_with('.')
        || user.contains('/')
        || user.contains("..")
        || user.chars().any(|c| c.is_control());
    if bad {
        return Err(Outcome::bounce(
            EnhancedCode::new(5, 1, 3),
            RELAY,
            format!("unsafe mailbox name: \"{}\"", user.escape_default()),
        ));
    }
    Ok(user)
}

/// The Maildir for `user`, or the outcome that replaces delivery.
pub fn mailbox_path(cfg: &Config, passwd: &Path, user: &str) -> Result<PathBuf, Outcome> {
    if !cfg.home_mailbox.is_empty() {
        let home = match home_directory(passwd, user) {
            Ok(Some(home)) => home,
            Ok(None) => {
                return Err(Outcome::bounce(
                    EnhancedCode::new(5, 1, 1),
                    RELAY,
                    format!("unknown user: \"{user}\""),
                ))
            }
            Err(e) => {
                return Err(Outcome::defer(
                    EnhancedCode::new(4, 3, 0),
                    RELAY,
                    format!("cannot read {}: {e}", passwd.display()),
                ))
            }
        };
        if !cfg.home_mailbox.ends_with('/') {
            return Err(mbox_not_implemented());
        }
        return Ok(home.join(cfg.home_mailbox.trim_start_matches('/')));
    }
    if cfg.mail_spool_directory.ends_with('/') {
        return Ok(Path::new(&cfg.mail_spool_directory).join(user));
    }
    Err(mbox_not_implemented())
}

fn mbox_not_implemented() -> Outcome {
    Outcome::defer(
        EnhancedCode::new(4, 3, 0),
        RELAY,
        "mbox delivery not implemented; end mail_spool_directory or home_mailbox with / for Maildir",
    )
}

/// Looks `user` up in a passwd(5) file: `name:passwd:uid:gid:gecos:home:shell`.
pub fn home_directory(passwd: &Path, user: &str) -> std::io::Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(passwd)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 7 && fields[0] == user && !fields[5].is_empty())
                .then(|| PathBuf::from(fields[5]))
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Origin, QueueId};

    fn tempdir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "postern-local-{tag}-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ))
    }

    fn cfg(over: &[(&str, &str)]) -> Config {
        let over: Vec<(String, String)> = over
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        postern_config::load_with(None, &over).expect("config").main
    }

    fn env(rcpt: &str) -> Envelope {
        let mut e = Envelope::new(
            QueueId::generate(),
            "alice@example.com",
            Origin::Local {
                user: "alice".into(),
            },
        );
        e.recipients.push(Recipient::new(rcpt));
        e
    }

    #[test]
    fn delimiter_and_case_are_removed() {
        assert_eq!(
            mailbox_user("Bob+lists@localhost", "+").ok(),
            Some("bob".into())
        );
        assert_eq!(
            mailbox_user("bob-x+y@localhost", "+-").ok(),
            Some("bob".into())
        );
        assert_eq!(
            mailbox_user("bob+x@localhost", "").ok(),
            Some("bob+x".into())
        );
        assert_eq!(mailbox_user("+x@localhost", "+").ok(), Some("+x".into()));
        assert_eq!(
            mailbox_user("\"Bob\"@localhost", "+").ok(),
            Some("bob".into())
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "../etc@localhost",
            ".hidden@localhost",
            "a/b@localhost",
            "@localhost",
            "a\0b@x",
            "\"..\"@x",
        ] {
            let o = mailbox_user(bad, "+").expect_err(bad);
            assert!(o.is_bounced(), "{bad}");
            assert_eq!(o.status.to_string(), "5.1.3");
        }
    }

    #[test]
    fn spool_maildir_delivery() {
        let dir = tempdir("spool");
        let spool = format!("{}/", dir.display());
        let c = cfg(&[
            ("mail_spool_directory", &spool),
            ("recipient_delimiter", "+"),
        ]);
        let e = env("Bob+lists@localhost");
        let o = deliver(
            &c,
            Path::new("/nonexistent"),
            &e,
            b"Subject: x\r\n\r\nhi\r\n",
            &e.recipients[0],
            &mut None,
        );
        assert!(o.is_sent(), "{o:?}");
        assert_eq!(o.text, "delivered to maildir");
        let new: Vec<_> = std::fs::read_dir(dir.join("bob/new"))
            .expect("new")
            .collect();
        assert_eq!(new.len(), 1);
        let path = new.into_iter().next().expect("one").expect("entry").path();
        let text = std::fs::read_to_string(path).expect("read");
        assert!(text.starts_with(
            "Return-Path: <alice@example.com>\nDelivered-To: Bob+lists@localhost\nSubject: x\n"
        ));
        assert_eq!(
            std::fs::read_dir(dir.join("bob/tmp")).expect("tmp").count(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn home_mailbox_uses_passwd() {
        let dir = tempdir("home");
        std::fs::create_dir_all(dir.join("home/carol")).expect("mkdir");
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "root:x:0:0:root:/root:/bin/sh\ncarol:x:1000:1000:Carol:{}/home/carol:/bin/sh\n",
                dir.display()
            ),
        )
        .expect("passwd");
        let c = cfg(&[("home_mailbox", "Maildir/")]);
        let e = env("carol@localhost");
        let o = deliver(&c, &passwd, &e, b"\r\nx\r\n", &e.recipients[0], &mut None);
        assert!(o.is_sent(), "{o:?}");
        assert_eq!(
            std::fs::read_dir(dir.join("home/carol/Maildir/new"))
                .expect("new")
                .count(),
            1
        );

        let e = env("nobody-here@localhost");
        let o = deliver(&c, &passwd, &e, b"\r\nx\r\n", &e.recipients[0], &mut None);
        assert!(o.is_bounced());
        assert_eq!(o.status.to_string(), "5.1.1");
        assert_eq!(o.text, "unknown user: \"nobody-here\"");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mbox_is_deferred_honestly() {
        let c = cfg(&[("mail_spool_directory", "/var/mail"), ("home_mailbox", "")]);
        let e = env("bob@localhost");
        let o = deliver(
            &c,
            Path::new("/etc/passwd"),
            &e,
            b"\r\n",
            &e.recipients[0],
            &mut None,
        );
        assert!(o.is_deferred());
        assert!(o.text.contains("mbox delivery not implemented"));
    }
}
