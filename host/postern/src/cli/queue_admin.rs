//! `postern queue delete|hold|release|requeue` (postsuper -d, -h, -H, -r).
//!
//! Each acts on the spool files with atomic renames, so it works whether or not the daemon runs.
//! A message in `active/` is being delivered when the daemon runs: the queue manager holds it in
//! memory and will write it back, so these commands leave it alone then and say so (run the
//! command again once the delivery attempt is over). With the daemon stopped, `active/` is just
//! mail that was interrupted and is handled like the other queues.
//!
//! Messages are reported on standard error as postsuper does (`postern: ID: removed`, then
//! `postern: Deleted: N messages`).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;

use super::args::{queue_id, Selection};
use super::{exit, CliError, CliResult};
use crate::queue::{QueueDir, QueueId, Spool};

/// What one admin command does to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Delete,
    Hold,
    Release,
    Requeue,
}

impl Op {
    /// The queues the operation takes messages from when none are named (postsuper's defaults,
    /// plus `maildrop` for delete: a Postern maildrop file is a whole message with an ID).
    fn default_queues(self) -> &'static [QueueDir] {
        match self {
            Op::Delete => &[
                QueueDir::Maildrop,
                QueueDir::Incoming,
                QueueDir::Active,
                QueueDir::Deferred,
                QueueDir::Hold,
            ],
            // maildrop is not eligible: its messages have not been through cleanup yet.
            Op::Hold => &[QueueDir::Incoming, QueueDir::Active, QueueDir::Deferred],
            Op::Release => &[QueueDir::Hold],
            Op::Requeue => &[
                QueueDir::Incoming,
                QueueDir::Active,
                QueueDir::Deferred,
                QueueDir::Hold,
            ],
        }
    }

    fn allowed(self, dir: QueueDir) -> bool {
        match self {
            Op::Delete => true,
            Op::Hold | Op::Requeue | Op::Release => self.default_queues().contains(&dir),
        }
    }

    /// (per-message word, summary word) as postsuper prints them.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Op::Delete => ("removed", "Deleted"),
            Op::Hold => ("placed on hold", "Placed on hold"),
            Op::Release => ("released from hold", "Released from hold"),
            Op::Requeue => ("requeued", "Requeued"),
        }
    }
}

pub fn delete(queue_dir: &Path, sel: &Selection) -> CliResult {
    apply(queue_dir, sel, Op::Delete)
}

pub fn hold(queue_dir: &Path, sel: &Selection) -> CliResult {
    apply(queue_dir, sel, Op::Hold)
}

pub fn release(queue_dir: &Path, sel: &Selection) -> CliResult {
    apply(queue_dir, sel, Op::Release)
}

pub fn requeue(queue_dir: &Path, sel: &Selection) -> CliResult {
    apply(queue_dir, sel, Op::Requeue)
}

/// The outcome of one command, for the summary and the exit status.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    done: Vec<QueueId>,
    /// Named IDs that are in none of the queues the command applies to.
    missing: Vec<QueueId>,
    /// Messages left alone because the daemon is delivering them.
    busy: Vec<QueueId>,
}

fn apply(queue_dir: &Path, sel: &Selection, op: Op) -> CliResult {
    let Some(spool) = super::queue::open_existing(queue_dir)? else {
        eprintln!(
            "postern: the queue is empty ({} does not exist)",
            queue_dir.display()
        );
        return Ok(if sel.ids.is_empty() {
            exit::OK
        } else {
            exit::FAILURE
        });
    };
    let mut ids = sel.ids.clone();
    if sel.from_stdin {
        ids.extend(ids_from_stdin()?);
    }
    let daemon = super::control::daemon_pid(queue_dir);
    let outcome = apply_to_spool(&spool, sel.all, &ids, &sel.queues, op, daemon.is_some())?;
    let (word, summary) = op.words();
    for id in &outcome.done {
        eprintln!("postern: {id}: {word}");
    }
    for id in &outcome.busy {
        eprintln!("postern: {id}: being delivered right now (active queue); not {word}, try again in a moment");
    }
    for id in &outcome.missing {
        match spool.locate(id) {
            Some(dir) => eprintln!(
                "postern: {id}: is in the {} queue, which this command does not apply to \
                 (it applies to: {})",
                dir.name(),
                op.default_queues()
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => eprintln!("postern: {id}: no such message"),
        }
    }
    let n = outcome.done.len();
    if n > 0 {
        eprintln!(
            "postern: {summary}: {n} message{}",
            if n == 1 { "" } else { "s" }
        );
    }
    if n > 0 && op != Op::Delete {
        // Let the daemon see moved mail now rather than at its next queue run.
        super::control::signal_daemon(queue_dir, libc::SIGUSR2);
    }
    Ok(if outcome.missing.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn ids_from_stdin() -> Result<Vec<QueueId>, CliError> {
    let mut ids = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read queue IDs from standard input")?;
        let word = line.trim();
        if word.is_empty() {
            continue;
        }
        // mailq marks active and held messages with `*` / `!` after the ID.
        let word = word.trim_end_matches(['*', '!']);
        ids.push(queue_id(word).map_err(|e| CliError::new(exit::USAGE, anyhow::anyhow!(e.0)))?);
    }
    Ok(ids)
}

/// Applies `op` to the selected messages. `daemon_running` protects `active/`.
fn apply_to_spool(
    spool: &Spool,
    all: bool,
    ids: &[QueueId],
    queues: &[QueueDir],
    op: Op,
    daemon_running: bool,
) -> Result<Outcome, CliError> {
    let dirs: Vec<QueueDir> = if queues.is_empty() {
        op.default_queues().to_vec()
    } else {
        queues.iter().copied().filter(|&d| op.allowed(d)).collect()
    };
    let mut targets: Vec<(QueueId, QueueDir)> = Vec::new();
    let mut outcome = Outcome::default();
    if all {
        for &dir in &dirs {
            let listed = spool
                .list(dir)
                .with_context(|| format!("cannot read the {} queue", dir.name()))?;
            targets.extend(listed.into_iter().map(|id| (id, dir)));
        }
    }
    for id in ids {
        match dirs.iter().find(|&&d| spool.path(d, id).exists()) {
            Some(&dir) => targets.push((id.clone(), dir)),
            None => outcome.missing.push(id.clone()),
        }
    }
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    targets.dedup_by(|a, b| a.0 == b.0);
    let mut touched: Vec<QueueDir> = Vec::new();
    for (id, dir) in targets {
        if dir == QueueDir::Active && daemon_running {
            outcome.busy.push(id);
            continue;
        }
        match one(spool, &id, dir, op) {
            Ok(Some(to)) => {
                touched.extend([dir, to]);
                outcome.done.push(id);
            }
            Ok(None) => {
                touched.push(dir);
                outcome.done.push(id);
            }
            // Delivered or moved by the daemon meanwhile: nothing left to do.
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(CliError::from(
                    anyhow::Error::new(e).context(format!("{id}: cannot apply the change")),
                ))
            }
        }
    }
    touched.sort_by_key(|d| d.name());
    touched.dedup();
    for dir in touched {
        spool
            .sync_dir(dir)
            .with_context(|| format!("cannot sync the {} queue", dir.name()))?;
    }
    Ok(outcome)
}

fn is_not_found(e: &crate::queue::QueueError) -> bool {
    matches!(e, crate::queue::QueueError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Does `op` to one message in `dir`; returns the queue it moved to, if any.
fn one(
    spool: &Spool,
    id: &QueueId,
    dir: QueueDir,
    op: Op,
) -> Result<Option<QueueDir>, crate::queue::QueueError> {
    match op {
        Op::Delete => spool.remove(dir, id).map(|()| None),
        Op::Hold => {
            if dir == QueueDir::Hold {
                return Ok(None);
            }
            spool
                .move_to(id, dir, QueueDir::Hold)
                .map(|()| Some(QueueDir::Hold))
        }
        // Released mail goes to deferred/, due at once.
        Op::Release => reset_and_move(spool, id, dir, QueueDir::Deferred),
        // Keep the envelope, forget the back-off, and schedule it like new mail.
        Op::Requeue => reset_and_move(spool, id, dir, QueueDir::Incoming),
    }
}

/// Clears `next_attempt` so the message is tried at once, then moves it. The rewrite replaces the
/// file in place (atomically) before the rename, so the message is never in two queues at once.
fn reset_and_move(
    spool: &Spool,
    id: &QueueId,
    from: QueueDir,
    to: QueueDir,
) -> Result<Option<QueueDir>, crate::queue::QueueError> {
    let (mut env, content) = spool.load(from, id)?;
    if env.next_attempt != 0 {
        env.next_attempt = 0;
        spool.rewrite(from, &env, &content)?;
    }
    if from == to {
        return Ok(None);
    }
    spool.move_to(id, from, to).map(|()| Some(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Envelope, Origin, Recipient};

    fn spool(tag: &str) -> Spool {
        let root = std::env::temp_dir().join(format!(
            "postern-cli-admin-{tag}-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ));
        Spool::open(&root).expect("open")
    }

    fn queued(spool: &Spool, dir: QueueDir, next: u64) -> QueueId {
        let mut env = Envelope::new(
            QueueId::generate(),
            "a@x",
            Origin::Local { user: "u".into() },
        );
        env.recipients.push(Recipient::new("b@y"));
        env.next_attempt = next;
        spool.store(dir, &env, b"x\r\n").expect("store");
        env.id
    }

    #[test]
    fn hold_release_requeue_delete_cycle() {
        let s = spool("cycle");
        let a = queued(&s, QueueDir::Deferred, 9_999_999_999);
        let b = queued(&s, QueueDir::Incoming, 0);
        let held = apply_to_spool(&s, true, &[], &[], Op::Hold, false).expect("hold");
        assert_eq!(held.done, vec![a.clone(), b.clone()]);
        assert_eq!(s.locate(&a), Some(QueueDir::Hold));

        let released = apply_to_spool(&s, false, std::slice::from_ref(&a), &[], Op::Release, false)
            .expect("release");
        assert_eq!(released.done, vec![a.clone()]);
        assert_eq!(s.locate(&a), Some(QueueDir::Deferred));

        let requeued = apply_to_spool(&s, false, std::slice::from_ref(&a), &[], Op::Requeue, false)
            .expect("requeue");
        assert_eq!(requeued.done, vec![a.clone()]);
        assert_eq!(s.locate(&a), Some(QueueDir::Incoming));
        let (env, _) = s.load(QueueDir::Incoming, &a).expect("load");
        assert_eq!(env.next_attempt, 0, "requeue resets the back-off");
        assert_eq!(env.recipients.len(), 1, "requeue keeps the envelope");

        // `delete ALL hold` only touches the hold queue.
        let deleted =
            apply_to_spool(&s, true, &[], &[QueueDir::Hold], Op::Delete, false).expect("delete");
        assert_eq!(deleted.done, vec![b.clone()]);
        assert_eq!(s.locate(&b), None);
        assert_eq!(s.locate(&a), Some(QueueDir::Incoming));
        let _ = std::fs::remove_dir_all(s.root());
    }

    #[test]
    fn active_mail_is_left_alone_while_the_daemon_runs() {
        let s = spool("active");
        let a = queued(&s, QueueDir::Active, 0);
        let busy = apply_to_spool(&s, false, std::slice::from_ref(&a), &[], Op::Delete, true)
            .expect("delete");
        assert_eq!(busy.busy, vec![a.clone()]);
        assert_eq!(s.locate(&a), Some(QueueDir::Active));
        let stopped = apply_to_spool(&s, false, std::slice::from_ref(&a), &[], Op::Hold, false)
            .expect("hold");
        assert_eq!(stopped.done, vec![a.clone()]);
        assert_eq!(s.locate(&a), Some(QueueDir::Hold));
        let _ = std::fs::remove_dir_all(s.root());
    }

    #[test]
    fn unknown_ids_are_reported() {
        let s = spool("missing");
        let ghost = QueueId::generate();
        // Release only looks in hold/: a deferred message is "missing" for it.
        let deferred = queued(&s, QueueDir::Deferred, 0);
        let out = apply_to_spool(
            &s,
            false,
            &[ghost.clone(), deferred.clone()],
            &[],
            Op::Release,
            false,
        )
        .expect("release");
        assert_eq!(out.missing, vec![ghost, deferred]);
        assert!(out.done.is_empty());
        let _ = std::fs::remove_dir_all(s.root());
    }
}
