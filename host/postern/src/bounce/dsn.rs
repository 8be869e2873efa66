//! The text of a delivery status notification (RFC 3464, RFC 6522 `multipart/report`).
//!
//! Three parts, as Postfix bounce(8) writes them:
//! 1. `text/plain` — the explanation a person reads ("This is the mail system at host …");
//! 2. `message/delivery-status` — per-message fields (`Original-Envelope-Id`, `Reporting-MTA`,
//!    `Arrival-Date`, `X-Postern-Queue-ID`, `X-Postern-Sender`) then one block per recipient
//!    (`Original-Recipient`, `Final-Recipient`, `Action`, `Status`, `Diagnostic-Code`, …) in
//!    RFC 3464 §2.2/§2.3 order;
//! 3. the original: `message/rfc822` (failure reports, RET=FULL or no RET) or
//!    `text/rfc822-headers` (RET=HDRS, delay and success reports — Postfix returns headers only
//!    for those — and messages over [`BOUNCE_SIZE_LIMIT`]).

use postern_config::Config;
use postern_proto::params::Ret;

use super::{DsnKind, DsnRecipient};
use crate::queue::{Envelope, QueueId};

/// Postfix `bounce_size_limit` default: a failed message larger than this is returned as its
/// headers only, so a bounce never doubles a large message's load on the sender's mailbox.
/// (Postfix truncates the message instead; headers-only keeps the report valid MIME.)
pub const BOUNCE_SIZE_LIMIT: usize = 50_000;

/// Longest value written into a header or report field; RFC 5322 §2.1.1 caps lines at 998.
const MAX_FIELD: usize = 900;

/// Composes the whole message (CRLF line endings), headers included.
pub fn compose(
    cfg: &Config,
    kind: DsnKind,
    env: &Envelope,
    content: &[u8],
    rcpts: &[&DsnRecipient],
    id: &QueueId,
    now: u64,
) -> Vec<u8> {
    let host = field(&cfg.myhostname);
    let (headers, _) = split_headers(content);
    let full = kind == DsnKind::Failure
        && env.ret != Some(Ret::Hdrs)
        && content.len() <= BOUNCE_SIZE_LIMIT;
    let original: &[u8] = if full { content } else { headers };

    let mut boundary = format!("{id}.{now}/{host}");
    while contains(original, boundary.as_bytes()) {
        boundary.push('=');
    }

    let text = explanation(cfg, kind, env, rcpts, now);
    let report = delivery_status(cfg, kind, env, rcpts, now);

    let mut body = Vec::with_capacity(original.len() + text.len() + report.len() + 1024);
    body.extend_from_slice(b"This is a MIME-encapsulated message.\r\n\r\n");
    push_part_header(&mut body, &boundary, "Notification", &text_type(&text));
    body.extend_from_slice(text.as_bytes());
    push_part_header(
        &mut body,
        &boundary,
        "Delivery report",
        "message/delivery-status",
    );
    body.extend_from_slice(report.as_bytes());
    let (descr, ctype) = match (kind, full) {
        (DsnKind::Failure, true) => ("Undelivered Message", "message/rfc822"),
        (DsnKind::Failure, false) => ("Undelivered Message Headers", "text/rfc822-headers"),
        (DsnKind::Delay, _) => ("Delayed Message Headers", "text/rfc822-headers"),
        (DsnKind::Success, _) => ("Delivered Message Headers", "text/rfc822-headers"),
    };
    push_part_header(&mut body, &boundary, descr, ctype);
    body.extend_from_slice(original);
    if !original.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let subject = match kind {
        DsnKind::Failure => "Undelivered Mail Returned to Sender",
        DsnKind::Delay => "Delayed Mail (still being retried)",
        DsnKind::Success => "Successful Mail Delivery Report",
    };
    let cte = if body.is_ascii() { "7bit" } else { "8bit" };
    let mut msg = format!(
        "Date: {date}\r\n\
         From: MAILER-DAEMON@{host} (Mail Delivery System)\r\n\
         To: {to}\r\n\
         Subject: {subject}\r\n\
         Message-Id: <{id}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: {cte}\r\n\r\n",
        date = crate::time::rfc5322(now),
        to = field(&env.sender),
    )
    .into_bytes();
    msg.extend_from_slice(&body);
    msg
}

/// Splits a message at the empty line: (headers including their final CRLF, body).
pub fn split_headers(content: &[u8]) -> (&[u8], &[u8]) {
    match content.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&content[..p + 2], &content[p + 4..]),
        None if content.starts_with(b"\r\n") => (&[], &content[2..]),
        None => (content, &[]),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A value fit for one header or report line: no CR/LF, bounded length.
fn field(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_FIELD {
        let mut cut = MAX_FIELD;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn text_type(text: &str) -> String {
    if text.is_ascii() {
        "text/plain; charset=us-ascii".into()
    } else {
        "text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit".into()
    }
}

fn push_part_header(body: &mut Vec<u8>, boundary: &str, descr: &str, ctype: &str) {
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Description: {descr}\r\nContent-Type: {ctype}\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// `3 hours`, `5 days`: Postfix's wording in delay warnings.
fn human(secs: u64) -> String {
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 {
        (secs / 3_600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn explanation(
    cfg: &Config,
    kind: DsnKind,
    env: &Envelope,
    rcpts: &[&DsnRecipient],
    now: u64,
) -> String {
    let mut t = format!(
        "This is the mail system at host {}.\r\n\r\n",
        field(&cfg.myhostname)
    );
    match kind {
        DsnKind::Failure => t.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\r\n\
             For further assistance, please send mail to postmaster.\r\n\r\n\
             If you do so, please include this problem report. You can\r\n\
             delete your own text from the attached returned message.\r\n",
        ),
        DsnKind::Delay => {
            t.push_str(
                "####################################################################\r\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
                 ####################################################################\r\n\r\n",
            );
            t.push_str(&format!(
                "Your message could not be delivered for more than {}.\r\n\
                 It will be retried until it is {} old.\r\n\r\n\
                 For further assistance, please send mail to postmaster.\r\n\r\n\
                 If you do so, please include this problem report. You can\r\n\
                 delete your own text from the attached returned message.\r\n",
                human(now.saturating_sub(env.arrival)),
                human(cfg.maximal_queue_lifetime.as_secs()),
            ));
        }
        DsnKind::Success => t.push_str(
            "Your message was successfully delivered to the destination(s)\r\n\
             listed below. If the message was delivered to mailbox you will\r\n\
             receive no further notifications. Otherwise you may still receive\r\n\
             notifications of mail delivery errors from other systems.\r\n",
        ),
    }
    t.push_str("\r\n                   The mail system\r\n");
    for r in rcpts {
        t.push_str(&format!(
            "\r\n<{}>: {}\r\n",
            field(&r.address),
            field(&r.text)
        ));
    }
    t
}

fn delivery_status(
    cfg: &Config,
    kind: DsnKind,
    env: &Envelope,
    rcpts: &[&DsnRecipient],
    now: u64,
) -> String {
    let mut s = String::new();
    if let Some(envid) = &env.envid {
        s.push_str(&format!("Original-Envelope-Id: {}\r\n", field(envid)));
    }
    s.push_str(&format!(
        "Reporting-MTA: dns; {}\r\n",
        field(&cfg.myhostname)
    ));
    s.push_str(&format!(
        "Arrival-Date: {}\r\n",
        crate::time::rfc5322(env.arrival)
    ));
    s.push_str(&format!("X-Postern-Queue-ID: {}\r\n", env.id));
    s.push_str(&format!(
        "X-Postern-Sender: rfc822; {}\r\n",
        field(&env.sender)
    ));
    for r in rcpts {
        s.push_str("\r\n");
        if let Some((kind, addr)) = &r.orcpt {
            s.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                field(kind),
                field(addr)
            ));
        }
        s.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            field(&r.address)
        ));
        s.push_str(&format!("Action: {}\r\n", kind.action()));
        s.push_str(&format!("Status: {}\r\n", r.status));
        if kind != DsnKind::Success {
            match &r.diagnostic {
                Some(d) => s.push_str(&format!("Diagnostic-Code: {}\r\n", field(d))),
                None if !r.text.is_empty() => s.push_str(&format!(
                    "Diagnostic-Code: X-Postern; {}\r\n",
                    field(&r.text)
                )),
                None => {}
            }
            s.push_str(&format!(
                "Last-Attempt-Date: {}\r\n",
                crate::time::rfc5322(now)
            ));
        }
        if kind == DsnKind::Delay {
            let until = env.arrival + cfg.maximal_queue_lifetime.as_secs();
            s.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                crate::time::rfc5322(until)
            ));
        }
    }
    s
}
