//! Scheduling state: the deferred-queue timetable, retry backoff and concurrency limits.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::queue::QueueId;

/// Shortest retry interval used whatever the configuration says, so that a `minimal_backoff_time`
/// of 0 cannot turn one undeliverable message into a busy loop.
pub const MIN_RETRY: Duration = Duration::from_secs(1);

/// Time until the next attempt after `attempts` failed ones (1 = first deferral).
///
/// Postfix qmgr doubles the wait after each deferral, starting at `minimal_backoff_time` and never
/// exceeding `maximal_backoff_time` (postconf(5); Postfix derives the delay from the message's age,
/// which grows the same way). With the defaults (300 s, 4000 s) the waits are 5, 10, 20, 40, 66
/// minutes, then 66 minutes until `maximal_queue_lifetime`.
pub fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(31);
    let d = min.saturating_mul(1u32 << shift);
    d.min(max.max(min)).max(MIN_RETRY)
}

/// Deferred messages by next attempt time (Unix seconds). Rebuilt from `deferred/` at start-up
/// and kept in memory afterwards, so finding due mail never needs a directory scan.
#[derive(Debug, Default)]
pub struct DeferredQueue {
    by_time: BTreeSet<(u64, QueueId)>,
    by_id: HashMap<QueueId, u64>,
}

impl DeferredQueue {
    /// Schedules (or reschedules) `id` at `at`.
    pub fn insert(&mut self, id: QueueId, at: u64) {
        if let Some(old) = self.by_id.insert(id.clone(), at) {
            self.by_time.remove(&(old, id.clone()));
        }
        self.by_time.insert((at, id));
    }

    pub fn remove(&mut self, id: &QueueId) {
        if let Some(at) = self.by_id.remove(id) {
            self.by_time.remove(&(at, id.clone()));
        }
    }

    pub fn contains(&self, id: &QueueId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every scheduled message.
    pub fn ids(&self) -> impl Iterator<Item = &QueueId> {
        self.by_id.keys()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Earliest scheduled time.
    pub fn next_due(&self) -> Option<u64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns every message due at `now`, oldest schedule first.
    pub fn pop_due(&mut self, now: u64) -> Vec<QueueId> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_first() {
                self.by_id.remove(&id);
                due.push(id);
            }
        }
        due
    }

    /// `postern queue flush`: everything is due now.
    pub fn make_all_due(&mut self) {
        let ids: Vec<QueueId> = self.by_id.keys().cloned().collect();
        for id in ids {
            self.insert(id, 0);
        }
    }
}

/// Counting semaphores keyed by name (a transport, or a transport and destination), created on
/// first use and dropped again when idle so that one-off destinations do not accumulate.
#[derive(Debug, Default)]
pub struct Limiter {
    sems: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held slot; released (and the semaphore forgotten when idle) on drop.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    key: String,
    limiter: Arc<Limiter>,
}

impl Limiter {
    /// Waits for one of `limit` slots named `key` (a limit of 0 counts as 1). The limit is fixed
    /// when the semaphore is created; after a reload, a new limit applies once the key is idle.
    pub async fn acquire(self: &Arc<Self>, key: String, limit: usize) -> Slot {
        let sem = match self.sems.lock() {
            Ok(mut map) => map
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
                .clone(),
            // A poisoned map only means another task panicked mid-insert: limit anew.
            Err(_) => Arc::new(Semaphore::new(limit.max(1))),
        };
        let permit = sem.acquire_owned().await.ok();
        Slot {
            permit,
            key,
            limiter: self.clone(),
        }
    }

    /// Number of keys currently tracked (tests).
    pub fn tracked(&self) -> usize {
        self.sems.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        if let Ok(mut map) = self.limiter.sems.lock() {
            // Only the map holds it: no slot is taken and nobody waits (a waiter owns a clone).
            if map
                .get(&self.key)
                .is_some_and(|s| Arc::strong_count(s) == 1)
            {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        let waits: Vec<u64> = (1..=6).map(|a| backoff(a, min, max).as_secs()).collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(backoff(1000, min, max).as_secs(), 4000);
        assert_eq!(backoff(1, Duration::ZERO, Duration::ZERO), MIN_RETRY);
    }

    #[test]
    fn deferred_queue_orders_by_time() {
        let mut q = DeferredQueue::default();
        let (a, b, c) = (
            QueueId::generate(),
            QueueId::generate(),
            QueueId::generate(),
        );
        q.insert(a.clone(), 30);
        q.insert(b.clone(), 10);
        q.insert(c.clone(), 20);
        q.insert(a.clone(), 5);
        assert_eq!(q.next_due(), Some(5));
        assert_eq!(q.pop_due(20), vec![a.clone(), b.clone(), c.clone()]);
        assert!(q.is_empty());
        q.insert(a.clone(), 100);
        q.insert(b.clone(), 200);
        q.remove(&b);
        q.make_all_due();
        assert_eq!(q.pop_due(0), vec![a]);
    }

    #[tokio::test]
    async fn limiter_bounds_and_forgets() {
        let l = Arc::new(Limiter::default());
        let s1 = l.acquire("local:bob".into(), 1).await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire("local:bob".into(), 1).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(s1);
        let s2 = waiter.await.expect("join");
        assert_eq!(l.tracked(), 1);
        drop(s2);
        assert_eq!(l.tracked(), 0);
    }
}
