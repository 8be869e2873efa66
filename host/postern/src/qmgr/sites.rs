//! Per-destination concurrency for network deliveries (smtp, lmtp): slow start, feedback and
//! dead-destination back-off, after Postfix's qmgr (SCHEDULER_README, "concurrency
//! scheduling").
//!
//! Each destination (transport and next hop) starts with `initial_destination_concurrency`
//! parallel deliveries. Every delivery that reached a server raises the window by 1/window (so
//! one window's worth of successes raises it by one), up to the destination's limit; every
//! delivery that could not reach any server lowers it by 1/window, down to 1. At a window of 1,
//! each such failure is a failed cohort; after `default_destination_concurrency_failed_cohort_limit`
//! of them in a row the destination is declared dead: for `minimal_backoff_time` its mail is
//! deferred at once with the last failure's reason ("delivery temporarily suspended: …"), so a
//! dead domain neither holds delivery slots nor waits out connect timeouts for every message.
//! `postern queue flush` revives every dead destination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::transport::Outcome;

/// Scheduling state of every network destination with deliveries in flight or a recent
/// failure. Entries disappear when idle and healthy.
#[derive(Debug, Default)]
pub struct Sites {
    map: Mutex<HashMap<String, Site>>,
}

#[derive(Debug)]
struct Site {
    /// Deliveries allowed at once (fractional: feedback moves it in steps of 1/window).
    window: f64,
    active: usize,
    /// Consecutive failed cohorts at window 1.
    failed_cohorts: u32,
    /// Dead until then; deliveries are deferred with `reason`.
    dead_until: Option<Instant>,
    reason: Option<Outcome>,
    wake: Arc<Notify>,
}

impl Site {
    /// Deliveries the window allows at once: its whole part, at least 1, at most the limit.
    fn room(&self, limits: Limits) -> usize {
        (self.window.floor() as usize).clamp(1, limits.max.max(1))
    }
}

/// The limits one acquisition uses (from the configuration epoch of the delivery).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub initial: usize,
    pub max: usize,
    pub failed_cohort_limit: u32,
    /// How long a dead destination stays dead.
    pub dead_time: Duration,
}

/// How a delivery went, for the feedback.
#[derive(Clone, Debug)]
pub enum Feedback {
    /// A server answered (whatever it said about the recipients).
    Reached,
    /// No server of the destination could be reached; the outcome says why.
    Unreachable(Outcome),
}

impl Feedback {
    /// Classifies a job's outcomes: the destination was unreachable when every recipient was
    /// deferred with a network or routing status (`4.4.x`: no answer, connection lost, DNS
    /// failure); any other result means a server answered.
    pub fn of(outcomes: &[Outcome]) -> Feedback {
        let network = |o: &Outcome| o.is_deferred() && o.status.subject == 4;
        match outcomes.first() {
            Some(first) if outcomes.iter().all(network) => Feedback::Unreachable(first.clone()),
            _ => Feedback::Reached,
        }
    }
}

/// A delivery slot of one destination; give feedback with [`SiteSlot::done`], or just drop it
/// (no feedback: e.g. the job was cancelled).
#[derive(Debug)]
pub struct SiteSlot {
    sites: Arc<Sites>,
    key: String,
    limits: Limits,
    released: bool,
}

impl Sites {
    /// Waits for a slot at `key`, or returns the deferral for a dead destination.
    pub async fn acquire(self: &Arc<Self>, key: &str, limits: Limits) -> Result<SiteSlot, Outcome> {
        loop {
            let wake = {
                let Ok(mut map) = self.map.lock() else {
                    return Ok(self.slot(key, limits));
                };
                let site = map.entry(key.to_string()).or_insert_with(|| Site {
                    window: limits.initial.clamp(1, limits.max.max(1)) as f64,
                    active: 0,
                    failed_cohorts: 0,
                    dead_until: None,
                    reason: None,
                    wake: Arc::new(Notify::new()),
                });
                if let Some(until) = site.dead_until {
                    if Instant::now() < until {
                        return Err(suspended(site.reason.as_ref()));
                    }
                    // Time to try again: one delivery probes the destination.
                    site.dead_until = None;
                    site.window = 1.0;
                }
                if site.active < site.room(limits) {
                    site.active += 1;
                    return Ok(self.slot(key, limits));
                }
                site.wake.clone()
            };
            let notified = wake.notified();
            tokio::pin!(notified);
            // Registered before re-checking, so a release in between is not missed.
            notified.as_mut().enable();
            if self.has_room(key, limits) {
                continue;
            }
            notified.await;
        }
    }

    fn slot(self: &Arc<Self>, key: &str, limits: Limits) -> SiteSlot {
        SiteSlot {
            sites: self.clone(),
            key: key.to_string(),
            limits,
            released: false,
        }
    }

    fn has_room(&self, key: &str, limits: Limits) -> bool {
        let Ok(map) = self.map.lock() else {
            return true;
        };
        map.get(key)
            .is_none_or(|s| s.dead_until.is_some() || s.active < s.room(limits))
    }

    /// `postern queue flush`: every dead destination gets another chance now.
    pub fn revive_all(&self) {
        if let Ok(mut map) = self.map.lock() {
            for site in map.values_mut() {
                if site.dead_until.take().is_some() {
                    site.window = 1.0;
                    site.failed_cohorts = 0;
                    site.wake.notify_waiters();
                }
            }
        }
    }

    /// Whether `key` is currently dead (tests, status).
    pub fn is_dead(&self, key: &str) -> bool {
        self.map.lock().is_ok_and(|m| {
            m.get(key)
                .and_then(|s| s.dead_until)
                .is_some_and(|t| Instant::now() < t)
        })
    }

    /// The current window of `key` (tests).
    pub fn window(&self, key: &str) -> Option<f64> {
        self.map.lock().ok()?.get(key).map(|s| s.window)
    }

    fn release(&self, key: &str, limits: Limits, feedback: Option<Feedback>) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        let Some(site) = map.get_mut(key) else {
            return;
        };
        site.active = site.active.saturating_sub(1);
        let max = limits.max.max(1) as f64;
        match feedback {
            Some(Feedback::Reached) => {
                site.window = (site.window + 1.0 / site.window).min(max);
                site.failed_cohorts = 0;
                site.reason = None;
            }
            Some(Feedback::Unreachable(outcome)) => {
                if site.window <= 1.0 {
                    site.failed_cohorts += 1;
                    if site.failed_cohorts >= limits.failed_cohort_limit.max(1)
                        && site.dead_until.is_none()
                    {
                        site.dead_until = Some(Instant::now() + limits.dead_time);
                        crate::info!(
                            "qmgr",
                            "{key}: destination is unreachable, deferring its mail for {}s: {}",
                            limits.dead_time.as_secs(),
                            outcome.text
                        );
                    }
                }
                site.window = (site.window - 1.0 / site.window).max(1.0);
                site.reason = Some(outcome);
            }
            None => {}
        }
        site.wake.notify_waiters();
        let idle = site.active == 0
            && site.dead_until.is_none()
            && site.failed_cohorts == 0
            && site.reason.is_none();
        // A healthy idle destination is forgotten; its next delivery slow-starts again, as in
        // Postfix where an idle queue is removed.
        if idle && Arc::strong_count(&site.wake) == 1 {
            map.remove(key);
        }
    }
}

impl SiteSlot {
    /// Ends the delivery with its feedback.
    pub fn done(mut self, feedback: Feedback) {
        self.released = true;
        self.sites.release(&self.key, self.limits, Some(feedback));
    }
}

impl Drop for SiteSlot {
    fn drop(&mut self) {
        if !self.released {
            self.sites.release(&self.key, self.limits, None);
        }
    }
}

/// The deferral given to mail for a dead destination.
fn suspended(reason: Option<&Outcome>) -> Outcome {
    let mut o = match reason {
        Some(r) => r.clone(),
        None => Outcome::defer(
            postern_proto::EnhancedCode::new(4, 4, 1),
            "none",
            "destination unreachable",
        ),
    };
    if !o.text.starts_with("delivery temporarily suspended: ") {
        o.text = format!("delivery temporarily suspended: {}", o.text);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_proto::EnhancedCode;

    fn limits() -> Limits {
        Limits {
            initial: 2,
            max: 4,
            failed_cohort_limit: 1,
            dead_time: Duration::from_secs(60),
        }
    }

    fn refused() -> Outcome {
        Outcome::defer(
            EnhancedCode::new(4, 4, 1),
            "none",
            "connect to mx[192.0.2.1]:25: Connection refused",
        )
    }

    #[tokio::test]
    async fn slow_start_grows_to_the_limit() {
        let sites = Arc::new(Sites::default());
        let a = sites.acquire("smtp:x", limits()).await.expect("slot");
        let b = sites.acquire("smtp:x", limits()).await.expect("slot");
        // The third waits: the window starts at 2.
        let s2 = sites.clone();
        let third = tokio::spawn(async move { s2.acquire("smtp:x", limits()).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!third.is_finished());
        a.done(Feedback::Reached);
        assert!(third.await.expect("join"));
        assert!(sites.window("smtp:x").expect("tracked") > 2.0);
        b.done(Feedback::Reached);
        for _ in 0..20 {
            sites
                .acquire("smtp:x", limits())
                .await
                .expect("slot")
                .done(Feedback::Reached);
        }
        // Idle and healthy: forgotten.
        assert_eq!(sites.window("smtp:x"), None);
    }

    #[tokio::test]
    async fn failures_shrink_the_window_then_kill_the_destination() {
        let sites = Arc::new(Sites::default());
        let mut rounds = 0;
        while !sites.is_dead("smtp:dead") {
            rounds += 1;
            assert!(rounds < 10, "never declared dead");
            let slot = sites.acquire("smtp:dead", limits()).await.expect("slot");
            slot.done(Feedback::Unreachable(refused()));
        }
        let err = sites
            .acquire("smtp:dead", limits())
            .await
            .expect_err("dead destination");
        assert!(err.is_deferred());
        assert_eq!(
            err.text,
            "delivery temporarily suspended: connect to mx[192.0.2.1]:25: Connection refused"
        );
        // Other destinations are not affected.
        assert!(sites.acquire("smtp:alive", limits()).await.is_ok());
        sites.revive_all();
        assert!(!sites.is_dead("smtp:dead"));
        let probe = sites.acquire("smtp:dead", limits()).await.expect("probe");
        probe.done(Feedback::Reached);
    }

    #[test]
    fn feedback_classifies_outcomes() {
        let sent = Outcome::sent("mx[192.0.2.1]:25", "250 ok");
        assert!(matches!(Feedback::of(&[sent]), Feedback::Reached));
        assert!(matches!(
            Feedback::of(&[refused(), refused()]),
            Feedback::Unreachable(_)
        ));
        let said_no = Outcome::defer(EnhancedCode::new(4, 2, 0), "mx[192.0.2.1]:25", "450 busy");
        assert!(matches!(Feedback::of(&[said_no]), Feedback::Reached));
    }
}
