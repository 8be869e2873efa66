//! One delivery attempt of one message: activate, route, deliver, record, then remove, defer or
//! bounce.
//!
//! Order of durable steps, chosen so that a crash at any point loses nothing (it may repeat):
//! 1. rename into `active/` (from `incoming/`, `deferred/`, or already there after a crash);
//! 2. deliver every pending recipient (a Maildir file is fsynced before it counts as delivered);
//! 3. queue the notifications (bounce, delay warning, success) — before the original changes;
//! 4. remove the file, or store the updated envelope into `deferred/` and then remove it from
//!    `active/` (recovery drops an `active/` copy when `deferred/` holds the same ID).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postern_config::Config;
use postern_proto::EnhancedCode;

use super::{is_not_found, quarantine, schedule, sites, Cmd, Shared};
use crate::address::Destinations;
use crate::bounce::{self, DsnKind, DsnRecipient};
use crate::queue::{Envelope, QueueDir, QueueError, QueueId, RcptState, Spool};
use crate::transport::{self, Job, Outcome, Route};

/// Retry interval after an I/O error that prevented even reading the message.
const IO_RETRY: u64 = 60;

/// Queue files up to this size are activated (renamed and read) on the scheduler's own thread:
/// for the common small message a hand-off to the blocking pool and back costs more than the
/// two system calls. Larger files, and every step that fsyncs, go to the blocking pool.
const INLINE_READ_LIMIT: u64 = 128 * 1024;

/// Delivers `id`, found in `from`. Returns the next attempt time when the message was deferred.
pub(super) async fn process(shared: &Arc<Shared>, id: &QueueId, from: QueueDir) -> Option<u64> {
    let cfg = shared.config();
    let spool = shared.spool.clone();
    let qid = id.clone();
    let small = std::fs::metadata(spool.path(from, id)).is_ok_and(|m| m.len() <= INLINE_READ_LIMIT);
    let loaded = if small {
        activate(&spool, &qid, from)
    } else {
        tokio::task::spawn_blocking(move || activate(&spool, &qid, from))
            .await
            .ok()?
    };
    let (env, content) = match loaded {
        Activated::Loaded(env, content) => (*env, content),
        Activated::Gone => return None,
        Activated::Retry => return Some(crate::time::now_secs() + IO_RETRY),
    };
    let active_at = crate::time::now_micros();
    crate::info!(
        "qmgr",
        "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
        env.sender,
        content.len(),
        env.recipients.len()
    );

    let env = Arc::new(env);
    let content = Arc::new(content);
    let dest = shared.destinations(&cfg);
    let results = run_jobs(shared, &cfg, plan(&cfg, &dest, &env, &content)).await;
    let arrival = arrival_micros(&env);
    let mut env = Arc::unwrap_or_clone(env);

    let mut report = Report::default();
    for (route, rcpts, outcomes, start, end) in results {
        for (idx, outcome) in rcpts.into_iter().zip(outcomes) {
            let Some(rcpt) = env.recipients.get_mut(idx) else {
                continue;
            };
            crate::info!(
                route.transport.service(),
                // ` tls=TLSv1.3:TLS_AES_256_GCM_SHA384` after the status when the smtp
                // client's session was encrypted (docs/delivery.md).
                "{id}: to=<{}>, relay={}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({}){}",
                rcpt.address,
                outcome.relay,
                crate::time::format_delay(micros(end.saturating_sub(arrival))),
                part(active_at.saturating_sub(arrival)),
                part(start.saturating_sub(active_at)),
                part(0),
                part(end.saturating_sub(start)),
                outcome.status,
                outcome.status_word(),
                outcome.text,
                outcome
                    .tls
                    .as_deref()
                    .map(|t| format!(" tls={}:{}", t.protocol, t.cipher))
                    .unwrap_or_default()
            );
            if let Some(new) = &outcome.queued {
                let _ = shared.tx.send(Cmd::New(new.clone()));
            }
            rcpt.reason = Some(outcome.reason());
            let mut line = DsnRecipient::new(rcpt, outcome.status, outcome.text.clone());
            line.diagnostic = outcome.diagnostic.clone();
            if outcome.is_sent() {
                rcpt.state = RcptState::Delivered;
                report.success.push(line);
            } else if outcome.is_bounced() {
                rcpt.state = RcptState::Failed;
                report.failure.push((idx, line));
            }
        }
    }
    expire_or_warn(&cfg, &mut env, &mut report);

    let spool = shared.spool.clone();
    let (new_ids, next) = if report.is_quiet() && env.pending().next().is_none() {
        // Everything delivered, nothing to notify: finishing is one rename.
        finish(&cfg, &spool, env, &content, report)
    } else {
        tokio::task::spawn_blocking(move || finish(&cfg, &spool, env, &content, report))
            .await
            .unwrap_or((Vec::new(), None))
    };
    for dsn in new_ids {
        let _ = shared.tx.send(Cmd::New(dsn));
    }
    next
}

enum Activated {
    Loaded(Box<Envelope>, Vec<u8>),
    /// Vanished (an admin deleted or held it), or corrupt and quarantined.
    Gone,
    /// Could not be read now; try again later.
    Retry,
}

fn activate(spool: &Spool, id: &QueueId, from: QueueDir) -> Activated {
    if from != QueueDir::Active {
        match spool.move_to(id, from, QueueDir::Active) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Activated::Gone,
            Err(e) => {
                crate::warn!("qmgr", "{id}: cannot move to the active queue: {e}");
                return Activated::Retry;
            }
        }
    }
    match spool.load(QueueDir::Active, id) {
        Ok((env, content)) => Activated::Loaded(Box::new(env), content),
        Err(QueueError::Corrupt { reason, .. }) => {
            quarantine(
                spool,
                id,
                QueueDir::Active,
                &format!("corrupt queue file: {reason}"),
            );
            Activated::Gone
        }
        Err(e) if is_not_found(&e) => Activated::Gone,
        Err(e) => {
            crate::warn!("qmgr", "{id}: cannot read queue file: {e}");
            // Put it back where the timetable will find it again.
            match spool.move_to(id, QueueDir::Active, QueueDir::Deferred) {
                Ok(()) => Activated::Retry,
                Err(_) => Activated::Gone,
            }
        }
    }
}

/// Groups pending recipients into jobs: one per transport and destination, and one per
/// recipient for transports that deliver to a single recipient at a time (local, virtual).
/// A message with a `filter` record goes to that transport whole (Postfix `content_filter`).
/// smtp and lmtp jobs carry at most `smtp_destination_recipient_limit` /
/// `lmtp_destination_recipient_limit` recipients (50 by default); more make more jobs, which
/// the destination's concurrency window runs in parallel, as Postfix does.
pub(super) fn plan(
    cfg: &Config,
    dest: &Destinations,
    env: &Arc<Envelope>,
    content: &Arc<Vec<u8>>,
) -> Vec<(Job, String)> {
    let mut jobs: Vec<(Job, String)> = Vec::new();
    let mut index: HashMap<(Route, String), usize> = HashMap::new();
    for (i, rcpt) in env.pending() {
        let route = transport::route(cfg, dest, env.filter.as_deref(), &rcpt.address);
        let dest = if route.transport.one_recipient_per_job() {
            rcpt.address.to_lowercase()
        } else {
            route.nexthop.to_lowercase()
        };
        let limit = match route.transport {
            transport::Transport::Smtp => cfg.delivery.smtp_recipient_limit,
            transport::Transport::Lmtp => cfg.delivery.lmtp_recipient_limit,
            _ => usize::MAX,
        };
        let key = (route.clone(), dest.clone());
        match index.get(&key) {
            Some(&j) if jobs[j].0.rcpts.len() < limit.max(1) => jobs[j].0.rcpts.push(i),
            _ => {
                index.insert(key, jobs.len());
                jobs.push((
                    Job {
                        route,
                        env: env.clone(),
                        content: content.clone(),
                        rcpts: vec![i],
                    },
                    dest,
                ));
            }
        }
    }
    jobs
}

type JobResult = (Route, Vec<usize>, Vec<Outcome>, u64, u64);

/// Runs the jobs of one message concurrently; each waits for its destination and transport slots.
async fn run_jobs(
    shared: &Arc<Shared>,
    cfg: &Arc<Config>,
    jobs: Vec<(Job, String)>,
) -> Vec<JobResult> {
    if jobs.len() == 1 {
        let mut results = Vec::with_capacity(1);
        for (job, dest) in jobs {
            results.push(run_job(shared.clone(), cfg.clone(), job, dest).await);
        }
        return results;
    }
    let mut set = tokio::task::JoinSet::new();
    for (job, dest) in jobs {
        set.spawn(run_job(shared.clone(), cfg.clone(), job, dest));
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        // A job that panicked leaves its recipients pending: they are retried later.
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results
}

/// Concurrency limits, as in Postfix: `local_destination_concurrency_limit` (2) parallel
/// deliveries to one local recipient, `default_destination_concurrency_limit` (20) to one remote
/// destination, and at most `default_process_limit` (100) deliveries per transport at a time.
async fn run_job(shared: Arc<Shared>, cfg: Arc<Config>, job: Job, dest: String) -> JobResult {
    let t = &job.route.transport;
    if matches!(t, transport::Transport::Smtp | transport::Transport::Lmtp) {
        return run_network_job(shared, cfg, job, dest).await;
    }
    let (dest_slot, _process_slot) = if t.is_limited() {
        let dest_limit = match t {
            transport::Transport::Local | transport::Transport::Virtual => {
                cfg.local_destination_concurrency_limit
            }
            _ => cfg.default_destination_concurrency_limit,
        };
        // Destination first: waiting for a busy destination must not hold a transport slot
        // that other destinations could use.
        let d = shared
            .limiter
            .acquire(format!("{}:{dest}", t.name()), dest_limit)
            .await;
        let p = shared
            .limiter
            .acquire(t.name().to_string(), cfg.default_process_limit as usize)
            .await;
        (Some(Box::new(d) as Box<dyn Send>), Some(p))
    } else {
        (None, None)
    };
    let start = crate::time::now_micros();
    let outcomes = transport::deliver(cfg.clone(), &job, dest_slot).await;
    let end = crate::time::now_micros();
    finish_job(&cfg, job, outcomes, start, end)
}

/// smtp and lmtp: the destination's slot comes from its slow-start window ([`sites`]), and the
/// result feeds back into it; a dead destination defers at once without a connection.
///
/// [`sites`]: super::sites
async fn run_network_job(
    shared: Arc<Shared>,
    cfg: Arc<Config>,
    job: Job,
    dest: String,
) -> JobResult {
    let t = &job.route.transport;
    let limits = sites::Limits {
        initial: cfg.delivery.initial_concurrency,
        max: cfg.default_destination_concurrency_limit,
        failed_cohort_limit: cfg.delivery.failed_cohort_limit,
        dead_time: cfg.minimal_backoff_time.max(schedule::MIN_RETRY),
    };
    let start = crate::time::now_micros();
    let site = match shared
        .sites
        .acquire(&format!("{}:{dest}", t.name()), limits)
        .await
    {
        Ok(slot) => slot,
        Err(suspended) => {
            let outcomes = vec![suspended; job.rcpts.len()];
            return finish_job(&cfg, job, outcomes, start, start);
        }
    };
    let _process_slot = shared
        .limiter
        .acquire(t.name().to_string(), cfg.default_process_limit as usize)
        .await;
    let start = crate::time::now_micros();
    let outcomes = transport::deliver(cfg.clone(), &job, None).await;
    let end = crate::time::now_micros();
    site.done(sites::Feedback::of(&outcomes));
    finish_job(&cfg, job, outcomes, start, end)
}

fn finish_job(
    cfg: &Config,
    job: Job,
    mut outcomes: Vec<Outcome>,
    start: u64,
    end: u64,
) -> JobResult {
    if outcomes.len() != job.rcpts.len() {
        outcomes.resize(
            job.rcpts.len(),
            Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                "none",
                "internal error: delivery agent returned no result",
            ),
        );
    }
    if cfg.soft_bounce {
        // postconf(5) soft_bounce: a safety net that keeps mail queued instead of returning it.
        for o in outcomes.iter_mut().filter(|o| o.is_bounced()) {
            o.status.class = 4;
        }
    }
    (job.route, job.rcpts, outcomes, start, end)
}

/// Notifications produced by one attempt.
#[derive(Default)]
struct Report {
    /// (recipient index, line): reverted to pending if the bounce cannot be queued.
    failure: Vec<(usize, DsnRecipient)>,
    success: Vec<DsnRecipient>,
    delay: Vec<DsnRecipient>,
}

impl Report {
    /// No notification to queue: no failure, no delay, and no delivered recipient asked for a
    /// success notice (RFC 3461 NOTIFY=SUCCESS; most never do).
    fn is_quiet(&self) -> bool {
        self.failure.is_empty()
            && self.delay.is_empty()
            && !self
                .success
                .iter()
                .any(|l| bounce::wanted(DsnKind::Success, l.notify))
    }
}

/// After the attempt: recipients still pending of a message older than `maximal_queue_lifetime`
/// (`bounce_queue_lifetime` for the null sender) fail with `5.4.7` — Postfix qmgr also tries
/// once more before expiring, so a lifetime of 0 means "try exactly once". Otherwise, past
/// `delay_warning_time`, one delay warning is sent (RFC 3461 NOTIFY=DELAY).
fn expire_or_warn(cfg: &Config, env: &mut Envelope, report: &mut Report) {
    if env.pending().next().is_none() {
        return;
    }
    let now = crate::time::now_secs();
    let age = now.saturating_sub(env.arrival);
    let lifetime = if env.sender.is_empty() {
        cfg.bounce_queue_lifetime
    } else {
        cfg.maximal_queue_lifetime
    };
    if age >= lifetime.as_secs() {
        crate::info!(
            "qmgr",
            "{}: from=<{}>, status=expired, returned to sender",
            env.id,
            env.sender
        );
        for (idx, rcpt) in env.recipients.iter_mut().enumerate() {
            if rcpt.state != RcptState::Pending {
                continue;
            }
            let (_, last) =
                bounce::parse_reason(rcpt.reason.as_deref(), EnhancedCode::new(4, 0, 0));
            let text = if last.is_empty() {
                "delivery time expired".to_string()
            } else {
                format!("delivery time expired (last error: {last})")
            };
            rcpt.state = RcptState::Failed;
            rcpt.reason = Some(format!("5.4.7 {text}"));
            let mut line = DsnRecipient::new(rcpt, EnhancedCode::new(5, 4, 7), text);
            if !last.is_empty() {
                line.diagnostic = Some(format!("X-Postern; {last}"));
            }
            report.failure.push((idx, line));
        }
        return;
    }
    let warn = cfg.delay_warning_time;
    if !env.warned && !warn.is_zero() && age >= warn.as_secs() {
        for (_, rcpt) in env.pending() {
            let (status, text) =
                bounce::parse_reason(rcpt.reason.as_deref(), EnhancedCode::new(4, 0, 0));
            report.delay.push(DsnRecipient::new(rcpt, status, text));
        }
        env.warned = true;
    }
}

/// Queues the notifications, then removes the message or moves it to `deferred/`. Returns the
/// IDs of queued notifications and, when deferred, the next attempt time.
fn finish(
    cfg: &Config,
    spool: &Spool,
    mut env: Envelope,
    content: &[u8],
    report: Report,
) -> (Vec<QueueId>, Option<u64>) {
    let id = env.id.clone();
    let mut new_ids = Vec::new();
    let failures: Vec<DsnRecipient> = report.failure.iter().map(|(_, l)| l.clone()).collect();
    match bounce::send(cfg, spool, DsnKind::Failure, &env, content, &failures) {
        Ok(dsn) => new_ids.extend(dsn),
        Err(e) => {
            // Without its bounce a failed recipient must not be forgotten: keep it queued, so
            // the failure (and its notification) happens again at the next attempt.
            crate::warn!(
                "bounce",
                "{id}: cannot queue non-delivery notification: {e}"
            );
            for (idx, _) in &report.failure {
                if let Some(r) = env.recipients.get_mut(*idx) {
                    r.state = RcptState::Pending;
                }
            }
        }
    }
    match bounce::send(cfg, spool, DsnKind::Delay, &env, content, &report.delay) {
        Ok(dsn) => new_ids.extend(dsn),
        Err(e) => {
            crate::warn!("bounce", "{id}: cannot queue delay notification: {e}");
            env.warned = false;
        }
    }
    match bounce::send(cfg, spool, DsnKind::Success, &env, content, &report.success) {
        Ok(dsn) => new_ids.extend(dsn),
        Err(e) => crate::warn!(
            "bounce",
            "{id}: cannot queue delivery status notification: {e}"
        ),
    }

    if env.pending().next().is_none() {
        match spool.remove(QueueDir::Active, &id) {
            Ok(()) => crate::info!("qmgr", "{id}: removed"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => crate::warn!("qmgr", "{id}: cannot remove queue file: {e}"),
        }
        return (new_ids, None);
    }
    // An administrator may have held or deleted the message while it was being delivered.
    if !spool.path(QueueDir::Active, &id).exists() {
        return (new_ids, None);
    }
    env.attempts = env.attempts.saturating_add(1);
    let wait = schedule::backoff(
        env.attempts,
        cfg.minimal_backoff_time,
        cfg.maximal_backoff_time,
    );
    let next = crate::time::now_secs() + wait.as_secs();
    env.next_attempt = next;
    match spool.store(QueueDir::Deferred, &env, content) {
        Ok(()) => {
            if let Err(e) = spool.remove(QueueDir::Active, &id) {
                crate::warn!("qmgr", "{id}: cannot remove active copy: {e}");
            }
        }
        Err(e) => {
            // The old file still holds the previous state; retrying it repeats at most the
            // deliveries of this attempt.
            crate::warn!("qmgr", "{id}: cannot update deferred message: {e}");
            if let Err(e) = spool.move_to(&id, QueueDir::Active, QueueDir::Deferred) {
                crate::error!("qmgr", "{id}: left in the active queue until restart: {e}");
                return (new_ids, None);
            }
        }
    }
    (new_ids, Some(next))
}

/// Arrival in microseconds: the queue ID's timestamp when it agrees with the envelope (it is more
/// precise), else the envelope's seconds.
fn arrival_micros(env: &Envelope) -> u64 {
    if let Some(us) = env.arrival_micros() {
        return us;
    }
    // Queue files without a fraction: the queue ID's time when it is close (pool files get
    // their IDs ahead of use, so it can be early by up to a minute), else the whole second.
    let from_env = env.arrival.saturating_mul(1_000_000);
    let from_id = env.id.micros();
    if from_id.abs_diff(from_env) < 2_000_000 {
        from_id
    } else {
        from_env
    }
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

/// One field of Postfix's `delays=a/b/c/d`: about two significant digits, `0` when negligible.
fn part(us: u64) -> String {
    let s = us as f64 / 1e6;
    if s < 0.005 {
        "0".into()
    } else if s < 1.0 {
        let t = format!("{s:.2}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else if s < 10.0 {
        let t = format!("{s:.1}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{s:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::{part, DsnRecipient, EnhancedCode, Report};

    #[test]
    fn only_a_requested_notice_makes_a_report_loud() {
        use crate::queue::Recipient;
        let line = |notify: Option<&str>| {
            let mut r = Recipient::new("bob@example.com");
            r.notify = notify.and_then(postern_proto::params::Notify::parse);
            DsnRecipient::new(&r, EnhancedCode::new(2, 0, 0), "delivered")
        };
        let mut report = Report::default();
        report.success.push(line(None));
        report.success.push(line(Some("FAILURE,DELAY")));
        assert!(report.is_quiet(), "plain deliveries need no notification");
        report.success.push(line(Some("SUCCESS")));
        assert!(!report.is_quiet());
        let mut report = Report::default();
        report.delay.push(line(None));
        assert!(!report.is_quiet());
    }

    #[test]
    fn delays_look_like_postfix() {
        assert_eq!(part(0), "0");
        assert_eq!(part(4_000), "0");
        assert_eq!(part(10_000), "0.01");
        assert_eq!(part(100_000), "0.1");
        assert_eq!(part(1_900_000), "1.9");
        assert_eq!(part(4_000_000), "4");
        assert_eq!(part(125_000_000), "125");
    }
}
