//! A plugin serving the lookup, filter and transport roles, for host/runtime/tests/roles.rs.
//! Its behaviour comes from the binding's config (see each role below).

wit_bindgen::generate!({
    inline: "
        package test:roles;
        world roles {
            include postern:plugin/imports@0.1.0;
            export postern:plugin/lookup@0.1.0;
            export postern:plugin/filter@0.1.0;
            export postern:plugin/transport@0.1.0;
        }
    ",
    path: "../../../../../wit",
    world: "test:roles/roles",
    generate_all,
});

use exports::postern::plugin::filter::{
    Capabilities, Disposition, EnvelopeEdit, FilterContext, FilterResult, Guest as Filter,
    HeaderEdit,
};
use exports::postern::plugin::lookup::{Guest as Lookup, TableKind};
use exports::postern::plugin::transport::{
    DeliveryRequest, DsnAction, Guest as Transport, RecipientStatus,
};
use postern::plugin::content::{BodyBuilder, Message};
use postern::plugin::types::{EnhancedCode, EnvelopeAddress, Header, PluginError, Reply};
use postern::plugin::{config, kv, logging};

struct Roles;

/// `entries = "k1=v1, k2=v2"` of the binding's config.
fn entry(key: &str) -> Option<String> {
    let entries = config::get("entries").unwrap_or_default();
    entries.split(',').find_map(|e| {
        let (k, v) = e.trim().split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// Tables: `fixed` (the config entries), `pattern` (anything @example.com), `fail`
/// (a temporary error), `loop` (never answers).
impl Lookup for Roles {
    fn describe(table: String) -> Result<TableKind, PluginError> {
        match table.as_str() {
            "fixed" | "fail" | "loop" => Ok(TableKind::Fixed),
            "pattern" => Ok(TableKind::Pattern),
            other => Err(PluginError::Config(format!("no table named {other}"))),
        }
    }

    fn get(table: String, key: String) -> Result<Option<String>, PluginError> {
        match table.as_str() {
            "fixed" => Ok(entry(&key)),
            "pattern" => Ok(key
                .ends_with("@example.com")
                .then(|| format!("pattern:{key}"))),
            "fail" => Err(PluginError::Temporary("backend down".into())),
            "loop" => loop {
                std::hint::black_box(&key);
            },
            other => Err(PluginError::Config(format!("no table named {other}"))),
        }
    }

    fn get_first(table: String, keys: Vec<String>) -> Result<Option<(u32, String)>, PluginError> {
        for (i, k) in keys.into_iter().enumerate() {
            if let Some(v) = Self::get(table.clone(), k)? {
                return Ok(Some((i as u32, v)));
            }
        }
        Ok(None)
    }
}

fn read_body(msg: &Message) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        match msg.read_body(body.len() as u64, 7) {
            Ok(chunk) if chunk.is_empty() => return body,
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(_) => return body,
        }
    }
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply {
        code,
        enhanced: Some(EnhancedCode { class, subject, detail }),
        text: vec![text.to_string()],
    }
}

/// `caps` (comma list of capability names) is what `declare` answers; `filter` picks the
/// behaviour: tag, reject-spam, rewrite-body, quarantine, envelope, undeclared.
impl Filter for Roles {
    fn declare() -> Capabilities {
        let mut caps = Capabilities::empty();
        for c in config::get("caps").unwrap_or_default().split(',') {
            caps |= match c.trim() {
                "add-headers" => Capabilities::ADD_HEADERS,
                "change-headers" => Capabilities::CHANGE_HEADERS,
                "replace-body" => Capabilities::REPLACE_BODY,
                "change-sender" => Capabilities::CHANGE_SENDER,
                "add-recipients" => Capabilities::ADD_RECIPIENTS,
                "remove-recipients" => Capabilities::REMOVE_RECIPIENTS,
                "quarantine" => Capabilities::QUARANTINE,
                _ => Capabilities::empty(),
            };
        }
        caps
    }

    fn scan(context: FilterContext, msg: &Message) -> Result<FilterResult, PluginError> {
        let body = read_body(msg);
        let mut result = FilterResult {
            disposition: Disposition::Accept,
            header_edits: Vec::new(),
            envelope_edits: Vec::new(),
            new_body: None,
        };
        match config::get("filter").as_deref() {
            Some("tag") | Some("undeclared") => {
                let subject = msg
                    .headers()
                    .into_iter()
                    .find(|h| h.name.eq_ignore_ascii_case("subject"))
                    .map(|h| h.value)
                    .unwrap_or_default();
                result.header_edits.push(HeaderEdit::Add(Header {
                    name: "X-Scanned".into(),
                    value: format!(
                        "size={} body={} rcpts={} subject={subject}",
                        msg.size(),
                        body.len(),
                        context.recipients.len()
                    ),
                }));
                logging::log(logging::Level::Info, &format!("tagged {}", context.queue_id));
            }
            Some("reject-spam") => {
                if body.windows(4).any(|w| w == b"SPAM") {
                    result.disposition = Disposition::Reject(reply(550, 5, 7, 1, "spam detected"));
                }
            }
            Some("bad-reply") => {
                result.disposition = Disposition::Reject(reply(250, 2, 0, 0, "not a reject"));
            }
            Some("rewrite-body") => {
                let b = BodyBuilder::new();
                b.append(&body.to_ascii_uppercase())
                    .map_err(|e| PluginError::Temporary(format!("{e:?}")))?;
                result.new_body = Some(b);
            }
            Some("huge-body") => {
                let b = BodyBuilder::new();
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..64 {
                    if b.append(&chunk).is_err() {
                        break;
                    }
                }
                result.new_body = Some(b);
            }
            Some("quarantine") => result.disposition = Disposition::Quarantine("held for review".into()),
            Some("envelope") => {
                result.envelope_edits.push(EnvelopeEdit::AddRecipient(EnvelopeAddress {
                    address: config::get("add").unwrap_or_default(),
                    params: Vec::new(),
                }));
                if let Some(first) = context.recipients.first() {
                    result
                        .envelope_edits
                        .push(EnvelopeEdit::RemoveRecipient(first.address.clone()));
                }
            }
            _ => {}
        }
        Ok(result)
    }
}

/// Recipients whose local part starts with `fail` bounce, `defer` are deferred, the rest
/// are "delivered" into kv bucket `mailbox` (if granted) under `QUEUEID:RCPT`.
impl Transport for Roles {
    fn deliver(request: DeliveryRequest, msg: &Message) -> Result<Vec<RecipientStatus>, PluginError> {
        let body = read_body(msg);
        let bucket = kv::Bucket::open("mailbox").ok();
        Ok(request
            .recipients
            .iter()
            .map(|r| {
                let code = |class, subject, detail| EnhancedCode { class, subject, detail };
                if r.address.starts_with("fail") {
                    RecipientStatus {
                        action: DsnAction::Failed,
                        status: code(5, 1, 1),
                        remote_reply: Some(reply(550, 5, 1, 1, "no such user")),
                        remote_mta: Some(request.nexthop.clone()),
                        reason: "no such user".into(),
                    }
                } else if r.address.starts_with("defer") {
                    RecipientStatus {
                        action: DsnAction::Delayed,
                        status: code(4, 4, 1),
                        remote_reply: None,
                        remote_mta: None,
                        reason: "try again later".into(),
                    }
                } else {
                    if let Some(b) = &bucket {
                        let _ = b.set(&format!("{}:{}", request.queue_id, r.address), &body, 0);
                    }
                    RecipientStatus {
                        action: DsnAction::Delivered,
                        status: code(2, 0, 0),
                        remote_reply: None,
                        remote_mta: None,
                        reason: format!("stored {} bytes via {}", body.len(), request.nexthop),
                    }
                }
            })
            .collect())
    }
}

export!(Roles);
