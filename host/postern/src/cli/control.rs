//! `postern start|stop|reload|status|check` (postfix(1)).
//!
//! The running daemon is found through its pid file (`$queue_directory/pid/master.pid`, see
//! [`crate::daemon::pidfile`]) and controlled with signals: SIGTERM stops it, SIGHUP reloads it,
//! SIGUSR1 flushes the queue, SIGUSR2 tells it the spool changed (new `maildrop/` files, or
//! messages moved by `queue hold|release|requeue`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use postern_config::{Config, LoadedConfig};

use super::{exit, CliError, CliResult, ConfigSource};
use crate::daemon::pidfile::{self, pid_path};
use crate::daemon::MAX_STOP_TIME;

/// How long `start` waits for the daemon to accept connections.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long `stop` waits: the daemon's own bound plus time to exit.
const STOP_WAIT: Duration = Duration::from_secs(MAX_STOP_TIME.as_secs() + 5);

/// The pid of the daemon running on `queue_directory`, if one runs.
pub fn daemon_pid(queue_directory: &Path) -> Option<i32> {
    pidfile::running(&pid_path(queue_directory)).ok().flatten()
}

/// Signals the daemon if it runs; returns its pid when the signal was delivered.
pub fn signal_daemon(queue_directory: &Path, sig: libc::c_int) -> Option<i32> {
    let pid = daemon_pid(queue_directory)?;
    // SAFETY: plain kill(2); `pid` is positive (pidfile never returns 0 or negative pids, which
    // would address process groups).
    (pid > 0 && unsafe { libc::kill(pid, sig) } == 0).then_some(pid)
}

/// Signals the running daemon or explains why not.
fn send(queue_dir: &Path, sig: libc::c_int) -> Result<i32, CliError> {
    let pid = daemon_pid(queue_dir).ok_or_else(|| not_running(queue_dir))?;
    // SAFETY: as in `signal_daemon`.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let err = std::io::Error::last_os_error();
        let hint = if err.kind() == std::io::ErrorKind::PermissionDenied {
            " (run this as the user that started postern)"
        } else {
            ""
        };
        return Err(CliError::from(
            anyhow::Error::new(err).context(format!("cannot signal the daemon (pid {pid}){hint}")),
        ));
    }
    Ok(pid)
}

fn not_running(queue_dir: &Path) -> CliError {
    CliError::new(
        exit::FAILURE,
        anyhow::anyhow!(
            "the mail system is not running (no live pid file in {}/pid)",
            queue_dir.display()
        ),
    )
}

pub fn stop(queue_dir: &Path) -> CliResult {
    let pid = send(queue_dir, libc::SIGTERM)?;
    println!("postern: stopping the mail system (pid {pid})");
    let deadline = Instant::now() + STOP_WAIT;
    while daemon_pid(queue_dir) == Some(pid) {
        if Instant::now() > deadline {
            return Err(CliError::from(anyhow::anyhow!(
                "pid {pid} did not stop within {}s; it may still be finishing deliveries (see \
                 its log), or force it with kill -9 {pid}",
                STOP_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("postern: stopped");
    Ok(exit::OK)
}

pub fn reload(queue_dir: &Path) -> CliResult {
    let pid = send(queue_dir, libc::SIGHUP)?;
    println!(
        "postern: refreshing the mail system (pid {pid}); the log says whether the new \
         configuration was accepted"
    );
    Ok(exit::OK)
}

pub fn status(source: &ConfigSource, queue_dir: &Path) -> CliResult {
    let pid = daemon_pid(queue_dir);
    match pid {
        Some(pid) => println!("postern: the mail system is running: PID: {pid}"),
        None => println!("postern: the mail system is not running"),
    }
    println!("configuration: {}", source.describe());
    println!("queue_directory: {}", queue_dir.display());
    for (dir, n) in super::queue::counts(queue_dir)? {
        println!("  {:<9} {n}", dir.name());
    }
    if pid.is_some() {
        if let Some(table) = crate::plugins::read_stats(queue_dir) {
            println!("plugins:");
            print!("{table}");
        }
    }
    Ok(if pid.is_some() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// Where `start` sends the daemon's standard output and error.
fn start_log_path(cfg: &Config) -> PathBuf {
    if cfg.maillog_file.is_empty() {
        cfg.queue_directory.join("postern.log")
    } else {
        PathBuf::from(&cfg.maillog_file)
    }
}

pub fn start(
    source: &ConfigSource,
    overrides: &[(String, String)],
    loaded: &LoadedConfig,
) -> CliResult {
    let cfg = &loaded.main;
    if let Some(pid) = daemon_pid(&cfg.queue_directory) {
        return Err(CliError::from(anyhow::anyhow!(
            "the mail system is already running (pid {pid})"
        )));
    }
    crate::queue::Spool::open(&cfg.queue_directory).with_context(|| {
        format!(
            "cannot create queue_directory {}",
            cfg.queue_directory.display()
        )
    })?;
    let log_path = start_log_path(cfg);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the log file {}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the postern executable")?;
    let mut cmd = Command::new(exe);
    if let Some(dir) = &source.dir {
        cmd.arg("-c").arg(dir);
    }
    for (name, value) in overrides {
        cmd.arg("-o").arg(format!("{name}={value}"));
    }
    cmd.arg("run")
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .context("cannot duplicate the log file handle")?,
        )
        .stderr(log);
    // SAFETY: setsid is async-signal-safe, as required between fork and exec. A new session
    // detaches the daemon from this terminal (no SIGHUP when it closes).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start `postern run`")?;
    let pid = child.id() as i32;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait().context("cannot watch the daemon")? {
            return Err(CliError::from(anyhow::anyhow!(
                "the daemon exited during start-up ({status}); {} says:\n{}",
                log_path.display(),
                log_tail(&log_path, log_start)
            )));
        }
        if daemon_pid(&cfg.queue_directory) == Some(pid) && listeners_accept(loaded) {
            println!("postern: started (pid {pid})");
            return Ok(exit::OK);
        }
        if Instant::now() > deadline {
            return Err(CliError::from(anyhow::anyhow!(
                "the daemon (pid {pid}) is running but did not accept connections within {}s; \
                 stop it with `postern stop`. {} says:\n{}",
                START_WAIT.as_secs(),
                log_path.display(),
                log_tail(&log_path, log_start)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when every listener accepts a connection on at least one of its addresses (an address
/// such as `[::]` may be skipped by the daemon when IPv6 is off). Port 0 cannot be probed.
fn listeners_accept(loaded: &LoadedConfig) -> bool {
    loaded.listeners.iter().all(|l| {
        l.addrs.iter().any(|addr| {
            if addr.port() == 0 {
                return true;
            }
            let target = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
                }
                IpAddr::V6(ip) if ip.is_unspecified() => {
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
                }
                _ => *addr,
            };
            probe(target)
        })
    })
}

/// Connects and, to leave a clean `connect`/`disconnect` pair in the log rather than a "lost
/// connection", waits for the greeting and says QUIT. Accepting the connection is what counts.
fn probe(target: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 512];
    if matches!(stream.read(&mut greeting), Ok(n) if n > 0) {
        let _ = stream.write_all(b"QUIT\r\n");
        let _ = stream.read(&mut greeting);
    }
    true
}

/// The last lines the daemon wrote since `from` (for a failed start).
fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(1 << 20).read_to_string(&mut text);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        "  (nothing)".to_string()
    } else {
        tail.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `postern check`: load the configuration and report every problem; never listens.
pub fn check(source: &ConfigSource, overrides: &[(String, String)]) -> CliResult {
    println!("configuration: {}", source.describe());
    let loaded = match postern_config::check_with(source.dir.as_deref(), overrides) {
        Ok(loaded) => loaded,
        Err((e, warnings)) => {
            let check_errors = print_warnings(&warnings);
            let diags = e.diagnostics();
            if diags.is_empty() {
                println!("error: {e}");
            }
            for d in diags {
                println!("error: {d}");
            }
            println!(
                "postern: the configuration has {} error(s)",
                diags.len().max(1) + check_errors
            );
            return Ok(exit::FAILURE);
        }
    };
    // Problems the daemon survives (it answers 451 4.3.5 instead) but `check` must not pass,
    // such as an unknown restriction name.
    let mut errors = print_warnings(&loaded.warnings);
    let cfg = &loaded.main;
    let mut dirs: Vec<(&str, PathBuf)> = vec![("queue_directory", cfg.queue_directory.clone())];
    if !cfg.mail_spool_directory.is_empty() {
        dirs.push((
            "mail_spool_directory",
            PathBuf::from(&cfg.mail_spool_directory),
        ));
    }
    if !cfg.maillog_file.is_empty() {
        let parent = Path::new(&cfg.maillog_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        dirs.push(("maillog_file's directory", parent));
    }
    for (what, dir) in dirs {
        if let Err(problem) = check_dir(&dir) {
            println!("error: {what} {}: {problem}", dir.display());
            errors += 1;
        }
    }
    // Plugins first: `wasm:` tables are opened from the loaded set.
    errors += check_plugins(cfg);
    let stdout = std::io::stdout();
    let tables = super::check_tables::check_tables(cfg, &mut stdout.lock())
        .map_err(|e| CliError::new(exit::IOERR, e.into()))?;
    errors += tables.errors;
    errors += check_tls(cfg, &loaded.listeners);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    for l in &loaded.listeners {
        for addr in &l.addrs {
            println!("listener {}: {addr}", l.service);
            if addr.port() < 1024 && addr.port() != 0 && !root {
                println!(
                    "warning: listener {}: port {} needs root; `postern run` as this user will \
                     fail (use a port above 1023 in master.cf, or run as root)",
                    l.service,
                    addr.port()
                );
            }
        }
    }
    if errors > 0 {
        println!("postern: the configuration has {errors} error(s)");
        return Ok(exit::FAILURE);
    }
    println!(
        "postern: configuration OK ({} warning(s))",
        loaded.warnings.len() + tables.warnings
    );
    Ok(exit::OK)
}

/// Loads smtpd's certificates as each service would (main.cf, then every master.cf service with
/// its `-o` overrides, each distinct problem once). The daemon survives a broken certificate by
/// disabling TLS, which `check` must not let pass. Returns how many errors it printed.
fn check_tls(cfg: &postern_config::Config, listeners: &[postern_config::Listener]) -> usize {
    let services = std::iter::once(("main.cf", cfg))
        .chain(listeners.iter().map(|l| (l.service.as_str(), &l.config)));
    let mut seen = std::collections::HashSet::new();
    for (service, c) in services {
        if !crate::tls::server::wanted(&c.smtpd_tls) {
            continue;
        }
        if let Err(e) = crate::tls::server::ServerTls::new(&c.smtpd_tls) {
            let e = e.to_string();
            if seen.insert(e.clone()) {
                println!("error: {service}: cannot load TLS certificate: {e}");
            }
        }
    }
    seen.len()
}

/// Loads `$config_directory/plugins.toml` and compiles its components as the daemon would,
/// and checks that every `check_policy_service wasm:NAME` names a policy plugin there.
/// Returns how many errors it printed.
fn check_plugins(cfg: &postern_config::Config) -> usize {
    let set = match &cfg.config_dir {
        Some(dir) => crate::plugins::PluginSet::load(dir, Some(crate::plugins::cache_dir(cfg))),
        None => crate::plugins::PluginSet::default(),
    };
    let set = std::sync::Arc::new(set);
    crate::plugins::set_latest(set.clone());
    let mut errors = 0;
    for e in &set.errors {
        println!("error: {e}");
        errors += 1;
    }
    for p in set.plugins() {
        let b = p.binding();
        let roles: Vec<&str> = [
            (p.policy.is_some(), "policy"),
            (p.lookup.is_some(), "lookup"),
            (p.filter.is_some(), "filter"),
            (p.transport.is_some(), "transport"),
        ]
        .iter()
        .filter(|(has, _)| *has)
        .map(|(_, r)| *r)
        .collect();
        println!(
            "plugin {}: {} (roles: {}; instances: {})",
            b.name,
            b.component.display(),
            roles.join(", "),
            p.instance_policy()
        );
    }
    for m in &cfg.smtpd_milters {
        if m.starts_with("rhai:") {
            continue;
        }
        match m.strip_prefix("wasm:") {
            Some(name) if set.filter(name).is_some() => {}
            Some(name) => {
                println!(
                    "error: smtpd_milters: wasm:{name}: no [[plugin]] \"{name}\" with the filter \
                     role in plugins.toml"
                );
                errors += 1;
            }
            None => {
                println!(
                    "error: smtpd_milters: \"{m}\": only wasm:NAME and rhai:PATH filters are \
                     supported (the Postfix milter protocol is not); mail would be deferred"
                );
                errors += 1;
            }
        }
    }
    if let Some(name) = cfg.content_filter.trim().strip_prefix("wasm:") {
        let name = name.split(':').next().unwrap_or(name);
        if set.filter(name).is_none() && set.transport(name).is_none() {
            println!(
                "error: content_filter: wasm:{name}: no [[plugin]] \"{name}\" with the filter or \
                 transport role in plugins.toml"
            );
            errors += 1;
        }
    }
    for (place, name) in crate::restrictions::plugin_references(cfg) {
        if set.bindings().get(&name).is_none() {
            println!(
                "error: {place}: check_policy_service wasm:{name}: no [[plugin]] named \"{name}\" \
                 in plugins.toml"
            );
            errors += 1;
        }
    }
    errors
}

/// Prints load diagnostics; those that must fail `postern check` as errors. Returns how many
/// errors it printed.
fn print_warnings(warnings: &[postern_config::Diagnostic]) -> usize {
    let mut errors = 0;
    for w in warnings {
        if w.fails_check {
            println!("error: {w}");
            errors += 1;
        } else {
            println!("warning: {w}");
        }
    }
    errors
}

/// Whether `dir` exists as a writable directory or could be created: the nearest existing
/// ancestor must be a writable directory.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let mut p = dir;
    loop {
        let probe = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        match fs::metadata(probe) {
            Ok(m) if m.is_dir() => {
                return if writable(probe) {
                    Ok(())
                } else if probe == dir {
                    Err("exists but is not writable by this user".to_string())
                } else {
                    Err(format!(
                        "does not exist and cannot be created: {} is not writable by this user",
                        probe.display()
                    ))
                };
            }
            Ok(_) => return Err(format!("{} exists but is not a directory", probe.display())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match p.parent() {
                    Some(parent) => p = parent,
                    None => return Err("no existing parent directory".to_string()),
                }
            }
            Err(e) => return Err(format!("{}: {e}", probe.display())),
        }
    }
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_checks() {
        let base = std::env::temp_dir().join(format!("postern-check-{}", std::process::id()));
        fs::create_dir_all(&base).expect("mkdir");
        assert_eq!(check_dir(&base), Ok(()));
        assert_eq!(check_dir(&base.join("a/b/c")), Ok(()));
        let file = base.join("file");
        fs::write(&file, "x").expect("write");
        let err = check_dir(&file.join("sub")).expect_err("under a file");
        assert!(err.contains("is not a directory"), "{err}");
        assert_eq!(check_dir(Path::new("relative/dir")), Ok(()));
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn log_tail_shows_only_new_lines() {
        let path = std::env::temp_dir().join(format!("postern-tail-{}.log", std::process::id()));
        fs::write(&path, "old line\n").expect("write");
        let from = fs::metadata(&path).expect("meta").len();
        let mut text = String::from("old line\n");
        for i in 0..30 {
            text.push_str(&format!("line {i}\n"));
        }
        fs::write(&path, text).expect("write");
        let tail = log_tail(&path, from);
        assert!(tail.starts_with("  line 10\n"), "{tail}");
        assert!(tail.ends_with("  line 29"));
        assert!(!tail.contains("old line"));
        let _ = fs::remove_file(&path);
    }
}
