//! Rhai scripts in the daemon: the process's one script engine ([`engine`]) and the
//! table-opening context ([`open_ctx`]) that every part of Postern uses, so that
//! `rhai:/path.rhai` works wherever a table does (`check_*_access`, `transport_maps`,
//! `virtual_alias_maps`, `postern map query`, `postern check`, …).
//!
//! Scripts are compiled once and cached by path (`postern_script::Scripts`); a script whose file
//! changed is compiled again on its next use. A script's `log(msg)` becomes a log line
//! `postern/script[PID]: /path.rhai: msg`.

use std::sync::{Arc, OnceLock};

use postern_maps::OpenCtx;
use postern_script::{Limits, Logger, Scripts};

/// The shared engine, with the default limits (docs/scripts.md).
pub fn engine() -> &'static Arc<Scripts> {
    static ENGINE: OnceLock<Arc<Scripts>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let logger: Logger = Arc::new(|path: &str, msg: &str| {
            crate::info!("script", "{path}: {msg}");
        });
        Arc::new(Scripts::new(Limits::default(), logger))
    })
}

/// The [`OpenCtx`] for every table Postern opens: the built-in types plus `rhai:` and
/// `wasm:` (lookup-role plugins of the current plugin set, [`crate::plugin_table`]).
pub fn open_ctx() -> OpenCtx {
    let mut ctx = OpenCtx::new();
    ctx.register("rhai", postern_script::opener(engine().clone()));
    ctx.register("wasm", crate::plugin_table::opener());
    ctx
}
