//! `wasm:NAME` transports: a transport-role plugin bound in plugins.toml delivers the job
//! (`transport_maps` entry `wasm:NAME:nexthop`, or `default_transport = wasm:NAME`). The
//! plugin answers one RFC 3464 status per recipient; a plugin that fails, times out or is not
//! loaded defers the job with `4.3.0`, so nothing is lost.
//!
//! A binding with the filter role but no transport role is an after-queue content filter
//! (`content_filter = wasm:NAME`, or a `FILTER wasm:NAME` action): like a Postfix content
//! filter it gets the whole message and re-injects what it accepts as a new queue file (no
//! longer filtered), so a crash between the two loses nothing and at worst filters twice.

use std::sync::Arc;

use postern_config::Config;
use postern_proto::EnhancedCode;
use postern_runtime::{Address, DeliveryRequest, MessageContent, PluginError};

use super::{Job, Outcome};

pub async fn deliver(cfg: Arc<Config>, name: &str, job: &Job) -> Vec<Outcome> {
    let relay = format!("wasm:{name}");
    let all = |o: Outcome| vec![o; job.rcpts.len()];
    let temp = |text: String| Outcome::defer(EnhancedCode::new(4, 3, 0), &relay, text);
    let set = crate::plugins::latest();
    if let Some(filter) = set
        .as_ref()
        .filter(|s| s.transport(name).is_none())
        .and_then(|s| s.filter(name))
    {
        return super::after_queue::filter(cfg, name, &filter, job).await;
    }
    let Some(plugin) = set.and_then(|s| s.transport(name)) else {
        return all(temp(format!(
            "mail transport unavailable: no transport plugin \"{name}\" is loaded from plugins.toml"
        )));
    };
    let env = &job.env;
    let recipients: Vec<Address> = job
        .rcpts
        .iter()
        .filter_map(|&i| env.recipients.get(i))
        .map(|r| Address::new(&r.address))
        .collect();
    if recipients.len() != job.rcpts.len() {
        return all(temp("internal error: no such recipient".into()));
    }
    let request = DeliveryRequest {
        queue_id: env.id.to_string(),
        sender: Address::new(&env.sender),
        recipients,
        nexthop: job.route.nexthop.clone(),
        attempt: env.attempts.saturating_add(1),
    };
    let message = Arc::new(MessageContent::parse(&job.content));
    match plugin.deliver(&request, message).await {
        Ok(statuses) => statuses
            .into_iter()
            .map(|s| {
                let status = EnhancedCode::new(s.status.0, s.status.1, s.status.2);
                let relay = s.remote_mta.clone().unwrap_or_else(|| relay.clone());
                let mut o = match status.class {
                    2 => Outcome::sent(&relay, s.reason),
                    5 => Outcome::bounce(status, &relay, s.reason),
                    _ => Outcome::defer(status, &relay, s.reason),
                };
                o.status = status;
                o.diagnostic = s.remote_reply.map(|r| {
                    let code = r.enhanced.map(|e| format!(" {e}")).unwrap_or_default();
                    format!("smtp; {}{code} {}", r.code, r.text.join(" "))
                });
                o
            })
            .collect(),
        Err(e) => {
            let what = match e {
                PluginError::Temporary(m) => m,
                PluginError::Config(m) => format!("configuration error: {m}"),
            };
            all(temp(format!("transport plugin {name}: {what}")))
        }
    }
}
