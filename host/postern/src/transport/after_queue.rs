//! After-queue content filtering with a filter-role plugin (`content_filter = wasm:NAME`).
//!
//! The plugin sees the queued message (phase `after-queue`). Accepting re-injects the message,
//! with the filter's header, body and envelope edits, through cleanup as a new queue file that
//! is not filtered again; the original's recipients are then done ("filtered as NEWID"). A
//! reject bounces the recipients with the filter's reply, a defer keeps them queued, discard
//! drops the message, quarantine re-injects it into `hold/`. A failed call applies `on_error`:
//! `dunno` re-injects the message unfiltered, `defer` keeps it queued (4.3.0).

use std::sync::Arc;

use postern_config::Config;
use postern_proto::EnhancedCode;
use postern_runtime::{
    Address, Disposition, EnvelopeEdit, FilterContext, FilterPlugin, MessageContent, OnError,
    Phase, PluginError,
};

use super::{Job, Outcome};
use crate::cleanup::{Actions, CleanupError, Protocol};
use crate::queue::{Envelope, QueueId, Recipient};

pub async fn filter(
    cfg: Arc<Config>,
    name: &str,
    plugin: &FilterPlugin,
    job: &Job,
) -> Vec<Outcome> {
    let relay = format!("wasm:{name}");
    let n = job.rcpts.len();
    let env = &job.env;
    let rcpts: Vec<Recipient> = job
        .rcpts
        .iter()
        .filter_map(|&i| env.recipients.get(i).cloned())
        .collect();
    let defer = |text: String| vec![Outcome::defer(EnhancedCode::new(4, 3, 0), &relay, text); n];
    if rcpts.len() != n {
        return defer("internal error: no such recipient".into());
    }
    let context = FilterContext {
        phase: Phase::AfterQueue,
        queue_id: env.id.to_string(),
        sender: Address::new(&env.sender),
        recipients: rcpts.iter().map(|r| Address::new(&r.address)).collect(),
        client: None,
    };
    let message = Arc::new(MessageContent::parse(&job.content));
    let limit = usize::try_from(cfg.message_size_limit).unwrap_or(usize::MAX);
    let mut new = Envelope::new(QueueId::generate(), env.sender.clone(), env.origin.clone());
    new.smtputf8 = env.smtputf8;
    new.body = env.body;
    new.ret = env.ret;
    new.envid = env.envid.clone();
    new.arrival = env.arrival;
    new.recipients = rcpts;
    let mut actions = Actions::default();
    let mut content = job.content.to_vec();
    let mut what = format!("filtered by {relay}");
    match plugin.scan(&context, message, limit, None).await {
        Err(e) => {
            let text = match e {
                PluginError::Temporary(m) | PluginError::Config(m) => m,
            };
            crate::warn!("wasm", "{}: filter {name}: {text}", env.id);
            match plugin.binding().on_error {
                OnError::Defer => return defer(format!("content filter {name}: {text}")),
                OnError::Dunno => what = format!("not filtered ({name} failed)"),
            }
        }
        Ok(result) => {
            match result.disposition {
                Disposition::Accept => {}
                Disposition::Reject(r) => {
                    return reply_outcomes(&relay, &r, n, true);
                }
                Disposition::Defer(r) => return reply_outcomes(&relay, &r, n, false),
                Disposition::Discard(t) => {
                    let text = t.unwrap_or_else(|| format!("discarded by {relay}"));
                    return vec![Outcome::sent(&relay, text); n];
                }
                Disposition::Quarantine(t) => {
                    actions.hold = Some(t);
                    what = format!("held by {relay}");
                }
            }
            for e in result.envelope_edits {
                match e {
                    EnvelopeEdit::ChangeSender(a) => new.sender = a.address,
                    EnvelopeEdit::AddRecipient(a) => {
                        if !new.recipients.iter().any(|r| r.address == a.address) {
                            new.recipients.push(Recipient::new(a.address));
                        }
                    }
                    EnvelopeEdit::RemoveRecipient(a) => new.recipients.retain(|r| r.address != a),
                }
            }
            if new.recipients.is_empty() {
                return vec![Outcome::sent(&relay, format!("{relay} removed every recipient")); n];
            }
            if !result.header_edits.is_empty() || result.new_body.is_some() {
                content = crate::smtpd::edit_message(
                    &content,
                    &result.header_edits,
                    result.new_body.as_deref(),
                );
            }
        }
    }
    reinject(cfg, &relay, new, content, actions, what, n).await
}

/// One outcome per recipient from the filter's reply: bounce (reject) or defer.
fn reply_outcomes(relay: &str, r: &postern_runtime::Reply, n: usize, bounce: bool) -> Vec<Outcome> {
    let code = r
        .enhanced
        .map(|e| EnhancedCode::new(e.0, e.1, e.2))
        .unwrap_or(if bounce {
            EnhancedCode::new(5, 7, 1)
        } else {
            EnhancedCode::new(4, 7, 1)
        });
    let text = r.text.join(" ");
    let mut o = if bounce {
        Outcome::bounce(code, relay, text.clone())
    } else {
        Outcome::defer(code, relay, text.clone())
    };
    o.diagnostic = Some(format!("X-Postern; {} {code} {text}", r.code));
    vec![o; n]
}

async fn reinject(
    cfg: Arc<Config>,
    relay: &str,
    env: Envelope,
    content: Vec<u8>,
    actions: Actions,
    what: String,
    n: usize,
) -> Vec<Outcome> {
    let relay_name = relay.to_string();
    let run = move || {
        // The re-injected copy is not filtered again (Postfix: `-o content_filter=` on the
        // re-injection service).
        let mut cfg = (*cfg).clone();
        cfg.content_filter.clear();
        let spool = crate::queue::Spool::open(&cfg.queue_directory)
            .map_err(|e| format!("cannot open the queue: {e}"))?;
        crate::cleanup::enqueue_full(&cfg, &spool, env, &content, Protocol::default(), &actions)
            .map_err(|e| match e {
                CleanupError::Rejected(r) => format!("rejected on re-injection: {r}"),
                CleanupError::Queue(e) => format!("cannot re-inject: {e}"),
            })
    };
    let stored = match tokio::task::spawn_blocking(run).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(text)) => {
            return vec![Outcome::defer(EnhancedCode::new(4, 3, 0), &relay_name, text); n]
        }
        Err(e) => {
            let text = format!("content filter task failed: {e}");
            return vec![Outcome::defer(EnhancedCode::new(4, 3, 0), &relay_name, text); n];
        }
    };
    let id = stored.env.id.clone();
    let mut o = Outcome::sent(&relay_name, format!("{what}, queued as {id}"));
    if !stored.held && !stored.discarded {
        o.queued = Some(id);
    }
    vec![o; n]
}
