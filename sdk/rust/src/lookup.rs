//! The `lookup` role: a Postfix `wasm:NAME` table backend (world `lookup-plugin`).
//!
//! Implement [`Guest`] (`describe`, `get`, `get_first`) and export it with
//! [`export_lookup!`](crate::export_lookup). One component may serve several tables: `table` is
//! the name after `wasm:` in the table reference.

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "lookup-plugin",
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
        default_bindings_module: "postern_plugin_sdk::lookup::__bindings",
    });
}

pub use __bindings::exports::postern::plugin::lookup::{Guest, TableKind};

/// Exports `$ty`, which implements [`lookup::Guest`](crate::lookup::Guest), as the component's
/// `postern:plugin/lookup` interface. Use it once per crate, at item level.
#[macro_export]
macro_rules! export_lookup {
    ($ty:ident) => {
        $crate::lookup::__bindings::export!($ty with_types_in $crate::lookup::__bindings);
    };
}
