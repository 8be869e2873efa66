//! What a restriction evaluation is given ([`Facts`]) and what it gives back ([`Verdict`]).

use std::net::IpAddr;

use postern_proto::Reply;

use super::{Actions, Decision};

/// What is known about the request being checked (owned: evaluation may wait on a policy
/// server while the session goes on owning its state).
#[derive(Clone, Debug)]
pub struct Facts {
    pub client_addr: IpAddr,
    pub client_port: u16,
    /// Verified client name, `unknown` when there is none.
    pub client_name: String,
    /// Unverified reverse (PTR) name, `unknown` when there is none.
    pub reverse_client_name: String,
    pub helo: Option<String>,
    /// Envelope sender; `Some("")` is the null sender.
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// SASL login name, once the client authenticated.
    pub sasl_username: Option<String>,
    /// SASL mechanism of that login (`PLAIN`, `LOGIN`).
    pub sasl_method: Option<String>,
    /// MAIL FROM's `AUTH=` value (RFC 4954 §5), where AUTH is enabled: policy `sasl_sender`.
    pub sasl_sender: Option<String>,
    /// The session's TLS protocol and cipher, once encrypted.
    pub tls: Option<crate::tls::TlsSummary>,
    /// The transaction declared SMTPUTF8 (non-ASCII domains allowed).
    pub smtputf8: bool,
    /// Recipients accepted so far in this transaction.
    pub recipient_count: usize,
    /// The client sent this command before the previous reply without having negotiated
    /// PIPELINING (RFC 2920 §3.2).
    pub unauth_pipelining: bool,
    pub queue_id: Option<String>,
    /// Identifies the mail transaction across its policy requests (Postfix `instance`).
    pub instance: String,
    /// SIZE= of MAIL FROM, or the message size at end of data.
    pub size: u64,
    /// SMTP command being checked (`CONNECT`, `HELO`, `MAIL`, `RCPT`, `DATA`,
    /// `END-OF-MESSAGE`, `VRFY`): policy `protocol_state`.
    pub command: &'static str,
    pub esmtp: bool,
    /// The plugin scope of the SMTP transaction (annotations recorded by earlier plugins,
    /// per-transaction instances); `None` at connect and HELO.
    pub plugins: Option<postern_runtime::Transaction>,
}

impl Facts {
    pub fn new(client_addr: IpAddr) -> Facts {
        Facts {
            client_addr,
            client_port: 0,
            client_name: "unknown".to_string(),
            reverse_client_name: "unknown".to_string(),
            helo: None,
            sender: None,
            recipient: None,
            sasl_username: None,
            sasl_method: None,
            sasl_sender: None,
            tls: None,
            smtputf8: false,
            recipient_count: 0,
            unauth_pipelining: false,
            queue_id: None,
            instance: String::new(),
            size: 0,
            command: "RCPT",
            esmtp: true,
            plugins: None,
        }
    }

    /// `name[addr]`.
    pub fn namaddr(&self) -> String {
        format!("{}[{}]", self.client_name, self.client_addr)
    }
}

/// The stages whose lists smtpd runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Client,
    Helo,
    Sender,
    Recipient,
    Data,
    EndOfData,
}

/// Something smtpd logs like Postfix (`warn`, `info`, `hold`, `discard`, `filter`,
/// `redirect`, `bcc`, `reject_warning`, `defer_if_permit`): `<qid>: <kind>: <CMD> from
/// <client>: <text>; from=<…> to=<…> proto=… helo=<…>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub kind: &'static str,
    pub text: String,
}

/// The outcome of evaluating one stage (or RCPT's chain of lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// A `DEFER_IF_PERMIT` that has not been applied yet (client/HELO/sender stages carry it to
    /// RCPT TO, as Postfix does).
    pub defer_if_permit: Option<Reply>,
    pub actions: Actions,
    pub notes: Vec<Note>,
}
