//! Blocking file work (a queue file's write and fsync) called from async code.
//!
//! `spawn_blocking` hands the work to another thread and back: two wake-ups, which at low
//! concurrency cost more than the work itself and sit on the client's critical path. [`run`]
//! does the work on the calling worker thread instead while few others do the same, so at
//! least one worker always stays free to serve every other connection; beyond that it falls
//! back to the blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Work running inline right now.
static INLINE: AtomicUsize = AtomicUsize::new(0);
/// How much work may run inline at once; 0 (the default, and in tests) never does.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Lets up to `n` pieces of work run on async worker threads at once. The daemon sets this to
/// its worker count minus one.
pub fn set_inline_limit(n: usize) {
    LIMIT.store(n, Ordering::Relaxed);
}

/// Runs `work` inline when a slot is free, else on the blocking pool. The error is the
/// blocking pool's (the work panicked or the runtime is shutting down).
pub async fn run<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let limit = LIMIT.load(Ordering::Relaxed);
    if INLINE.fetch_add(1, Ordering::AcqRel) < limit {
        let _slot = Slot;
        return Ok(work());
    }
    INLINE.fetch_sub(1, Ordering::AcqRel);
    tokio::task::spawn_blocking(work).await
}

/// Gives the inline slot back, also when the work panics.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        INLINE.fetch_sub(1, Ordering::AcqRel);
    }
}
