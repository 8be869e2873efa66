//! # Services
//!
//! The host-side backends behind the plugin imports that reach outside the sandbox. Each is
//! plain Rust — no wasmtime type appears here — so it can be unit-tested alone and swapped for
//! a fixture in tests:
//!
//! - `clock.rs`: [`Clock`], the time source of everything that expires ([`SystemClock`] in
//!   production, [`ManualClock`] in tests).
//! - `dns.rs`: [`DnsBackend`], the lookups a plugin may make (TXT, A, AAAA, MX, PTR);
//!   [`NoDns`] when no resolver is configured, [`StaticDns`] for fixed test answers.
//! - `kv.rs`: [`KvBackend`], the small key/value store plugins keep state in (greylisting
//!   triplets, rate-limit counters); [`MemoryKv`] is the bounded in-process store.
//! - `signing.rs`: [`SigningKey`] and [`KeyStore`], the DKIM keys of `plugins.toml`'s
//!   `[[key]]` entries. A plugin asks the host to sign a digest with a key by name; the private
//!   key never enters the sandbox.
//!
//! What these backends do not do is decide *who* may use them. Capability checks — whether a
//! plugin was granted DNS, which kv buckets and which keys it may use — live in the host
//! imports (`host.rs`), before a call reaches a backend. A backend trusts its caller.
//!
//! Async methods return [`BoxFuture`] so the traits stay object-safe (`Arc<dyn KvBackend>`)
//! and a backend that talks to the network (a real resolver, a shared kv server) can be
//! dropped in later without changing the host imports.

mod clock;
mod dns;
mod kv;
mod signing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dns::{DnsBackend, DnsFailure, Mx, NoDns, StaticDns};
pub use kv::{KvBackend, KvFailure, MemoryKv};
pub use signing::{Algorithm, KeySpec, KeyStore, SigningKey};

/// The future every service method returns: boxed, `Send`, borrowing the backend for `'a`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

#[cfg(test)]
pub(crate) mod test_support {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that must finish without waiting: the in-memory backends never pend, so
    /// a `Pending` here is a bug the test should report, not wait out.
    pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("an in-memory service future was not ready at once"),
        }
    }
}
