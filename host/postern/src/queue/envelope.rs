//! The envelope of a queued message and its on-disk record format.
//!
//! A queue file is a short text header of records, one per line, a blank line, then the message
//! content exactly as it will be delivered (CRLF line endings). The format is documented in
//! `docs/queue-format.md`; in short:
//!
//! ```text
//! postern-queue 1
//! id 6ZDQ4CK1N2B0C0V3
//! arrival 1795309591
//! sender alice@example.com            (xtext-encoded, RFC 3461 §4; empty for <>)
//! ret FULL                            (optional; DSN RET)
//! envid QQ123                         (optional; DSN ENVID, xtext)
//! body 8BITMIME                       (optional)
//! smtputf8                            (optional flag)
//! origin smtp 192.0.2.1 mail.example.org client.example   (or `origin local`)
//! attempts 2
//! next 1795310191
//! warned                              (optional flag: delay warning sent)
//! filter smtp:[127.0.0.1]:10025       (optional; FILTER action: route every recipient there)
//! rcpt P bob@example.com notify=FAILURE,DELAY orcpt=rfc822;bob@example.com
//! rcpt D carol@example.com
//! rcpt F dave@example.com reason=5.1.1+20unknown+20user
//! sealed                              (a seal line follows the content)
//! size 1234
//!
//! <1234 bytes of content>
//! seal 1a2b3c4d
//! <anything: bytes a longer earlier message left behind>
//! ```
//!
//! Recipient states: `P` pending, `D` done (delivered), `F` failed (bounced or dropped).
//! Everything after `=` in `reason=`, `orcpt=` and every address is xtext so a line never holds a
//! space or newline that belongs to a value.
//!
//! The seal is the CRC-32 of everything before it. It lets a file be rewritten in place without
//! shrinking it (see `spool.rs`: that keeps the write out of the file system journal) and still
//! be told apart from a torn write or a recycled file's old content: a file whose seal does not
//! match, or whose content is shorter than `size`, is corrupt and never delivered. Files written
//! before seals existed have no `sealed` record and must end exactly after the content.

use postern_proto::params::{Body, Notify, Ret};
use postern_proto::xtext;
use std::ops::Range;

use super::QueueId;

/// Where a message came from; shown in logs, `Received:` and DSNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Received over SMTP.
    Smtp {
        addr: String,
        helo: String,
        name: String,
    },
    /// Submitted with `postern sendmail` (maildrop).
    Local { user: String },
}

/// Delivery state of one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcptState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Envelope recipient as accepted (or as rewritten by cleanup).
    pub address: String,
    /// RFC 3461 ORCPT (addr-type, address).
    pub orcpt: Option<(String, String)>,
    /// RFC 3461 NOTIFY as requested; `None` = not given (FAILURE,DELAY apply).
    pub notify: Option<Notify>,
    pub state: RcptState,
    /// Last delivery result text, e.g. `4.4.1 connection refused` (shown by `queue show`, DSNs).
    pub reason: Option<String>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            state: RcptState::Pending,
            reason: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: QueueId,
    /// Unix seconds when the message was first queued.
    pub arrival: u64,
    /// The same instant in Unix microseconds, for the log's `delay=` (the `arrival` record's
    /// fraction). Only trusted while it agrees with `arrival` ([`Envelope::arrival_micros`]).
    pub arrival_us: u64,
    /// Envelope sender; "" is the null sender.
    pub sender: String,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub origin: Origin,
    pub recipients: Vec<Recipient>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix seconds before which the queue manager leaves a deferred message alone.
    pub next_attempt: u64,
    /// A delay warning DSN has been sent (`delay_warning_time`).
    pub warned: bool,
    /// `transport:nexthop` from an access(5)/header_checks(5) `FILTER` action: the queue manager
    /// sends every recipient there instead of routing each one (Postfix `content_filter`).
    pub filter: Option<String>,
}

/// `arrival` is `SECONDS` or `SECONDS.MICROSECONDS` (exactly six digits).
fn frac_ok(value: &str) -> bool {
    value
        .split_once('.')
        .is_none_or(|(_, f)| f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit()))
}

impl Envelope {
    /// Arrival in Unix microseconds, when `arrival_us` agrees with `arrival` (code that sets
    /// `arrival` alone, e.g. a bounce stamped now, makes the fraction meaningless).
    pub fn arrival_micros(&self) -> Option<u64> {
        (self.arrival_us / 1_000_000 == self.arrival).then_some(self.arrival_us)
    }

    pub fn new(id: QueueId, sender: impl Into<String>, origin: Origin) -> Envelope {
        let now = crate::time::now_micros();
        Envelope {
            id,
            arrival: now / 1_000_000,
            arrival_us: now,
            sender: sender.into(),
            ret: None,
            envid: None,
            body: None,
            smtputf8: false,
            origin,
            recipients: Vec::new(),
            attempts: 0,
            next_attempt: 0,
            warned: false,
            filter: None,
        }
    }

    /// Recipients still waiting for delivery.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RcptState::Pending)
    }

    /// The whole sealed file for this envelope and `content`: header, content, seal line.
    pub fn encode_sealed(&self, content: &[u8]) -> Vec<u8> {
        let mut file = self.encode_header(content.len(), true);
        file.reserve(content.len() + SEAL_LEN);
        file.extend_from_slice(content);
        let crc = crc32fast::hash(&file);
        file.extend_from_slice(format!("seal {crc:08x}\n").as_bytes());
        file
    }

    /// Serialises the record header (everything before the content) of an unsealed file for a
    /// message of `content_len` bytes: the file must end right after the content.
    pub fn encode(&self, content_len: usize) -> Vec<u8> {
        self.encode_header(content_len, false)
    }

    fn encode_header(&self, content_len: usize, sealed: bool) -> Vec<u8> {
        let mut s = String::with_capacity(256 + 64 * self.recipients.len());
        s.push_str("postern-queue 1\n");
        s.push_str(&format!("id {}\n", self.id));
        match self.arrival_micros() {
            Some(us) => s.push_str(&format!("arrival {}.{:06}\n", self.arrival, us % 1_000_000)),
            None => s.push_str(&format!("arrival {}\n", self.arrival)),
        }
        s.push_str(&format!("sender {}\n", xtext::encode(&self.sender)));
        if let Some(ret) = self.ret {
            s.push_str(match ret {
                Ret::Full => "ret FULL\n",
                Ret::Hdrs => "ret HDRS\n",
            });
        }
        if let Some(envid) = &self.envid {
            s.push_str(&format!("envid {}\n", xtext::encode(envid)));
        }
        if let Some(body) = self.body {
            s.push_str(match body {
                Body::SevenBit => "body 7BIT\n",
                Body::EightBitMime => "body 8BITMIME\n",
                Body::BinaryMime => "body BINARYMIME\n",
            });
        }
        if self.smtputf8 {
            s.push_str("smtputf8\n");
        }
        match &self.origin {
            Origin::Smtp { addr, helo, name } => s.push_str(&format!(
                "origin smtp {} {} {}\n",
                xtext::encode(addr),
                xtext::encode(helo),
                xtext::encode(name)
            )),
            Origin::Local { user } => {
                s.push_str(&format!("origin local {}\n", xtext::encode(user)))
            }
        }
        s.push_str(&format!("attempts {}\n", self.attempts));
        s.push_str(&format!("next {}\n", self.next_attempt));
        if self.warned {
            s.push_str("warned\n");
        }
        if let Some(filter) = &self.filter {
            s.push_str(&format!("filter {}\n", xtext::encode(filter)));
        }
        for r in &self.recipients {
            let state = match r.state {
                RcptState::Pending => 'P',
                RcptState::Delivered => 'D',
                RcptState::Failed => 'F',
            };
            s.push_str(&format!("rcpt {state} {}", xtext::encode(&r.address)));
            if let Some(n) = r.notify {
                s.push_str(&format!(" notify={}", n.to_param()));
            }
            if let Some((kind, addr)) = &r.orcpt {
                s.push_str(&format!(
                    " orcpt={};{}",
                    xtext::encode(kind),
                    xtext::encode(addr)
                ));
            }
            if let Some(reason) = &r.reason {
                s.push_str(&format!(" reason={}", xtext::encode(reason)));
            }
            s.push('\n');
        }
        if sealed {
            s.push_str("sealed\n");
        }
        s.push_str(&format!("size {content_len}\n\n"));
        s.into_bytes()
    }

    /// Parses a queue file; returns the envelope and where its content lies in `file`. `file`
    /// may go on after a sealed message's seal line (old bytes of a longer earlier message).
    pub fn decode(file: &[u8]) -> Result<(Envelope, Range<usize>), String> {
        let (env, head) = Envelope::decode_header(file)?;
        let content = head.check(file)?;
        Ok((env, content))
    }

    /// Parses the record header alone. `file` must hold at least the header's blank line.
    pub fn decode_header(file: &[u8]) -> Result<(Envelope, Header), String> {
        let end = find_blank_line(file).ok_or("no end of record header")?;
        let head = std::str::from_utf8(&file[..end]).map_err(|_| "record header is not UTF-8")?;
        let content_start = end + 1;
        let mut lines = head.lines();
        if lines.next() != Some("postern-queue 1") {
            return Err("not a postern queue file (version 1)".into());
        }
        let mut id = None;
        let mut env = Envelope::new(
            QueueId::generate(),
            "",
            Origin::Local {
                user: String::new(),
            },
        );
        let mut size = None;
        let mut sealed = false;
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let dec = |v: &str| xtext::decode(v).ok_or_else(|| format!("bad xtext in `{line}`"));
            match key {
                "id" => id = Some(QueueId::parse(rest).ok_or("bad queue id")?),
                "arrival" => {
                    let (secs, frac) = rest.split_once('.').unwrap_or((rest, ""));
                    env.arrival = secs.parse().map_err(|_| "bad arrival")?;
                    let frac = if frac.is_empty() {
                        Ok(0)
                    } else {
                        frac.parse::<u64>()
                    };
                    let frac = frac.ok().filter(|_| frac_ok(rest)).ok_or("bad arrival")?;
                    env.arrival_us = env.arrival.saturating_mul(1_000_000) + frac;
                }
                "sender" => env.sender = dec(rest)?,
                "ret" => {
                    env.ret = Some(match rest {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err("bad ret".into()),
                    })
                }
                "envid" => env.envid = Some(dec(rest)?),
                "body" => {
                    env.body = Some(match rest {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        "BINARYMIME" => Body::BinaryMime,
                        _ => return Err("bad body".into()),
                    })
                }
                "smtputf8" => env.smtputf8 = true,
                "origin" => env.origin = decode_origin(rest, &dec)?,
                "attempts" => env.attempts = rest.parse().map_err(|_| "bad attempts")?,
                "next" => env.next_attempt = rest.parse().map_err(|_| "bad next")?,
                "warned" => env.warned = true,
                "filter" => env.filter = Some(dec(rest)?),
                "rcpt" => env.recipients.push(decode_rcpt(rest, &dec)?),
                "size" => size = Some(rest.parse::<usize>().map_err(|_| "bad size")?),
                "sealed" => sealed = true,
                // Unknown records from a newer version are skipped, as Postfix skips
                // unknown attribute records.
                _ => {}
            }
        }
        env.id = id.ok_or("missing id record")?;
        let size = size.ok_or("missing size record")?;
        if env.recipients.is_empty() {
            return Err("no recipients".into());
        }
        let header = Header {
            content_start,
            size,
            sealed,
        };
        Ok((env, header))
    }
}

/// Length of the seal line, `seal 1a2b3c4d\n`.
pub const SEAL_LEN: usize = 14;

/// Where a queue file's parts are, from its record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub content_start: usize,
    /// Content length in bytes (the `size` record).
    pub size: usize,
    /// A seal line follows the content.
    pub sealed: bool,
}

impl Header {
    /// Bytes of the file a reader needs: header, content and seal.
    pub fn file_len(&self) -> usize {
        self.content_start + self.size + if self.sealed { SEAL_LEN } else { 0 }
    }

    /// Checks that `file` (the file this header was parsed from) holds the whole content, and
    /// its seal when sealed; returns where the content lies.
    pub fn check(&self, file: &[u8]) -> Result<Range<usize>, String> {
        let content = self.content_start..self.content_start + self.size;
        if !self.sealed {
            if file.len() != content.end {
                return Err(format!(
                    "content is {} bytes, record says {} (truncated file?)",
                    file.len().saturating_sub(self.content_start),
                    self.size
                ));
            }
            return Ok(content);
        }
        let seal = file
            .get(content.end..content.end + SEAL_LEN)
            .ok_or("content shorter than its size record, or no seal (torn write?)")?;
        let expected = format!("seal {:08x}\n", crc32fast::hash(&file[..content.end]));
        if seal != expected.as_bytes() {
            return Err("seal does not match the content (torn write?)".into());
        }
        Ok(content)
    }
}

fn find_blank_line(file: &[u8]) -> Option<usize> {
    file.windows(2).position(|w| w == b"\n\n").map(|p| p + 1)
}

fn decode_origin(
    rest: &str,
    dec: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Origin, String> {
    let mut f = rest.split(' ');
    match f.next() {
        Some("smtp") => Ok(Origin::Smtp {
            addr: dec(f.next().unwrap_or(""))?,
            helo: dec(f.next().unwrap_or(""))?,
            name: dec(f.next().unwrap_or(""))?,
        }),
        Some("local") => Ok(Origin::Local {
            user: dec(f.next().unwrap_or(""))?,
        }),
        _ => Err("bad origin".into()),
    }
}

fn decode_rcpt(
    rest: &str,
    dec: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Recipient, String> {
    let mut f = rest.split(' ');
    let state = match f.next() {
        Some("P") => RcptState::Pending,
        Some("D") => RcptState::Delivered,
        Some("F") => RcptState::Failed,
        _ => return Err("bad rcpt state".into()),
    };
    let mut r = Recipient::new(dec(f.next().ok_or("rcpt without address")?)?);
    r.state = state;
    for attr in f {
        match attr.split_once('=') {
            Some(("notify", v)) => r.notify = Some(Notify::parse(v).ok_or("bad notify")?),
            Some(("orcpt", v)) => {
                let (kind, addr) = v.split_once(';').ok_or("bad orcpt")?;
                r.orcpt = Some((dec(kind)?, dec(addr)?));
            }
            Some(("reason", v)) => r.reason = Some(dec(v)?),
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut env = Envelope::new(
            QueueId::generate(),
            "alice@example.com",
            Origin::Smtp {
                addr: "192.0.2.1".into(),
                helo: "mail.example.org".into(),
                name: "unknown".into(),
            },
        );
        env.ret = Some(Ret::Hdrs);
        env.envid = Some("QQ 314159".into());
        env.body = Some(Body::EightBitMime);
        env.smtputf8 = true;
        env.filter = Some("smtp:[127.0.0.1]:10025".into());
        let mut r = Recipient::new("\"john doe\"@example.com");
        r.notify = Notify::parse("SUCCESS,FAILURE");
        r.orcpt = Some(("rfc822".into(), "John+Doe@example.com".into()));
        env.recipients.push(r);
        let mut r = Recipient::new("bob@example.com");
        r.state = RcptState::Failed;
        r.reason = Some("5.1.1 unknown user: \"bob\"".into());
        env.recipients.push(r);
        env
    }

    #[test]
    fn arrival_keeps_microseconds_and_old_files_still_read() {
        let env = sample();
        let text = String::from_utf8(env.encode(0)).expect("utf8");
        let line = format!(
            "arrival {}.{:06}\n",
            env.arrival,
            env.arrival_us % 1_000_000
        );
        assert!(text.contains(&line), "{text}");
        let (back, _) = Envelope::decode(&env.encode(0)).expect("decode");
        let (sealed, _) = Envelope::decode(&env.encode_sealed(b"")).expect("decode");
        assert_eq!(sealed.arrival_micros(), Some(env.arrival_us));
        assert_eq!(back.arrival_micros(), Some(env.arrival_us));

        // A file from before the fraction existed: whole seconds.
        let old = text.replace(&line, &format!("arrival {}\n", env.arrival));
        let (back, _) = Envelope::decode(old.as_bytes()).expect("decode");
        assert_eq!(back.arrival, env.arrival);
        assert_eq!(back.arrival_micros(), Some(env.arrival * 1_000_000));

        for bad in [".5", "1.5", "12.1234567", "12.12345x", "x"] {
            let broken = text.replace(&line, &format!("arrival {bad}\n"));
            assert!(Envelope::decode(broken.as_bytes()).is_err(), "{bad}");
        }

        // Setting `arrival` alone (a bounce stamped now) drops the stale fraction.
        let mut moved = env.clone();
        moved.arrival += 100;
        assert_eq!(moved.arrival_micros(), None);
        let text = String::from_utf8(moved.encode(0)).expect("utf8");
        assert!(
            text.contains(&format!("arrival {}\n", moved.arrival)),
            "{text}"
        );
    }

    #[test]
    fn record_round_trips() {
        let env = sample();
        let content = b"Subject: hi\r\n\r\nbody\r\n";
        let mut file = env.encode(content.len());
        file.extend_from_slice(content);
        let (back, range) = Envelope::decode(&file).expect("decodes");
        assert_eq!(back, env);
        assert_eq!(&file[range], content);
    }

    #[test]
    fn sealed_files_ignore_what_follows_and_catch_torn_writes() {
        let env = sample();
        let content = b"Subject: hi\r\n\r\nbody\r\n";
        let file = env.encode_sealed(content);
        assert!(file.ends_with(b"\n") && file[file.len() - SEAL_LEN..].starts_with(b"seal "));
        let (back, range) = Envelope::decode(&file).expect("decodes");
        assert_eq!((back, &file[range]), (env.clone(), &content[..]));

        // Rewritten in place over a longer file: the old tail is ignored.
        let mut longer = file.clone();
        longer.extend_from_slice(b"old content of an earlier, longer message\r\n");
        let (_, range) = Envelope::decode(&longer).expect("old tail ignored");
        assert_eq!(&longer[range], content);

        // Any changed byte before the seal, a missing seal, or a short file: corrupt.
        for at in [0, 20, file.len() - SEAL_LEN - 3, file.len() - 2] {
            let mut torn = file.clone();
            torn[at] ^= 0x20;
            assert!(Envelope::decode(&torn).is_err(), "byte {at} changed");
        }
        assert!(Envelope::decode(&file[..file.len() - SEAL_LEN]).is_err());
        assert!(Envelope::decode(&file[..file.len() - 20]).is_err());
    }

    #[test]
    fn truncated_content_is_corrupt() {
        let env = sample();
        let mut file = env.encode(10);
        file.extend_from_slice(b"12345");
        assert!(Envelope::decode(&file).unwrap_err().contains("truncated"));
        assert!(Envelope::decode(b"garbage").is_err());
        assert!(Envelope::decode(b"postern-queue 1\nid x\n\n").is_err());
    }
}
