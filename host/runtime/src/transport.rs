//! The `transport` role: `wasm:NAME` as a delivery transport (`transport_maps`, master.cf),
//! answering one DSN status per recipient.

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::transport::exports::postern::plugin::transport as wit;
use crate::bindings::transport::{TransportPlugin as WitTransport, TransportPluginPre};
use crate::host::{CallData, HostState, MessageContent, MessageHandle};
use crate::instance::{answered, Core, Instantiate, Prepared};
use crate::plugins_toml::Binding;
use crate::types::{from_wit_code, from_wit_reply, to_wit_address, Address, EnhancedCode, Reply};
use crate::PluginError;

#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    pub queue_id: String,
    pub sender: Address,
    pub recipients: Vec<Address>,
    /// Next hop from the transport table, e.g. `[relay.example]:587`.
    pub nexthop: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// RFC 3464 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Delivered,
    Relayed,
    Expanded,
    Delayed,
    Failed,
}

/// The outcome for one recipient; `status.0` (2, 4 or 5) decides delivered / deferred /
/// bounced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub action: DsnAction,
    pub status: EnhancedCode,
    pub remote_reply: Option<Reply>,
    pub remote_mta: Option<String>,
    pub reason: String,
}

/// A component prepared for the `transport` role of one binding.
pub struct TransportPlugin {
    prepared: Prepared<TransportPluginPre<HostState>>,
}

impl Instantiate for TransportPluginPre<HostState> {
    type Instance = WitTransport;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut wasmtime::Store<HostState>,
    ) -> impl std::future::Future<Output = wasmtime::Result<WitTransport>> + Send + 'a {
        self.instantiate_async(store)
    }
}

impl std::fmt::Debug for TransportPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportPlugin")
            .field("binding", &self.binding().name)
            .finish_non_exhaustive()
    }
}

impl TransportPlugin {
    pub(crate) fn new(core: Arc<Core>, pre: TransportPluginPre<HostState>) -> TransportPlugin {
        TransportPlugin {
            prepared: Prepared::new(core, pre),
        }
    }

    pub fn binding(&self) -> &Binding {
        &self.prepared.core.binding
    }

    /// Hands the message to the plugin. The answer has exactly one status per recipient, in
    /// request order, each of class 2, 4 or 5; anything else is a [`PluginError::Config`].
    pub async fn deliver(
        &self,
        request: &DeliveryRequest,
        message: Arc<MessageContent>,
    ) -> Result<Vec<RecipientStatus>, PluginError> {
        let wreq = wit::DeliveryRequest {
            queue_id: request.queue_id.clone(),
            sender: to_wit_address(&request.sender),
            recipients: request.recipients.iter().map(to_wit_address).collect(),
            nexthop: request.nexthop.clone(),
            attempt: request.attempt,
        };
        let data = CallData {
            queue_id: Some(request.queue_id.clone()),
            body_limit: 0,
        };
        let answer = self
            .prepared
            .run(None, data, async |store, inst: &WitTransport| {
                let handle = store
                    .data_mut()
                    .table
                    .push(MessageHandle { msg: message })?;
                let rep = handle.rep();
                let result = inst
                    .postern_plugin_transport()
                    .call_deliver(&mut *store, &wreq, handle)
                    .await;
                let _ = store
                    .data_mut()
                    .table
                    .delete(Resource::<MessageHandle>::new_own(rep));
                result
            })
            .await?;
        let statuses = answered(&self.prepared.core, answer)?;
        if statuses.len() != request.recipients.len() {
            return Err(PluginError::Config(format!(
                "{} statuses for {} recipients",
                statuses.len(),
                request.recipients.len()
            )));
        }
        statuses
            .into_iter()
            .map(|s| {
                let status = from_wit_code(s.status);
                if !matches!(status.0, 2 | 4 | 5) {
                    return Err(PluginError::Config(format!(
                        "status {status} is not of class 2, 4 or 5"
                    )));
                }
                Ok(RecipientStatus {
                    action: match s.action {
                        wit::DsnAction::Delivered => DsnAction::Delivered,
                        wit::DsnAction::Relayed => DsnAction::Relayed,
                        wit::DsnAction::Expanded => DsnAction::Expanded,
                        wit::DsnAction::Delayed => DsnAction::Delayed,
                        wit::DsnAction::Failed => DsnAction::Failed,
                    },
                    status,
                    remote_reply: s.remote_reply.map(from_wit_reply),
                    remote_mta: s.remote_mta,
                    reason: s.reason,
                })
            })
            .collect()
    }
}
