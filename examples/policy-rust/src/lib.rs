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

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy-plugin",
    generate_all,
});

use exports::postern::plugin::policy::{Action, Decision, Guest, PolicyRequest, Verdict};
use postern::plugin::types::{EnhancedCode, PluginError, Reply};
use postern::plugin::{config, logging};

struct RejectListed;

impl Guest for RejectListed {
    fn check(request: PolicyRequest) -> Result<Verdict, PluginError> {
        let Some(rcpt) = request.recipient else {
            return Ok(dunno());
        };
        let listed = config::get("reject").unwrap_or_default();
        let hit = listed
            .split([',', ' '])
            .filter(|a| !a.is_empty())
            .any(|a| a.eq_ignore_ascii_case(&rcpt.address));
        if !hit {
            return Ok(dunno());
        }
        let text = config::get("text").unwrap_or_else(|| "Recipient refused by policy".into());
        logging::log(
            logging::Level::Info,
            &format!("reject recipient <{}>: listed", rcpt.address),
        );
        Ok(Verdict {
            decision: Decision::Reject(Reply {
                code: 550,
                enhanced: Some(EnhancedCode {
                    class: 5,
                    subject: 7,
                    detail: 1,
                }),
                text: vec![text],
            }),
            actions: Vec::<Action>::new(),
        })
    }
}

fn dunno() -> Verdict {
    Verdict {
        decision: Decision::Dunno,
        actions: Vec::new(),
    }
}

export!(RejectListed);
