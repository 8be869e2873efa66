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

impl TlsSummary {
    /// What a finished handshake established, in the words Postfix logs: `TLSv1.3`, the IANA
    /// suite name (`TLS_AES_256_GCM_SHA384`; rustls says `TLS13_…`), the cipher's key bits.
    pub fn of(conn: &rustls::CommonState, sni: Option<String>) -> TlsSummary {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_string(),
        };
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "unknown".to_string());
        let cipher = match suite.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => suite,
        };
        let bits = if cipher.contains("_256_") || cipher.contains("CHACHA20") {
            256
        } else {
            128
        };
        TlsSummary {
            protocol,
            cipher,
            bits,
            sni,
        }
    }
}
