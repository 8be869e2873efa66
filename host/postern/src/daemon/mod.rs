//! The daemon: `postern run`. It does what Postfix's `master` does for a single process: owns the
//! pid file, binds the SMTP listeners, starts the queue manager, and turns signals into actions.
//!
//! | signal          | action                                                          |
//! |-----------------|-----------------------------------------------------------------|
//! | SIGTERM, SIGINT | stop accepting, let sessions and the queue manager finish (bounded by [`STOP_GRACE`] and [`QMGR_GRACE`]), remove the pid file |
//! | SIGHUP          | reload: re-read the configuration; running sessions keep theirs |
//! | SIGUSR1         | flush: retry deferred mail now (`postern queue flush`)          |
//! | SIGUSR2         | the spool changed behind the daemon's back: pick up `maildrop/` and rescan `incoming/` and `deferred/` (sent by `postern sendmail` and the `queue` admin commands) |
//!
//! Signals keep the command line simple (`postern stop|reload|queue flush` are a `kill`) and work
//! for any admin tool that already knows how to signal a pid file.
//!
//! Configuration is published to the listeners and the queue manager through
//! `watch::Sender<Arc<Config>>`; a reload replaces what new sessions see, never what a running
//! session already holds.

mod listen;
pub mod pidfile;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postern_config::{Config, LoadedConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::qmgr;
use crate::queue::Spool;
use crate::{error, info, smtpd, warn};
pub use listen::BindError;
use pidfile::PidFile;

/// How long a stop waits for SMTP sessions to finish before cutting them off. Nothing they
/// hold unfinished was acknowledged, so their clients retry.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stop waits for the queue manager, which bounds itself by
/// [`qmgr::SHUTDOWN_GRACE`] (deliveries still running then are redone at the next start).
pub const QMGR_GRACE: Duration = Duration::from_secs(qmgr::SHUTDOWN_GRACE.as_secs() + 1);

/// The longest a stop can take (`postern stop` waits a little longer than this).
pub const MAX_STOP_TIME: Duration = if QMGR_GRACE.as_secs() > STOP_GRACE.as_secs() {
    QMGR_GRACE
} else {
    STOP_GRACE
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the daemon was invoked; a reload reads the configuration the same way.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `None` = the embedded defaults.
    pub config_dir: Option<PathBuf>,
    /// `-o name=value` overrides, applied again on every reload.
    pub overrides: Vec<(String, String)>,
}

/// `postern run`: runs until SIGTERM/SIGINT. Builds its own multi-thread runtime.
pub fn run(loaded: LoadedConfig, config_dir: Option<PathBuf>) -> anyhow::Result<()> {
    run_with(
        loaded,
        Options {
            config_dir,
            overrides: Vec::new(),
        },
    )
}

/// [`run`] with command-line overrides that a reload must keep.
pub fn run_with(loaded: LoadedConfig, opts: Options) -> anyhow::Result<()> {
    // Tokio's own variable, read here because the inline limit below depends on it.
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("postern")
        .build()
        .context("cannot start the async runtime")?;
    // At least one worker always stays free for the other connections (src/blocking.rs).
    crate::blocking::set_inline_limit(workers.saturating_sub(1));
    let to_file = !loaded.main.maillog_file.is_empty();
    let result = start_and_serve(&rt, loaded, opts);
    // Sessions that ignored the stop are cut off here; nothing they held was acknowledged.
    rt.shutdown_timeout(Duration::from_secs(1));
    if let (Err(e), true) = (&result, to_file) {
        // The caller prints it on stderr; the mail log must show why the daemon is gone too.
        error!("master", "{}", crate::cli::describe(e));
    }
    result
}

fn start_and_serve(
    rt: &tokio::runtime::Runtime,
    loaded: LoadedConfig,
    opts: Options,
) -> anyhow::Result<()> {
    // Install the handlers first: from the moment the pid file names us, `postern stop` and
    // `postern reload` may signal us, and SIGHUP's default action would kill the daemon.
    let _enter = rt.enter();
    let signals = Signals::install().context("cannot install signal handlers")?;
    let started = prepare(&loaded)?;
    rt.block_on(serve(loaded, opts, started, signals))
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

/// Blocking start-up work done before serving: logging, spool, pid file.
struct Started {
    spool: Spool,
    pid_file: PidFile,
}

fn config_label(dir: &Option<PathBuf>) -> String {
    match dir {
        Some(d) => d.display().to_string(),
        None => "(embedded defaults)".to_string(),
    }
}

fn prepare(loaded: &LoadedConfig) -> anyhow::Result<Started> {
    let cfg = &loaded.main;
    crate::log::init(&cfg.myhostname, &cfg.maillog_file)
        .with_context(|| format!("cannot open maillog_file {}", cfg.maillog_file))?;
    for w in &loaded.warnings {
        warn!("master", "{w}");
    }
    // Plugins before tables: `wasm:` tables are opened from the loaded set.
    crate::plugins::for_config(cfg);
    crate::cleanup::tables::preload(cfg);
    let queue_dir = &cfg.queue_directory;
    let spool = Spool::open(queue_dir)
        .with_context(|| format!("cannot open queue_directory {}", queue_dir.display()))?;
    let pid_file = PidFile::acquire(&pidfile::pid_path(queue_dir))?;
    // Only now, with the pid file held, is no other daemon using tmp/.
    match spool.clean_tmp() {
        Ok(0) => {}
        Ok(n) => info!(
            "master",
            "removed {n} unfinished file(s) from {}/tmp",
            queue_dir.display()
        ),
        Err(e) => warn!("master", "cannot clean {}/tmp: {e}", queue_dir.display()),
    }
    spool.start_pool();
    Ok(Started { spool, pid_file })
}

/// One SMTP listener service and the channel that publishes its configuration.
struct Service {
    name: String,
    addrs: Vec<SocketAddr>,
    config: watch::Sender<Arc<Config>>,
}

async fn serve(
    loaded: LoadedConfig,
    opts: Options,
    started: Started,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let Started { spool, pid_file } = started;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Bind everything before starting anything, so a bad address fails the start cleanly.
    let mut bound = Vec::new();
    for listener in &loaded.listeners {
        let mut sockets = Vec::new();
        for &addr in &listener.addrs {
            match listen::bind(addr) {
                Ok(socket) => sockets.push(socket),
                Err(e) if e.ipv6_unavailable() && addr.ip().is_unspecified() => {
                    warn!("master", "{e}; IPv6 seems disabled on this host, skipping {addr} (set inet_protocols = ipv4 to silence this)");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if sockets.is_empty() {
            anyhow::bail!("listener {}: no address could be bound", listener.service);
        }
        bound.push(sockets);
    }

    let (main_tx, main_rx) = watch::channel(Arc::new(loaded.main.clone()));
    // Per-plugin counters for `postern status`.
    let stats_dir = loaded.main.queue_directory.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let dir = stats_dir.clone();
            let _ = tokio::task::spawn_blocking(move || crate::plugins::write_stats(&dir)).await;
        }
    });
    let (qmgr, mut qmgr_task) = qmgr::start(main_rx, spool.clone(), shutdown_rx.clone());

    let mut services = Vec::new();
    let mut listeners = JoinSet::new();
    for (listener, sockets) in loaded.listeners.into_iter().zip(bound) {
        let (tx, rx) = watch::channel(Arc::new(listener.config));
        for socket in sockets {
            let name = listener.service.clone();
            if let Ok(local) = socket.local_addr() {
                info!("master", "{name}: listening on {local}");
            }
            let serve = smtpd::serve(
                socket,
                name.clone(),
                rx.clone(),
                spool.clone(),
                qmgr.clone(),
                shutdown_rx.clone(),
            );
            listeners.spawn(async move {
                serve.await;
                name
            });
        }
        services.push(Service {
            name: listener.service,
            addrs: listener.addrs,
            config: tx,
        });
    }
    info!(
        "master",
        "daemon started -- version {VERSION}, configuration {}",
        config_label(&opts.config_dir)
    );

    let mut qmgr_done = false;
    let mut failure = None;
    let signo = loop {
        tokio::select! {
            _ = signals.term.recv() => break libc::SIGTERM,
            _ = signals.int.recv() => break libc::SIGINT,
            _ = signals.hup.recv() => reload(&opts, &services, &main_tx).await,
            _ = signals.usr1.recv() => qmgr.flush(),
            _ = signals.usr2.recv() => {
                qmgr.pickup();
                qmgr.rescan();
            }
            Some(ended) = listeners.join_next() => {
                let what = match ended {
                    Ok(name) => format!("listener {name} stopped unexpectedly"),
                    Err(e) => format!("a listener task failed: {e}"),
                };
                error!("master", "{what}; shutting down");
                failure = Some(what);
                break 0;
            }
            ended = &mut qmgr_task => {
                qmgr_done = true;
                let what = match ended {
                    Ok(()) => "the queue manager stopped unexpectedly".to_string(),
                    Err(e) => format!("the queue manager failed: {e}"),
                };
                error!("master", "{what}; shutting down");
                failure = Some(what);
                break 0;
            }
        }
    };
    if signo != 0 {
        info!("master", "terminating on signal {signo}");
    }
    let _ = shutdown_tx.send(true);
    let (sessions_ended, qmgr_ended) = tokio::join!(
        tokio::time::timeout(STOP_GRACE, async {
            while listeners.join_next().await.is_some() {}
        }),
        tokio::time::timeout(QMGR_GRACE, async {
            if !qmgr_done {
                let _ = (&mut qmgr_task).await;
            }
        }),
    );
    if sessions_ended.is_err() {
        warn!(
            "master",
            "SMTP sessions still open after {}s; closing them (their unfinished mail was not \
             acknowledged, so the clients will retry)",
            STOP_GRACE.as_secs()
        );
        listeners.abort_all();
    }
    if qmgr_ended.is_err() {
        warn!(
            "master",
            "the queue manager did not stop within {}s; deliveries in progress will be redone \
             at the next start",
            QMGR_GRACE.as_secs()
        );
        qmgr_task.abort();
    }
    drop(pid_file);
    match failure {
        Some(what) => Err(anyhow::anyhow!(what)),
        None => Ok(()),
    }
}

/// SIGHUP: re-read the configuration the way it was first read; publish it on success, keep the
/// running one (and say why) on failure.
async fn reload(opts: &Options, services: &[Service], main_tx: &watch::Sender<Arc<Config>>) {
    let dir = opts.config_dir.clone();
    let overrides = opts.overrides.clone();
    let loaded =
        tokio::task::spawn_blocking(move || postern_config::load_with(dir.as_deref(), &overrides))
            .await;
    let new = match loaded {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => {
            if e.diagnostics().is_empty() {
                error!("master", "reload: {e}");
            }
            for d in e.diagnostics() {
                error!("master", "reload: {d}");
            }
            warn!(
                "master",
                "reload failed; still running with the previous configuration"
            );
            return;
        }
        Err(e) => {
            error!("master", "reload: the configuration loader failed: {e}");
            return;
        }
    };
    for w in &new.warnings {
        warn!("master", "{w}");
    }
    let old = main_tx.borrow().clone();
    for (what, changed) in [
        (
            "queue_directory",
            old.queue_directory != new.main.queue_directory,
        ),
        ("maillog_file", old.maillog_file != new.main.maillog_file),
    ] {
        if changed {
            warn!(
                "master",
                "reload: a new {what} takes effect only after a restart"
            );
        }
    }
    let new_names: Vec<String> = new.listeners.iter().map(|l| l.service.clone()).collect();
    for listener in new.listeners {
        match services.iter().find(|s| s.name == listener.service) {
            Some(service) => {
                if service.addrs != listener.addrs {
                    warn!(
                        "master",
                        "reload: listener {} now names other addresses; restart postern to apply that",
                        listener.service
                    );
                }
                service.config.send_replace(Arc::new(listener.config));
            }
            None => warn!(
                "master",
                "reload: new listener {} starts only after a restart", listener.service
            ),
        }
    }
    for service in services {
        if !new_names.contains(&service.name) {
            warn!(
                "master",
                "reload: listener {} was removed; it keeps running until a restart", service.name
            );
        }
    }
    let main = Arc::new(new.main);
    let tables_cfg = main.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || {
        crate::plugins::for_config(&tables_cfg);
        crate::cleanup::tables::preload(&tables_cfg)
    })
    .await
    {
        error!("master", "reload: opening lookup tables failed: {e}");
    }
    main_tx.send_replace(main);
    info!(
        "master",
        "reload -- version {VERSION}, configuration {}",
        config_label(&opts.config_dir)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reload_publishes_the_new_config_and_keeps_the_old_one_on_error() {
        let dir = std::env::temp_dir().join(format!(
            "postern-reload-{}-{}",
            std::process::id(),
            crate::time::now_micros()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("master.cf"),
            "127.0.0.1:2599 inet n - n - - smtpd\n",
        )
        .expect("write");
        std::fs::write(dir.join("main.cf"), "myhostname = one.example\n").expect("write");
        let opts = Options {
            config_dir: Some(dir.clone()),
            overrides: vec![("mydomain".into(), "kept.example".into())],
        };
        let loaded = postern_config::load_with(Some(&dir), &opts.overrides).expect("load");
        let (main_tx, main_rx) = watch::channel(Arc::new(loaded.main.clone()));
        // Per-plugin counters for `postern status`.
        let stats_dir = loaded.main.queue_directory.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                let dir = stats_dir.clone();
                let _ =
                    tokio::task::spawn_blocking(move || crate::plugins::write_stats(&dir)).await;
            }
        });
        let services: Vec<Service> = loaded
            .listeners
            .into_iter()
            .map(|l| Service {
                name: l.service,
                addrs: l.addrs,
                config: watch::channel(Arc::new(l.config)).0,
            })
            .collect();
        let smtp_rx = services[0].config.subscribe();
        // A session that started before the reload keeps its epoch.
        let running_session = smtp_rx.borrow().clone();

        std::fs::write(dir.join("main.cf"), "myhostname = two.example\n").expect("write");
        reload(&opts, &services, &main_tx).await;
        assert_eq!(main_rx.borrow().myhostname, "two.example");
        assert_eq!(smtp_rx.borrow().myhostname, "two.example");
        assert_eq!(
            main_rx.borrow().mydomain,
            "kept.example",
            "-o survives a reload"
        );
        assert_eq!(running_session.myhostname, "one.example");

        std::fs::write(dir.join("main.cf"), "message_size_limit = lots\n").expect("write");
        reload(&opts, &services, &main_tx).await;
        assert_eq!(main_rx.borrow().myhostname, "two.example");
        assert_eq!(smtp_rx.borrow().myhostname, "two.example");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
