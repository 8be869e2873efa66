//! Wall-clock helpers: Unix seconds, RFC 5322 dates and syslog timestamps, all in UTC.
//!
//! Postern writes dates in UTC (`+0000`) so that spool files, headers and logs agree whatever the
//! machine's time zone; RFC 5322 §3.3 allows any zone offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (queue IDs).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

/// Converts Unix seconds to a UTC calendar date (Howard Hinnant's days-from-civil inverse).
pub fn civil(secs: u64) -> Civil {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600) as u32,
        minute: (rem % 3_600 / 60) as u32,
        second: (rem % 60) as u32,
        weekday: ((days + 4).rem_euclid(7)) as u32,
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 5322 §3.3 date-time, e.g. `Sun, 22 Nov 2026 01:06:31 +0000`.
pub fn rfc5322(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday as usize % 7],
        c.day,
        MONTHS[(c.month as usize + 11) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Syslog-style timestamp used at the start of log lines, e.g. `Nov 22 01:06:31`.
pub fn syslog_stamp(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[(c.month as usize + 11) % 12],
        c.day,
        c.hour,
        c.minute,
        c.second
    )
}

/// Postfix's `delay=` format: seconds with two significant decimals below 10 s, whole above.
pub fn format_delay(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}")
    } else {
        format!("{s:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_instants() {
        // 2026-11-22T01:06:31Z was a Sunday.
        assert_eq!(rfc5322(1_795_309_591), "Sun, 22 Nov 2026 01:06:31 +0000");
        assert_eq!(rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        // Leap day.
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(syslog_stamp(1_795_309_591), "Nov 22 01:06:31");
    }

    #[test]
    fn delay_format_follows_postfix() {
        assert_eq!(format_delay(Duration::from_millis(120)), "0.12");
        assert_eq!(format_delay(Duration::from_secs(125)), "125");
    }
}
