//! Binding SMTP listeners, with errors an admin can act on.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::net::{TcpListener, TcpSocket};

/// Postfix's default `smtpd` listen backlog is 100; a larger queue costs nothing and absorbs
/// connection bursts while sessions start.
const BACKLOG: u32 = 1024;

/// A listener address that could not be bound.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl BindError {
    /// IPv6 is switched off on this host (no `[::]` socket can exist).
    pub fn ipv6_unavailable(&self) -> bool {
        self.addr.is_ipv6()
            && matches!(
                self.source.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            )
    }
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addr = self.addr;
        let why = match self.source.kind() {
            io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
                "permission denied (ports below 1024 need root; run as root, or give the \
                 service a port above 1023 in master.cf, e.g. \"{} inet n - n - - smtpd\")",
                SocketAddr::new(addr.ip(), 2525)
            ),
            io::ErrorKind::AddrInUse => "address already in use (another MTA or another postern \
                 is listening there; `ss -ltnp` shows which)"
                .to_string(),
            io::ErrorKind::AddrNotAvailable => "this host has no such address (check \
                 inet_interfaces in main.cf and the service names in master.cf)"
                .to_string(),
            _ => self.source.to_string(),
        };
        write!(f, "cannot listen on {addr}: {why}")
    }
}

/// The message already includes the OS error's meaning, so no separate source is reported.
impl std::error::Error for BindError {}

/// Binds one listener. IPv6 sockets are IPv6-only so that `0.0.0.0:25` and `[::]:25` (what
/// `inet_interfaces = all` yields) can both be bound. Must run inside the tokio runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // Lets a restarted daemon bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(err)?;
    if addr.is_ipv6() {
        set_v6only(&socket).map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)
}

fn set_v6only(socket: &TcpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a correctly sized int option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_bind_names_the_address_and_the_fix() {
        let first = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = first.local_addr().expect("local addr");
        let err = bind(addr).expect_err("second bind must fail");
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot listen on {addr}: address already in use")));
    }

    #[test]
    fn privileged_port_message() {
        let err = BindError {
            addr: "127.0.0.1:25".parse().expect("addr"),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            err.to_string(),
            "cannot listen on 127.0.0.1:25: permission denied (ports below 1024 need root; run \
             as root, or give the service a port above 1023 in master.cf, e.g. \
             \"127.0.0.1:2525 inet n - n - - smtpd\")"
        );
    }
}
