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
//! The user is the address's local part, lowercased, with the `recipient_delimiter` extension
//! removed (`Bob+lists@…` → `bob`). Aliases, `.forward`, `mailbox_command` and delivery as the
//! recipient's uid are not implemented: files are written with the daemon's own uid.

use std::path::{Path, PathBuf};

use postern_config::Config;
use postern_proto::EnhancedCode;

use super::{maildir, DestinationSlot, Job, Outcome};
use crate::queue::{Envelope, Recipient};

const RELAY: &str = "local";

/// Delivers every recipient of a local job (normally one: `local_destination_recipient_limit`).
pub fn deliver_job(cfg: &Config, job: &Job, mut slot: DestinationSlot) -> Vec<Outcome> {
    let passwd = Path::new("/etc/passwd");
    job.rcpts
        .iter()
        .map(|&i| match job.env.recipients.get(i) {
            Some(rcpt) => deliver(cfg, passwd, &job.env, &job.content, rcpt, &mut slot),
            None => Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                RELAY,
                "internal error: no such recipient",
            ),
        })
        .collect()
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
    let dir = match mailbox_path(cfg, passwd, &user) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let head = format!(
        "Return-Path: <{}>\nDelivered-To: {}\n",
        one_line(&env.sender),
        one_line(&rcpt.address)
    );
    let mut written = || drop(slot.take());
    match maildir::deliver(
        &dir,
        &cfg.myhostname,
        head.as_bytes(),
        content,
        &mut written,
    ) {
        Ok(_) => Outcome::sent(RELAY, "delivered to maildir"),
        Err(e) => {
            let code = match e.raw_os_error() {
                // RFC 3463 4.3.1: mail system full.
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => EnhancedCode::new(4, 3, 1),
                _ => EnhancedCode::new(4, 3, 0),
            };
            Outcome::defer(
                code,
                RELAY,
                format!("cannot update maildir {}: {e}", dir.display()),
            )
        }
    }
}

/// Header values must stay on one line whatever an address contained.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
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
