//! The mail queue: spool directories under `queue_directory`, one file per message.
//!
//! Directories follow Postfix (`qshape`, `postqueue` habits carry over): `maildrop` (local
//! submissions waiting for pickup), `incoming` (accepted, not yet scheduled), `active` (being
//! delivered), `deferred` (waiting for a retry), `hold` (kept until an admin releases it) and
//! `corrupt` (unreadable files, kept for inspection). `tmp` holds files being written; nothing in
//! it is mail until it has been renamed into one of the queues.
//!
//! Durability rule: a message is written under its final name into a file whose name is already
//! durable (or the directory is `fsync`ed after), sealed, marked complete and `fdatasync`ed; only
//! then does the caller report success (and smtpd say 250). `docs/queue-format.md` has the
//! details and the crash cases.

mod envelope;
mod id;
mod pool;
mod spool;

pub use envelope::{Envelope, Origin, RcptState, Recipient};
pub use id::QueueId;
pub use pool::Reservation;
pub use spool::{QueueDir, QueueError, Spool};
