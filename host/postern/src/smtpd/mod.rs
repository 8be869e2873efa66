//! smtpd: the ESMTP server (Postfix smtpd(8)).
//!
//! CONTRACT (the daemon relies on these items exactly):
//! - `pub async fn serve(listener: tokio::net::TcpListener, service: String,
//!     config: tokio::sync::watch::Receiver<std::sync::Arc<postern_config::Config>>,
//!     spool: crate::queue::Spool, qmgr: crate::qmgr::QmgrHandle,
//!     shutdown: tokio::sync::watch::Receiver<bool>)`
//!   accepts connections until shutdown; each session uses the config current when it started.
//! - `pub struct Session<S: AsyncRead + AsyncWrite + Unpin>` drivable over an in-memory stream.
//!
//! Layout: [`serve`] (this file) accepts connections and enforces the connection limits; one
//! [`Session`] per connection runs in its own task (`session.rs`), with one file per verb
//! (`ehlo.rs` HELO/EHLO, `mail.rs`, `rcpt.rs`, `data.rs`, `bdat.rs`, `misc.rs` for the rest),
//! buffered, timed, PIPELINING-aware I/O in `io.rs` and the disconnect statistics in
//! `stats.rs`. Relay decisions come from [`crate::restrictions`]; finished messages go to
//! [`crate::cleanup`]. smtpd never writes the spool itself.

mod auth;
mod bdat;
mod checks;
mod data;
mod ehlo;
mod io;
mod mail;
mod milters;
mod misc;
mod rcpt;
mod session;
mod stats;
mod tls;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_config::Config;
use postern_proto::Reply;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Header and body edits of a filter applied to a message (also used after queueing).
pub(crate) use milters::edit as edit_message;
pub use session::{ClientInfo, Session, SessionContext, JUNK_COMMAND_LIMIT};

use crate::qmgr::QmgrHandle;
use crate::queue::Spool;
use crate::restrictions::Policy;
use crate::tls::server::ServerTls;

/// One configuration epoch as smtpd uses it: the config and what is derived from it once
/// (the parsed restriction lists, the TLS certificates). Sessions hold an `Arc` of the epoch
/// they started in.
#[derive(Debug)]
pub struct Settings {
    pub config: Arc<Config>,
    pub policy: Policy,
    /// The certificates for STARTTLS and wrapper mode, loaded when TLS is wanted. `None` when
    /// TLS is off, or when loading failed: then STARTTLS is not offered (`454` when
    /// `smtpd_tls_security_level = encrypt`), and wrapper-mode connections are dropped, as
    /// Postfix does after `disabling TLS support`.
    pub tls: Option<ServerTls>,
    /// The AUTH back end of this epoch (`smtpd_sasl_*`), when AUTH is enabled.
    pub sasl: crate::sasl::Sasl,
}

impl Settings {
    pub fn new(config: Arc<Config>) -> Arc<Settings> {
        let tls = tls_settings(&config);
        let policy = Policy::new(&config);
        if !policy.has_relay_guard() {
            crate::warn!(
                "smtpd",
                "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions contains \
                 reject_unauth_destination, defer_unauth_destination, reject or defer: every \
                 recipient will be refused with 451 4.3.5 to avoid an open relay"
            );
        }
        let sasl = crate::sasl::Sasl::new(&config);
        Arc::new(Settings {
            config,
            policy,
            sasl,
            tls,
        })
    }

    /// A table this epoch uses changed on disk: new sessions should get a fresh epoch.
    fn is_stale(&self) -> bool {
        self.policy.is_stale() || self.tls.as_ref().is_some_and(ServerTls::is_stale)
    }
}

/// Loads smtpd's certificates when the configuration asks for TLS (see [`Settings::tls`]).
fn tls_settings(config: &Config) -> Option<ServerTls> {
    if !crate::tls::server::wanted(&config.smtpd_tls) {
        return None;
    }
    match ServerTls::new(&config.smtpd_tls) {
        Ok(tls) => Some(tls),
        Err(e) => {
            crate::warn!(
                "smtpd",
                "cannot load TLS certificate: {e}: disabling TLS support"
            );
            None
        }
    }
}

/// Accepts connections on `listener` until `shutdown` becomes true, then waits for the running
/// sessions (those waiting for a command are told `421` and end at once; a message being
/// received is finished first).
///
/// Limits (postconf(5)):
/// - `default_process_limit` (or master.cf maxproc): at most that many sessions at once. Like
///   Postfix's master, further connections are not accepted until a slot frees up: they wait
///   in the kernel's listen queue rather than being refused, and a warning is logged.
/// - `smtpd_client_connection_count_limit`: at most that many simultaneous sessions from one
///   client address; the excess gets `421 4.7.0 <host> Error: too many connections from <addr>`
///   instead of the greeting. Clients in `mynetworks` are exempt (Postfix's default
///   `smtpd_client_event_limit_exceptions = $mynetworks`).
pub async fn serve(
    listener: TcpListener,
    service: String,
    mut config: watch::Receiver<Arc<Config>>,
    spool: Spool,
    qmgr: QmgrHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut settings = Settings::new(config.borrow_and_update().clone());
    let mut slots = Arc::new(Semaphore::new(process_limit(&settings.config)));
    let per_client: Arc<Mutex<HashMap<IpAddr, u32>>> = Arc::default();
    let mut sessions = JoinSet::new();
    let mut saturated = false;
    let mut config_open = true;
    loop {
        // A dropped shutdown sender means the daemon is going away: stop too.
        if *shutdown.borrow() || shutdown.has_changed().is_err() {
            break;
        }
        let current = config.borrow().clone();
        if !Arc::ptr_eq(&current, &settings.config) {
            let new = current;
            let limit = process_limit(&new);
            if limit != process_limit(&settings.config) {
                // Running sessions keep the permits of the old semaphore.
                slots = Arc::new(Semaphore::new(limit));
            }
            settings = Settings::new(new);
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                saturated = false;
                p
            }
            Err(_) => {
                if !saturated {
                    crate::warn!(
                        "master",
                        "service \"{service}\" has reached its process limit \"{}\": new \
                         clients may experience noticeable delays",
                        process_limit(&settings.config)
                    );
                    saturated = true;
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => continue,
                    },
                    _ = shutdown.changed() => continue,
                    r = config.changed(), if config_open => {
                        config_open = r.is_ok();
                        continue;
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
                }
            }
        };
        // Ended sessions are reaped here rather than by waiting on the set: a wake-up of this
        // task at the end of every session would cost more than the session's last reply.
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => continue,
            r = config.changed(), if config_open => {
                config_open = r.is_ok();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::warn!("smtpd", "accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Tables changed on disk (`postern map build`): new sessions see the new contents.
        if settings.is_stale() {
            crate::info!("smtpd", "lookup table has changed -- reloading");
            settings = Settings::new(settings.config.clone());
        }
        let client = ClientInfo::new(peer.ip(), peer.port());
        let ctx = SessionContext {
            settings: settings.clone(),
            spool: spool.clone(),
            qmgr: qmgr.clone(),
            client,
            service: service.clone(),
            shutdown: Some(shutdown.clone()),
        };
        let guard = ClientSlot::take(&per_client, ctx.client.addr);
        sessions.spawn(run_session(stream, ctx, guard, permit));
    }
    while sessions.join_next().await.is_some() {}
}

fn process_limit(cfg: &Config) -> usize {
    usize::try_from(cfg.default_process_limit)
        .unwrap_or(usize::MAX)
        .clamp(1, Semaphore::MAX_PERMITS)
}

async fn run_session(
    stream: tokio::net::TcpStream,
    ctx: SessionContext,
    slot: ClientSlot,
    _permit: OwnedSemaphorePermit,
) {
    let cfg = &ctx.settings.config;
    let limit = cfg.smtpd_client_connection_count_limit;
    let exempt = ctx.settings.policy.is_mynetworks(ctx.client.addr);
    if limit > 0 && slot.count > limit && !exempt {
        crate::warn!(
            "smtpd",
            "Connection concurrency limit exceeded: {} from {} for service {}",
            slot.count,
            ctx.client.namaddr(),
            ctx.service
        );
        let reply = Reply::new(
            421,
            "4.7.0",
            format!(
                "{} Error: too many connections from {}",
                cfg.myhostname, ctx.client.addr
            ),
        );
        Session::new(stream, ctx).refuse(reply).await;
        return;
    }
    Session::new(stream, ctx).run().await;
}

/// A counted connection from one client address; the count drops when the session ends.
struct ClientSlot {
    table: Arc<Mutex<HashMap<IpAddr, u32>>>,
    addr: IpAddr,
    /// Connections from this address including this one.
    count: u32,
}

impl ClientSlot {
    fn take(table: &Arc<Mutex<HashMap<IpAddr, u32>>>, addr: IpAddr) -> ClientSlot {
        let count = match table.lock() {
            Ok(mut t) => {
                let c = t.entry(addr).or_insert(0);
                *c += 1;
                *c
            }
            Err(_) => 0,
        };
        ClientSlot {
            table: table.clone(),
            addr,
            count,
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            if let Some(c) = t.get_mut(&self.addr) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    t.remove(&self.addr);
                }
            }
        }
    }
}
