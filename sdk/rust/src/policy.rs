//! The `policy` role: `check_policy_service wasm:NAME` (world `policy-plugin`).
//!
//! Implement [`Guest`] and export it with [`export_policy!`](crate::export_policy). Build a
//! [`Verdict`] with [`Verdict::dunno`], [`Verdict::ok`], [`Verdict::reject`], [`Verdict::defer`]
//! (or from any [`Decision`]) and add side effects with [`Verdict::with_action`].

use crate::types::{PluginError, Reply};

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy-plugin",
        // The imports are generated once, in the crate root, so `types::Reply` is one type
        // across every role module.
        with: {
            "postern:plugin/types@0.1.0": crate::types,
            "postern:plugin/logging@0.1.0": crate::logging,
            "postern:plugin/config@0.1.0": crate::config,
            "postern:plugin/annotations@0.1.0": crate::annotations,
            "postern:plugin/dns@0.1.0": crate::dns,
            "postern:plugin/kv@0.1.0": crate::kv,
            "postern:plugin/signing@0.1.0": crate::signing,
            "postern:plugin/content@0.1.0": crate::content,
        },
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        default_bindings_module: "postern_plugin_sdk::policy::__bindings",
    });
}

pub use __bindings::exports::postern::plugin::policy::{
    Action, Decision, Guest, PolicyRequest, Verdict,
};

/// Exports `$ty`, which implements [`policy::Guest`](crate::policy::Guest), as the component's
/// `postern:plugin/policy` interface. Use it once per crate, at item level.
#[macro_export]
macro_rules! export_policy {
    ($ty:ident) => {
        $crate::policy::__bindings::export!($ty with_types_in $crate::policy::__bindings);
    };
}

impl Verdict {
    /// DUNNO: no opinion; the next restriction decides.
    pub fn dunno() -> Self {
        Decision::Dunno.into()
    }

    /// OK: permit and stop this restriction list (access(5) `OK`).
    pub fn ok() -> Self {
        Decision::Ok.into()
    }

    /// REJECT with `code enhanced text`, e.g. `Verdict::reject(550, "5.7.1", "listed")`.
    ///
    /// `code` must be 5xx (the host refuses anything else for a reject) and `enhanced` must be
    /// an RFC 3463 code of the same class; otherwise this returns [`PluginError::Config`]
    /// naming the bad value, which the host maps through the binding's `on_error` — a typo in
    /// a code becomes a logged plugin error, never a wrong SMTP reply. 521 also disconnects.
    pub fn reject(code: u16, enhanced: &str, text: impl Into<String>) -> Result<Self, PluginError> {
        let reply = Reply::new(code, enhanced, text)?.require_class(5, "reject")?;
        Ok(Decision::Reject(reply).into())
    }

    /// DEFER with `code enhanced text`, e.g. `Verdict::defer(450, "4.7.1", "try later")`.
    ///
    /// Same checks as [`Verdict::reject`], with a 4xx code. 421 also disconnects.
    pub fn defer(code: u16, enhanced: &str, text: impl Into<String>) -> Result<Self, PluginError> {
        let reply = Reply::new(code, enhanced, text)?.require_class(4, "defer")?;
        Ok(Decision::Defer(reply).into())
    }

    /// Adds a side effect (PREPEND, HOLD, REDIRECT, FILTER, BCC, WARN, INFO); actions never
    /// stop evaluation, whatever the decision.
    #[must_use]
    pub fn with_action(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }
}

impl From<Decision> for Verdict {
    fn from(decision: Decision) -> Self {
        Verdict {
            decision,
            actions: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EnhancedCode, Header};

    #[test]
    fn reject_and_defer_build_checked_replies() {
        let v = Verdict::reject(550, "5.7.1", "listed").unwrap();
        assert_eq!(
            v.decision,
            Decision::Reject(Reply {
                code: 550,
                enhanced: Some(EnhancedCode {
                    class: 5,
                    subject: 7,
                    detail: 1
                }),
                text: vec!["listed".into()],
            })
        );
        assert!(v.actions.is_empty());
        assert!(
            matches!(Verdict::defer(450, "4.7.1", "later").unwrap().decision, Decision::Defer(r) if r.code == 450)
        );
        assert_eq!(
            Verdict::reject(450, "4.7.1", "x"),
            Err(PluginError::Config(
                "a reject needs a 5xx reply code, not 450".into()
            ))
        );
        assert!(Verdict::defer(550, "5.7.1", "x").is_err());
        assert!(Verdict::reject(550, "4.7.1", "x").is_err());
    }

    #[test]
    fn actions_ride_along_with_any_decision() {
        let v = Verdict::dunno().with_action(Action::Prepend(Header::new("X-Seen", "yes")));
        assert_eq!(v.decision, Decision::Dunno);
        assert_eq!(v.actions, [Action::Prepend(Header::new("X-Seen", "yes"))]);
        assert_eq!(Verdict::ok().decision, Decision::Ok);
    }
}
