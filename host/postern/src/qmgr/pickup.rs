//! Maildrop pickup (Postfix pickup(8)): moves locally submitted mail into the queue.
//!
//! `postern sendmail` writes complete queue files into `maildrop/` without talking to the daemon,
//! so the directory is polled every [`POLL`] and scanned at once on `QmgrHandle::pickup()`. Each
//! file goes through `cleanup::enqueue_full` (header completion, limits, durable write into
//! `incoming/`); only after that succeeds is the maildrop file removed, so a crash in between
//! can repeat a message, never lose it. A message cleanup refuses is returned to its sender
//! (when the refusal is permanent) and removed; a transient refusal or a queue error leaves the
//! file for the next poll.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use postern_config::Config;
use postern_proto::EnhancedCode;
use tokio::sync::{watch, Notify};

use super::{is_not_found, quarantine, Cmd, Shared};
use crate::bounce::{self, DsnKind, DsnRecipient};
use crate::cleanup::{self, CleanupError};
use crate::queue::{QueueDir, QueueError, QueueId, Spool};

/// How often `maildrop/` is polled (Postfix pickup reacts to a trigger; `postern sendmail` does
/// not send one, so a short poll keeps local submission latency low for one `readdir` a second).
pub const POLL: Duration = Duration::from_secs(1);

/// How long a maildrop file that could not be picked up is left alone before the next try, so
/// that a persistent problem logs once a minute instead of once a second.
pub const RETRY: Duration = Duration::from_secs(60);

/// What happened to one maildrop file.
enum Picked {
    /// Now in `incoming/` (or a bounce is): schedule this ID.
    Queued(Option<QueueId>),
    /// Left in `maildrop/`; try again after [`RETRY`].
    Later,
    /// Queued, but the maildrop file cannot be removed: never pick it up again in this process
    /// (that would queue the message once a second).
    Stuck(Option<QueueId>),
}

pub(super) async fn run(
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut skip: HashMap<QueueId, Option<Instant>> = HashMap::new();
    loop {
        let spool = shared.spool.clone();
        let ids = tokio::task::spawn_blocking(move || spool.list(QueueDir::Maildrop))
            .await
            .ok();
        match ids {
            Some(Ok(ids)) => {
                let now = Instant::now();
                let present: HashSet<&QueueId> = ids.iter().collect();
                skip.retain(|id, until| present.contains(id) && until.is_none_or(|t| t > now));
                let todo: Vec<QueueId> = ids
                    .iter()
                    .filter(|id| !skip.contains_key(*id))
                    .cloned()
                    .collect();
                drop(present);
                for id in todo {
                    let cfg = shared.config();
                    let spool = shared.spool.clone();
                    let qid = id.clone();
                    let picked =
                        tokio::task::spawn_blocking(move || pickup_one(&cfg, &spool, &qid))
                            .await
                            .unwrap_or(Picked::Later);
                    let new = match picked {
                        Picked::Queued(new) => new,
                        Picked::Later => {
                            skip.insert(id, Some(Instant::now() + RETRY));
                            None
                        }
                        Picked::Stuck(new) => {
                            skip.insert(id, None);
                            new
                        }
                    };
                    if let Some(new) = new {
                        let _ = shared.tx.send(Cmd::New(new));
                    }
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
            Some(Err(e)) => crate::warn!("pickup", "cannot list maildrop: {e}"),
            None => {}
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Picks up one maildrop file.
fn pickup_one(cfg: &Config, spool: &Spool, id: &QueueId) -> Picked {
    let (env, content) = match spool.load(QueueDir::Maildrop, id) {
        Ok(loaded) => loaded,
        Err(QueueError::Corrupt { reason, .. }) => {
            quarantine(
                spool,
                id,
                QueueDir::Maildrop,
                &format!("corrupt maildrop file: {reason}"),
            );
            return Picked::Queued(None);
        }
        Err(e) if is_not_found(&e) => return Picked::Queued(None),
        Err(e) => {
            crate::warn!("pickup", "{id}: cannot read maildrop file: {e}");
            return Picked::Later;
        }
    };
    let sender = env.sender.clone();
    let none = cleanup::Actions::default();
    let protocol = cleanup::Protocol::default();
    match cleanup::enqueue_full(cfg, spool, env.clone(), &content, protocol, &none) {
        Ok(stored) => {
            crate::info!(
                "pickup",
                "{}: from=<{sender}> (maildrop {id})",
                stored.env.id
            );
            // A message content checks held or discarded is not the queue manager's business.
            let new = (!stored.held && !stored.discarded).then_some(stored.env.id);
            removed(spool, id, new)
        }
        Err(CleanupError::Rejected(reply)) if reply.is_transient() => {
            crate::warn!(
                "pickup",
                "{id}: cleanup deferred the message: {reply}; will retry"
            );
            Picked::Later
        }
        Err(CleanupError::Rejected(reply)) => {
            crate::info!("pickup", "{id}: reject: {reply}; from=<{sender}>");
            let status = reply.enhanced.unwrap_or(EnhancedCode::new(5, 0, 0));
            let text = reply.lines.join(" ");
            let lines: Vec<DsnRecipient> = env
                .recipients
                .iter()
                .map(|r| DsnRecipient::new(r, status, text.clone()))
                .collect();
            match bounce::send(cfg, spool, DsnKind::Failure, &env, &content, &lines) {
                Ok(dsn) => removed(spool, id, dsn),
                Err(e) => {
                    crate::warn!(
                        "pickup",
                        "{id}: cannot queue non-delivery notification: {e}"
                    );
                    Picked::Later
                }
            }
        }
        Err(CleanupError::Queue(e)) => {
            crate::warn!("pickup", "{id}: cannot queue message: {e}; will retry");
            Picked::Later
        }
    }
}

/// Removes the maildrop file once its message is safely queued.
fn removed(spool: &Spool, id: &QueueId, new: Option<QueueId>) -> Picked {
    match spool.remove(QueueDir::Maildrop, id) {
        Ok(()) => Picked::Queued(new),
        Err(e) if is_not_found(&e) => Picked::Queued(new),
        Err(e) => {
            crate::error!("pickup", "{id}: cannot remove maildrop file: {e}; it will not be picked up again until restart");
            Picked::Stuck(new)
        }
    }
}
