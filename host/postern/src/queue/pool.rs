//! Pre-created queue files: the reason accepting a message costs one fsync, not two.
//!
//! A new file needs two things on disk before the client may hear 250: its content and inode
//! (the file's fsync) and its name in the queue directory (the directory's fsync). The pool does
//! the second ahead of time: a filler thread puts *incomplete* files (mode 0600, at least one
//! [`GROW_STEP`](super::spool::GROW_STEP) long with their blocks allocated) into `incoming/`
//! under fresh queue IDs, fsyncs the directory once for the whole batch, and only then offers
//! them. smtpd reserves one when a transaction gets its first recipient (that is when
//! the queue ID is born, as in Postfix); at end of data the message is written into it, marked
//! complete and `fdatasync`ed — the name was already durable, and the write fits in the file's
//! allocated blocks, so no journal commit is needed either.
//!
//! Files come from the spares that finished messages leave behind (see [`super::Spool::remove`])
//! so the steady state allocates no inodes. Offered files older than [`MAX_AGE`] are renamed to
//! fresh IDs, so queue IDs stay close to arrival order on a quiet server too.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::{QueueDir, QueueId, Spool};

/// Files the filler keeps ready; it refills when fewer than half remain.
pub const TARGET: usize = 128;

/// Offered files older than this get a fresh queue ID (seconds).
pub const MAX_AGE: u64 = 60;

/// Most spare files kept for reuse; beyond this, finished queue files are unlinked.
pub const MAX_SPARES: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct Pool {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Durable, incomplete files in `incoming/` and when they were offered (Unix seconds).
    ready: Vec<(QueueId, u64)>,
    /// Handed to a transaction and not yet written or returned.
    reserved: HashSet<QueueId>,
    /// Finished queue files waiting in `tmp/` for reuse.
    spares: Vec<PathBuf>,
    /// Finished queue files already renamed into `incoming/` under fresh IDs (incomplete),
    /// waiting for the filler's next directory fsync before they are offered.
    unsynced: Vec<QueueId>,
    /// A filler thread serves this pool (only the daemon starts one).
    filled: bool,
}

/// A queue ID handed to one transaction. If the message is never stored, dropping the
/// reservation gives its pre-created file back to the pool.
#[derive(Debug)]
pub struct Reservation {
    id: QueueId,
    pool: Option<Arc<Pool>>,
}

impl Reservation {
    pub fn id(&self) -> &QueueId {
        &self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(pool) = &self.pool else { return };
        if let Ok(mut st) = pool.state.lock() {
            if st.reserved.remove(&self.id) {
                st.ready.push((self.id.clone(), crate::time::now_secs()));
            }
        }
    }
}

impl Pool {
    pub(super) fn take_spare(&self) -> Option<PathBuf> {
        self.state.lock().ok()?.spares.pop()
    }

    pub(super) fn has_room_for_spare(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|st| st.spares.len() < MAX_SPARES)
    }

    pub(super) fn add_spare(&self, path: PathBuf) {
        if let Ok(mut st) = self.state.lock() {
            st.spares.push(path);
        }
    }

    /// True when a finished queue file should go straight back into `incoming/` as a pool file
    /// (see [`super::Spool::remove`]): a filler serves this pool and it is not full.
    pub(super) fn wants_recycled(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|st| st.filled && st.ready.len() + st.unsynced.len() < 2 * TARGET)
    }

    /// A finished file now in `incoming/` as `id` (incomplete); offered after the next
    /// directory fsync.
    pub(super) fn add_unsynced(&self, id: QueueId) {
        if let Ok(mut st) = self.state.lock() {
            st.unsynced.push(id);
        }
    }

    #[cfg(test)]
    pub(super) fn unsynced_len(&self) -> usize {
        self.state.lock().map_or(0, |st| st.unsynced.len())
    }

    pub(super) fn set_spares(&self, spares: Vec<PathBuf>) {
        if let Ok(mut st) = self.state.lock() {
            st.spares = spares;
        }
    }

    /// True (once) when `id` is a reserved pool file: the caller writes into it in place.
    pub(super) fn take_reserved(&self, id: &QueueId) -> bool {
        self.state.lock().is_ok_and(|mut st| st.reserved.remove(id))
    }

    pub(super) fn reserve(self: &Arc<Self>) -> Reservation {
        let Ok(mut st) = self.state.lock() else {
            return fresh();
        };
        let now = crate::time::now_secs();
        // Newest first: the oldest entries are the ones the filler renews.
        let Some((id, _)) = st.ready.pop() else {
            if st.filled {
                self.wake.notify_one();
            }
            return fresh();
        };
        st.reserved.insert(id.clone());
        if st.ready.len() < TARGET / 2 || st.ready.first().is_some_and(|(_, t)| *t + MAX_AGE < now)
        {
            self.wake.notify_one();
        }
        Reservation {
            id,
            pool: Some(self.clone()),
        }
    }
}

fn fresh() -> Reservation {
    Reservation {
        id: QueueId::generate(),
        pool: None,
    }
}

/// Starts the filler thread for `spool`. It exits within a second once every handle on the
/// spool is gone.
pub(super) fn start_filler(spool: &Spool) {
    let pool = Arc::downgrade(&spool.pool);
    if let Ok(mut st) = spool.pool.state.lock() {
        if st.filled {
            return;
        }
        st.filled = true;
    }
    let root = spool.root().to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("queue-pool".into())
        .spawn(move || filler(pool, root));
    if let Err(e) = spawned {
        crate::warn!("cleanup", "cannot start the queue file pool: {e}");
    }
}

fn filler(weak: Weak<Pool>, root: PathBuf) {
    loop {
        let Some(pool) = weak.upgrade() else { return };
        let (need, stale, recycled) = {
            let Ok(st) = pool.state.lock() else { return };
            let now = crate::time::now_secs();
            let idle = |s: &mut State| {
                s.ready.len() >= TARGET / 2
                    && s.ready.first().is_none_or(|(_, t)| *t + MAX_AGE >= now)
            };
            let Ok((mut st, _)) = pool
                .wake
                .wait_timeout_while(st, Duration::from_secs(1), idle)
            else {
                return;
            };
            let cut = st.ready.partition_point(|(_, t)| *t + MAX_AGE < now);
            let stale: Vec<QueueId> = st.ready.drain(..cut).map(|(id, _)| id).collect();
            let recycled = std::mem::take(&mut st.unsynced);
            let need = to_create(st.ready.len(), stale.len(), recycled.len());
            (need, stale, recycled)
        };
        if need == 0 && stale.is_empty() && recycled.is_empty() {
            continue;
        }
        let spool = Spool::from_parts(root.clone(), pool.clone());
        let made = fill(&spool, &pool, need, stale, recycled);
        let now = crate::time::now_secs();
        if let Ok(mut st) = pool.state.lock() {
            st.ready.extend(made.into_iter().map(|id| (id, now)));
        };
    }
}

/// How many new files bring the pool back to [`TARGET`]: the stale files come back under fresh
/// names and the recycled ones once their names are durable, so both count as already there.
fn to_create(ready: usize, stale: usize, recycled: usize) -> usize {
    TARGET.saturating_sub(ready + stale + recycled)
}

/// Creates an incomplete pool file with one [`GROW_STEP`](super::spool::GROW_STEP) of zeros,
/// written and allocated, so that the first message that fits is written over allocated blocks
/// (see `spool::write_complete`).
fn create_presized(dest: &std::path::Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(super::spool::MODE_INCOMPLETE)
        .open(dest)?;
    std::io::Write::write_all(&mut f, &super::spool::ZEROS)?;
    f.sync_data()
}

/// Makes up to `need` new pool files plus fresh names for `stale` ones, then one directory
/// fsync, which also makes the names of `recycled` files durable. Returns the IDs now safe to
/// offer.
fn fill(
    spool: &Spool,
    pool: &Pool,
    need: usize,
    stale: Vec<QueueId>,
    recycled: Vec<QueueId>,
) -> Vec<QueueId> {
    let mut made = recycled;
    made.reserve(need + stale.len());
    for old in stale {
        let id = QueueId::generate();
        let from = spool.path(QueueDir::Incoming, &old);
        if fs::rename(&from, spool.path(QueueDir::Incoming, &id)).is_ok() {
            made.push(id);
        }
    }
    for _ in 0..need {
        let id = QueueId::generate();
        let dest = spool.path(QueueDir::Incoming, &id);
        let incomplete = fs::Permissions::from_mode(super::spool::MODE_INCOMPLETE);
        let reused = pool.take_spare().is_some_and(|spare| {
            fs::set_permissions(&spare, incomplete).is_ok() && fs::rename(&spare, &dest).is_ok()
        });
        let created = reused || create_presized(&dest).is_ok();
        if created {
            made.push(id);
        }
    }
    if made.is_empty() {
        return made;
    }
    match spool.sync_dir(QueueDir::Incoming) {
        Ok(()) => made,
        Err(e) => {
            crate::warn!("cleanup", "queue file pool: {e}");
            // Not durable, so not offered: leave them to the next start-up's clean-up.
            std::thread::sleep(Duration::from_secs(1));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod sizing {
    use super::{to_create, TARGET};

    #[test]
    fn renamed_stale_files_are_not_replaced_too() {
        // A full pool whose files all went stale: renaming them is enough.
        assert_eq!(to_create(0, TARGET, 0), 0);
        // Half stale, a quarter recycled, a quarter missing.
        assert_eq!(to_create(0, TARGET / 2, TARGET / 4), TARGET / 4);
        assert_eq!(to_create(TARGET / 2, 0, 0), TARGET / 2);
        // More than the target (files adopted at start) never underflows.
        assert_eq!(to_create(TARGET, 5, 5), 0);
    }
}
