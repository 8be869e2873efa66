//! What every role shares: one loaded plugin's [`Core`] (binding, services, counters,
//! crash-loop breaker) and the instance life cycle — a fresh instance per call, one instance
//! per SMTP transaction, or a pool of reused instances with `max_uses` / `max_age`.
//!
//! A call never outlives the binding's timeout: the epoch ticker makes a running plugin yield,
//! and a wall-clock `tokio::time::timeout` drops the call (TOOLCHAIN traps 8 and 9). An
//! instance whose call trapped, timed out or hit a limit is discarded (trap 6); one that
//! answered — even with a plugin error — goes back where it came from.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, StoreLimitsBuilder};

use crate::bindings::wt;
use crate::engine::Env;
use crate::host::{Annotations, CallData, HostState};
use crate::plugins_toml::Binding;
use crate::PluginError;

/// First and longest back-off once the breaker opens; each further fault doubles it.
const BREAKER_MIN: Duration = Duration::from_secs(1);
const BREAKER_MAX: Duration = Duration::from_secs(60);
/// Idle instances one pooled plugin keeps at most (memory stays bounded under bursts).
const POOL_MAX_IDLE: usize = 32;

/// The scope one SMTP transaction gives its plugin calls: the annotations every plugin of the
/// transaction shares, and — for bindings with `instances = "transaction"` — the instance each
/// plugin keeps until the transaction ends. Cheap to clone; clones share everything. The MTA
/// makes a new one at MAIL FROM and drops it at RSET, the next MAIL or the end of the session.
#[derive(Clone, Default)]
pub struct Transaction {
    annotations: Annotations,
    instances: Arc<Mutex<HashMap<u64, Box<dyn Any + Send>>>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("annotations", &self.annotations)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction::default()
    }

    pub fn annotations(&self) -> &Annotations {
        &self.annotations
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<u64, Box<dyn Any + Send>>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-plugin counters, as `postern status` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Calls made, including failed ones and ones refused while backed off.
    pub calls: u64,
    /// Calls the plugin answered with a `plugin-error`.
    pub errors: u64,
    /// Traps, memory-limit and fuel hits.
    pub faults: u64,
    pub timeouts: u64,
    /// Calls refused without running because the plugin was backed off.
    pub backed_off: u64,
    /// Instances created.
    pub instances: u64,
    /// Sum and maximum of call latencies (instantiation included), in microseconds.
    pub total_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    faults: AtomicU64,
    timeouts: AtomicU64,
    backed_off: AtomicU64,
    instances: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

/// Opens after `threshold` consecutive faults (0: never); while open, calls fail fast.
#[derive(Debug, Default)]
struct Breaker {
    threshold: u32,
    consecutive: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    fn open_until(&self) -> MutexGuard<'_, Option<Instant>> {
        self.open_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(remaining)` while calls must fail fast.
    fn blocked(&self, now: Instant) -> Option<Duration> {
        let until = (*self.open_until())?;
        (until > now).then(|| until - now)
    }

    fn success(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
            *self.open_until() = None;
        }
    }

    /// Records a fault; returns the back-off when this fault opened (or re-opened) the breaker.
    fn fault(&self, now: Instant) -> Option<Duration> {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if self.threshold == 0 || n < self.threshold {
            return None;
        }
        let doublings = (n - self.threshold).min(16);
        let backoff = BREAKER_MIN
            .saturating_mul(1u32 << doublings)
            .min(BREAKER_MAX);
        *self.open_until() = Some(now + backoff);
        Some(backoff)
    }
}

/// The instance policy of a loaded binding (`instances = auto` resolved at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instances {
    Call,
    Transaction,
    Pooled { max_uses: u32, max_age: Duration },
}

impl Instances {
    pub(crate) fn pooled(b: &Binding) -> Instances {
        Instances::Pooled {
            max_uses: b.max_uses,
            max_age: b.max_age,
        }
    }
}

/// Everything one loaded binding's roles share.
pub(crate) struct Core {
    pub(crate) engine: Engine,
    pub(crate) binding: Arc<Binding>,
    pub(crate) env: Arc<Env>,
    /// Distinguishes this load from every other (transaction caches are keyed by it).
    id: u64,
    /// Resolved `instances` policy (`auto` decided by component size at load).
    pub(crate) instances: Instances,
    counters: Counters,
    breaker: Breaker,
}

impl Core {
    pub(crate) fn new(
        engine: Engine,
        binding: Arc<Binding>,
        env: Arc<Env>,
        instances: Instances,
    ) -> Core {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let breaker = Breaker {
            threshold: binding.backoff_after,
            ..Breaker::default()
        };
        Core {
            engine,
            binding,
            env,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            instances,
            counters: Counters::default(),
            breaker,
        }
    }

    pub(crate) fn stats(&self) -> PluginStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PluginStats {
            calls: get(&c.calls),
            errors: get(&c.errors),
            faults: get(&c.faults),
            timeouts: get(&c.timeouts),
            backed_off: get(&c.backed_off),
            instances: get(&c.instances),
            total_us: get(&c.total_us),
            max_us: get(&c.max_us),
        }
    }

    fn log_warn(&self, message: &str) {
        self.env
            .log(&self.binding.name, None, crate::LogLevel::Warn, message);
    }
}

/// An instance with the store it lives in.
pub(crate) struct Live<I> {
    store: Store<HostState>,
    inst: I,
    uses: u32,
    born: Instant,
}

/// How a role makes an instance from its prepared component (the bindgen `*Pre` types).
pub(crate) trait Instantiate: Send + Sync {
    type Instance: Send + Sync + 'static;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send + 'a;
}

/// A prepared role of one plugin: the component, the core, and the idle pool.
pub(crate) struct Prepared<P: Instantiate> {
    pub(crate) core: Arc<Core>,
    pre: P,
    idle: Mutex<Vec<Live<P::Instance>>>,
}

impl<P: Instantiate> Prepared<P> {
    pub(crate) fn new(core: Arc<Core>, pre: P) -> Prepared<P> {
        Prepared {
            core,
            pre,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Live<P::Instance>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on an instance under the binding's limits and returns the plugin's answer.
    /// Faults come back as [`PluginError::Temporary`] with a one-line reason.
    pub(crate) async fn run<R, F>(
        &self,
        txn: Option<&Transaction>,
        data: CallData,
        f: F,
    ) -> Result<R, PluginError>
    where
        F: AsyncFnOnce(&mut Store<HostState>, &P::Instance) -> wasmtime::Result<R>,
    {
        let core = &self.core;
        let binding = &core.binding;
        core.counters.calls.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        if let Some(left) = core.breaker.blocked(start) {
            core.counters.backed_off.fetch_add(1, Ordering::Relaxed);
            return Err(PluginError::Temporary(format!(
                "backed off after repeated failures ({}s left)",
                left.as_secs() + 1
            )));
        }
        let annotations = txn.map(|t| t.annotations.clone()).unwrap_or_default();
        let outcome = tokio::time::timeout(binding.timeout, async {
            let mut live = match self.take(txn, start) {
                Some(live) => live,
                None => self.fresh().await?,
            };
            live.store.data_mut().begin_call(annotations, data);
            live.store.set_fuel(binding.fuel.unwrap_or(u64::MAX))?;
            // Yield to the executor at every epoch tick so the timeout can drop a looping
            // plugin without holding a worker thread.
            live.store.epoch_deadline_async_yield_and_update(1);
            live.uses += 1;
            let answer = f(&mut live.store, &live.inst).await;
            live.store.data_mut().end_call();
            wasmtime::Result::Ok((answer?, live))
        })
        .await;
        let elapsed = start.elapsed();
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        core.counters.total_us.fetch_add(us, Ordering::Relaxed);
        core.counters.max_us.fetch_max(us, Ordering::Relaxed);
        let reason = match outcome {
            Ok(Ok((answer, live))) => {
                core.breaker.success();
                self.give_back(txn, live);
                return Ok(answer);
            }
            Ok(Err(e)) => {
                core.counters.faults.fetch_add(1, Ordering::Relaxed);
                classify(&e)
            }
            Err(_) => {
                core.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                format!("timed out after {:?}", binding.timeout)
            }
        };
        if let Some(backoff) = core.breaker.fault(Instant::now()) {
            core.log_warn(&format!(
                "{reason}; {} consecutive failures, calls fail for the next {}s",
                core.breaker.consecutive.load(Ordering::Relaxed),
                backoff.as_secs()
            ));
        }
        Err(PluginError::Temporary(reason))
    }

    async fn fresh(&self) -> wasmtime::Result<Live<P::Instance>> {
        let core = &self.core;
        let limits = StoreLimitsBuilder::new()
            .memory_size(core.binding.memory)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(core.binding.clone(), core.env.clone(), limits);
        let mut store = Store::new(&core.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(core.binding.fuel.unwrap_or(u64::MAX))?;
        store.epoch_deadline_async_yield_and_update(1);
        core.counters.instances.fetch_add(1, Ordering::Relaxed);
        let inst = self.pre.instantiate(&mut store).await?;
        Ok(Live {
            store,
            inst,
            uses: 0,
            born: Instant::now(),
        })
    }

    fn take(&self, txn: Option<&Transaction>, now: Instant) -> Option<Live<P::Instance>> {
        match (self.core.instances, txn) {
            (Instances::Transaction, Some(t)) => {
                let boxed = t.cache().remove(&self.core.id)?;
                boxed.downcast::<Live<P::Instance>>().ok().map(|b| *b)
            }
            (Instances::Pooled { max_age, .. }, _) => {
                let mut idle = self.idle();
                while let Some(live) = idle.pop() {
                    if now.duration_since(live.born) < max_age {
                        return Some(live);
                    }
                }
                None
            }
            _ => None,
        }
    }

    fn give_back(&self, txn: Option<&Transaction>, live: Live<P::Instance>) {
        match (self.core.instances, txn) {
            (Instances::Transaction, Some(t)) => {
                t.cache().insert(self.core.id, Box::new(live));
            }
            (Instances::Pooled { max_uses, max_age }, _)
                if live.uses < max_uses && live.born.elapsed() < max_age =>
            {
                let mut idle = self.idle();
                if idle.len() < POOL_MAX_IDLE {
                    idle.push(live);
                }
            }
            _ => {}
        }
    }
}

/// Maps the plugin's own error type.
pub(crate) fn plugin_error(e: wt::PluginError) -> PluginError {
    match e {
        wt::PluginError::Temporary(s) => PluginError::Temporary(s),
        wt::PluginError::Config(s) => PluginError::Config(s),
    }
}

/// Counts a plugin-reported error (the instance stays healthy).
pub(crate) fn answered<T>(core: &Core, r: Result<T, wt::PluginError>) -> Result<T, PluginError> {
    r.map_err(|e| {
        core.counters.errors.fetch_add(1, Ordering::Relaxed);
        plugin_error(e)
    })
}

/// A one-line reason for a failed call (TOOLCHAIN trap 7: a memory-cap hit arrives as an error
/// from the limiter, not as a `Trap`).
pub(crate) fn classify(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => "ran out of fuel".into(),
            wasmtime::Trap::AllocationTooLarge => "exceeded its memory limit".into(),
            t => format!("trapped: {t}"),
        };
    }
    // The root cause, on one line: the full chain carries a multi-line wasm backtrace, and
    // this text ends up in a log line.
    let text = e.root_cause().to_string().replace(['\r', '\n'], " ");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        format!("exceeded its memory limit: {text}")
    } else {
        format!("failed: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_doubles() {
        let b = Breaker {
            threshold: 5,
            ..Breaker::default()
        };
        let t0 = Instant::now();
        for _ in 1..5 {
            assert_eq!(b.fault(t0), None);
            assert_eq!(b.blocked(t0), None);
        }
        assert_eq!(b.fault(t0), Some(BREAKER_MIN));
        assert!(b.blocked(t0).is_some());
        assert_eq!(
            b.blocked(t0 + BREAKER_MIN),
            None,
            "half-open after the back-off"
        );
        assert_eq!(b.fault(t0), Some(BREAKER_MIN * 2));
        for _ in 0..20 {
            b.fault(t0);
        }
        assert_eq!(b.fault(t0), Some(BREAKER_MAX));
        b.success();
        assert_eq!(b.blocked(t0), None);
        assert_eq!(b.fault(t0), None, "success resets the count");
    }

    #[test]
    fn breaker_with_threshold_zero_never_opens() {
        let b = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.fault(t0), None);
        }
        assert_eq!(b.blocked(t0), None);
    }
}
