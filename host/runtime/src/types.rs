//! Plain Rust values shared by the roles, and their conversions to and from the WIT types.

use std::net::IpAddr;

use crate::bindings::wt;

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

/// RFC 3463 `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode(pub u8, pub u16, pub u16);

impl std::fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    /// One string per line.
    pub text: Vec<String>,
}

/// An envelope address as received (null sender `""`) with its ESMTP parameters
/// (`NOTIFY=…`, `ORCPT=…`; bare keywords have no value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub address: String,
    pub params: Vec<(String, Option<String>)>,
}

impl Address {
    pub fn new(address: &str) -> Address {
        Address {
            address: address.to_string(),
            params: Vec::new(),
        }
    }
}

pub(crate) fn ip(a: IpAddr) -> wt::IpAddress {
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

pub(crate) fn from_ip(a: &wt::IpAddress) -> IpAddr {
    match *a {
        wt::IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
        wt::IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
    }
}

pub(crate) fn to_wit_address(a: &Address) -> wt::EnvelopeAddress {
    wt::EnvelopeAddress {
        address: a.address.clone(),
        params: a
            .params
            .iter()
            .map(|(k, v)| wt::EsmtpParam {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

pub(crate) fn from_wit_address(a: wt::EnvelopeAddress) -> Address {
    Address {
        address: a.address,
        params: a.params.into_iter().map(|p| (p.key, p.value)).collect(),
    }
}

pub(crate) fn to_wit_client(c: &ClientInfo) -> wt::ClientInfo {
    wt::ClientInfo {
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
    }
}

pub(crate) fn from_wit_code(e: wt::EnhancedCode) -> EnhancedCode {
    EnhancedCode(e.class, e.subject, e.detail)
}

pub(crate) fn from_wit_reply(r: wt::Reply) -> Reply {
    Reply {
        code: r.code,
        enhanced: r.enhanced.map(from_wit_code),
        text: r.text,
    }
}
