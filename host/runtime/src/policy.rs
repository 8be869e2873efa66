//! The `policy` role: `check_policy_service wasm:NAME`.

use std::net::IpAddr;
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Store, StoreLimitsBuilder};

use crate::engine::{LogSink, Runtime};
use crate::host::{Annotations, HostState};
use crate::plugins_toml::Binding;
use crate::PluginError;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy-plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::exports::postern::plugin::policy as wit;
use bindings::postern::plugin::types as wt;

/// SMTP state the restriction runs at (Postfix `protocol_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfData,
    Vrfy,
    Etrn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Smtp,
    Esmtp,
    Lmtp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub cipher_bits: u16,
    pub sni: Option<String>,
    pub peer_subject: Option<String>,
    pub peer_issuer: Option<String>,
    pub peer_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub address: IpAddr,
    pub port: u16,
    pub reverse_name: Option<String>,
    pub verified_name: Option<String>,
    pub helo: Option<String>,
    pub protocol: Protocol,
    pub tls: Option<TlsInfo>,
    pub sasl_method: Option<String>,
    pub sasl_username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub address: IpAddr,
    pub port: u16,
    pub hostname: String,
    pub service: String,
}

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

/// RFC 3463 `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode(pub u8, pub u16, pub u16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    /// One string per line.
    pub text: Vec<String>,
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

/// A component prepared for the `policy` role of one binding. Cheap to share (`Arc` it);
/// every call gets a fresh `Store` and instance, so a trap in one call cannot affect the next
/// (TOOLCHAIN trap 6) and plugins keep no state between calls.
pub struct PolicyPlugin {
    engine: wasmtime::Engine,
    pre: bindings::PolicyPluginPre<HostState>,
    binding: Arc<Binding>,
    log: LogSink,
}

impl std::fmt::Debug for PolicyPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyPlugin")
            .field("binding", &self.binding.name)
            .finish_non_exhaustive()
    }
}

impl PolicyPlugin {
    pub(crate) fn new(
        rt: &Runtime,
        binding: Binding,
        component: &Component,
    ) -> anyhow::Result<PolicyPlugin> {
        let name = binding.name.clone();
        let pre = rt
            .linker
            .instantiate_pre(component)
            .and_then(bindings::PolicyPluginPre::new)
            .map_err(|e| {
                anyhow::anyhow!(
                    "plugin {name}: {} does not fit the policy-plugin world of postern:plugin@0.1.0: {e:#}",
                    binding.component.display()
                )
            })?;
        Ok(PolicyPlugin {
            engine: rt.engine.clone(),
            pre,
            binding: Arc::new(binding),
            log: rt.log.clone(),
        })
    }

    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// Asks the plugin for a verdict. Never panics and never outlives the binding's timeout
    /// by more than one epoch tick: a trap, timeout, memory-cap or fuel hit is
    /// [`PluginError::Temporary`]; the caller logs it and applies the binding's `on_error`.
    pub async fn check(
        &self,
        request: &PolicyRequest,
        annotations: &Annotations,
    ) -> Result<Verdict, PluginError> {
        let timeout = self.binding.timeout;
        let result = tokio::time::timeout(timeout, self.call(request, annotations)).await;
        let fault = match result {
            Ok(Ok(Ok(verdict))) => return Ok(from_wit_verdict(verdict)),
            Ok(Ok(Err(wt::PluginError::Temporary(s)))) => return Err(PluginError::Temporary(s)),
            Ok(Ok(Err(wt::PluginError::Config(s)))) => return Err(PluginError::Config(s)),
            Ok(Err(e)) => classify(&e),
            Err(_) => format!("timed out after {timeout:?}"),
        };
        Err(PluginError::Temporary(fault))
    }

    async fn call(
        &self,
        request: &PolicyRequest,
        annotations: &Annotations,
    ) -> wasmtime::Result<Result<wit::Verdict, wt::PluginError>> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.binding.memory)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(
            self.binding.clone(),
            self.log.clone(),
            annotations.clone(),
            limits,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(self.binding.fuel.unwrap_or(u64::MAX))?;
        // Yield to the executor at every epoch tick so the wall-clock timeout in `check` can
        // drop a looping plugin without holding a worker thread.
        store.epoch_deadline_async_yield_and_update(1);
        let plugin = self.pre.instantiate_async(&mut store).await?;
        plugin
            .postern_plugin_policy()
            .call_check(&mut store, &to_wit_request(request))
            .await
    }
}

/// A one-line reason for a failed call (TOOLCHAIN trap 7: a memory-cap hit arrives as an error
/// from the limiter, not as a `Trap`).
fn classify(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => "ran out of fuel".into(),
            wasmtime::Trap::AllocationTooLarge => "exceeded its memory limit".into(),
            t => format!("trapped: {t}"),
        };
    }
    // The root cause, on one line: the full chain carries a multi-line wasm backtrace, and
    // this text ends up in a log line.
    let text = e.root_cause().to_string().replace(['\r', '\n'], " ");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        format!("exceeded its memory limit: {text}")
    } else {
        format!("failed: {text}")
    }
}

fn ip(a: IpAddr) -> wt::IpAddress {
    match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            wt::IpAddress::Ipv4((o[0], o[1], o[2], o[3]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            wt::IpAddress::Ipv6((s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
        }
    }
}

fn address(a: &Option<String>) -> Option<wt::EnvelopeAddress> {
    a.as_ref().map(|a| wt::EnvelopeAddress {
        address: a.clone(),
        params: Vec::new(),
    })
}

fn to_wit_request(r: &PolicyRequest) -> wit::PolicyRequest {
    let c = &r.client;
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
        client: wt::ClientInfo {
            address: ip(c.address),
            port: c.port,
            reverse_name: c.reverse_name.clone(),
            verified_name: c.verified_name.clone(),
            helo: c.helo.clone(),
            protocol: match c.protocol {
                Protocol::Smtp => wt::Protocol::Smtp,
                Protocol::Esmtp => wt::Protocol::Esmtp,
                Protocol::Lmtp => wt::Protocol::Lmtp,
            },
            tls: c.tls.as_ref().map(|t| wt::TlsInfo {
                version: t.version.clone(),
                cipher: t.cipher.clone(),
                cipher_bits: t.cipher_bits,
                sni: t.sni.clone(),
                peer_subject: t.peer_subject.clone(),
                peer_issuer: t.peer_issuer.clone(),
                peer_fingerprint: t.peer_fingerprint.clone(),
            }),
            sasl_method: c.sasl_method.clone(),
            sasl_username: c.sasl_username.clone(),
        },
        server: wt::ServerInfo {
            address: ip(r.server.address),
            port: r.server.port,
            hostname: r.server.hostname.clone(),
            service: r.server.service.clone(),
        },
        queue_id: r.queue_id.clone(),
        sender: address(&r.sender),
        recipient: address(&r.recipient),
        recipient_count: r.recipient_count,
        size: r.size,
        argument: r.argument.clone(),
        context: r.context.clone(),
    }
}

fn from_wit_reply(r: wt::Reply) -> Reply {
    Reply {
        code: r.code,
        enhanced: r
            .enhanced
            .map(|e| EnhancedCode(e.class, e.subject, e.detail)),
        text: r.text,
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
