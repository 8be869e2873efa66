//! TLS for smtpd (STARTTLS and wrapper mode) and for the smtp/lmtp clients, on rustls with the
//! ring provider.
//!
//! - `server.rs`: smtpd's certificate configuration (`smtpd_tls_*`, SNI), built once per
//!   configuration epoch, so `postern reload` picks up renewed certificates.
//! - `client.rs`: the client side (`smtp_tls_*`, policy maps, verification).

pub mod client;
pub mod server;

/// What a finished TLS handshake established, for logs, `Received:` and policy requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSummary {
    /// `TLSv1.3`, `TLSv1.2`.
    pub protocol: String,
    /// IANA cipher suite name, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// Symmetric key bits of the cipher (`256`).
    pub bits: u16,
    /// The server name the client asked for (SNI), when it sent one.
    pub sni: Option<String>,
}
