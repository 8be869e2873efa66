//! Delivery agents and routing (Postfix `trivial-rewrite` resolve + `local`, `discard`, `error`).
//!
//! The queue manager asks [`resolve()`] which [`Transport`] and next hop serve each recipient, groups
//! recipients into [`Job`]s and hands every job to [`deliver`], which answers one [`Outcome`] per
//! recipient. Transports never touch the queue: recording results, retrying and bouncing are the
//! queue manager's job (as in Postfix, where delivery agents only report to qmgr).
//!
//! Delivery agents present in this version: [`Transport::Local`] (aliases, Maildir, files and
//! commands), [`Transport::Virtual`] (Maildir for `virtual_mailbox_domains`),
//! [`Transport::Discard`], [`Transport::Error`], [`Transport::Smtp`] (remote delivery over
//! SMTP, also for `relay`; see [`smtp`]) and [`Transport::Lmtp`] (LMTP to a mailbox server
//! such as Dovecot; see [`smtp::lmtp`]).

use std::sync::Arc;

use postern_config::Config;
use postern_proto::EnhancedCode;

use crate::queue::Envelope;

pub mod after_queue;
pub mod alias;
mod dirsync;
pub mod discard;
pub mod error;
pub mod file;
pub mod local;
pub mod maildir;
pub mod pipe;
pub mod resolve;
pub mod smtp;
pub mod virtual_mailbox;
pub mod wasm;

pub use resolve::{resolve, route, Route};

/// A delivery agent, named as in Postfix `master.cf` (`local`, `smtp`, …).
///
/// Later versions add `pipe`, `virtual` and `wasm:NAME` transports as new variants; code that
/// matches on this enum then has to say what they do, which is the point of not using strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// local(8): final delivery to a Maildir of a local user.
    Local,
    /// virtual(8): Maildir delivery for `virtual_mailbox_domains`.
    Virtual,
    /// discard(8): report success without delivering; the next hop is the log text.
    Discard,
    /// error(8): bounce every recipient; the next hop is the bounce text.
    Error,
    /// smtp(8) (also the `relay` service): remote delivery over SMTP.
    Smtp,
    /// lmtp(8): delivery to an LMTP server such as Dovecot (see [`smtp::lmtp`]).
    Lmtp,
    /// `wasm:NAME`: a transport-role plugin bound in plugins.toml.
    Wasm(String),
    /// A transport name no delivery agent answers to (a typo in `default_transport`, or a
    /// `master.cf` service Postern does not have). Mail is deferred, as Postfix does when it cannot
    /// reach a transport, so fixing the configuration and flushing the queue delivers it.
    Unknown(String),
}

impl Transport {
    /// Maps a transport name from `default_transport`, `local_transport`, … to an agent.
    pub fn from_name(name: &str) -> Transport {
        match name.to_ascii_lowercase().as_str() {
            "local" => Transport::Local,
            "virtual" => Transport::Virtual,
            "discard" => Transport::Discard,
            "error" => Transport::Error,
            // Postfix's stock master.cf runs `relay` as another instance of smtp(8).
            "smtp" | "relay" => Transport::Smtp,
            "lmtp" => Transport::Lmtp,
            _ => Transport::Unknown(name.to_string()),
        }
    }

    /// The transport's name as configured (`local`, `smtp`, …), used for concurrency keys.
    pub fn name(&self) -> &str {
        match self {
            Transport::Local => "local",
            Transport::Virtual => "virtual",
            Transport::Discard => "discard",
            Transport::Error => "error",
            Transport::Smtp => "smtp",
            Transport::Lmtp => "lmtp",
            Transport::Wasm(name) | Transport::Unknown(name) => name,
        }
    }

    /// The name used in log lines (`postern/local[…]`). Deferrals for transports that do not
    /// exist are logged by the queue manager, as Postfix's qmgr does for unreachable transports.
    pub fn service(&self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Virtual => "virtual",
            Transport::Discard => "discard",
            Transport::Error => "error",
            Transport::Wasm(_) => "wasm",
            Transport::Smtp => "smtp",
            Transport::Lmtp => "lmtp",
            Transport::Unknown(_) => "qmgr",
        }
    }

    /// Whether deliveries hold real resources (processes, sockets, disk) and so count against the
    /// per-transport and per-destination concurrency limits.
    pub fn is_limited(&self) -> bool {
        matches!(
            self,
            Transport::Local
                | Transport::Virtual
                | Transport::Smtp
                | Transport::Lmtp
                | Transport::Wasm(_)
        )
    }

    /// Whether every job carries exactly one recipient. Postfix's `local_destination_recipient_limit`
    /// is 1, so the local "destination" for concurrency purposes is the recipient itself.
    pub fn one_recipient_per_job(&self) -> bool {
        matches!(self, Transport::Local | Transport::Virtual)
    }
}

/// The result of delivering to one recipient.
///
/// The class of `status` decides what happens next (RFC 3463 §3.1): 2 = delivered, 4 = keep
/// the message and retry later, 5 = return it to the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: EnhancedCode,
    /// Text for the log line's parentheses and the DSN, e.g. `delivered to maildir`.
    pub text: String,
    /// Value of the log line's `relay=` field: `local`, `none`, later `host[addr]:port`.
    pub relay: String,
    /// RFC 3464 `Diagnostic-Code` when a remote server gave one (`smtp; 550 5.1.1 …`). Locally
    /// produced results leave it empty and the DSN shows `X-Postern; text`.
    pub diagnostic: Option<String>,
    /// A message this delivery queued (local(8) forwarding an alias to other addresses): the
    /// queue manager schedules it.
    pub queued: Option<crate::queue::QueueId>,
    /// What TLS the smtp client's session ran over, if any; the delivery log line shows it as
    /// `tls=TLSv1.3:TLS_AES_256_GCM_SHA384`. Boxed behind an `Arc` to keep `Outcome` small.
    pub tls: Option<Arc<crate::tls::TlsSummary>>,
}

impl Outcome {
    /// Delivered (2.0.0).
    pub fn sent(relay: &str, text: impl Into<String>) -> Outcome {
        Outcome::new(EnhancedCode::new(2, 0, 0), relay, text)
    }

    /// Temporary failure: the recipient stays queued.
    pub fn defer(status: EnhancedCode, relay: &str, text: impl Into<String>) -> Outcome {
        Outcome::new(status, relay, text)
    }

    /// Permanent failure: the recipient is returned to the sender.
    pub fn bounce(status: EnhancedCode, relay: &str, text: impl Into<String>) -> Outcome {
        Outcome::new(status, relay, text)
    }

    fn new(status: EnhancedCode, relay: &str, text: impl Into<String>) -> Outcome {
        Outcome {
            status,
            text: text.into(),
            relay: relay.to_string(),
            diagnostic: None,
            queued: None,
            tls: None,
        }
    }

    pub fn is_sent(&self) -> bool {
        self.status.class == 2
    }

    pub fn is_deferred(&self) -> bool {
        self.status.class == 4
    }

    pub fn is_bounced(&self) -> bool {
        self.status.class == 5
    }

    /// Postfix's `status=` word.
    pub fn status_word(&self) -> &'static str {
        match self.status.class {
            2 => "sent",
            5 => "bounced",
            _ => "deferred",
        }
    }

    /// How the result is kept in the queue file's `reason=`: `4.3.0 text`.
    pub fn reason(&self) -> String {
        format!("{} {}", self.status, self.text)
    }
}

/// Recipients of one message that go to the same transport and destination.
#[derive(Clone, Debug)]
pub struct Job {
    pub route: Route,
    pub env: Arc<Envelope>,
    pub content: Arc<Vec<u8>>,
    /// Indices into `env.recipients`.
    pub rcpts: Vec<usize>,
}

/// Runs one job and returns one outcome per entry of `job.rcpts`, in the same order.
///
/// Blocking agents (local) run on tokio's blocking pool so that a slow disk never stalls the
/// scheduler. A panic inside an agent is reported as a deferral (`4.3.0`), never lost mail.
/// One outcome per job recipient, in job order; `deliver` handles a single recipient. An index
/// that names no recipient (never expected) defers rather than panics.
pub(crate) fn per_recipient(
    job: &Job,
    relay: &str,
    mut deliver: impl FnMut(&crate::queue::Recipient) -> Outcome,
) -> Vec<Outcome> {
    job.rcpts
        .iter()
        .map(|&i| match job.env.recipients.get(i) {
            Some(rcpt) => deliver(rcpt),
            None => Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                relay,
                "internal error: no such recipient",
            ),
        })
        .collect()
}

/// The destination concurrency slot a delivery holds while it works on its destination. A
/// transport drops it as soon as the message is written, before it waits for durability (the
/// fsync): the wait is not work on the destination, and deliveries to one busy mailbox that
/// overlap their fsyncs let a journaling file system commit them together.
pub type DestinationSlot = Option<Box<dyn Send>>;

pub async fn deliver(cfg: Arc<Config>, job: &Job, slot: DestinationSlot) -> Vec<Outcome> {
    match &job.route.transport {
        Transport::Local => {
            let job = job.clone();
            let n = job.rcpts.len();
            match tokio::task::spawn_blocking(move || local::deliver_job(&cfg, &job, slot)).await {
                Ok(outcomes) => outcomes,
                Err(e) => vec![
                    Outcome::defer(
                        EnhancedCode::new(4, 3, 0),
                        "local",
                        format!("local delivery agent failed: {e}"),
                    );
                    n
                ],
            }
        }
        Transport::Virtual => {
            let job = job.clone();
            let n = job.rcpts.len();
            let run = move || virtual_mailbox::deliver_job(&cfg, &job, slot);
            match tokio::task::spawn_blocking(run).await {
                Ok(outcomes) => outcomes,
                Err(e) => vec![
                    Outcome::defer(
                        EnhancedCode::new(4, 3, 0),
                        "virtual",
                        format!("virtual delivery agent failed: {e}"),
                    );
                    n
                ],
            }
        }
        Transport::Discard => job
            .rcpts
            .iter()
            .map(|_| discard::deliver(&job.route.nexthop))
            .collect(),
        Transport::Error => job
            .rcpts
            .iter()
            .map(|_| error::deliver(&job.route.nexthop))
            .collect(),
        Transport::Wasm(name) => wasm::deliver(cfg, name, job).await,
        Transport::Smtp => {
            // The connection is the destination's resource: hold the slot for the whole session.
            let outcomes = smtp::deliver(cfg, job).await;
            drop(slot);
            outcomes
        }
        Transport::Lmtp => {
            let outcomes = smtp::lmtp::deliver(cfg, job).await;
            drop(slot);
            outcomes
        }
        Transport::Unknown(_) => {
            let outcome = unavailable(&job.route.transport);
            vec![outcome; job.rcpts.len()]
        }
    }
}

/// The honest deferral for transports this version does not have. `4.3.0` keeps the mail queued
/// (and it expires normally after `maximal_queue_lifetime`); the text says exactly why.
fn unavailable(t: &Transport) -> Outcome {
    let text = match t {
        Transport::Unknown(name) => format!(
            "mail transport unavailable: unknown transport \"{name}\" (check default_transport, \
             local_transport and relayhost)"
        ),
        _ => "mail transport unavailable".to_string(),
    };
    Outcome::defer(EnhancedCode::new(4, 3, 0), "none", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_map_to_agents() {
        assert_eq!(Transport::from_name("local"), Transport::Local);
        assert_eq!(Transport::from_name("relay"), Transport::Smtp);
        assert_eq!(Transport::from_name("SMTP"), Transport::Smtp);
        assert_eq!(Transport::from_name("virtual"), Transport::Virtual);
        assert_eq!(
            Transport::from_name("uucp"),
            Transport::Unknown("uucp".into())
        );
    }

    #[test]
    fn unavailable_transports_defer_and_say_why() {
        let o = unavailable(&Transport::Unknown("uucp".into()));
        assert!(o.is_deferred());
        assert_eq!(o.status.to_string(), "4.3.0");
        assert!(o.text.contains("unknown transport \"uucp\""), "{}", o.text);
        assert_eq!(o.status_word(), "deferred");
    }
}
