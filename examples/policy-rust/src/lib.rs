//! Reject recipients listed in the plugin's config with a custom `550 5.7.1` text.
//!
//! ```toml
//! [[plugin]]
//! name = "reject-listed"
//! component = "policy_rust.wasm"
//! [plugin.config]
//! reject = "a@example.com, b@example.com"
//! text = "this recipient does not accept mail"
//! ```
//!
//! and in main.cf: `smtpd_recipient_restrictions = check_policy_service wasm:reject-listed, …`.

use postern_plugin_sdk::policy::{Guest, PolicyRequest, Verdict};
use postern_plugin_sdk::types::PluginError;
use postern_plugin_sdk::{config, log};

struct RejectListed;

impl Guest for RejectListed {
    fn check(request: PolicyRequest) -> Result<Verdict, PluginError> {
        let Some(rcpt) = request.recipient else {
            return Ok(Verdict::dunno());
        };
        let listed = config::get_list("reject");
        if !listed.iter().any(|a| a.eq_ignore_ascii_case(&rcpt.address)) {
            return Ok(Verdict::dunno());
        }
        let text = config::get_or("text", "Recipient refused by policy");
        log::info!("reject recipient <{}>: listed", rcpt.address);
        Verdict::reject(550, "5.7.1", text)
    }
}

postern_plugin_sdk::export_policy!(RejectListed);
