//! The connection cache (Postfix scache(8), `smtp_connection_cache_*`): after a delivery whose
//! transaction ended cleanly (the server answered the final dot), the session is kept open for
//! the next delivery to the same next hop instead of saying QUIT. The next delivery skips DNS,
//! the TCP handshake, the greeting, EHLO and STARTTLS and starts with MAIL FROM.
//!
//! Limits, as in Postfix: an idle connection is closed after `smtp_connection_cache_time_limit`
//! (2 s); a connection older than `smtp_connection_reuse_time_limit` (300 s), or used
//! `smtp_connection_reuse_count_limit` times (0 = no limit), is not parked again. Connections
//! are cached when `smtp_connection_cache_on_demand = yes` (Postfix caches only while the
//! destination has a backlog; Postern caches every clean session for the short idle limit, which
//! is what a backlog needs and costs one idle socket for 2 s otherwise) or when the next hop is
//! listed in `smtp_connection_cache_destinations`.
//!
//! A cached connection the server has closed meanwhile is noticed at MAIL FROM, before the
//! server accepted anything, and the delivery goes on with a new connection (see
//! `client::reuse`), so reuse never duplicates or loses a message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use postern_config::Config;
use tokio::io::BufReader;

use super::stream::Stream;
use super::wire::Caps;
use crate::tls::TlsSummary;

/// How one next hop's connections are cached.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The next hop as written, lowercased, with the EHLO name: connections are only reused
    /// for the same destination and identity (and so the same TLS policy).
    pub key: String,
    pub idle_limit: Duration,
    pub age_limit: Duration,
    /// 0 = no limit.
    pub use_limit: u32,
}

impl Policy {
    /// The policy for `nexthop`, or `None` when its connections are not cached.
    pub fn for_nexthop(cfg: &Config, nexthop: &str, helo_name: &str) -> Option<Policy> {
        let d = &cfg.delivery;
        let listed = d
            .connection_cache_destinations
            .iter()
            .any(|x| x.eq_ignore_ascii_case(nexthop));
        if !d.connection_cache_on_demand && !listed {
            return None;
        }
        Some(Policy {
            key: format!("{}|{helo_name}", nexthop.to_ascii_lowercase()),
            idle_limit: d.connection_cache_time_limit,
            age_limit: d.connection_reuse_time_limit,
            use_limit: d.connection_reuse_count_limit,
        })
    }
}

/// An open session between transactions.
pub struct Idle {
    pub io: BufReader<Stream>,
    pub caps: Caps,
    pub host: String,
    pub peer: String,
    pub relay: String,
    pub tls: Option<Arc<TlsSummary>>,
    /// When the connection was made.
    pub born: Instant,
    /// Transactions done on it so far.
    pub uses: u32,
}

impl Policy {
    /// Whether a connection made at `born` that carried `uses` transactions may be parked
    /// again.
    pub fn allows_reuse(&self, born: Instant, uses: u32) -> bool {
        born.elapsed() < self.age_limit && (self.use_limit == 0 || uses < self.use_limit)
    }
}

struct Entry {
    id: u64,
    parked: Instant,
    idle: Idle,
}

static CACHE: LazyLock<Mutex<HashMap<String, Vec<Entry>>>> = LazyLock::new(Mutex::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The most recently parked connection for `policy.key` that is still within its limits.
pub fn take(policy: &Policy) -> Option<Idle> {
    let mut cache = CACHE.lock().ok()?;
    let list = cache.get_mut(&policy.key)?;
    let mut found = None;
    while let Some(e) = list.pop() {
        if e.parked.elapsed() < policy.idle_limit && e.idle.born.elapsed() < policy.age_limit {
            found = Some(e.idle);
            break;
        }
    }
    if list.is_empty() {
        cache.remove(&policy.key);
    }
    found
}

/// Keeps `idle` for the next delivery to `policy.key`; it is closed after the idle limit if
/// nobody takes it. Must be called inside the tokio runtime.
pub fn park(policy: &Policy, idle: Idle) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let Ok(mut cache) = CACHE.lock() else {
        return;
    };
    cache.entry(policy.key.clone()).or_default().push(Entry {
        id,
        parked: Instant::now(),
        idle,
    });
    drop(cache);
    let key = policy.key.clone();
    let limit = policy.idle_limit;
    tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        expire(&key, id);
    });
}

/// Closes connection `id` if it is still parked (dropping it closes the socket; Postfix's
/// scache also closes idle connections without QUIT).
fn expire(key: &str, id: u64) {
    let expired = {
        let Ok(mut cache) = CACHE.lock() else {
            return;
        };
        let Some(list) = cache.get_mut(key) else {
            return;
        };
        let gone = list.iter().position(|e| e.id == id).map(|i| list.remove(i));
        if list.is_empty() {
            cache.remove(key);
        }
        gone
    };
    drop(expired);
}

/// Connections parked for `key` (tests).
pub fn parked(key: &str) -> usize {
    CACHE
        .lock()
        .map(|c| c.get(key).map_or(0, Vec::len))
        .unwrap_or(0)
}
