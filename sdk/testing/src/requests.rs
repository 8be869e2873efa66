//! Requests with fixed, documented test values, and one `async` method per role call.
//!
//! Every value a builder fills in is a constant of this module, so a test that asserts on
//! what the plugin saw (a logged client address, a queue ID in a header) can name it. The
//! returned structs have public fields: change what the test is about, keep the rest.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use postern_runtime::{
    Address, ClientInfo, DeliveryRequest, FilterContext, FilterResult, MessageContent, Phase,
    Plugin, PluginError, PolicyRequest, Protocol, RecipientStatus, ServerInfo, Stage, TableKind,
    Transaction, Verdict,
};

/// The SMTP client of every built request (RFC 5737 documentation address).
pub const CLIENT_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// The HELO name the client gave (from the `helo` stage on).
pub const CLIENT_HELO: &str = "client.example";
/// The envelope sender (from the `mail` stage on).
pub const SENDER: &str = "sender@example.org";
/// The queue ID of filter and delivery requests.
pub const QUEUE_ID: &str = "4ZTESTQUEUE00001";
/// The largest replacement body a filter may build: Postfix's default `message_size_limit`.
pub const BODY_LIMIT: usize = 10_240_000;

/// The client as smtpd describes it: `address`, port 40000, ESMTP, no TLS, no SASL, and
/// `helo` as given.
pub fn client_info(address: IpAddr, helo: Option<&str>) -> ClientInfo {
    ClientInfo {
        address,
        port: 40000,
        reverse_name: None,
        verified_name: None,
        helo: helo.map(str::to_string),
        protocol: Protocol::Esmtp,
        tls: None,
        sasl_method: None,
        sasl_username: None,
    }
}

/// The server side of every request: 127.0.0.1:25, `mx.example`, service `smtpd`.
pub fn server_info() -> ServerInfo {
    ServerInfo {
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 25,
        hostname: "mx.example".to_string(),
        service: "smtpd".to_string(),
    }
}

/// A policy request as smtpd would send it at `stage`: the client [`CLIENT_ADDRESS`], its
/// HELO [`CLIENT_HELO`] after `connect`, the sender [`SENDER`] from `mail` on, and
/// `recipient` (an empty string means none, as at `connect`). At `data` and `end-of-data`
/// the recipient count is 1.
pub fn policy_request(stage: Stage, recipient: &str) -> PolicyRequest {
    let after_mail = matches!(
        stage,
        Stage::Mail | Stage::Rcpt | Stage::Data | Stage::EndOfData
    );
    let helo = (stage != Stage::Connect).then_some(CLIENT_HELO);
    PolicyRequest {
        stage,
        instance: "harness.1".to_string(),
        client: client_info(CLIENT_ADDRESS, helo),
        server: server_info(),
        queue_id: None,
        sender: after_mail.then(|| SENDER.to_string()),
        recipient: (!recipient.is_empty()).then(|| recipient.to_string()),
        recipient_count: u32::from(matches!(stage, Stage::Data | Stage::EndOfData)),
        size: 0,
        argument: None,
        context: None,
    }
}

/// A message from RFC 5322 text (LF or CRLF line endings; the body becomes CRLF).
pub fn message(text: &str) -> Arc<MessageContent> {
    Arc::new(MessageContent::parse(text.as_bytes()))
}

/// A before-queue filter context: queue ID [`QUEUE_ID`], the client of [`client_info`].
pub fn filter_context(sender: &str, recipients: &[&str]) -> FilterContext {
    FilterContext {
        phase: Phase::BeforeQueue,
        queue_id: QUEUE_ID.to_string(),
        sender: Address::new(sender),
        recipients: recipients.iter().map(|r| Address::new(r)).collect(),
        client: Some(client_info(CLIENT_ADDRESS, Some(CLIENT_HELO))),
    }
}

/// A first delivery attempt of [`QUEUE_ID`] with no next hop.
pub fn delivery_request(sender: &str, recipients: &[&str]) -> DeliveryRequest {
    DeliveryRequest {
        queue_id: QUEUE_ID.to_string(),
        sender: Address::new(sender),
        recipients: recipients.iter().map(|r| Address::new(r)).collect(),
        nexthop: String::new(),
        attempt: 1,
    }
}

fn no_role(role: &str) -> PluginError {
    PluginError::Config(format!(
        "the binding has no {role} role (the component does not export it, or the binding's \
         roles leave it out)"
    ))
}

/// Role calls on a loaded [`Plugin`], one line each in a test. A role the binding does not
/// have answers [`PluginError::Config`] saying so. Calls run outside any SMTP transaction
/// (a fresh instance per call unless the binding pools them) except [`PluginCalls::check_in`].
pub trait PluginCalls {
    /// `policy.check`.
    fn check(
        &self,
        request: &PolicyRequest,
    ) -> impl Future<Output = Result<Verdict, PluginError>> + Send;
    /// `policy.check` within `txn`: annotations and (for `instances = "transaction"`) the
    /// instance are shared with the other calls of that transaction.
    fn check_in(
        &self,
        request: &PolicyRequest,
        txn: &Transaction,
    ) -> impl Future<Output = Result<Verdict, PluginError>> + Send;
    /// `lookup.get`; `None` = not found.
    fn lookup(
        &self,
        table: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, PluginError>> + Send;
    /// `lookup.get-first`: the index and value of the first key found.
    fn lookup_first(
        &self,
        table: &str,
        keys: &[&str],
    ) -> impl Future<Output = Result<Option<(usize, String)>, PluginError>> + Send;
    /// `lookup.describe`.
    fn describe(&self, table: &str) -> impl Future<Output = Result<TableKind, PluginError>> + Send;
    /// `filter.scan` (after `declare`), held to the declared capabilities as in smtpd, with a
    /// body limit of [`BODY_LIMIT`].
    fn scan(
        &self,
        context: &FilterContext,
        message: Arc<MessageContent>,
    ) -> impl Future<Output = Result<FilterResult, PluginError>> + Send;
    /// `transport.deliver`: one status per recipient, in order.
    fn deliver(
        &self,
        request: &DeliveryRequest,
        message: Arc<MessageContent>,
    ) -> impl Future<Output = Result<Vec<RecipientStatus>, PluginError>> + Send;
}

impl PluginCalls for Plugin {
    fn check(
        &self,
        request: &PolicyRequest,
    ) -> impl Future<Output = Result<Verdict, PluginError>> + Send {
        let (role, request) = (self.policy.clone(), request.clone());
        async move {
            match role {
                Some(p) => p.check(&request, None).await,
                None => Err(no_role("policy")),
            }
        }
    }

    fn check_in(
        &self,
        request: &PolicyRequest,
        txn: &Transaction,
    ) -> impl Future<Output = Result<Verdict, PluginError>> + Send {
        let (role, request, txn) = (self.policy.clone(), request.clone(), txn.clone());
        async move {
            match role {
                Some(p) => p.check(&request, Some(&txn)).await,
                None => Err(no_role("policy")),
            }
        }
    }

    fn lookup(
        &self,
        table: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, PluginError>> + Send {
        let (role, table, key) = (self.lookup.clone(), table.to_string(), key.to_string());
        async move {
            match role {
                Some(l) => l.get(&table, &key).await,
                None => Err(no_role("lookup")),
            }
        }
    }

    fn lookup_first(
        &self,
        table: &str,
        keys: &[&str],
    ) -> impl Future<Output = Result<Option<(usize, String)>, PluginError>> + Send {
        let role = self.lookup.clone();
        let table = table.to_string();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        async move {
            match role {
                Some(l) => l.get_first(&table, &keys).await,
                None => Err(no_role("lookup")),
            }
        }
    }

    fn describe(&self, table: &str) -> impl Future<Output = Result<TableKind, PluginError>> + Send {
        let (role, table) = (self.lookup.clone(), table.to_string());
        async move {
            match role {
                Some(l) => l.describe(&table).await,
                None => Err(no_role("lookup")),
            }
        }
    }

    fn scan(
        &self,
        context: &FilterContext,
        message: Arc<MessageContent>,
    ) -> impl Future<Output = Result<FilterResult, PluginError>> + Send {
        let (role, context) = (self.filter.clone(), context.clone());
        async move {
            match role {
                Some(f) => f.scan(&context, message, BODY_LIMIT, None).await,
                None => Err(no_role("filter")),
            }
        }
    }

    fn deliver(
        &self,
        request: &DeliveryRequest,
        message: Arc<MessageContent>,
    ) -> impl Future<Output = Result<Vec<RecipientStatus>, PluginError>> + Send {
        let (role, request) = (self.transport.clone(), request.clone());
        async move {
            match role {
                Some(t) => t.deliver(&request, message).await,
                None => Err(no_role("transport")),
            }
        }
    }
}
