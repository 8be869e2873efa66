//! The key/value store plugins keep state in: greylisting triplets, rate-limit counters,
//! "seen this message" markers. Values are bytes; each entry may carry a time to live.
//!
//! [`MemoryKv`] keeps everything in this process (lost on restart, not shared between hosts),
//! which is what a single Postern needs for greylisting and rate limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use super::{BoxFuture, Clock};

/// Why a kv operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvFailure {
    /// The store could not do it this time, or the stored value does not fit the operation.
    #[error("temporary kv failure: {0}")]
    Temporary(String),
    /// The key or value is over the store's limits, or the bucket is full.
    #[error("kv key, value or bucket too large")]
    TooLarge,
}

/// A kv store as the plugin host imports see it. Buckets separate plugins (and uses within a
/// plugin); which buckets a plugin may touch is checked in the host imports, not here.
pub trait KvBackend: Send + Sync + std::fmt::Debug {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvFailure>>;
    /// ttl None = no expiry
    fn set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), KvFailure>>;
    /// Stores `value` only if `key` holds no live value; true when it stored.
    fn set_if_absent<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, KvFailure>>;
    /// Values are decimal ASCII i64; a missing/expired key counts as 0; a non-number value → Temporary("… is not a number").
    /// ttl applies when the key is created (Some) — each backend documents its exact rule.
    fn increment<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64, KvFailure>>;
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvFailure>>;
}

/// Longest key (and bucket name), in bytes: a key names a thing, it does not carry data.
const MAX_KEY_BYTES: usize = 1024;
/// Longest value, in bytes. Plugin state is small; a plugin that wants to park a message body
/// here is refused rather than allowed to grow the MTA's memory.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Entries per bucket unless [`MemoryKv::with_max_entries`] says otherwise.
const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

struct Entry {
    value: Vec<u8>,
    /// None = never expires.
    expires_at: Option<SystemTime>,
}

impl Entry {
    fn live(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Default)]
struct Bucket {
    entries: DashMap<String, Entry>,
    /// Entries stored, live or expired-but-not-yet-removed. Kept by hand (not
    /// `DashMap::len`) so that reserving a slot and inserting are one decision: the bound
    /// holds exactly even when many writers race for the last slot.
    len: AtomicUsize,
}

impl Bucket {
    /// Takes one of the bucket's `max` slots; false when all are taken.
    fn reserve(&self, max: usize) -> bool {
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn released(&self, n: usize) {
        self.len.fetch_sub(n, Ordering::AcqRel);
    }

    /// Removes every expired entry.
    fn sweep(&self, now: SystemTime) {
        let mut removed = 0;
        self.entries.retain(|_, entry| {
            let keep = entry.live(now);
            removed += usize::from(!keep);
            keep
        });
        self.released(removed);
    }
}

/// What a write operation decided, given the live value it found (if any).
enum Decision<T> {
    /// Leave the key as it is and answer `T`.
    Keep(T),
    /// Store this entry and answer `T`.
    Store(Entry, T),
}

/// In-process store on dashmap, TTL from the Clock, bounded: key ≤ 1 KiB, value ≤ 64 KiB (→ TooLarge),
/// at most `max_entries` per bucket (default 1_000_000).
///
/// Expiry is lazy: an expired entry is invisible at once (every read and write compares it
/// with [`Clock::now`]), and is removed when a read meets it or when its bucket is full.
///
/// A full bucket — `max_entries` entries, counting expired ones not yet removed — first sweeps
/// out its expired entries; if it is still full, creating a key fails with
/// [`KvFailure::TooLarge`], while existing keys can still be read, overwritten, incremented and
/// deleted. Nothing live is evicted: a greylisting or rate-limit plugin whose entry silently
/// vanished would let mail through that it meant to hold back, whereas `TooLarge` reaches the
/// plugin and goes through its `on_error`. Bucket names are held to the key limit too.
///
/// `increment`'s `ttl` takes effect only when the call creates the key (missing or expired):
/// a fixed window opened by the first increment, see [`KvBackend::increment`] below.
///
/// A `ttl` of zero stores an entry that is already expired; a `ttl` too large for the clock
/// (past the end of `SystemTime`) means no expiry.
pub struct MemoryKv {
    clock: Arc<dyn Clock>,
    buckets: DashMap<String, Arc<Bucket>>,
    max_entries: usize,
}

/// Sizes only: the contents are plugin data (and may be a million entries), not log material.
impl std::fmt::Debug for MemoryKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buckets: Vec<(String, usize)> = self
            .buckets
            .iter()
            .map(|b| (b.key().clone(), b.value().len.load(Ordering::Relaxed)))
            .collect();
        f.debug_struct("MemoryKv")
            .field("clock", &self.clock)
            .field("max_entries", &self.max_entries)
            .field("entries_per_bucket", &buckets)
            .finish()
    }
}

impl MemoryKv {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryKv {
            clock,
            buckets: DashMap::new(),
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    /// Caps each bucket at `n` entries (see the type's docs for what happens when full).
    pub fn with_max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    fn check_names(bucket: &str, key: &str) -> Result<(), KvFailure> {
        if bucket.len() > MAX_KEY_BYTES || key.len() > MAX_KEY_BYTES {
            return Err(KvFailure::TooLarge);
        }
        Ok(())
    }

    fn expiry(&self, now: SystemTime, ttl: Option<Duration>) -> Option<SystemTime> {
        ttl.and_then(|ttl| now.checked_add(ttl))
    }

    fn existing_bucket(&self, bucket: &str) -> Option<Arc<Bucket>> {
        self.buckets.get(bucket).map(|b| Arc::clone(b.value()))
    }

    fn bucket(&self, bucket: &str) -> Arc<Bucket> {
        if let Some(found) = self.existing_bucket(bucket) {
            return found;
        }
        Arc::clone(self.buckets.entry(bucket.to_owned()).or_default().value())
    }

    fn read(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        Self::check_names(bucket, key)?;
        let Some(bucket) = self.existing_bucket(bucket) else {
            return Ok(None);
        };
        let now = self.clock.now();
        match bucket.entries.get(key) {
            None => return Ok(None),
            Some(entry) if entry.live(now) => return Ok(Some(entry.value.clone())),
            Some(_) => {}
        }
        // Expired: remove it, unless a writer replaced it since we looked.
        if bucket
            .entries
            .remove_if(key, |_, entry| !entry.live(now))
            .is_some()
        {
            bucket.released(1);
        }
        Ok(None)
    }

    /// The one write path: `decide` sees the live value of `key` (None when missing or
    /// expired) under the key's shard lock, so read-modify-write operations are atomic. A new
    /// key's slot is reserved before `decide` runs, so `decide` runs once and owns its value.
    fn write<T>(
        &self,
        bucket_name: &str,
        key: &str,
        decide: impl FnOnce(Option<&Entry>, SystemTime) -> Result<Decision<T>, KvFailure>,
    ) -> Result<T, KvFailure> {
        Self::check_names(bucket_name, key)?;
        let bucket = self.bucket(bucket_name);
        let mut swept = false;
        loop {
            let now = self.clock.now();
            match bucket.entries.entry(key.to_owned()) {
                MapEntry::Occupied(mut occupied) => {
                    let live = occupied.get().live(now).then(|| occupied.get());
                    return match decide(live, now)? {
                        Decision::Keep(answer) => Ok(answer),
                        Decision::Store(entry, answer) => {
                            occupied.insert(entry);
                            Ok(answer)
                        }
                    };
                }
                MapEntry::Vacant(vacant) => {
                    if !bucket.reserve(self.max_entries) {
                        if swept {
                            return Err(KvFailure::TooLarge);
                        }
                        // Sweeping locks every shard: let go of this one first.
                        drop(vacant);
                        bucket.sweep(now);
                        swept = true;
                        continue;
                    }
                    return match decide(None, now) {
                        Ok(Decision::Store(entry, answer)) => {
                            vacant.insert(entry);
                            Ok(answer)
                        }
                        Ok(Decision::Keep(answer)) => {
                            bucket.released(1);
                            Ok(answer)
                        }
                        Err(failure) => {
                            bucket.released(1);
                            Err(failure)
                        }
                    };
                }
            }
        }
    }

    fn store(
        &self,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool, KvFailure> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvFailure::TooLarge);
        }
        self.write(bucket, key, |live, now| {
            if only_if_absent && live.is_some() {
                return Ok(Decision::Keep(false));
            }
            let entry = Entry {
                value,
                expires_at: self.expiry(now, ttl),
            };
            Ok(Decision::Store(entry, true))
        })
    }

    /// Fixed-window counter semantics: see [`KvBackend::increment`] on `MemoryKv`.
    fn add(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, KvFailure> {
        self.write(bucket, key, |live, now| {
            let (current, expires_at) = match live {
                Some(entry) => (parse_counter(bucket, key, &entry.value)?, entry.expires_at),
                None => (0, self.expiry(now, ttl)),
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                KvFailure::Temporary(format!(
                    "incrementing {bucket}/{key} ({current}) by {delta} would overflow a 64-bit integer"
                ))
            })?;
            let entry = Entry {
                value: next.to_string().into_bytes(),
                expires_at,
            };
            Ok(Decision::Store(entry, next))
        })
    }

    fn remove(&self, bucket: &str, key: &str) -> Result<(), KvFailure> {
        Self::check_names(bucket, key)?;
        if let Some(bucket) = self.existing_bucket(bucket) {
            if bucket.entries.remove(key).is_some() {
                bucket.released(1);
            }
        }
        Ok(())
    }
}

fn parse_counter(bucket: &str, key: &str, value: &[u8]) -> Result<i64, KvFailure> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| KvFailure::Temporary(format!("value of {bucket}/{key} is not a number")))
}

impl KvBackend for MemoryKv {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvFailure>> {
        Box::pin(async move { self.read(bucket, key) })
    }

    fn set<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), KvFailure>> {
        Box::pin(async move { self.store(bucket, key, value, ttl, false).map(|_| ()) })
    }

    fn set_if_absent<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, KvFailure>> {
        Box::pin(async move { self.store(bucket, key, value, ttl, true) })
    }

    /// Adds `delta` to the decimal i64 in `key` and answers the new value, atomically under
    /// concurrent callers. A missing or expired key counts as 0.
    ///
    /// TTL rule: `ttl` is applied only when this call creates the key (it was missing or
    /// expired); incrementing a live key keeps that key's expiry, or its lack of one, whatever
    /// `ttl` says. So `increment(b, k, 1, Some(60s))` counts events in a fixed 60-second
    /// window that opens at the first event, the usual rate-limit counter. Overflowing i64
    /// fails with `Temporary` and leaves the value unchanged.
    fn increment<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64, KvFailure>> {
        Box::pin(async move { self.add(bucket, key, delta, ttl) })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvFailure>> {
        Box::pin(async move { self.remove(bucket, key) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_support::block_on;
    use crate::services::ManualClock;

    const MINUTE: Duration = Duration::from_secs(60);

    fn store() -> (Arc<ManualClock>, MemoryKv) {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let kv = MemoryKv::new(clock.clone());
        (clock, kv)
    }

    fn get(kv: &MemoryKv, bucket: &str, key: &str) -> Option<Vec<u8>> {
        block_on(kv.get(bucket, key)).unwrap()
    }

    #[test]
    fn set_get_delete_round_trip_and_buckets_are_separate() {
        let (_, kv) = store();
        block_on(kv.set("grey", "k", b"one".to_vec(), None)).unwrap();
        block_on(kv.set("rate", "k", b"two".to_vec(), None)).unwrap();
        assert_eq!(get(&kv, "grey", "k"), Some(b"one".to_vec()));
        assert_eq!(get(&kv, "rate", "k"), Some(b"two".to_vec()));
        assert_eq!(get(&kv, "other", "k"), None);

        block_on(kv.set("grey", "k", b"three".to_vec(), None)).unwrap();
        assert_eq!(get(&kv, "grey", "k"), Some(b"three".to_vec()));

        block_on(kv.delete("grey", "k")).unwrap();
        assert_eq!(get(&kv, "grey", "k"), None);
        assert_eq!(get(&kv, "rate", "k"), Some(b"two".to_vec()));
        // Deleting what is not there is not an error.
        block_on(kv.delete("grey", "k")).unwrap();
        block_on(kv.delete("never-created", "k")).unwrap();
    }

    #[test]
    fn entries_expire_when_the_clock_passes_their_ttl() {
        let (clock, kv) = store();
        block_on(kv.set("b", "short", b"x".to_vec(), Some(MINUTE))).unwrap();
        block_on(kv.set("b", "forever", b"y".to_vec(), None)).unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(get(&kv, "b", "short"), Some(b"x".to_vec()));
        clock.advance(Duration::from_secs(1));
        assert_eq!(get(&kv, "b", "short"), None);
        assert_eq!(get(&kv, "b", "forever"), Some(b"y".to_vec()));
        clock.advance(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(get(&kv, "b", "forever"), Some(b"y".to_vec()));
    }

    #[test]
    fn zero_ttl_is_already_expired_and_huge_ttl_never_expires() {
        let (clock, kv) = store();
        block_on(kv.set("b", "zero", b"x".to_vec(), Some(Duration::ZERO))).unwrap();
        assert_eq!(get(&kv, "b", "zero"), None);
        block_on(kv.set("b", "huge", b"x".to_vec(), Some(Duration::MAX))).unwrap();
        clock.advance(Duration::from_secs(1 << 40));
        assert_eq!(get(&kv, "b", "huge"), Some(b"x".to_vec()));
    }

    #[test]
    fn set_if_absent_stores_only_over_missing_or_expired_keys() {
        let (clock, kv) = store();
        assert!(block_on(kv.set_if_absent("b", "k", b"first".to_vec(), Some(MINUTE))).unwrap());
        assert!(!block_on(kv.set_if_absent("b", "k", b"second".to_vec(), None)).unwrap());
        assert_eq!(get(&kv, "b", "k"), Some(b"first".to_vec()));
        clock.advance(MINUTE);
        assert!(block_on(kv.set_if_absent("b", "k", b"third".to_vec(), None)).unwrap());
        assert_eq!(get(&kv, "b", "k"), Some(b"third".to_vec()));
    }

    #[test]
    fn increment_counts_from_zero_and_rejects_non_numbers() {
        let (_, kv) = store();
        assert_eq!(block_on(kv.increment("b", "n", 5, None)), Ok(5));
        assert_eq!(block_on(kv.increment("b", "n", -7, None)), Ok(-2));
        assert_eq!(get(&kv, "b", "n"), Some(b"-2".to_vec()));

        block_on(kv.set("b", "given", b"41".to_vec(), None)).unwrap();
        assert_eq!(block_on(kv.increment("b", "given", 1, None)), Ok(42));

        block_on(kv.set("b", "text", b"forty".to_vec(), None)).unwrap();
        assert_eq!(
            block_on(kv.increment("b", "text", 1, None)),
            Err(KvFailure::Temporary(
                "value of b/text is not a number".into()
            ))
        );
        assert_eq!(get(&kv, "b", "text"), Some(b"forty".to_vec()));
    }

    #[test]
    fn increment_overflow_fails_and_keeps_the_value() {
        let (_, kv) = store();
        block_on(kv.set("b", "n", i64::MAX.to_string().into_bytes(), None)).unwrap();
        assert!(matches!(
            block_on(kv.increment("b", "n", 1, None)),
            Err(KvFailure::Temporary(msg)) if msg.contains("overflow")
        ));
        assert_eq!(get(&kv, "b", "n"), Some(i64::MAX.to_string().into_bytes()));
    }

    #[test]
    fn increment_ttl_starts_a_fixed_window_at_creation() {
        let (clock, kv) = store();
        assert_eq!(block_on(kv.increment("b", "n", 1, Some(MINUTE))), Ok(1));
        clock.advance(Duration::from_secs(50));
        // A later ttl does not push the window's end back.
        assert_eq!(block_on(kv.increment("b", "n", 1, Some(MINUTE))), Ok(2));
        clock.advance(Duration::from_secs(10));
        assert_eq!(get(&kv, "b", "n"), None);
        // The expired counter restarts from 0, with a new window.
        assert_eq!(block_on(kv.increment("b", "n", 1, Some(MINUTE))), Ok(1));
        clock.advance(Duration::from_secs(59));
        assert_eq!(get(&kv, "b", "n"), Some(b"1".to_vec()));

        // A key created without expiry keeps none.
        assert_eq!(block_on(kv.increment("b", "forever", 1, None)), Ok(1));
        assert_eq!(
            block_on(kv.increment("b", "forever", 1, Some(MINUTE))),
            Ok(2)
        );
        clock.advance(MINUTE * 10);
        assert_eq!(get(&kv, "b", "forever"), Some(b"2".to_vec()));
    }

    #[test]
    fn increment_is_atomic_across_threads() {
        let (_, kv) = store();
        const THREADS: i64 = 8;
        const PER_THREAD: i64 = 2_000;
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..PER_THREAD {
                        block_on(kv.increment("b", "shared", 1, None)).unwrap();
                    }
                });
            }
        });
        assert_eq!(
            get(&kv, "b", "shared"),
            Some((THREADS * PER_THREAD).to_string().into_bytes())
        );
    }

    #[test]
    fn oversized_keys_values_and_bucket_names_are_refused() {
        let (_, kv) = store();
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let fits = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(
            block_on(kv.set("b", &long, vec![1], None)),
            Err(KvFailure::TooLarge)
        );
        assert_eq!(block_on(kv.get("b", &long)), Err(KvFailure::TooLarge));
        assert_eq!(
            block_on(kv.increment(&long, "k", 1, None)),
            Err(KvFailure::TooLarge)
        );
        block_on(kv.set("b", &fits, vec![1], None)).unwrap();

        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert_eq!(
            block_on(kv.set("b", "v", big.clone(), None)),
            Err(KvFailure::TooLarge)
        );
        assert_eq!(
            block_on(kv.set_if_absent("b", "v", big, None)),
            Err(KvFailure::TooLarge)
        );
        assert_eq!(get(&kv, "b", "v"), None);
        block_on(kv.set("b", "v", vec![0u8; MAX_VALUE_BYTES], None)).unwrap();
    }

    #[test]
    fn a_full_bucket_sweeps_expired_entries_then_refuses_new_keys() {
        let (clock, kv) = store();
        let kv = kv.with_max_entries(3);
        block_on(kv.set("b", "old", b"x".to_vec(), Some(MINUTE))).unwrap();
        block_on(kv.set("b", "k1", b"x".to_vec(), None)).unwrap();
        block_on(kv.set("b", "k2", b"x".to_vec(), None)).unwrap();
        assert_eq!(
            block_on(kv.set("b", "k3", b"x".to_vec(), None)),
            Err(KvFailure::TooLarge)
        );
        // Other buckets have their own room.
        block_on(kv.set("other", "k3", b"x".to_vec(), None)).unwrap();
        // Existing keys can still be changed in a full bucket.
        block_on(kv.set("b", "k1", b"y".to_vec(), None)).unwrap();
        assert_eq!(block_on(kv.increment("b", "k2", 1, None)).ok(), None);
        block_on(kv.set("b", "k2", b"7".to_vec(), None)).unwrap();
        assert_eq!(block_on(kv.increment("b", "k2", 1, None)), Ok(8));

        // Once "old" expires, the sweep makes room for one new key.
        clock.advance(MINUTE);
        block_on(kv.set("b", "k3", b"x".to_vec(), None)).unwrap();
        assert_eq!(
            block_on(kv.set_if_absent("b", "k4", b"x".to_vec(), None)),
            Err(KvFailure::TooLarge)
        );
        // Deleting frees a slot too.
        block_on(kv.delete("b", "k1")).unwrap();
        assert_eq!(block_on(kv.increment("b", "k4", 1, None)), Ok(1));
        assert_eq!(get(&kv, "b", "k2"), Some(b"8".to_vec()));
        assert_eq!(get(&kv, "b", "k3"), Some(b"x".to_vec()));
    }

    #[test]
    fn the_entry_bound_is_exact_when_writers_race_for_the_last_slots() {
        let (_, kv) = store();
        let kv = kv.with_max_entries(100);
        let stored = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let (kv, stored) = (&kv, &stored);
                scope.spawn(move || {
                    for i in 0..50 {
                        let key = format!("{thread}-{i}");
                        match block_on(kv.set("b", &key, b"x".to_vec(), None)) {
                            Ok(()) => {
                                stored.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(failure) => assert_eq!(failure, KvFailure::TooLarge),
                        }
                    }
                });
            }
        });
        assert_eq!(stored.load(Ordering::Relaxed), 100);
        let bucket = kv.existing_bucket("b").unwrap();
        assert_eq!(bucket.entries.len(), 100);
        assert_eq!(bucket.len.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn debug_shows_sizes_not_contents() {
        let (_, kv) = store();
        block_on(kv.set("grey", "client=192.0.2.1", b"secret-ish".to_vec(), None)).unwrap();
        let debug = format!("{kv:?}");
        assert!(debug.contains("(\"grey\", 1)"), "{debug}");
        assert!(
            !debug.contains("192.0.2.1") && !debug.contains("secret-ish"),
            "{debug}"
        );
    }

    #[test]
    fn reading_an_expired_entry_frees_its_slot() {
        let (clock, kv) = store();
        let kv = kv.with_max_entries(1);
        block_on(kv.set("b", "k", b"x".to_vec(), Some(MINUTE))).unwrap();
        clock.advance(MINUTE);
        assert_eq!(get(&kv, "b", "k"), None);
        let bucket = kv.existing_bucket("b").unwrap();
        assert_eq!(bucket.len.load(Ordering::Relaxed), 0);
        assert!(bucket.entries.is_empty());
    }
}
