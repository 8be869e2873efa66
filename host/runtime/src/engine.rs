//! The shared wasmtime engine, the linker with every host import, and the epoch ticker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::host::HostState;
use crate::plugins_toml::Binding;
use crate::policy::PolicyPlugin;

/// How often the ticker advances the engine's epoch. A plugin in a busy loop yields to the
/// executor at the next tick, so this bounds how late a wall-clock timeout can cancel it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Severity of a plugin's log line (WIT `logging.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where plugin log lines and runtime warnings go: `(binding name, level, message)`. The MTA
/// routes them into its own log format.
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// One engine for the whole process; cheap to share (`Arc` it). Dropping it stops the ticker.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<HostState>>,
    pub(crate) log: LogSink,
    _ticker: Ticker,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime whose plugin log lines are discarded.
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::with_log(Arc::new(|_: &str, _: LogLevel, _: &str| {}))
    }

    /// A runtime that sends plugin log lines to `log`.
    pub fn with_log(log: LogSink) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Timeouts: the ticker advances the epoch, a running plugin yields at every tick, and
        // the caller's wall-clock timeout drops the call (TOOLCHAIN traps 8 and 9).
        config.epoch_interruption(true);
        // Fuel is per binding; a binding without `fuel` gets an unlimited tank (≤ 0.15 µs/call).
        config.consume_fuel(true);
        // Instances come from a pre-reserved pool: ~30 µs for a fresh instance instead of ~38,
        // and a bounded number of live instances. An exhausted pool fails the instantiation,
        // which the caller sees as a temporary error.
        let pool = PoolingAllocationConfig::default();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        // Rust std in a guest imports wasi:cli/io/clocks/random even for pure logic; they are
        // linked with a deny-all context (no files, env, args or sockets).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::policy::bindings::PolicyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("postern-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("cannot start the epoch ticker thread")?
        };
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            log,
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// Compiles the component at `path` and prepares it for the `policy` role of `binding`.
    /// Compiling is the expensive step (tens of ms for a small Rust plugin); calls reuse it.
    pub fn load_policy(&self, binding: Binding) -> anyhow::Result<PolicyPlugin> {
        let path = binding.component.clone();
        let component = Component::from_file(&self.engine, &path).map_err(|e| {
            anyhow::anyhow!(
                "plugin {}: cannot load component {}: {e:#}",
                binding.name,
                path.display()
            )
        })?;
        PolicyPlugin::new(self, binding, &component)
    }
}
