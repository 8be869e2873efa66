//! virtual(8): delivery for `virtual_mailbox_domains` — hosted domains whose users have no
//! Unix account.
//!
//! The recipient is looked up in `virtual_mailbox_maps` (virtual(8) order: `user+ext@domain`,
//! `user@domain`, `@domain`); the result is a path under `virtual_mailbox_base`. A result ending
//! in `/` is a Maildir (`example.com/joe/`); other results would be mbox files, which this
//! version does not write: they are deferred with `4.3.0`, never lost. A recipient without an
//! entry bounces with `5.1.1 unknown user`, a lookup error defers with `4.3.0`.
//!
//! Paths that could leave `virtual_mailbox_base` (`..` components) are refused: a table is
//! configuration, but a catch-all `@domain` result combined with a crafted address must never
//! write outside the mail store. Files are written with the daemon's uid
//! (`virtual_uid_maps`/`virtual_gid_maps` are not implemented).

use std::path::{Component, Path, PathBuf};

use postern_config::Config;
use postern_maps::search::{self, AddressOptions, Strategy};
use postern_proto::EnhancedCode;

use super::{maildir, DestinationSlot, Job, Outcome};
use crate::cleanup::tables;

const RELAY: &str = "virtual";

/// Delivers every recipient of a virtual job (one: `virtual_destination_recipient_limit`).
pub fn deliver_job(cfg: &Config, job: &Job, mut slot: DestinationSlot) -> Vec<Outcome> {
    super::per_recipient(job, RELAY, |rcpt| {
        deliver(cfg, &job.env.sender, &job.content, &rcpt.address, &mut slot)
    })
}

/// Delivers one message to one virtual mailbox.
pub fn deliver(
    cfg: &Config,
    sender: &str,
    content: &[u8],
    rcpt: &str,
    slot: &mut DestinationSlot,
) -> Outcome {
    let dir = match mailbox(cfg, rcpt) {
        Ok(dir) => dir,
        Err(o) => return o,
    };
    let head = maildir::delivery_head(sender, rcpt);
    maildir::deliver_outcome(&dir, &cfg.myhostname, head.as_bytes(), content, slot, RELAY)
}

/// The Maildir of `rcpt`, or the outcome that replaces delivery.
pub fn mailbox(cfg: &Config, rcpt: &str) -> Result<PathBuf, Outcome> {
    let defer = |text: String| Outcome::defer(EnhancedCode::new(4, 3, 0), RELAY, text);
    let tables = tables::open(&cfg.virtual_mailbox_maps)
        .map_err(|e| defer(format!("virtual_mailbox_maps lookup: {e}")))?;
    let opts = AddressOptions {
        recipient_delimiter: cfg.recipient_delimiter.clone(),
        owner_request_special: cfg.owner_request_special,
        ..AddressOptions::default()
    };
    let strategy = Strategy {
        full: true,
        no_ext: true,
        at_domain: true,
        ..Strategy::default()
    };
    let found = search::find_address(
        &tables,
        &rcpt.to_ascii_lowercase(),
        &strategy,
        &opts,
        &|_| false,
    )
    .map_err(|e| defer(format!("virtual_mailbox_maps lookup: {e}")))?;
    let Some(found) = found else {
        return Err(Outcome::bounce(
            EnhancedCode::new(5, 1, 1),
            RELAY,
            format!("unknown user: \"{}\"", maildir::one_line(rcpt)),
        ));
    };
    let value = found.value.trim();
    let rel = Path::new(value.trim_start_matches('/'));
    if cfg.virtual_mailbox_base.is_empty()
        || rel.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(defer(format!(
            "unsafe or unusable mailbox path \"{value}\" (check virtual_mailbox_base and \
             virtual_mailbox_maps)"
        )));
    }
    if !value.ends_with('/') {
        return Err(defer(format!(
            "mbox delivery not implemented for \"{value}\"; end the virtual_mailbox_maps result \
             with / for Maildir"
        )));
    }
    Ok(Path::new(&cfg.virtual_mailbox_base).join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base: &str) -> Config {
        let over: Vec<(String, String)> = vec![
            ("virtual_mailbox_base".into(), base.into()),
            ("recipient_delimiter".into(), "+".into()),
            ("virtual_mailbox_domains".into(), "example.com".into()),
            (
                "virtual_mailbox_maps".into(),
                "inline:{ joe@example.com=example.com/joe/, @example.net=example.net/all/, \
                 mb@example.com=example.com/mbox, bad@example.com=../escape/ }"
                    .into(),
            ),
        ];
        postern_config::load_with(None, &over).expect("config").main
    }

    #[test]
    fn lookups_choose_maildirs() {
        let dir = std::env::temp_dir().join(format!(
            "postern-virtual-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ));
        let c = cfg(&dir.display().to_string());
        assert_eq!(
            mailbox(&c, "Joe+x@example.com").ok(),
            Some(dir.join("example.com/joe/"))
        );
        assert_eq!(
            mailbox(&c, "x@example.net").ok(),
            Some(dir.join("example.net/all/"))
        );
        let o = mailbox(&c, "nobody@example.com").expect_err("unknown");
        assert_eq!(
            (o.status.to_string().as_str(), o.is_bounced()),
            ("5.1.1", true)
        );
        assert!(mailbox(&c, "mb@example.com")
            .expect_err("mbox")
            .is_deferred());
        assert!(mailbox(&c, "bad@example.com")
            .expect_err("unsafe")
            .is_deferred());

        let o = deliver(
            &c,
            "a@b.example",
            b"Subject: x\r\n\r\nhi\r\n",
            "joe@example.com",
            &mut None,
        );
        assert!(o.is_sent(), "{o:?}");
        let n = std::fs::read_dir(dir.join("example.com/joe/new"))
            .expect("new")
            .count();
        assert_eq!(n, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
