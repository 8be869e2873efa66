//! The environment sections of a vector file: `[dns]`, `[[kv]]`, `[clock]`, and durations.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use postern_runtime::services::StaticDns;

use super::{strings, KvSeed};

/// `[dns."NAME"]` tables: `txt`, `a`, `aaaa`, `mx` ("PREF HOST") lists, `ptr` under an IP
/// address, `fail = true` for a name whose every query fails temporarily.
pub(super) fn parse_dns(v: &toml::Value) -> anyhow::Result<StaticDns> {
    let Some(names) = v.as_table() else {
        bail!("must be a table of names: write [dns.\"example.com\"]");
    };
    let mut dns = StaticDns::new();
    for (name, records) in names {
        let Some(records) = records.as_table() else {
            bail!("\"{name}\" must be a table: write [dns.\"{name}\"]");
        };
        let ip: Option<IpAddr> = name.parse().ok();
        for (kind, values) in records {
            if kind == "fail" {
                match values.as_bool() {
                    Some(true) => dns = dns.fail(name),
                    Some(false) => {}
                    None => bail!("\"{name}\".fail must be true or false"),
                }
                continue;
            }
            let list = strings(values)
                .ok_or_else(|| anyhow!("\"{name}\".{kind} must be a list of strings"))?;
            for value in list {
                let bad = |what: &str| anyhow!("\"{name}\".{kind}: \"{value}\" is not {what}");
                dns = match kind.as_str() {
                    "txt" => dns.txt(name, &value),
                    "a" => dns.a(name, value.parse().map_err(|_| bad("an IPv4 address"))?),
                    "aaaa" => dns.aaaa(name, value.parse().map_err(|_| bad("an IPv6 address"))?),
                    "mx" => {
                        let (pref, host) = value
                            .split_once(' ')
                            .and_then(|(p, h)| Some((p.parse::<u16>().ok()?, h.trim())))
                            .ok_or_else(|| {
                                bad("\"PREFERENCE HOST\", e.g. \"10 mx.example.com\"")
                            })?;
                        dns.mx(name, pref, host)
                    }
                    "ptr" => match ip {
                        Some(ip) => dns.ptr(ip, &value),
                        None => bail!(
                            "\"{name}\".ptr: PTR records go under an IP address, e.g. \
                             [dns.\"192.0.2.1\"] ptr = [\"host.example\"]"
                        ),
                    },
                    other => bail!(
                        "\"{name}\": unknown record type \"{other}\" (txt, a, aaaa, mx, ptr, fail)"
                    ),
                };
            }
        }
    }
    Ok(dns)
}

pub(super) fn parse_kv(v: &toml::Value) -> anyhow::Result<Vec<KvSeed>> {
    let Some(entries) = v.as_array() else {
        bail!("must be an array of tables: write [[kv]]");
    };
    let mut seeds = Vec::new();
    for entry in entries {
        let Some(t) = entry.as_table() else {
            bail!("must be a table");
        };
        if let Some(k) = t
            .keys()
            .find(|k| !matches!(k.as_str(), "bucket" | "key" | "value" | "ttl"))
        {
            bail!("unknown key \"{k}\" (bucket, key, value, ttl)");
        }
        let field = |k: &str| -> anyhow::Result<String> {
            match t.get(k) {
                Some(toml::Value::String(s)) => Ok(s.clone()),
                Some(toml::Value::Integer(n)) => Ok(n.to_string()),
                _ => bail!("needs {k} = \"…\""),
            }
        };
        let ttl = match t.get("ttl") {
            None => None,
            Some(v) => Some(duration(v).ok_or_else(|| anyhow!("ttl must be e.g. \"60s\""))?),
        };
        seeds.push(KvSeed {
            bucket: field("bucket")?,
            key: field("key")?,
            value: field("value")?,
            ttl,
        });
    }
    Ok(seeds)
}

/// `start = 2026-01-01T00:00:00Z` (a TOML date-time with offset) or Unix seconds.
pub(super) fn parse_clock(v: &toml::Value) -> anyhow::Result<SystemTime> {
    let Some(t) = v.as_table() else {
        bail!("must be a table: write [clock]");
    };
    if let Some(k) = t.keys().find(|k| k.as_str() != "start") {
        bail!("unknown key \"{k}\" (start)");
    }
    let secs = match t.get("start") {
        Some(toml::Value::Integer(n)) if *n >= 0 => *n as u64,
        Some(toml::Value::Datetime(dt)) => unix_seconds(dt).ok_or_else(|| {
            anyhow!("start: give a full date-time with offset, e.g. 2026-01-01T00:00:00Z")
        })?,
        _ => bail!("start must be a date-time such as 2026-01-01T00:00:00Z or Unix seconds"),
    };
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn unix_seconds(dt: &toml::value::Datetime) -> Option<u64> {
    let (date, time, offset) = (dt.date?, dt.time?, dt.offset?);
    // Days from civil (H. Hinnant's algorithm).
    let (y, m, d) = (
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let offset_minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let secs = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second)
        - offset_minutes * 60;
    u64::try_from(secs).ok()
}

/// `"90s"`, `"5m"`, `"250ms"`, `"2h"`, `"1d"`, or a number of seconds.
pub(super) fn duration(v: &toml::Value) -> Option<Duration> {
    let s = match v {
        toml::Value::Integer(n) if *n >= 0 => return Some(Duration::from_secs(*n as u64)),
        toml::Value::String(s) => s.trim(),
        _ => return None,
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    Some(match s[split..].trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    })
}
