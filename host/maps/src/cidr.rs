//! `cidr:` tables (cidr_table(5)): `network/prefix result`, `!pattern result`, `if pattern` …
//! `endif`; rules are tried in order and only against keys of their own address family.
//!
//! As Postfix: a pattern may be written in `[]`; a network with host bits set is refused with
//! the network it probably meant; every broken rule is skipped with a warning. Unlike Postfix,
//! an IPv4 octet with a leading zero is refused (Postfix reads it as octal) — it is almost
//! always a typo.

use std::net::IpAddr;

use crate::list::read_rules;
use crate::rules::{keyword, Program};
use crate::spec::TableRef;
use crate::stamp::Stamps;
use crate::{Kind, LookupError, MapError, Table, Warning, Warnings};

/// A network (a bare address is a /32 or /128), possibly negated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
    negate: bool,
}

impl Net {
    /// `Some(true/false)` for a key of the same family; `None` for the other family, which
    /// never matches, negated or not.
    fn test(&self, key: &IpAddr) -> Option<bool> {
        let inside = match (self.addr, key) {
            (IpAddr::V4(n), IpAddr::V4(k)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(*k) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(k)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(*k) & mask
            }
            _ => return None,
        };
        Some(inside != self.negate)
    }
}

/// Parses one address pattern (after `!` operators) as Postfix's `cidr_match_parse`.
pub(crate) fn parse_net(pattern: &str, negate: bool) -> Result<Net, String> {
    let (addr_text, mask) = if let Some(inner) = pattern.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(format!("missing ']' character after \"[{inner}\""));
        };
        match after.strip_prefix('/') {
            Some(mask) => (addr, Some(mask)),
            None if after.is_empty() => (addr, None),
            None => return Err(format!("garbage after \"[{addr}]\"")),
        }
    } else {
        match pattern.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (pattern, None),
        }
    };
    let bits: u8 = if addr_text.contains(':') { 128 } else { 32 };
    let Some(mask) = mask else {
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("bad address pattern: \"{addr_text}\""))?;
        return Ok(Net {
            addr,
            prefix: bits,
            negate,
        });
    };
    let shown = format!("{addr_text}/{mask}");
    if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad mask value in \"{shown}\""));
    }
    let prefix = match mask.parse::<u8>() {
        Ok(p) if p <= bits => p,
        _ => return Err(format!("bad mask length in \"{shown}\"")),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("bad network value in \"{shown}\""))?;
    let net = Net {
        addr,
        prefix,
        negate,
    };
    let masked = match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    };
    if masked != addr {
        return Err(format!(
            "non-null host address bits in \"{shown}\", perhaps you should use \
             \"{masked}/{prefix}\" instead"
        ));
    }
    Ok(net)
}

/// Strips leading `!` operators (each toggles) and whitespace.
fn negations(mut text: &str) -> (bool, &str) {
    let mut negate = false;
    loop {
        let t = text.trim_start();
        match t.strip_prefix('!') {
            Some(rest) => {
                negate = !negate;
                text = rest;
            }
            None => return (negate, t),
        }
    }
}

#[derive(Debug)]
pub(crate) struct CidrTable {
    spec: String,
    program: Program<Net, String>,
    stamps: Option<Stamps>,
    warnings: Vec<Warning>,
}

impl CidrTable {
    pub(crate) fn open(table: &TableRef) -> Result<CidrTable, MapError> {
        let (text, label, stamps) = read_rules(table)?;
        let mut warnings = Warnings::new(&label);
        let mut program = Program::new();
        for line in crate::text::logical_lines(&text, &mut warnings) {
            if let Err(why) = parse_rule(&line.text, line.first, &mut program, &mut warnings) {
                warnings.push(line.first, format!("{why}: skipping this rule"));
            }
        }
        let program = program.finish(&mut warnings);
        let mut warnings = warnings.into_vec();
        warnings.sort_by_key(|w| w.line);
        Ok(CidrTable {
            spec: table.to_string(),
            program,
            stamps,
            warnings,
        })
    }
}

fn parse_rule(
    text: &str,
    lineno: usize,
    program: &mut Program<Net, String>,
    warnings: &mut Warnings,
) -> Result<(), String> {
    match keyword(text) {
        Some(("if", rest)) => {
            let (negate, pattern) = negations(rest);
            let pattern = pattern.trim_end();
            if pattern.is_empty() {
                return Err("no address pattern".to_string());
            }
            program.push_if(lineno, parse_net(pattern, negate)?);
        }
        Some((_, rest)) => {
            if !rest.trim().is_empty() {
                return Err("garbage after ENDIF".to_string());
            }
            program.push_endif(lineno, warnings);
        }
        None => {
            let (negate, rest) = negations(text);
            let end = rest
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            let (pattern, value) = (&rest[..end], rest[end..].trim());
            if pattern.is_empty() {
                return Err("no address pattern".to_string());
            }
            let net = parse_net(pattern, negate)?;
            if value.is_empty() {
                return Err("no lookup result".to_string());
            }
            program.push_match(net, value.to_string());
        }
    }
    Ok(())
}

impl Table for CidrTable {
    /// Keys that are not an IP address (a host name, `[1.2.3.4]`) are simply not found.
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        let Ok(addr) = key.parse::<IpAddr>() else {
            return Ok(None);
        };
        self.program.run(
            |net| Ok::<_, LookupError>(net.test(&addr) == Some(true)),
            |net, value| Ok((net.test(&addr) == Some(true)).then(|| value.clone())),
        )
    }

    fn kind(&self) -> Kind {
        Kind::Pattern
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    fn is_stale(&self) -> bool {
        self.stamps.as_ref().is_some_and(Stamps::changed)
    }

    fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use crate::{open_table, OpenCtx};

    #[test]
    fn postfix_dict_cidr_cases() {
        let dir = crate::testutil::TempDir::new("cidr");
        // From Postfix's dict_cidr.map self-test.
        let path = dir.write(
            "clients",
            "172.16.0.0/21\t\t554 match bad netblock 172.16.0.0/21\n\
             172.16.8.0/21\t\t554 match bad netblock 172.16.8.0/21\n\
             172.16.0.0/16\t\t554 match bad netblock 172.16.0.0/16\n\
             172.17.1.1\t\t554 match bad naked address\n\
             172.16.1.3/21\t\twhatever\n\
             172.16.1.3/33\t\twhatever\n\
             172.999.0.0/21\t\twhatever\n\
             172.16.1.999\t\twhatever\n\
             172.16.1.4\n\
             if 1.2.0.0/16\n\
             if 1.2.3.4/30\n\
             1.2.3.3\t\t1.2.3.3 can't happen\n\
             1.2.3.5\t\t1.2.3.5 can happen\n\
             endif\n\
             endif\n\
             if !::f4/126\n\
             ::f8\t\t::f8 can happen\n\
             endif\n\
             2001:240:5c7::/64\tmatch netblock 2001:240:5c7::/64\n\
             1.0.0.0/0\t\tmatch 0.0.0.0/0\n\
             ! ! 0.0.0.0/0\t\tmatch 0.0.0.0/0\n\
             ::/0\t\t\tmatch ::/0\n\
             [1234\t\t\tcan't happen\n\
             [1234]junk\t\tcan't happen\n\
             172.16.1.3/3x\t\tcan't happen\n\
             endif\n",
        );
        let t = open_table(&format!("cidr:{}", path.display()), &OpenCtx::new()).unwrap();
        let w: Vec<String> = t
            .warnings()
            .iter()
            .map(|w| format!("{}: {}", w.line, w.message))
            .collect();
        assert_eq!(
            w,
            vec![
                "5: non-null host address bits in \"172.16.1.3/21\", perhaps you should use \"172.16.0.0/21\" instead: skipping this rule",
                "6: bad mask length in \"172.16.1.3/33\": skipping this rule",
                "7: bad network value in \"172.999.0.0/21\": skipping this rule",
                "8: bad address pattern: \"172.16.1.999\": skipping this rule",
                "9: no lookup result: skipping this rule",
                "20: non-null host address bits in \"1.0.0.0/0\", perhaps you should use \"0.0.0.0/0\" instead: skipping this rule",
                "23: missing ']' character after \"[1234\": skipping this rule",
                "24: garbage after \"[1234]\": skipping this rule",
                "25: bad mask value in \"172.16.1.3/3x\": skipping this rule",
                "26: ignoring ENDIF without matching IF",
            ]
        );
        let get = |k: &str| t.lookup(k).unwrap();
        assert_eq!(
            get("172.16.7.255").as_deref(),
            Some("554 match bad netblock 172.16.0.0/21")
        );
        assert_eq!(
            get("172.16.8.1").as_deref(),
            Some("554 match bad netblock 172.16.8.0/21")
        );
        assert_eq!(
            get("172.16.17.1").as_deref(),
            Some("554 match bad netblock 172.16.0.0/16")
        );
        assert_eq!(
            get("172.17.1.1").as_deref(),
            Some("554 match bad naked address")
        );
        assert_eq!(get("1.2.3.5").as_deref(), Some("1.2.3.5 can happen"));
        // 1.2.3.3 is outside 1.2.3.4/30: the inner block is skipped, then 0.0.0.0/0 matches.
        assert_eq!(get("1.2.3.3").as_deref(), Some("match 0.0.0.0/0"));
        assert_eq!(get("::f8").as_deref(), Some("::f8 can happen"));
        assert_eq!(
            get("2001:240:5c7:0:2d0:b7ff:fe88:2ca7").as_deref(),
            Some("match netblock 2001:240:5c7::/64")
        );
        assert_eq!(get("2001:db8::1").as_deref(), Some("match ::/0"));
        assert_eq!(get("mail.example.com"), None);
        assert_eq!(get("[1.2.3.4]"), None);
    }

    #[test]
    fn mynetworks_style_table() {
        let t = open_table(
            "cidr:{ {192.168.0.0/16 OK}, {[2001:db8::]/32 OK}, {!10.0.0.0/8 REJECT not internal} }",
            &OpenCtx::new(),
        )
        .unwrap();
        assert_eq!(t.lookup("192.168.44.2").unwrap().as_deref(), Some("OK"));
        assert_eq!(t.lookup("2001:db8:1::25").unwrap().as_deref(), Some("OK"));
        assert_eq!(t.lookup("10.1.2.3").unwrap(), None);
        assert_eq!(
            t.lookup("8.8.8.8").unwrap().as_deref(),
            Some("REJECT not internal")
        );
        // A negated IPv4 rule never matches an IPv6 key.
        assert_eq!(t.lookup("2001:4860::8888").unwrap(), None);
    }
}
