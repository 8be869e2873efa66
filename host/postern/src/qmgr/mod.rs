//! The queue manager (Postfix qmgr + pickup): schedules delivery of queued mail.
//!
//! CONTRACT (other modules rely on these items exactly):
//! - `QmgrHandle` (Clone + Send + Sync): `new_message(QueueId)` — a message was just fsynced into
//!   `incoming/`; `flush()` — retry all deferred mail now (`postern queue flush`) and rescan
//!   `incoming/`; `pickup()` — scan `maildrop/` now; `rescan()` — look for files that appeared in
//!   `incoming/` or `deferred/` behind the daemon's back (`postern queue requeue`/`release`).
//! - `start(config, spool, shutdown) -> (QmgrHandle, JoinHandle<()>)` spawns the manager on the
//!   current tokio runtime. It stops when `shutdown` becomes true, leaving every message on disk.
//!
//! ## How it runs
//! One scheduler task owns all state: a FIFO of messages ready for delivery, the in-memory
//! timetable of `deferred/` ([`schedule::DeferredQueue`]) and the set of messages in flight. Each
//! message is delivered by its own task ([`deliver`]); file I/O runs on the blocking pool. The
//! scheduler learns about new mail from `new_message` (no directory scan per message), about
//! finished deliveries from those tasks, and about due retries from a timer set to the earliest
//! `next_attempt`. `incoming/` and `deferred/` are rescanned every `queue_run_delay` and on
//! `flush()`, which is how files moved by the command line while the daemon runs are found.
//!
//! ## Crash recovery (at-least-once)
//! On start every file in `active/` (a delivery interrupted by a crash) is delivered again, all of
//! `incoming/` is scheduled and `deferred/` is read into the timetable. A message may therefore be
//! delivered twice after a crash, never lost. `hold/` is never looked at.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_config::Config;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::address::Destinations;
use crate::queue::{QueueDir, QueueError, QueueId, Spool};

mod deliver;
mod pickup;
pub mod schedule;
pub mod sites;

#[cfg(test)]
mod tests;

use schedule::{DeferredQueue, Limiter};

/// How long `start`'s task waits at shutdown for deliveries in flight before it returns. Anything
/// still running then stays in `active/` and is delivered again at the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Requests to the scheduler.
#[derive(Debug)]
pub(crate) enum Cmd {
    New(QueueId),
    Flush,
    /// Deferred mail with a pending recipient in this domain (or a subdomain) is due now.
    FlushSite(String),
    /// The deferred messages a site flush found.
    DueNow(Vec<QueueId>),
    Pickup,
    Rescan,
    Done {
        id: QueueId,
        next: Option<u64>,
    },
    Scanned(Scan),
}

/// What a scan of the queue directories found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    active: Vec<QueueId>,
    incoming: Vec<QueueId>,
    deferred: Vec<(QueueId, u64)>,
    due_now: bool,
}

/// Handle for telling the queue manager about work. Cheap to clone; all methods return at once.
#[derive(Clone, Debug, Default)]
pub struct QmgrHandle {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
}

impl QmgrHandle {
    /// A handle whose messages go nowhere (tests of smtpd alone).
    pub fn detached() -> QmgrHandle {
        QmgrHandle { tx: None }
    }

    fn send(&self, cmd: Cmd) {
        if let Some(tx) = &self.tx {
            // A stopped queue manager finds the file on disk at its next start.
            let _ = tx.send(cmd);
        }
    }

    /// A message was just stored durably in `incoming/`: schedule it now.
    pub fn new_message(&self, id: QueueId) {
        self.send(Cmd::New(id));
    }

    /// Make every deferred message due now and rescan `incoming/` and `deferred/`.
    pub fn flush(&self) {
        self.send(Cmd::Flush);
    }

    /// ETRN / per-site flush: deferred mail with a pending recipient in `site` (or one of its
    /// subdomains) is retried now; other deferred mail keeps its retry time.
    pub fn flush_site(&self, site: &str) {
        self.send(Cmd::FlushSite(
            site.trim_start_matches('@').to_ascii_lowercase(),
        ));
    }

    /// Scan `maildrop/` now (it is also polled every second).
    pub fn pickup(&self) {
        self.send(Cmd::Pickup);
    }

    /// Rescan `incoming/` and `deferred/` without changing retry times.
    pub fn rescan(&self) {
        self.send(Cmd::Rescan);
    }
}

/// State shared by the scheduler and its delivery and pickup tasks.
pub(crate) struct Shared {
    pub spool: Spool,
    pub config: watch::Receiver<Arc<Config>>,
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub limiter: Arc<Limiter>,
    /// smtp/lmtp destinations: slow-start windows and dead-destination back-off.
    pub sites: Arc<sites::Sites>,
    /// Address classification of the last configuration seen, derived once per epoch.
    destinations: Mutex<Option<(Arc<Config>, Arc<Destinations>)>>,
}

impl Shared {
    /// The configuration epoch current now; a delivery keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The address classification for `cfg`, built at most once per configuration epoch.
    pub fn destinations(&self, cfg: &Arc<Config>) -> Arc<Destinations> {
        let Ok(mut cache) = self.destinations.lock() else {
            return Arc::new(Destinations::new(cfg));
        };
        match &*cache {
            Some((c, d)) if Arc::ptr_eq(c, cfg) => d.clone(),
            _ => {
                let d = Arc::new(Destinations::new(cfg));
                *cache = Some((cfg.clone(), d.clone()));
                d
            }
        }
    }
}

/// Starts the queue manager and the maildrop pickup on the current tokio runtime.
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    spool: Spool,
    shutdown: watch::Receiver<bool>,
) -> (QmgrHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = QmgrHandle {
        tx: Some(tx.clone()),
    };
    let shared = Arc::new(Shared {
        spool,
        config,
        tx,
        limiter: Arc::new(Limiter::default()),
        sites: Arc::default(),
        destinations: Mutex::default(),
    });
    let join = tokio::spawn(run(shared, rx, shutdown));
    (handle, join)
}

struct Scheduler {
    shared: Arc<Shared>,
    ready: VecDeque<(QueueId, QueueDir)>,
    /// Messages in `ready` or in flight: never scheduled twice.
    queued: HashSet<QueueId>,
    in_flight: usize,
    deferred: DeferredQueue,
    scanning: bool,
    /// A flush arrived while a scan was running: apply it to what that scan finds.
    flush_pending: bool,
    pickup: Arc<Notify>,
}

async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    mut shutdown: watch::Receiver<bool>,
) {
    let pickup = Arc::new(Notify::new());
    let pickup_task = tokio::spawn(pickup::run(
        shared.clone(),
        pickup.clone(),
        shutdown.clone(),
    ));
    let mut s = Scheduler {
        shared: shared.clone(),
        ready: VecDeque::new(),
        queued: HashSet::new(),
        in_flight: 0,
        deferred: DeferredQueue::default(),
        scanning: true,
        flush_pending: false,
        pickup,
    };
    let spool = shared.spool.clone();
    match tokio::task::spawn_blocking(move || recover(&spool)).await {
        Ok(scan) => s.scanned(scan),
        Err(e) => crate::error!("qmgr", "queue recovery failed: {e}"),
    }
    let mut next_scan = tokio::time::Instant::now() + s.run_delay();
    loop {
        if *shutdown.borrow() {
            break;
        }
        s.launch();
        let now = crate::time::now_secs();
        let wake = match s.deferred.next_due() {
            Some(due) => {
                let at = tokio::time::Instant::now() + Duration::from_secs(due.saturating_sub(now));
                at.min(next_scan)
            }
            None => next_scan,
        };
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            cmd = rx.recv() => match cmd {
                Some(cmd) => s.handle(cmd),
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => {
                for id in s.deferred.pop_due(crate::time::now_secs()) {
                    s.enqueue(id, QueueDir::Deferred);
                }
                if tokio::time::Instant::now() >= next_scan {
                    s.start_scan(false);
                    next_scan = tokio::time::Instant::now() + s.run_delay();
                }
            }
        }
    }
    pickup_task.abort();
    // Let deliveries in flight finish so that they are not repeated at the next start.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while s.in_flight > 0 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Cmd::Done { .. })) => s.in_flight -= 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

impl Scheduler {
    fn run_delay(&self) -> Duration {
        self.shared
            .config()
            .queue_run_delay
            .max(schedule::MIN_RETRY)
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            // Like a scan's listing, this may arrive after the message was already tried (a
            // scan found it first): a retry time it got meanwhile is kept (see `scanned`).
            Cmd::New(id) => self.enqueue(id, QueueDir::Incoming),
            Cmd::Flush => {
                self.shared.sites.revive_all();
                self.deferred.make_all_due();
                if self.scanning {
                    self.flush_pending = true;
                }
                self.start_scan(true);
            }
            Cmd::FlushSite(site) => {
                let ids: Vec<QueueId> = self.deferred.ids().cloned().collect();
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let due = ids
                        .into_iter()
                        .filter(|id| {
                            shared
                                .spool
                                .load(QueueDir::Deferred, id)
                                .is_ok_and(|(env, _)| {
                                    env.pending().any(|(_, r)| in_site(&r.address, &site))
                                })
                        })
                        .collect();
                    let _ = shared.tx.send(Cmd::DueNow(due));
                });
            }
            Cmd::DueNow(ids) => {
                for id in ids {
                    if self.deferred.contains(&id) {
                        self.deferred.insert(id, 0);
                    }
                }
            }
            Cmd::Pickup => self.pickup.notify_one(),
            Cmd::Rescan => self.start_scan(false),
            Cmd::Done { id, next } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.queued.remove(&id);
                if let Some(at) = next {
                    self.deferred.insert(id, at);
                }
            }
            Cmd::Scanned(scan) => self.scanned(scan),
        }
    }

    fn enqueue(&mut self, id: QueueId, dir: QueueDir) {
        if self.queued.insert(id.clone()) {
            self.ready.push_back((id, dir));
        }
    }

    /// Starts deliveries while `qmgr_message_active_limit` allows.
    fn launch(&mut self) {
        let limit = self.shared.config().qmgr_message_active_limit.max(1);
        while self.in_flight < limit {
            let Some((id, dir)) = self.ready.pop_front() else {
                break;
            };
            self.in_flight += 1;
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut done = DoneGuard {
                    tx: shared.tx.clone(),
                    id: Some(id),
                    next: None,
                };
                if let Some(id) = done.id.clone() {
                    done.next = deliver::process(&shared, &id, dir).await;
                }
            });
        }
    }

    fn start_scan(&mut self, due_now: bool) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let known: HashSet<QueueId> = self
            .queued
            .iter()
            .filter(|id| !self.deferred.contains(id))
            .cloned()
            .collect();
        let known_deferred: HashSet<QueueId> = self.deferred.ids().cloned().collect();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut scan = scan_dirs(&shared.spool, &known, &known_deferred);
            scan.due_now = due_now;
            let _ = shared.tx.send(Cmd::Scanned(scan));
        });
    }

    fn scanned(&mut self, scan: Scan) {
        self.scanning = false;
        let due_now = scan.due_now || std::mem::take(&mut self.flush_pending);
        for id in scan.active {
            self.enqueue(id, QueueDir::Active);
        }
        // A listing can be older than what the scheduler has heard since: a message listed in
        // incoming/ may have been tried and deferred meanwhile. Its retry time is kept; if the
        // file is really in incoming/ again (an admin's requeue), it is delivered now and the
        // stale retry later finds nothing.
        for id in scan.incoming {
            if !self.queued.contains(&id) {
                self.enqueue(id, QueueDir::Incoming);
            }
        }
        for (id, at) in scan.deferred {
            if !self.queued.contains(&id) && !self.deferred.contains(&id) {
                self.deferred.insert(id, if due_now { 0 } else { at });
            }
        }
        if due_now {
            self.deferred.make_all_due();
        }
    }
}

/// Reports a finished delivery to the scheduler even if the delivery task panicked, so the
/// message's slot in `qmgr_message_active_limit` is never lost.
struct DoneGuard {
    tx: mpsc::UnboundedSender<Cmd>,
    id: Option<QueueId>,
    next: Option<u64>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.send(Cmd::Done {
                id,
                next: self.next,
            });
        }
    }
}

fn is_not_found(e: &QueueError) -> bool {
    matches!(e, QueueError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Moves an unreadable file to `corrupt/` so that it is kept for inspection but never delivered.
pub(crate) fn quarantine(spool: &Spool, id: &QueueId, dir: QueueDir, reason: &str) {
    match spool.move_to(id, dir, QueueDir::Corrupt) {
        Ok(()) => crate::warn!("qmgr", "{id}: {reason}; moved to corrupt"),
        Err(e) => crate::warn!("qmgr", "{id}: {reason}; cannot move to corrupt: {e}"),
    }
}

/// Start-up: what is in `active/`, `incoming/` and `deferred/`.
fn recover(spool: &Spool) -> Scan {
    let mut scan = scan_dirs(spool, &HashSet::new(), &HashSet::new());
    match spool.list(QueueDir::Active) {
        Ok(ids) => {
            for id in ids {
                // A crash between "store into deferred/" and "remove from active/" leaves two
                // copies; the deferred one is newer (it has the recipient results).
                if spool.path(QueueDir::Deferred, &id).exists() {
                    let _ = spool.remove(QueueDir::Active, &id);
                } else {
                    scan.active.push(id);
                }
            }
        }
        Err(e) => crate::error!("qmgr", "cannot list active queue: {e}"),
    }
    if !scan.active.is_empty() {
        crate::info!(
            "qmgr",
            "recovering {} message(s) left in the active queue",
            scan.active.len()
        );
    }
    scan
}

/// Lists `incoming/` (minus `known`) and reads the retry time of every `deferred/` file not in
/// `known_deferred`.
fn scan_dirs(spool: &Spool, known: &HashSet<QueueId>, known_deferred: &HashSet<QueueId>) -> Scan {
    let mut scan = Scan::default();
    match spool.list(QueueDir::Incoming) {
        Ok(ids) => scan.incoming = ids.into_iter().filter(|i| !known.contains(i)).collect(),
        Err(e) => crate::error!("qmgr", "cannot list incoming queue: {e}"),
    }
    match spool.list(QueueDir::Deferred) {
        Ok(ids) => {
            for id in ids {
                if known.contains(&id) || known_deferred.contains(&id) {
                    continue;
                }
                match spool.load(QueueDir::Deferred, &id) {
                    Ok((env, _)) => scan.deferred.push((id, env.next_attempt)),
                    Err(QueueError::Corrupt { reason, .. }) => quarantine(
                        spool,
                        &id,
                        QueueDir::Deferred,
                        &format!("corrupt queue file: {reason}"),
                    ),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => crate::warn!("qmgr", "{id}: cannot read deferred message: {e}"),
                }
            }
        }
        Err(e) => crate::error!("qmgr", "cannot list deferred queue: {e}"),
    }
    scan
}

/// `user@site` or `user@host.site`, case-insensitively (`site` is lowercase).
pub fn in_site(address: &str, site: &str) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domain == site || domain.strip_suffix(site).is_some_and(|d| d.ends_with('.'))
}
