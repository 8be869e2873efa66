//! wasmtime bindings for the `postern:plugin@0.1.0` package in `wit/`.
//!
//! The host imports are generated once, from the `imports` world, and implemented once on
//! [`HostState`](crate::host::HostState). Each role world (`policy-plugin`, `lookup-plugin`,
//! …) is generated separately for its exports and maps every imported interface onto the
//! `imports` modules with `with:`, so all roles share one set of Rust types and one linker.

pub(crate) mod imports {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "imports",
        imports: {
            // Making a builder past the handle limit traps the instance.
            "postern:plugin/content.[constructor]body-builder": async | trappable,
            default: async,
        },
        with: {
            "postern:plugin/kv.bucket": crate::host::BucketHandle,
            "postern:plugin/signing.signing-key": crate::host::KeyHandle,
            "postern:plugin/content.message": crate::host::MessageHandle,
            "postern:plugin/content.body-builder": crate::host::BodyHandle,
        },
    });
}

/// Expands to a `bindgen!` for a role world whose imports are the shared ones above.
macro_rules! role_world {
    ($world:literal) => {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: $world,
            imports: { default: async },
            exports: { default: async },
            with: {
                "postern:plugin/types": crate::bindings::imports::postern::plugin::types,
                "postern:plugin/logging": crate::bindings::imports::postern::plugin::logging,
                "postern:plugin/config": crate::bindings::imports::postern::plugin::config,
                "postern:plugin/annotations": crate::bindings::imports::postern::plugin::annotations,
                "postern:plugin/dns": crate::bindings::imports::postern::plugin::dns,
                "postern:plugin/kv": crate::bindings::imports::postern::plugin::kv,
                "postern:plugin/signing": crate::bindings::imports::postern::plugin::signing,
                "postern:plugin/content": crate::bindings::imports::postern::plugin::content,
            },
        });
    };
}

pub(crate) mod policy {
    role_world!("policy-plugin");
}

pub(crate) mod lookup {
    role_world!("lookup-plugin");
}

pub(crate) mod filter {
    role_world!("filter-plugin");
}

pub(crate) mod transport {
    role_world!("transport-plugin");
}

pub(crate) use imports::postern::plugin as wit_host;
pub(crate) use imports::postern::plugin::types as wt;
