//! The on-disk cache of compiled components: one file per (component bytes, engine), named
//! `<sha256 of the component>-<engine compatibility hash>.cwasm`, written atomically.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

pub(crate) fn entry_name(engine: &wasmtime::Engine, component: &[u8]) -> String {
    let digest = Sha256::digest(component);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    // The engine's settings and wasmtime's version: a cache written by another build or
    // another configuration is simply not found.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{hex}-{:016x}.cwasm", h.finish())
}

/// Writes `bytes` to `path` through a temporary file and a rename, mode 0600.
pub(crate) fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
