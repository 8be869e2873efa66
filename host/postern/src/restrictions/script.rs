//! `check_policy_service rhai:/path.rhai`: a Rhai policy script in place of a policy server.
//!
//! The script's `fn check(req)` gets the attributes a policy server would get (SMTPD_POLICY_README)
//! as a map and returns the same `action=` text, which the caller parses as it parses a policy
//! server's reply. A script that cannot run — it does not compile, throws, or hits a limit — is
//! treated like a policy server that cannot be reached: the result is
//! `smtpd_policy_service_default_action` (`451 4.3.5 Server configuration problem`), with a
//! warning naming the script and what went wrong.
//!
//! The call runs on a blocking thread: it is bounded by the script deadline (50 ms), but even
//! that long on an async worker would hold up every other session scheduled there.

use std::path::PathBuf;

use postern_config::Config;

/// The action text for `attrs`, or the default action when the script failed.
pub async fn query(
    spec: &str,
    path: &str,
    attrs: Vec<(&'static str, String)>,
    cfg: &Config,
) -> String {
    let path = PathBuf::from(path);
    let run = tokio::task::spawn_blocking(move || {
        let script = crate::scripts::engine().load(&path)?;
        script.check(&attrs)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    run.unwrap_or_else(|e| {
        crate::warn!("smtpd", "problem running policy script {spec}: {e}");
        cfg.smtpd_policy_service_default_action.clone()
    })
}
