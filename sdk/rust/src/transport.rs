//! The `transport` role: delivers a queued message to its recipients (world
//! `transport-plugin`).
//!
//! Implement [`Guest::deliver`], returning one [`RecipientStatus`] per request recipient in the
//! same order, and export it with [`export_transport!`](crate::export_transport).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transport-plugin",
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
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        default_bindings_module: "postern_plugin_sdk::transport::__bindings",
    });
}

pub use __bindings::exports::postern::plugin::transport::{
    DeliveryRequest, DsnAction, Guest, RecipientStatus,
};

/// Exports `$ty`, which implements [`transport::Guest`](crate::transport::Guest), as the component's
/// `postern:plugin/transport` interface. Use it once per crate, at item level.
#[macro_export]
macro_rules! export_transport {
    ($ty:ident) => {
        $crate::transport::__bindings::export!($ty with_types_in $crate::transport::__bindings);
    };
}
