//! The test vector file (`<plugin>.tests.toml`, format in README.md): parsed and checked
//! before anything runs, so a typo is an error naming `file:line`, never a case that passes
//! because it checked nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use postern_runtime::services::{KeySpec, StaticDns};
use postern_runtime::{
    Binding, Bindings, DeliveryRequest, FilterContext, MessageContent, PolicyRequest, Role, Stage,
    TableKind,
};

use crate::requests::{self, CLIENT_ADDRESS, SENDER};

#[path = "vectors_env.rs"]
mod env;
use env::{duration, parse_clock, parse_dns, parse_kv};

/// A parsed vector file.
pub(crate) struct Vectors {
    /// The binding the cases run under (`[binding]`, component = the .wasm under test).
    pub binding: Binding,
    /// Whether `[binding]` named the roles; otherwise they come from the component's exports.
    pub roles_given: bool,
    pub keys: Vec<KeySpec>,
    pub dns: StaticDns,
    pub kv: Vec<KvSeed>,
    /// `[clock] start`.
    pub start: Option<SystemTime>,
    pub cases: Vec<Case>,
}

/// One `[[kv]]` entry, stored before the first case.
pub(crate) struct KvSeed {
    pub bucket: String,
    pub key: String,
    pub value: String,
    pub ttl: Option<Duration>,
}

/// How a call is expected to fail (`error = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Temporary,
    Config,
    Any,
}

/// An expected decision or disposition: `reject 550 5.7.1` = kind, then optional code and
/// enhanced code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub kind: String,
    pub code: Option<u16>,
    pub enhanced: Option<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind)?;
        if let Some(c) = self.code {
            write!(f, " {c}")?;
        }
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        Ok(())
    }
}

pub(crate) enum Call {
    Policy {
        request: Box<PolicyRequest>,
        decision: Option<Outcome>,
        actions: Vec<String>,
    },
    Lookup {
        table: String,
        /// One key (`get`) or a search order (`get-first`).
        keys: Vec<String>,
        batch: bool,
        /// `Some(None)` = expected not found.
        value: Option<Option<String>>,
        index: Option<usize>,
        kind: Option<TableKind>,
    },
    Filter {
        context: Box<FilterContext>,
        message: Arc<MessageContent>,
        disposition: Option<Outcome>,
        /// An added header: name, and a substring of its value.
        header: Option<(String, Option<String>)>,
        body: Option<String>,
    },
    Transport {
        request: Box<DeliveryRequest>,
        message: Arc<MessageContent>,
        status: Vec<String>,
    },
}

pub(crate) struct Case {
    pub name: String,
    /// Line of its `[[case]]` header.
    pub line: usize,
    pub role: Role,
    /// `[case.config]`, laid over the binding's config for this case.
    pub config: BTreeMap<String, String>,
    pub advance: Option<Duration>,
    pub error: Option<ErrorKind>,
    /// Substring of the reply text (or of the error message, with `error`).
    pub text: Option<String>,
    pub call: Call,
}

const POLICY_DECISIONS: &[&str] = &[
    "ok",
    "dunno",
    "reject",
    "defer",
    "defer-if-reject",
    "defer-if-permit",
    "discard",
];
const FILTER_DISPOSITIONS: &[&str] = &["accept", "reject", "defer", "discard", "quarantine"];
const COMMON_KEYS: &[&str] = &["name", "role", "config", "advance", "error", "text"];
const POLICY_KEYS: &[&str] = &[
    "stage",
    "client",
    "client_name",
    "helo",
    "sender",
    "recipient",
    "sasl_username",
    "size",
    "decision",
    "actions",
];
const LOOKUP_KEYS: &[&str] = &["table", "key", "keys", "value", "found", "index", "kind"];
const FILTER_KEYS: &[&str] = &[
    "message",
    "sender",
    "recipients",
    "client",
    "helo",
    "disposition",
    "header",
    "body",
];
const TRANSPORT_KEYS: &[&str] = &["message", "sender", "recipients", "nexthop", "status"];

/// The message of filter and transport cases that give none.
const DEFAULT_MESSAGE: &str = "From: sender@example.org\nTo: recipient@example.com\n\
                               Subject: test\n\nHello.\n";
const DEFAULT_RECIPIENT: &str = "recipient@example.com";

/// Parses the vector file `path` (text `text`) for the component `wasm`.
pub(crate) fn parse(text: &str, path: &Path, wasm: &Path) -> anyhow::Result<Vectors> {
    let file = path.display().to_string();
    let doc: toml::Table =
        toml::from_str(text).map_err(|e| anyhow!("{file}: {}", e.to_string().trim_end()))?;
    for key in doc.keys() {
        if !matches!(
            key.as_str(),
            "binding" | "key" | "dns" | "kv" | "clock" | "case"
        ) {
            bail!(
                "{file}: unknown top-level key \"{key}\" (expected [binding], [[key]], [dns], \
                 [[kv]], [clock] and [[case]])"
            );
        }
    }
    let (binding, roles_given, keys) = parse_binding(&doc, path, wasm)?;
    let dns = match doc.get("dns") {
        Some(v) => parse_dns(v).map_err(|e| anyhow!("{file}: [dns] {e}"))?,
        None => StaticDns::new(),
    };
    let kv = match doc.get("kv") {
        Some(v) => parse_kv(v).map_err(|e| anyhow!("{file}: [[kv]] {e}"))?,
        None => Vec::new(),
    };
    let start = match doc.get("clock") {
        Some(v) => Some(parse_clock(v).map_err(|e| anyhow!("{file}: [clock] {e}"))?),
        None => None,
    };
    let lines = entry_lines(text, "[[case]]");
    let mut cases = Vec::new();
    if let Some(v) = doc.get("case") {
        let Some(entries) = v.as_array() else {
            bail!("{file}: \"case\" must be an array of tables: write [[case]]");
        };
        for (i, entry) in entries.iter().enumerate() {
            let line = lines.get(i).copied().unwrap_or(1);
            let case =
                parse_case(entry, line).map_err(|e| anyhow!("{file}:{line}: [[case]] {e}"))?;
            cases.push(case);
        }
    }
    if cases.is_empty() {
        bail!("{file}: no [[case]] entries: nothing to test");
    }
    Ok(Vectors {
        binding,
        roles_given,
        keys,
        dns,
        kv,
        start,
        cases,
    })
}

/// `[binding]` and `[[key]]` go through plugins.toml's own parser, as one `[[plugin]]` entry
/// whose component is the .wasm under test, so they accept exactly what plugins.toml accepts.
fn parse_binding(
    doc: &toml::Table,
    path: &Path,
    wasm: &Path,
) -> anyhow::Result<(Binding, bool, Vec<KeySpec>)> {
    let file = path.display().to_string();
    let mut entry = match doc.get("binding") {
        Some(toml::Value::Table(t)) => t.clone(),
        Some(_) => bail!("{file}: \"binding\" must be a table: write [binding]"),
        None => toml::Table::new(),
    };
    if entry.contains_key("component") {
        bail!("{file}: [binding] component: leave it out, the component is the .wasm under test");
    }
    let roles_given = entry.contains_key("roles");
    if !entry.contains_key("name") {
        entry.insert("name".into(), crate::harness::binding_name(wasm).into());
    }
    let wasm = std::path::absolute(wasm).map_err(|e| anyhow!("{}: {e}", wasm.display()))?;
    let Some(component) = wasm.to_str() else {
        bail!("{}: the component path is not UTF-8", wasm.display());
    };
    entry.insert("component".into(), component.into());
    let mut plugins_toml = toml::Table::new();
    plugins_toml.insert("plugin".into(), vec![toml::Value::Table(entry)].into());
    if let Some(keys) = doc.get("key") {
        plugins_toml.insert("key".into(), keys.clone());
    }
    let text = toml::to_string(&plugins_toml)?;
    let bindings = Bindings::parse(&text, path).map_err(|e| {
        // The line is of the text made here, not of the vector file: name the table instead.
        let msg = e.to_string();
        let rest = msg.strip_prefix(&file).unwrap_or(&msg);
        let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit() || c == ' ');
        let rest = rest.strip_prefix("[[plugin]] ").unwrap_or(rest);
        anyhow!("{file}: [binding] {rest}")
    })?;
    let Bindings { plugins, keys } = bindings;
    let binding = plugins
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{file}: [binding] could not be read"))?;
    Ok((binding, roles_given, keys))
}

/// Line numbers of the `header` lines, in order.
fn entry_lines(text: &str, header: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.starts_with(header)
        })
        .map(|(n, _)| n + 1)
        .collect()
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Reads one case's fields, each with a message naming the key.
struct Fields<'a>(&'a toml::Table);

impl Fields<'_> {
    fn str(&self, key: &str) -> anyhow::Result<Option<String>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => bail!("{key} must be a string"),
        }
    }

    fn list(&self, key: &str) -> anyhow::Result<Option<Vec<String>>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => strings(v)
                .map(Some)
                .ok_or_else(|| anyhow!("{key} must be a list of strings")),
        }
    }

    fn uint(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(_) => bail!("{key} must be a non-negative integer"),
        }
    }

    fn ip(&self, key: &str) -> anyhow::Result<Option<IpAddr>> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("{key} \"{s}\" is not an IP address")),
        }
    }
}

fn parse_case(entry: &toml::Value, line: usize) -> anyhow::Result<Case> {
    let Some(t) = entry.as_table() else {
        bail!("must be a table");
    };
    let f = Fields(t);
    let role = match f.str("role")?.as_deref() {
        Some("policy") => Role::Policy,
        Some("lookup") => Role::Lookup,
        Some("filter") => Role::Filter,
        Some("transport") => Role::Transport,
        Some(other) => bail!("unknown role \"{other}\" (policy, lookup, filter, transport)"),
        None if t.contains_key("table") => Role::Lookup,
        None if t.contains_key("decision") => Role::Policy,
        None if t.contains_key("disposition") => Role::Filter,
        None if t.contains_key("status") => Role::Transport,
        None => bail!(
            "cannot tell which role it tests: add role = \"policy\" (or lookup, filter, \
             transport), or its expectation (decision, table, disposition, status)"
        ),
    };
    let role_keys = match role {
        Role::Policy => POLICY_KEYS,
        Role::Lookup => LOOKUP_KEYS,
        Role::Filter => FILTER_KEYS,
        Role::Transport => TRANSPORT_KEYS,
    };
    let role_name = crate::role_name(role);
    if let Some(k) = t
        .keys()
        .find(|k| !COMMON_KEYS.contains(&k.as_str()) && !role_keys.contains(&k.as_str()))
    {
        bail!(
            "unknown key \"{k}\" for a {role_name} case (allowed: {}, {})",
            COMMON_KEYS.join(", "),
            role_keys.join(", ")
        );
    }
    let error = match f.str("error")?.as_deref() {
        None => None,
        Some("temporary") => Some(ErrorKind::Temporary),
        Some("config") => Some(ErrorKind::Config),
        Some("any") => Some(ErrorKind::Any),
        Some(other) => bail!("error \"{other}\": expected \"temporary\", \"config\" or \"any\""),
    };
    let mut config = BTreeMap::new();
    if let Some(v) = t.get("config") {
        let Some(table) = v.as_table() else {
            bail!("config must be a table: [case.config]");
        };
        for (k, v) in table {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    v.to_string()
                }
                _ => bail!("config.{k}: values must be strings, numbers or booleans"),
            };
            config.insert(k.clone(), v);
        }
    }
    let advance = match t.get("advance") {
        None => None,
        Some(v) => Some(duration(v).ok_or_else(|| {
            anyhow!("advance must be a duration such as \"90s\", \"5m\" or \"250ms\"")
        })?),
    };
    let text = f.str("text")?;
    let (call, default_name) = match role {
        Role::Policy => policy_case(&f)?,
        Role::Lookup => lookup_case(&f)?,
        Role::Filter => filter_case(&f)?,
        Role::Transport => transport_case(&f)?,
    };
    let expects_something = error.is_some()
        || text.is_some()
        || match &call {
            Call::Policy {
                decision, actions, ..
            } => decision.is_some() || !actions.is_empty(),
            Call::Lookup { value, kind, .. } => value.is_some() || kind.is_some(),
            Call::Filter {
                disposition,
                header,
                body,
                ..
            } => disposition.is_some() || header.is_some() || body.is_some(),
            Call::Transport { status, .. } => !status.is_empty(),
        };
    if !expects_something {
        bail!("expects nothing: say what the {role_name} call must answer (see README.md)");
    }
    Ok(Case {
        name: f.str("name")?.unwrap_or(default_name),
        line,
        role,
        config,
        advance,
        error,
        text,
        call,
    })
}

/// `reject 550 5.7.1`: a kind from `kinds`, then optionally a 3-digit code and an enhanced
/// code.
fn outcome(s: &str, kinds: &[&str], what: &str) -> anyhow::Result<Outcome> {
    let mut words = s.split_whitespace();
    let kind = words.next().unwrap_or_default().to_ascii_lowercase();
    if !kinds.contains(&kind.as_str()) {
        bail!("{what} \"{s}\": starts with one of {}", kinds.join(", "));
    }
    let mut out = Outcome {
        kind,
        code: None,
        enhanced: None,
    };
    for w in words {
        if w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()) && out.code.is_none() {
            out.code = w.parse().ok();
        } else if w.split('.').count() == 3
            && w.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && out.enhanced.is_none()
        {
            out.enhanced = Some(w.to_string());
        } else {
            bail!(
                "{what} \"{s}\": \"{w}\" is neither a reply code nor an enhanced code \
                 (write e.g. \"reject 550 5.7.1\"; check reply text with text = \"…\")"
            );
        }
    }
    if (out.code.is_some() || out.enhanced.is_some())
        && !matches!(out.kind.as_str(), "reject" | "defer")
    {
        bail!("{what} \"{s}\": only reject and defer carry a reply code");
    }
    Ok(out)
}

fn stage(s: &str) -> anyhow::Result<Stage> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "connect" => Stage::Connect,
        "helo" | "ehlo" => Stage::Helo,
        "mail" => Stage::Mail,
        "rcpt" => Stage::Rcpt,
        "data" => Stage::Data,
        "end-of-data" => Stage::EndOfData,
        "vrfy" => Stage::Vrfy,
        "etrn" => Stage::Etrn,
        other => {
            bail!("stage \"{other}\": connect, helo, mail, rcpt, data, end-of-data, vrfy or etrn")
        }
    })
}

fn policy_case(f: &Fields<'_>) -> anyhow::Result<(Call, String)> {
    let stage_name = f.str("stage")?.unwrap_or_else(|| "rcpt".to_string());
    let st = stage(&stage_name)?;
    let recipient = f.str("recipient")?.unwrap_or_default();
    let mut request = requests::policy_request(st, &recipient);
    if let Some(ip) = f.ip("client")? {
        request.client.address = ip;
    }
    if let Some(name) = f.str("client_name")? {
        request.client.reverse_name = Some(name.clone());
        request.client.verified_name = Some(name);
    }
    if let Some(helo) = f.str("helo")? {
        request.client.helo = Some(helo);
    }
    if let Some(sender) = f.str("sender")? {
        request.sender = Some(sender);
    }
    if let Some(user) = f.str("sasl_username")? {
        request.client.sasl_method = Some("PLAIN".into());
        request.client.sasl_username = Some(user);
    }
    if let Some(size) = f.uint("size")? {
        request.size = size;
    }
    let decision = match f.str("decision")? {
        Some(d) => Some(outcome(&d, POLICY_DECISIONS, "decision")?),
        None => None,
    };
    let actions = f.list("actions")?.unwrap_or_default();
    let name = match &request.recipient {
        Some(r) => format!("{stage_name} <{r}>"),
        None => format!("{stage_name} from {}", request.client.address),
    };
    Ok((
        Call::Policy {
            request: Box::new(request),
            decision,
            actions,
        },
        name,
    ))
}

fn lookup_case(f: &Fields<'_>) -> anyhow::Result<(Call, String)> {
    let table = f
        .str("table")?
        .ok_or_else(|| anyhow!("a lookup case needs table = \"…\""))?;
    let (keys, batch) = match (f.str("key")?, f.list("keys")?) {
        (Some(k), None) => (vec![k], false),
        (None, Some(ks)) if !ks.is_empty() => (ks, true),
        (None, None) if f.0.contains_key("kind") => (Vec::new(), false),
        _ => bail!("a lookup case needs key = \"…\" or keys = [\"…\", …] (get-first), not both"),
    };
    let value = match (f.str("value")?, f.0.get("found")) {
        (Some(_), Some(_)) => bail!("give value = \"…\" or found = false, not both"),
        (Some(v), None) => Some(Some(v)),
        (None, Some(toml::Value::Boolean(false))) => Some(None),
        (None, Some(_)) => bail!("found = false is the only use of found (else give value)"),
        (None, None) => None,
    };
    let index = f.uint("index")?.map(|i| i as usize);
    if index.is_some() && !batch {
        bail!("index goes with keys = [...] (get-first)");
    }
    let kind = match f.str("kind")?.as_deref() {
        None => None,
        Some("fixed") => Some(TableKind::Fixed),
        Some("pattern") => Some(TableKind::Pattern),
        Some(other) => bail!("kind \"{other}\": fixed or pattern"),
    };
    let name = match keys.as_slice() {
        [] => format!("describe {table}"),
        [k] => format!("{table} {k}"),
        ks => format!("{table} {}", ks.join(",")),
    };
    Ok((
        Call::Lookup {
            table,
            keys,
            batch,
            value,
            index,
            kind,
        },
        name,
    ))
}

fn filter_case(f: &Fields<'_>) -> anyhow::Result<(Call, String)> {
    let text = f
        .str("message")?
        .ok_or_else(|| anyhow!("a filter case needs message = \"\"\"…\"\"\""))?;
    let message = requests::message(&text);
    let sender = f.str("sender")?.unwrap_or_else(|| SENDER.to_string());
    let recipients = f
        .list("recipients")?
        .unwrap_or_else(|| vec![DEFAULT_RECIPIENT.to_string()]);
    let rcpts: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let mut context = requests::filter_context(&sender, &rcpts);
    if let Some(client) = context.client.as_mut() {
        client.address = f.ip("client")?.unwrap_or(CLIENT_ADDRESS);
        if let Some(helo) = f.str("helo")? {
            client.helo = Some(helo);
        }
    }
    let disposition = match f.str("disposition")? {
        Some(d) => Some(outcome(&d, FILTER_DISPOSITIONS, "disposition")?),
        None => None,
    };
    let header = f.str("header")?.map(|h| match h.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
        None => (h.trim().to_string(), None),
    });
    let subject = message
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("subject"))
        .map(|(_, v)| format!("message \"{}\"", v.trim()))
        .unwrap_or_else(|| "message".to_string());
    Ok((
        Call::Filter {
            context: Box::new(context),
            message,
            disposition,
            header,
            body: f.str("body")?,
        },
        subject,
    ))
}

fn transport_case(f: &Fields<'_>) -> anyhow::Result<(Call, String)> {
    let recipients = f
        .list("recipients")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow!("a transport case needs recipients = [\"…\", …]"))?;
    let status = f.list("status")?.unwrap_or_default();
    if !status.is_empty() && status.len() != recipients.len() {
        bail!(
            "status has {} entries for {} recipients: give one per recipient",
            status.len(),
            recipients.len()
        );
    }
    for s in &status {
        let ok = match s.split('.').collect::<Vec<_>>().as_slice() {
            [class] => matches!(*class, "2" | "4" | "5"),
            [class, subject, detail] => {
                matches!(*class, "2" | "4" | "5")
                    && [subject, detail]
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            }
            _ => false,
        };
        if !ok {
            bail!("status \"{s}\": a class (2, 4, 5) or an enhanced code such as 5.1.1");
        }
    }
    let message = requests::message(&f.str("message")?.unwrap_or_else(|| DEFAULT_MESSAGE.into()));
    let sender = f.str("sender")?.unwrap_or_else(|| SENDER.to_string());
    let rcpts: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let mut request = requests::delivery_request(&sender, &rcpts);
    if let Some(nexthop) = f.str("nexthop")? {
        request.nexthop = nexthop;
    }
    let name = format!("deliver to {}", recipients.join(", "));
    Ok((
        Call::Transport {
            request: Box::new(request),
            message,
            status,
        },
        name,
    ))
}

#[cfg(test)]
#[path = "vectors_tests.rs"]
mod tests;
