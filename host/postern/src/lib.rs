//! # Layout
//!
//! The `postern` crate is the daemon and the command line. Mail flows through its modules in the
//! order Postfix's daemons handle it:
//!
//! - [`address`] classifies recipient addresses (local, relay, remote) — trivial-rewrite's
//!   resolver, shared by the relay check and the queue manager's routing.
//! - [`smtpd`] speaks ESMTP to clients: one [`smtpd::Session`] per connection, generic over the
//!   stream. It asks [`restrictions`] for relay decisions and hands finished messages to
//!   [`cleanup`]. It never writes the spool itself.
//! - [`cleanup`] completes headers (`Received:`, `Message-ID:`, `Date:`, `From:`), enforces header
//!   limits and is the only writer into `incoming/`.
//! - [`queue`] owns the spool directories and the on-disk record format; every write is fsynced
//!   (file and directory) before anyone is told it succeeded.
//! - [`qmgr`] schedules delivery: it moves files `incoming → active`, resolves each recipient to a
//!   transport, records per-recipient results, defers with backoff and expires old mail. It never
//!   opens sockets.
//! - [`transport`] holds the delivery agents (`local` Maildir, `discard`, `error`).
//! - [`bounce`] builds RFC 3464 delivery status notifications.
//! - [`scripts`] holds the Rhai engine shared by policy scripts and `rhai:` tables, and the
//!   table-opening context every module uses.
//! - [`plugins`] holds the Wasm plugin runtime and the plugins bound in `plugins.toml`.
//! - [`cli`] is the `postern` command (and the `sendmail`/`mailq` personalities).
//! - [`daemon`] wires the pieces together for `postern run`: listeners, the queue manager, signals
//!   and reload.
//!
//! Pure protocol and configuration logic lives in the `postern-proto` and `postern-config` crates;
//! this crate is where I/O happens.

pub mod address;
pub mod blocking;
pub mod bounce;
pub mod cleanup;
pub mod cli;
pub mod daemon;
pub mod dns;
pub mod log;
pub mod plugin_dns;
pub mod plugin_table;
pub mod plugins;
pub mod qmgr;
pub mod queue;
pub mod restrictions;
pub mod sasl;
pub mod scripts;
pub mod smtpd;
pub mod time;
pub mod tls;
pub mod transport;
