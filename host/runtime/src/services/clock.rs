//! Wall-clock time for the services that expire things (the kv store's TTLs).
//!
//! Injected as `Arc<dyn Clock>` so tests move time by hand instead of sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Where a service reads the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Test clock: starts at a given time, moves only when told.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`. A step past the end of `SystemTime`'s range leaves the
    /// clock where it is rather than panicking.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(later) = now.checked_add(by) {
            *now = later;
        }
    }

    /// Puts the clock at `to`, which may be earlier than now (a wall clock can step back).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + Duration::from_secs(90));
        clock.set(start - Duration::from_secs(5));
        assert_eq!(clock.now(), start - Duration::from_secs(5));
    }

    #[test]
    fn manual_clock_ignores_an_advance_past_the_representable_range() {
        let start = SystemTime::UNIX_EPOCH;
        let clock = ManualClock::new(start);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn system_clock_follows_the_os_clock() {
        let before = SystemTime::now();
        let read = SystemClock.now();
        let after = SystemTime::now();
        assert!(before <= read && read <= after);
    }
}
