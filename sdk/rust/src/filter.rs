//! The `filter` role: a content filter at end-of-data or after queueing (world
//! `filter-plugin`).
//!
//! Implement [`Guest`] (`declare` the [`Capabilities`] the filter needs, then `scan` each
//! message) and export it with [`export_filter!`](crate::export_filter). No
//! `PartialEq` here: a [`FilterResult`] may own a [`BodyBuilder`](crate::content::BodyBuilder)
//! resource.

use crate::types::{PluginError, Reply};

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filter-plugin",
        // Imports map to the crate-root modules: one `types::Reply` for every role.
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
        pub_export_macro: true,
        default_bindings_module: "postern_plugin_sdk::filter::__bindings",
    });
}

pub use __bindings::exports::postern::plugin::filter::{
    Capabilities, Disposition, EnvelopeEdit, FilterContext, FilterResult, Guest, HeaderChange,
    HeaderEdit, Phase,
};

/// Exports `$ty`, which implements [`filter::Guest`](crate::filter::Guest), as the component's
/// `postern:plugin/filter` interface. Use it once per crate, at item level.
#[macro_export]
macro_rules! export_filter {
    ($ty:ident) => {
        $crate::filter::__bindings::export!($ty with_types_in $crate::filter::__bindings);
    };
}

impl FilterResult {
    /// Accept the message unchanged.
    pub fn accept() -> Self {
        Disposition::Accept.into()
    }

    /// Reject with `code enhanced text` (5xx; before-queue it is the end-of-data reply,
    /// after-queue it becomes a bounce). Checked like
    /// [`Verdict::reject`](crate::policy::Verdict::reject).
    pub fn reject(code: u16, enhanced: &str, text: impl Into<String>) -> Result<Self, PluginError> {
        let reply = Reply::new(code, enhanced, text)?.require_class(5, "reject")?;
        Ok(Disposition::Reject(reply).into())
    }

    /// Defer with `code enhanced text` (4xx). Checked like
    /// [`Verdict::defer`](crate::policy::Verdict::defer).
    pub fn defer(code: u16, enhanced: &str, text: impl Into<String>) -> Result<Self, PluginError> {
        let reply = Reply::new(code, enhanced, text)?.require_class(4, "defer")?;
        Ok(Disposition::Defer(reply).into())
    }

    /// Adds a header edit; the host refuses edits outside the declared [`Capabilities`].
    #[must_use]
    pub fn with_header_edit(mut self, edit: HeaderEdit) -> Self {
        self.header_edits.push(edit);
        self
    }

    /// Adds an envelope edit; the host refuses edits outside the declared [`Capabilities`].
    #[must_use]
    pub fn with_envelope_edit(mut self, edit: EnvelopeEdit) -> Self {
        self.envelope_edits.push(edit);
        self
    }
}

impl From<Disposition> for FilterResult {
    fn from(disposition: Disposition) -> Self {
        FilterResult {
            disposition,
            header_edits: Vec::new(),
            envelope_edits: Vec::new(),
            new_body: None,
        }
    }
}
