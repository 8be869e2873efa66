//! A 64 KiB shadow stack instead of the default 1 MiB: the plugin's stack, data and heap then
//! sit in the first few hundred KiB of its linear memory, which the host keeps resident
//! between instances, so a fresh instance per transaction costs about half as much
//! (bench/plugins/README.md). Raise it if the plugin recurses deeply: a stack overflow traps.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=65536");
    }
}
