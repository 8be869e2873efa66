//! The `policy` role: `check_policy_service wasm:NAME`.

use std::sync::Arc;

use crate::bindings::policy::exports::postern::plugin::policy as wit;
use crate::bindings::policy::{PolicyPlugin as WitPolicy, PolicyPluginPre};
use crate::bindings::wt;
use crate::host::{CallData, HostState};
use crate::instance::{answered, Core, Instantiate, Prepared, Transaction};
use crate::plugins_toml::Binding;
use crate::types::{
    from_wit_reply, ip, to_wit_client, Address, ClientInfo, Reply, ServerInfo, Stage,
};
use crate::PluginError;

/// The Postfix SMTPD policy delegation attributes (WIT `policy-request`). Addresses are as
/// received; the null sender is `Some("")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRequest {
    pub stage: Stage,
    pub instance: String,
    pub client: ClientInfo,
    pub server: ServerInfo,
    pub queue_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub recipient_count: u32,
    pub size: u64,
    pub argument: Option<String>,
    pub context: Option<String>,
}

/// How the restriction list proceeds (access(5) action classes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ok,
    Dunno,
    Reject(Reply),
    Defer(Reply),
    DeferIfReject(Option<String>),
    DeferIfPermit(Option<String>),
    Discard(Option<String>),
}

/// Side effects that never stop evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Prepend { name: String, value: String },
    Hold(Option<String>),
    Redirect(String),
    Filter(String),
    Bcc(String),
    Warn(String),
    Info(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub actions: Vec<Action>,
}

/// A component prepared for the `policy` role of one binding. Cheap to share (`Arc` it).
pub struct PolicyPlugin {
    prepared: Prepared<PolicyPluginPre<HostState>>,
}

impl Instantiate for PolicyPluginPre<HostState> {
    type Instance = WitPolicy;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut wasmtime::Store<HostState>,
    ) -> impl std::future::Future<Output = wasmtime::Result<WitPolicy>> + Send + 'a {
        self.instantiate_async(store)
    }
}

impl std::fmt::Debug for PolicyPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyPlugin")
            .field("binding", &self.binding().name)
            .finish_non_exhaustive()
    }
}

impl PolicyPlugin {
    pub(crate) fn new(core: Arc<Core>, pre: PolicyPluginPre<HostState>) -> PolicyPlugin {
        PolicyPlugin {
            prepared: Prepared::new(core, pre),
        }
    }

    pub fn binding(&self) -> &Binding {
        &self.prepared.core.binding
    }

    /// Asks the plugin for a verdict. Never panics and never outlives the binding's timeout
    /// by more than one epoch tick: a trap, timeout, memory-cap or fuel hit is
    /// [`PluginError::Temporary`]; the caller logs it and applies the binding's `on_error`.
    /// `txn` is the SMTP transaction (absent at connect and HELO).
    pub async fn check(
        &self,
        request: &PolicyRequest,
        txn: Option<&Transaction>,
    ) -> Result<Verdict, PluginError> {
        let wreq = to_wit_request(request);
        let data = CallData {
            queue_id: request.queue_id.clone(),
            ..CallData::default()
        };
        let answer = self
            .prepared
            .run(txn, data, async |store, inst: &WitPolicy| {
                inst.postern_plugin_policy().call_check(store, &wreq).await
            })
            .await?;
        answered(&self.prepared.core, answer).map(from_wit_verdict)
    }
}

fn to_wit_request(r: &PolicyRequest) -> wit::PolicyRequest {
    wit::PolicyRequest {
        stage: match r.stage {
            Stage::Connect => wt::Stage::Connect,
            Stage::Helo => wt::Stage::Helo,
            Stage::Mail => wt::Stage::Mail,
            Stage::Rcpt => wt::Stage::Rcpt,
            Stage::Data => wt::Stage::Data,
            Stage::EndOfData => wt::Stage::EndOfData,
            Stage::Vrfy => wt::Stage::Vrfy,
            Stage::Etrn => wt::Stage::Etrn,
        },
        instance: r.instance.clone(),
        client: to_wit_client(&r.client),
        server: wt::ServerInfo {
            address: ip(r.server.address),
            port: r.server.port,
            hostname: r.server.hostname.clone(),
            service: r.server.service.clone(),
        },
        queue_id: r.queue_id.clone(),
        sender: r
            .sender
            .as_deref()
            .map(|a| crate::types::to_wit_address(&Address::new(a))),
        recipient: r
            .recipient
            .as_deref()
            .map(|a| crate::types::to_wit_address(&Address::new(a))),
        recipient_count: r.recipient_count,
        size: r.size,
        argument: r.argument.clone(),
        context: r.context.clone(),
    }
}

fn from_wit_verdict(v: wit::Verdict) -> Verdict {
    let decision = match v.decision {
        wit::Decision::Ok => Decision::Ok,
        wit::Decision::Dunno => Decision::Dunno,
        wit::Decision::Reject(r) => Decision::Reject(from_wit_reply(r)),
        wit::Decision::Defer(r) => Decision::Defer(from_wit_reply(r)),
        wit::Decision::DeferIfReject(t) => Decision::DeferIfReject(t),
        wit::Decision::DeferIfPermit(t) => Decision::DeferIfPermit(t),
        wit::Decision::Discard(t) => Decision::Discard(t),
    };
    let actions = v
        .actions
        .into_iter()
        .map(|a| match a {
            wit::Action::Prepend(h) => Action::Prepend {
                name: h.name,
                value: h.value,
            },
            wit::Action::Hold(t) => Action::Hold(t),
            wit::Action::Redirect(t) => Action::Redirect(t),
            wit::Action::Filter(t) => Action::Filter(t),
            wit::Action::Bcc(t) => Action::Bcc(t),
            wit::Action::Warn(t) => Action::Warn(t),
            wit::Action::Info(t) => Action::Info(t),
        })
        .collect();
    Verdict { decision, actions }
}
