//! `master.cf` syntax (master(5)) and the mapping of `smtpd` inet services to listen addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::maincf::{logical_lines, LogicalLine};
use crate::{ConfigError, Diagnostic};

/// The master.cf service type (second field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// `inet`: a TCP listener; the service name is `[host:]port`.
    Inet,
    /// `unix`: a UNIX-domain stream socket (Postfix-internal services; ignored by Postern).
    Unix,
    /// `pass`: a descriptor-passing socket (e.g. behind postscreen; ignored by Postern).
    Pass,
    /// `fifo`: a named pipe (ignored by Postern).
    Fifo,
    /// Any other type as written (e.g. `unix-dgram`).
    Other(String),
}

impl ServiceKind {
    fn parse(s: &str) -> ServiceKind {
        match s {
            "inet" => ServiceKind::Inet,
            "unix" => ServiceKind::Unix,
            "pass" => ServiceKind::Pass,
            "fifo" => ServiceKind::Fifo,
            other => ServiceKind::Other(other.to_string()),
        }
    }

    /// The type as written in master.cf.
    pub fn as_str(&self) -> &str {
        match self {
            ServiceKind::Inet => "inet",
            ServiceKind::Unix => "unix",
            ServiceKind::Pass => "pass",
            ServiceKind::Fifo => "fifo",
            ServiceKind::Other(s) => s,
        }
    }
}

/// One master.cf entry:
/// `service type private unpriv chroot wakeup maxproc command [args...]`.
///
/// `args` holds the command arguments except `-o` overrides, which are split into
/// `overrides` as `(name, value)` pairs in order (values unexpanded). Both `-o name=value` and
/// the Postfix 3.0 form `-o { name = value with spaces }` are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub kind: ServiceKind,
    pub command: String,
    pub args: Vec<String>,
    pub overrides: Vec<(String, String)>,
    pub file: PathBuf,
    pub line: usize,
    /// The maxproc field: `None` for `-` (use `default_process_limit`); `Some(0)` means no
    /// limit (master(5)).
    pub maxproc: Option<u32>,
}

impl Service {
    /// Whether Postern runs this service as an SMTP listener (`inet` type, command `smtpd`).
    pub fn is_smtp_listener(&self) -> bool {
        self.kind == ServiceKind::Inet && self.command == "smtpd"
    }
}

/// Parse master.cf. Every malformed line is reported (file:line): fewer than 8 fields, a
/// private/unpriv/chroot field other than `y`, `n` or `-`, a bad wakeup or maxproc field, an
/// `-o` without `name=value`, or an unbalanced `{`. Whether inet service names are valid
/// listen addresses is checked by [`load`](crate::load).
pub fn parse_master_cf(text: &str, file: &Path) -> Result<Vec<Service>, ConfigError> {
    let (services, errors) = parse_master_lenient(text, file);
    if errors.is_empty() {
        Ok(services)
    } else {
        Err(ConfigError::from_diagnostics(errors))
    }
}

pub(crate) fn parse_master_lenient(text: &str, file: &Path) -> (Vec<Service>, Vec<Diagnostic>) {
    let (lines, orphans) = logical_lines(text);
    let mut errors: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|line| {
            Diagnostic::new(
                file,
                line,
                "continuation line without a service to continue",
            )
            .with_hint(
                "a line that starts with whitespace continues the previous service entry; \
                     remove the leading whitespace",
            )
        })
        .collect();
    let mut services = Vec::new();
    for LogicalLine { line, text } in lines {
        match parse_entry(&text, file, line) {
            Ok(s) => services.push(s),
            Err((message, hint)) => {
                errors.push(Diagnostic::new(file, line, message).with_hint(hint));
            }
        }
    }
    (services, errors)
}

const FIELDS_HINT: &str = "master.cf entries have the form \
    \"service type private unpriv chroot wakeup maxproc command [args]\", \
    e.g. \"smtp inet n - y - - smtpd\"";

fn parse_entry(text: &str, file: &Path, line: usize) -> Result<Service, (String, String)> {
    let tokens = tokenize(text)?;
    if tokens.len() < 8 {
        return Err((
            format!(
                "expected at least 8 fields, found {}: \"{text}\"",
                tokens.len()
            ),
            FIELDS_HINT.to_string(),
        ));
    }
    let (fields, rest) = tokens.split_at(7);
    for (label, value) in [
        ("private", &fields[2]),
        ("unpriv", &fields[3]),
        ("chroot", &fields[4]),
    ] {
        if !matches!(value.as_str(), "y" | "n" | "-") {
            return Err((
                format!(
                    "invalid {label} field \"{value}\" for service {}",
                    fields[0]
                ),
                "use y, n or - (default)".to_string(),
            ));
        }
    }
    let wakeup = fields[5].strip_suffix('?').unwrap_or(&fields[5]);
    if fields[5] != "-" && (wakeup.is_empty() || !wakeup.bytes().all(|b| b.is_ascii_digit())) {
        return Err((
            format!(
                "invalid wakeup field \"{}\" for service {}",
                fields[5], fields[0]
            ),
            "use a number of seconds, optionally followed by ?, or - (no wakeup)".to_string(),
        ));
    }
    let maxproc = match fields[6].as_str() {
        "-" => None,
        m => match m.parse::<u32>() {
            Ok(n) if m.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                return Err((
                    format!("invalid maxproc field \"{m}\" for service {}", fields[0]),
                    "use a process count (0 = no limit) or - (default_process_limit)".to_string(),
                ))
            }
        },
    };
    let (command, args) = rest.split_first().ok_or_else(|| {
        (
            format!("missing command: \"{text}\""),
            FIELDS_HINT.to_string(),
        )
    })?;
    let mut plain = Vec::new();
    let mut overrides = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let setting = if arg == "-o" {
            match it.next() {
                Some(s) => s.as_str(),
                None => {
                    return Err((
                        "-o without name=value".to_string(),
                        OVERRIDE_HINT.to_string(),
                    ))
                }
            }
        } else if let Some(s) = arg.strip_prefix("-o") {
            s
        } else {
            plain.push(arg.clone());
            continue;
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err((
                format!("invalid -o argument \"{setting}\""),
                OVERRIDE_HINT.to_string(),
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err((
                format!("invalid -o argument \"{setting}\""),
                OVERRIDE_HINT.to_string(),
            ));
        }
        overrides.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Service {
        name: fields[0].clone(),
        kind: ServiceKind::parse(&fields[1]),
        command: command.clone(),
        args: plain,
        overrides,
        file: file.to_path_buf(),
        line,
        maxproc,
    })
}

const OVERRIDE_HINT: &str = "write -o name=value, or -o { name = value } for values with spaces";

/// Split a master.cf logical line into fields. `{ text }` is one field (outer braces and the
/// whitespace just inside them removed), as in Postfix 3.0 and later.
fn tokenize(text: &str) -> Result<Vec<String>, (String, String)> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('{') {
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                return Err((
                    format!("unbalanced '{{' in \"{text}\""),
                    "close every { with }".to_string(),
                ));
            };
            tokens.push(rest[1..end].trim().to_string());
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                return Err((
                    format!("text directly after '}}' in \"{text}\""),
                    "separate a { ... } argument from the next one with whitespace".to_string(),
                ));
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            tokens.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

/// The TCP port of an inet service port field: a decimal number or one of the service names
/// `smtp` (25), `submission` (587), `smtps`/`submissions` (465) and `lmtp` (24). Postern does
/// not read `/etc/services`. Port 0 (an OS-chosen port, useful in tests) is allowed.
pub fn service_port(port: &str) -> Option<u16> {
    match port {
        "smtp" => Some(25),
        "submission" => Some(587),
        "smtps" | "submissions" => Some(465),
        "lmtp" => Some(24),
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
        _ => None,
    }
}

/// Which IP protocols `inet_protocols` enables: (IPv4, IPv6).
pub(crate) fn protocol_flags(protocols: &[String]) -> (bool, bool) {
    let has = |p: &str| protocols.iter().any(|x| x == p || x == "all");
    (has("ipv4"), has("ipv6"))
}

/// The addresses one `inet_interfaces` entry stands for: `all` → 0.0.0.0 and ::,
/// `loopback-only` (or `localhost`) → 127.0.0.1 and ::1 (each subject to `inet_protocols`),
/// or an IP address (optionally in brackets). `None` if the entry is none of these.
pub(crate) fn interface_addrs(entry: &str, v4: bool, v6: bool) -> Option<Vec<IpAddr>> {
    let pick = |a: IpAddr, b: IpAddr| {
        let mut out = Vec::new();
        if v4 {
            out.push(a);
        }
        if v6 {
            out.push(b);
        }
        out
    };
    match entry.to_ascii_lowercase().as_str() {
        "all" => Some(pick(
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv6Addr::UNSPECIFIED.into(),
        )),
        "loopback-only" | "localhost" => {
            Some(pick(Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()))
        }
        other => {
            let bare = other
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(other);
            bare.parse::<IpAddr>().ok().map(|ip| vec![ip])
        }
    }
}

/// The socket addresses an `smtpd` inet service listens on. The service name is
/// `host:port`, `[ipv6]:port` or `port`; without a host the listener binds every address of
/// `inet_interfaces` (master(5)). Host names other than `localhost` are not resolved.
pub(crate) fn listen_addrs(
    service: &str,
    interfaces: &[String],
    protocols: &[String],
) -> Result<Vec<SocketAddr>, (String, String)> {
    let (v4, v6) = protocol_flags(protocols);
    let (host, port) = if let Some(rest) = service.strip_prefix('[') {
        let Some((h, p)) = rest.split_once("]:") else {
            return Err((
                format!("invalid inet service name \"{service}\""),
                "write [ipv6-address]:port, e.g. [::1]:2525".to_string(),
            ));
        };
        (Some(h), p)
    } else {
        match service.rsplit_once(':') {
            Some((h, p)) => (Some(h), p),
            None => (None, service),
        }
    };
    let Some(port) = service_port(port) else {
        return Err((
            format!("invalid port \"{port}\" in inet service name \"{service}\""),
            "use a port number or one of smtp, submission, smtps, submissions, lmtp, \
             e.g. 127.0.0.1:2525 or submission"
                .to_string(),
        ));
    };
    let ips: Vec<IpAddr> = match host {
        Some(h) => interface_addrs(h, v4, v6)
            .filter(|_| !h.eq_ignore_ascii_case("all") && !h.eq_ignore_ascii_case("loopback-only"))
            .ok_or_else(|| {
                (
                    format!("invalid host \"{h}\" in inet service name \"{service}\""),
                    "write an IP address (Postern does not resolve host names), \
                     e.g. 127.0.0.1:25 or [::1]:25"
                        .to_string(),
                )
            })?,
        None => {
            let mut ips = Vec::new();
            for entry in interfaces {
                let Some(found) = interface_addrs(entry, v4, v6) else {
                    return Err((
                        format!("invalid inet_interfaces entry \"{entry}\""),
                        "use all, loopback-only, or IP addresses".to_string(),
                    ));
                };
                ips.extend(found);
            }
            ips
        }
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for ip in ips {
        let addr = SocketAddr::new(ip, port);
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK: &str = "\
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
#smtp      inet  n       -       y       -       1       postscreen
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
#  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o { smtpd_banner = $myhostname ESMTP submission }
  -o smtpd_client_restrictions=$mua_client_restrictions
127.0.0.1:2525 inet n -  n - 10 smtpd -v
pickup    unix  n       -       y       60      1       pickup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
smtp      unix  -       -       y       -       -       smtp
";

    #[test]
    fn stock_master_cf() {
        let s = parse_master_cf(STOCK, Path::new("master.cf")).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].name, "smtp");
        assert_eq!(s[0].kind, ServiceKind::Inet);
        assert_eq!(s[0].command, "smtpd");
        assert_eq!(s[0].line, 5);
        assert!(s[0].is_smtp_listener());
        assert_eq!(s[1].name, "submission");
        assert_eq!(
            s[1].overrides,
            vec![
                ("syslog_name".to_string(), "postfix/submission".to_string()),
                ("smtpd_sasl_auth_enable".to_string(), "yes".to_string()),
                (
                    "smtpd_banner".to_string(),
                    "$myhostname ESMTP submission".to_string()
                ),
                (
                    "smtpd_client_restrictions".to_string(),
                    "$mua_client_restrictions".to_string()
                ),
            ]
        );
        assert!(s[1].args.is_empty());
        assert_eq!(s[2].name, "127.0.0.1:2525");
        assert_eq!(s[2].args, ["-v"]);
        assert_eq!(s[2].maxproc, Some(10));
        assert_eq!(s[3].kind, ServiceKind::Unix);
        assert!(!s[6].is_smtp_listener());
    }

    #[test]
    fn malformed_lines() {
        let text = "smtp inet n - y - smtpd\n\
                    a inet x - y - - smtpd\n\
                    b inet n - y soon - smtpd\n\
                    c inet n - y - many smtpd\n\
                    d inet n - y - - smtpd -o\n\
                    e inet n - y - - smtpd -o novalue\n\
                    f inet n - y - - smtpd -o { a = b\n\
                    g unix-dgram n - y - - x\n";
        let err = parse_master_cf(text, Path::new("master.cf")).unwrap_err();
        let lines: Vec<usize> = err.diagnostics().iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7], "{err}");
        assert!(
            err.to_string()
                .contains("master.cf:1: expected at least 8 fields"),
            "{err}"
        );
        let ok = parse_master_cf("g unix-dgram n - y - - x\n", Path::new("m")).unwrap();
        assert_eq!(ok[0].kind, ServiceKind::Other("unix-dgram".into()));
        assert_eq!(ok[0].kind.as_str(), "unix-dgram");
    }

    #[test]
    fn attached_o_and_braces() {
        let s = parse_master_cf(
            "x inet n - n - - smtpd -osmtpd_timeout=10s -o { a = b c } { -x y }\n",
            Path::new("m"),
        )
        .unwrap();
        assert_eq!(
            s[0].overrides,
            [
                ("smtpd_timeout".into(), "10s".into()),
                ("a".into(), "b c".into())
            ]
        );
        assert_eq!(s[0].args, ["-x y"]);
    }

    #[test]
    fn ports() {
        assert_eq!(service_port("smtp"), Some(25));
        assert_eq!(service_port("submission"), Some(587));
        assert_eq!(service_port("smtps"), Some(465));
        assert_eq!(service_port("submissions"), Some(465));
        assert_eq!(service_port("lmtp"), Some(24));
        assert_eq!(service_port("2525"), Some(2525));
        assert_eq!(service_port("70000"), None);
        assert_eq!(service_port("smtpx"), None);
        assert_eq!(service_port("-1"), None);
    }

    fn addrs(service: &str, ifaces: &[&str], protos: &[&str]) -> Result<Vec<String>, String> {
        let i: Vec<String> = ifaces.iter().map(|s| s.to_string()).collect();
        let p: Vec<String> = protos.iter().map(|s| s.to_string()).collect();
        listen_addrs(service, &i, &p)
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| e.0)
    }

    #[test]
    fn listener_addresses() {
        assert_eq!(
            addrs("smtp", &["all"], &["all"]).unwrap(),
            ["0.0.0.0:25", "[::]:25"]
        );
        assert_eq!(addrs("smtp", &["all"], &["ipv4"]).unwrap(), ["0.0.0.0:25"]);
        assert_eq!(
            addrs("submission", &["loopback-only"], &["all"]).unwrap(),
            ["127.0.0.1:587", "[::1]:587"]
        );
        assert_eq!(
            addrs("2525", &["192.0.2.1", "[2001:db8::1]"], &["all"]).unwrap(),
            ["192.0.2.1:2525", "[2001:db8::1]:2525"]
        );
        assert_eq!(
            addrs("127.0.0.1:2525", &["all"], &["all"]).unwrap(),
            ["127.0.0.1:2525"]
        );
        assert_eq!(
            addrs("[::1]:2525", &["all"], &["all"]).unwrap(),
            ["[::1]:2525"]
        );
        assert_eq!(
            addrs("localhost:smtp", &["all"], &["ipv4"]).unwrap(),
            ["127.0.0.1:25"]
        );
        assert!(addrs("127.0.0.1:smtpx", &["all"], &["all"])
            .unwrap_err()
            .contains("invalid port"));
        assert!(addrs("mail.example.com:25", &["all"], &["all"])
            .unwrap_err()
            .contains("invalid host"));
        assert!(addrs("[::1]2525", &["all"], &["all"]).is_err());
        assert!(addrs("all:25", &["all"], &["all"]).is_err());
    }
}
