//! Delivery to a command (local(8) "EXTERNAL COMMAND DELIVERY", for `|command` aliases).
//!
//! The command runs under `/bin/sh -c` with the message on standard input, preceded by a
//! `From sender date` envelope line, `Return-Path:` and `Delivered-To:` (as local(8) writes it),
//! LF line endings. The environment carries local(8)'s variables (`SENDER`, `RECIPIENT`,
//! `LOCAL`, `DOMAIN`, `EXTENSION`, `ORIGINAL_RECIPIENT`, `SHELL`, `PATH`); nothing else of the
//! daemon's environment is passed on.
//!
//! The exit status decides, with sendmail's `sysexits.h` meaning: 0 delivered; 75
//! (`EX_TEMPFAIL`) deferred; any other status bounced with the command's standard error (first
//! 1000 bytes) in the reason; death by a signal deferred. A command that runs longer than
//! [`TIME_LIMIT`] (local(8) `command_time_limit`) is killed and deferred.
//!
//! The command runs with the daemon's own uid: Postern does not switch to the alias owner.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern_proto::EnhancedCode;

use super::Outcome;

/// Postfix `command_time_limit` default.
pub const TIME_LIMIT: Duration = Duration::from_secs(1000);

/// sysexits.h `EX_TEMPFAIL`.
pub const EX_TEMPFAIL: i32 = 75;

/// Who the message is for, for the command's environment.
pub struct Env<'a> {
    pub sender: &'a str,
    pub recipient: &'a str,
    pub original: &'a str,
    pub delimiter: &'a str,
}

/// Runs `command` with `message` (already in LF form, envelope line included) on its input.
pub fn deliver(command: &str, message: &[u8], env: &Env<'_>, limit: Duration) -> Outcome {
    let relay = "local";
    let (local, domain) = crate::address::split_address(env.recipient);
    let (user, extension) = match local.find(|c| env.delimiter.contains(c)) {
        Some(i) if i > 0 && !env.delimiter.is_empty() => (&local[..i], &local[i + 1..]),
        _ => (local, ""),
    };
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .env("SENDER", env.sender)
        .env("RECIPIENT", env.recipient)
        .env("ORIGINAL_RECIPIENT", env.original)
        .env("LOCAL", local)
        .env("USER", user)
        .env("DOMAIN", domain.unwrap_or(""))
        .env("EXTENSION", extension)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                relay,
                format!("cannot run command \"{command}\": {e}"),
            )
        }
    };
    // Write on another thread: a command that does not read its input must not block us, and
    // one that stops reading early (EPIPE) is not an error by itself (local(8) ignores it).
    let input = child.stdin.take();
    let data = message.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = input {
            let _ = stdin.write_all(&data);
        }
    });
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(err) = stderr.as_mut() {
            let _ = err.take(64 * 1024).read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let _ = writer.join();
    let err = reader.join().unwrap_or_default();
    let mut err = String::from_utf8_lossy(&err[..err.len().min(1000)]).into_owned();
    err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(status) = status else {
        return Outcome::defer(
            EnhancedCode::new(4, 3, 0),
            relay,
            format!("command \"{command}\" killed: time limit exceeded"),
        );
    };
    match status.code() {
        Some(0) => Outcome::sent(relay, format!("delivered to command: {command}")),
        Some(EX_TEMPFAIL) => Outcome::defer(
            EnhancedCode::new(4, 3, 0),
            relay,
            format!("temporary failure. Command output: {err}"),
        ),
        Some(code) => Outcome::bounce(
            EnhancedCode::new(5, 3, 0),
            relay,
            format!("Command died with status {code}: \"{command}\". Command output: {err}"),
        ),
        None => Outcome::defer(
            EnhancedCode::new(4, 3, 0),
            relay,
            format!("Command died with a signal: \"{command}\". Command output: {err}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env<'static> {
        Env {
            sender: "a@example.org",
            recipient: "list+x@example.com",
            original: "list+x@example.com",
            delimiter: "+",
        }
    }

    #[test]
    fn exit_codes_decide() {
        let o = deliver("cat >/dev/null; exit 0", b"hi\n", &env(), TIME_LIMIT);
        assert!(o.is_sent(), "{o:?}");
        let o = deliver("echo busy >&2; exit 75", b"hi\n", &env(), TIME_LIMIT);
        assert!(o.is_deferred());
        assert!(o.text.contains("busy"));
        let o = deliver(
            "echo no such list >&2; exit 67",
            b"hi\n",
            &env(),
            TIME_LIMIT,
        );
        assert!(o.is_bounced());
        assert_eq!(o.status.to_string(), "5.3.0");
        assert!(
            o.text.contains("status 67") && o.text.contains("no such list"),
            "{}",
            o.text
        );
        let o = deliver("sleep 5", b"", &env(), Duration::from_millis(100));
        assert!(o.is_deferred());
        assert!(o.text.contains("time limit"));
    }

    #[test]
    fn environment_and_input_reach_the_command() {
        let dir = std::env::temp_dir().join(format!("postern-pipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("out");
        let cmd = format!(
            "{{ echo \"$SENDER $RECIPIENT $EXTENSION $USER\"; cat; }} > {}",
            out.display()
        );
        let o = deliver(&cmd, b"line1\nline2\n", &env(), TIME_LIMIT);
        assert!(o.is_sent(), "{o:?}");
        assert_eq!(
            std::fs::read_to_string(&out).expect("out"),
            "a@example.org list+x@example.com x list\nline1\nline2\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
