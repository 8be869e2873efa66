//! `fsync` of a directory, shared by concurrent callers (group commit).
//!
//! A delivery that has renamed its file into a Maildir's `new/` must make that directory entry
//! durable before it reports success. When several deliveries into the same directory are in
//! flight, one `fsync` of the directory that *starts after* a rename covers that rename, so
//! each caller waits for the first `fsync` that starts after it asked and shares its result.
//! On a journaled file system each directory `fsync` costs a disk cache flush; with ten
//! deliveries at once this saves up to nine of them.
//!
//! A failed `fsync` fails every caller it was meant to cover (a later `fsync` on a new
//! descriptor may not report an error that happened before it was opened, so nobody retries on
//! someone else's behalf).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

/// One directory's rounds. Callers are numbered in the order they ask; a round syncs for every
/// caller numbered up to the count when it started.
#[derive(Default)]
struct Rounds {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Default)]
struct State {
    /// Callers so far.
    asked: u64,
    /// Every caller up to this number has had its round.
    covered: u64,
    running: bool,
    /// Callers `(from, to]` whose round failed, with the error number.
    failed: Vec<(u64, u64, Option<i32>, io::ErrorKind)>,
}

static DIRS: LazyLock<Mutex<HashMap<PathBuf, Arc<Rounds>>>> = LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves counters that are still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes every change to `dir` that completed before this call durable.
pub fn sync(dir: &Path) -> io::Result<()> {
    let rounds = lock(&DIRS).entry(dir.to_path_buf()).or_default().clone();
    let result = rounds.sync(|| File::open(dir)?.sync_all());
    let mut dirs = lock(&DIRS);
    // Ours and the table's: nobody else is waiting, so the entry can go.
    if Arc::strong_count(&rounds) == 2 && dirs.get(dir).is_some_and(|e| Arc::ptr_eq(e, &rounds)) {
        dirs.remove(dir);
    }
    result
}

impl Rounds {
    fn sync(&self, fsync: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.asked += 1;
        let me = s.asked;
        loop {
            if s.covered >= me {
                return match s.failed.iter().find(|f| f.0 < me && me <= f.1) {
                    Some(&(_, _, Some(errno), _)) => Err(io::Error::from_raw_os_error(errno)),
                    Some(&(_, _, None, kind)) => Err(io::Error::from(kind)),
                    None => Ok(()),
                };
            }
            if !s.running {
                s.running = true;
                let (from, to) = (s.covered, s.asked);
                drop(s);
                let result = fsync();
                s = lock(&self.state);
                s.running = false;
                s.covered = to;
                if let Err(e) = &result {
                    s.failed.push((from, to, e.raw_os_error(), e.kind()));
                }
                self.finished.notify_all();
                return result;
            }
            s = self.finished.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;

    #[test]
    fn alone_each_call_syncs() {
        let rounds = Rounds::default();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            rounds
                .sync(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .expect("ok");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// Holds a first caller inside its fsync until `waiters` more callers have asked, then lets
    /// it finish. Every fsync after the first returns `later()`. Returns the waiters' results
    /// and how many fsyncs ran in all.
    fn during_a_sync(
        waiters: usize,
        later: fn() -> io::Result<()>,
    ) -> (Vec<io::Result<()>>, usize) {
        let rounds = Arc::new(Rounds::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (started, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let fsync = {
            let (calls, started, release) = (calls.clone(), started.clone(), release.clone());
            Arc::new(move || {
                if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                    return later();
                }
                started.wait();
                release.wait();
                Ok(())
            })
        };
        let spawn = || {
            let (rounds, fsync) = (rounds.clone(), fsync.clone());
            std::thread::spawn(move || rounds.sync(|| fsync()))
        };
        let first = spawn();
        started.wait();
        let others: Vec<_> = (0..waiters).map(|_| spawn()).collect();
        while lock(&rounds.state).asked < 1 + waiters as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.wait();
        assert!(first.join().expect("join").is_ok());
        let results = others
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        // A later caller gets a round of its own.
        assert!(rounds.sync(|| Ok(())).is_ok());
        (results, calls.load(Ordering::SeqCst))
    }

    /// Callers arriving while a sync runs share the next one: never the one already running
    /// (it may have started before their change).
    #[test]
    fn callers_during_a_sync_share_the_next_one() {
        let (results, calls) = during_a_sync(4, || Ok(()));
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!(calls, 2, "one more fsync for the four waiters");
    }

    /// The round after the first fails: both callers it covered get its error.
    #[test]
    fn a_failed_sync_fails_everyone_it_covered() {
        let (results, calls) = during_a_sync(2, || Err(io::Error::from_raw_os_error(libc::EIO)));
        for r in results {
            let err = r.expect_err("covered by the failed round");
            assert_eq!(err.raw_os_error(), Some(libc::EIO));
        }
        assert_eq!(calls, 2, "the waiters shared one fsync");
    }

    #[test]
    fn the_table_forgets_idle_directories() {
        let dir = std::env::temp_dir();
        sync(&dir).expect("sync");
        assert!(!lock(&DIRS).contains_key(&dir));
    }
}
