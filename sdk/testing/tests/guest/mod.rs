//! Builds a plugin crate for wasm32-wasip2 (needs `rustup target add wasm32-wasip2`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the crate at `<repo>/<dir>` (release, wasm32-wasip2) into `target/plugins/` next to
/// this test binary's target directory and returns the `.wasm` path. Cargo is run every time:
/// it is a no-op when the plugin is up to date, and concurrent tests wait on its lock.
pub fn build(dir: &str, artifact: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/plugins
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(repo.join(dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo to build a test plugin");
    assert!(
        status.success(),
        "building {dir} for wasm32-wasip2 failed (is the target installed? rustup target add wasm32-wasip2)"
    );
    target.join("wasm32-wasip2/release").join(artifact)
}
