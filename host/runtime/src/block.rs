//! Running a plugin call to completion from synchronous code (table lookups are synchronous
//! in `postern-maps`), on whatever thread the caller is.

use std::future::Future;
use std::sync::OnceLock;

/// A small runtime for callers outside tokio, or on a current-thread runtime that must not
/// be blocked re-entrantly.
fn private() -> Option<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postern-plugin-sync")
            .enable_time()
            .build()
            .ok()
    })
    .as_ref()
}

/// Drives `fut` to completion. On a multi-threaded tokio runtime the worker hands its other
/// tasks away while it waits (`block_in_place`); elsewhere the call runs on a private runtime.
pub(crate) fn block_on<F>(fut: F) -> Result<F::Output, crate::PluginError>
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    let unavailable = || crate::PluginError::Temporary("cannot start the plugin runtime".into());
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| h.block_on(fut)))
        }
        Ok(_) => {
            let rt = private().ok_or_else(unavailable)?;
            std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join())
                .map_err(|_| crate::PluginError::Temporary("plugin call panicked".into()))
        }
        Err(_) => Ok(private().ok_or_else(unavailable)?.block_on(fut)),
    }
}
