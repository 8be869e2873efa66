//! The `filter` role: before-queue (`smtpd_milters = wasm:NAME`) and after-queue
//! (`content_filter = wasm:NAME`) content filters. A filter declares once what it may change;
//! a result that goes further is refused as a plugin configuration error.

use std::sync::Arc;

use tokio::sync::OnceCell;
use wasmtime::component::Resource;

use crate::bindings::filter::exports::postern::plugin::filter as wit;
use crate::bindings::filter::{FilterPlugin as WitFilter, FilterPluginPre};
use crate::host::{BodyHandle, CallData, HostState, MessageContent, MessageHandle};
use crate::instance::{answered, Core, Instantiate, Prepared, Transaction};
use crate::plugins_toml::Binding;
use crate::types::{from_wit_address, from_wit_reply, to_wit_address, to_wit_client};
use crate::types::{Address, ClientInfo, Reply};
use crate::PluginError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// At end of data, before the reply: a reject is an SMTP reply.
    BeforeQueue,
    /// After queueing: a reject becomes a bounce.
    AfterQueue,
}

#[derive(Debug, Clone)]
pub struct FilterContext {
    pub phase: Phase,
    pub queue_id: String,
    pub sender: Address,
    pub recipients: Vec<Address>,
    /// Absent for locally submitted mail.
    pub client: Option<ClientInfo>,
}

/// What a filter may change (WIT `capabilities`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCapabilities {
    pub add_headers: bool,
    pub change_headers: bool,
    pub replace_body: bool,
    pub change_sender: bool,
    pub add_recipients: bool,
    pub remove_recipients: bool,
    pub quarantine: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Append after the last header.
    Add { name: String, value: String },
    /// Insert before the header at this 0-based position.
    Insert {
        index: u32,
        name: String,
        value: String,
    },
    /// Change the `occurrence`-th (1-based) header `name`; `None` deletes it.
    Change {
        name: String,
        occurrence: u32,
        value: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeEdit {
    ChangeSender(Address),
    AddRecipient(Address),
    RemoveRecipient(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Accept,
    /// A 5xx reply (checked).
    Reject(Reply),
    /// A 4xx reply (checked).
    Defer(Reply),
    Discard(Option<String>),
    /// Move the message to the hold queue, with a reason.
    Quarantine(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterResult {
    pub disposition: Disposition,
    pub header_edits: Vec<HeaderEdit>,
    pub envelope_edits: Vec<EnvelopeEdit>,
    /// Replacement body (CRLF line endings as the filter wrote them).
    pub new_body: Option<Vec<u8>>,
}

/// A component prepared for the `filter` role of one binding.
pub struct FilterPlugin {
    prepared: Prepared<FilterPluginPre<HostState>>,
    declared: OnceCell<FilterCapabilities>,
}

impl Instantiate for FilterPluginPre<HostState> {
    type Instance = WitFilter;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut wasmtime::Store<HostState>,
    ) -> impl std::future::Future<Output = wasmtime::Result<WitFilter>> + Send + 'a {
        self.instantiate_async(store)
    }
}

impl std::fmt::Debug for FilterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterPlugin")
            .field("binding", &self.binding().name)
            .finish_non_exhaustive()
    }
}

impl FilterPlugin {
    pub(crate) fn new(core: Arc<Core>, pre: FilterPluginPre<HostState>) -> FilterPlugin {
        FilterPlugin {
            prepared: Prepared::new(core, pre),
            declared: OnceCell::new(),
        }
    }

    pub fn binding(&self) -> &Binding {
        &self.prepared.core.binding
    }

    /// What the filter declared it may change (asked once, then remembered).
    pub async fn capabilities(&self) -> Result<FilterCapabilities, PluginError> {
        self.declared
            .get_or_try_init(|| async {
                let flags = self
                    .prepared
                    .run(
                        None,
                        CallData::default(),
                        async |store, inst: &WitFilter| {
                            inst.postern_plugin_filter().call_declare(store).await
                        },
                    )
                    .await?;
                Ok(FilterCapabilities {
                    add_headers: flags.contains(wit::Capabilities::ADD_HEADERS),
                    change_headers: flags.contains(wit::Capabilities::CHANGE_HEADERS),
                    replace_body: flags.contains(wit::Capabilities::REPLACE_BODY),
                    change_sender: flags.contains(wit::Capabilities::CHANGE_SENDER),
                    add_recipients: flags.contains(wit::Capabilities::ADD_RECIPIENTS),
                    remove_recipients: flags.contains(wit::Capabilities::REMOVE_RECIPIENTS),
                    quarantine: flags.contains(wit::Capabilities::QUARANTINE),
                })
            })
            .await
            .copied()
    }

    /// Shows the message to the filter. `body_limit` bounds a replacement body (use the
    /// message size limit). The result is checked against the declared capabilities and the
    /// reply classes; a violation is a [`PluginError::Config`].
    pub async fn scan(
        &self,
        context: &FilterContext,
        message: Arc<MessageContent>,
        body_limit: usize,
        txn: Option<&Transaction>,
    ) -> Result<FilterResult, PluginError> {
        let caps = self.capabilities().await?;
        let wctx = wit::FilterContext {
            phase: match context.phase {
                Phase::BeforeQueue => wit::Phase::BeforeQueue,
                Phase::AfterQueue => wit::Phase::AfterQueue,
            },
            queue_id: context.queue_id.clone(),
            sender: to_wit_address(&context.sender),
            recipients: context.recipients.iter().map(to_wit_address).collect(),
            client: context.client.as_ref().map(to_wit_client),
        };
        let data = CallData {
            queue_id: Some(context.queue_id.clone()),
            body_limit,
        };
        let answer = self
            .prepared
            .run(txn, data, async |store, inst: &WitFilter| {
                let handle = store
                    .data_mut()
                    .table
                    .push(MessageHandle { msg: message })?;
                let rep = handle.rep();
                let result = inst
                    .postern_plugin_filter()
                    .call_scan(&mut *store, &wctx, handle)
                    .await;
                let _ = store
                    .data_mut()
                    .table
                    .delete(Resource::<MessageHandle>::new_own(rep));
                let result = match result? {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let body = match result.new_body {
                    Some(b) => {
                        let state = store.data_mut();
                        let taken: BodyHandle = state.table.delete(b)?;
                        state.handles = state.handles.saturating_sub(1);
                        Some(taken)
                    }
                    None => None,
                };
                Ok(Ok((
                    result.disposition,
                    result.header_edits,
                    result.envelope_edits,
                    body,
                )))
            })
            .await?;
        let (disposition, headers, envelope, body) = answered(&self.prepared.core, answer)?;
        let result = FilterResult {
            disposition: disposition_from(disposition)?,
            header_edits: headers.into_iter().map(header_edit_from).collect(),
            envelope_edits: envelope
                .into_iter()
                .map(|e| match e {
                    wit::EnvelopeEdit::ChangeSender(a) => {
                        EnvelopeEdit::ChangeSender(from_wit_address(a))
                    }
                    wit::EnvelopeEdit::AddRecipient(a) => {
                        EnvelopeEdit::AddRecipient(from_wit_address(a))
                    }
                    wit::EnvelopeEdit::RemoveRecipient(a) => EnvelopeEdit::RemoveRecipient(a),
                })
                .collect(),
            new_body: match body {
                Some(b) if b.overflowed => {
                    return Err(PluginError::Temporary(format!(
                        "replacement body exceeds {body_limit} bytes"
                    )))
                }
                Some(b) => Some(b.bytes),
                None => None,
            },
        };
        check_declared(&caps, &result)?;
        Ok(result)
    }
}

fn header_edit_from(e: wit::HeaderEdit) -> HeaderEdit {
    match e {
        wit::HeaderEdit::Add(h) => HeaderEdit::Add {
            name: h.name,
            value: h.value,
        },
        wit::HeaderEdit::Insert((index, h)) => HeaderEdit::Insert {
            index,
            name: h.name,
            value: h.value,
        },
        wit::HeaderEdit::Change(c) => HeaderEdit::Change {
            name: c.name,
            occurrence: c.occurrence,
            value: c.value,
        },
    }
}

fn disposition_from(d: wit::Disposition) -> Result<Disposition, PluginError> {
    Ok(match d {
        wit::Disposition::Accept => Disposition::Accept,
        wit::Disposition::Reject(r) => {
            let r = from_wit_reply(r);
            if !(500..600).contains(&r.code) {
                return Err(PluginError::Config(format!(
                    "reject with reply code {} (must be 5xx)",
                    r.code
                )));
            }
            Disposition::Reject(r)
        }
        wit::Disposition::Defer(r) => {
            let r = from_wit_reply(r);
            if !(400..500).contains(&r.code) {
                return Err(PluginError::Config(format!(
                    "defer with reply code {} (must be 4xx)",
                    r.code
                )));
            }
            Disposition::Defer(r)
        }
        wit::Disposition::Discard(t) => Disposition::Discard(t),
        wit::Disposition::Quarantine(t) => Disposition::Quarantine(t),
    })
}

/// Refuses a result that changes what the filter did not declare.
fn check_declared(caps: &FilterCapabilities, r: &FilterResult) -> Result<(), PluginError> {
    let undeclared = |what: &str| {
        Err(PluginError::Config(format!(
            "the filter tried to {what} without declaring that capability"
        )))
    };
    for e in &r.header_edits {
        match e {
            HeaderEdit::Add { .. } | HeaderEdit::Insert { .. } if !caps.add_headers => {
                return undeclared("add a header")
            }
            HeaderEdit::Change { .. } if !caps.change_headers => {
                return undeclared("change a header")
            }
            _ => {}
        }
    }
    for e in &r.envelope_edits {
        match e {
            EnvelopeEdit::ChangeSender(_) if !caps.change_sender => {
                return undeclared("change the sender")
            }
            EnvelopeEdit::AddRecipient(_) if !caps.add_recipients => {
                return undeclared("add a recipient")
            }
            EnvelopeEdit::RemoveRecipient(_) if !caps.remove_recipients => {
                return undeclared("remove a recipient")
            }
            _ => {}
        }
    }
    if r.new_body.is_some() && !caps.replace_body {
        return undeclared("replace the body");
    }
    if matches!(r.disposition, Disposition::Quarantine(_)) && !caps.quarantine {
        return undeclared("quarantine the message");
    }
    Ok(())
}
