//! `smtpd_client_auth_rate_limit`: AUTH commands per client address per
//! `anvil_rate_time_unit`, counted like Postfix's anvil(8) — per service, across all of its
//! sessions, in a window that starts with the client's first AUTH and lasts one time unit.
//!
//! The table is process-wide (a configuration reload does not let a password guesser start
//! over) and keyed by master.cf service, so `submission` and `smtps` are counted apart as in
//! Postfix. Expired windows are swept when the table grows, so it stays bounded by the number
//! of clients active within one time unit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Sweep expired windows once the table holds this many clients.
const SWEEP_AT: usize = 4096;

struct Window {
    start: Instant,
    count: u32,
}

type Table = HashMap<(String, IpAddr), Window>;

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

/// The AUTH rate limiter (stateless handle onto the process-wide table).
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthRate;

impl AuthRate {
    /// Counts one AUTH command from `addr` on `service` and returns the rate so far in the
    /// current window (this command included), as anvil's `anvil_clnt_auth` does.
    pub fn count(service: &str, addr: IpAddr, unit: Duration) -> u32 {
        let now = Instant::now();
        let Ok(mut t) = table().lock() else {
            return 0;
        };
        if t.len() >= SWEEP_AT {
            t.retain(|_, w| now.duration_since(w.start) < unit);
        }
        let w = t.entry((service.to_string(), addr)).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(w.start) >= unit {
            w.start = now;
            w.count = 0;
        }
        w.count = w.count.saturating_add(1);
        w.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_service_and_address_within_the_unit() {
        let a: IpAddr = "198.51.100.201".parse().expect("ip");
        let b: IpAddr = "198.51.100.202".parse().expect("ip");
        let unit = Duration::from_secs(60);
        assert_eq!(AuthRate::count("rate-test", a, unit), 1);
        assert_eq!(AuthRate::count("rate-test", a, unit), 2);
        assert_eq!(AuthRate::count("rate-test", b, unit), 1);
        assert_eq!(AuthRate::count("rate-test-2", a, unit), 1);
        // A new window once the unit has passed.
        let short = Duration::from_millis(20);
        assert_eq!(AuthRate::count("rate-test-3", a, short), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(AuthRate::count("rate-test-3", a, short), 1);
    }
}
