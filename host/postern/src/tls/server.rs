//! smtpd's side of TLS: the certificate chains of `smtpd_tls_chain_files` (or
//! `smtpd_tls_cert_file` + `smtpd_tls_key_file`), per-name chains from `tls_server_sni_maps`, and
//! the rustls acceptor built from them.
//!
//! [`ServerTls::new`] reads every file at once, so a broken certificate is reported when the
//! configuration is loaded (`postern check`, start, `postern reload`) rather than at the first
//! handshake. smtpd builds one per configuration epoch (`smtpd::Settings`): a reload after a
//! certificate renewal is what makes new connections present the new certificate, while sessions
//! already running keep the one they started with.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use postern_config::SmtpdTls;
use postern_maps::{Scope, Tables};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::TlsSummary;

/// Why smtpd's certificates could not be loaded. Every message names the file and what is wrong
/// with it, so the administrator can fix it from the log line alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: malformed PEM: {reason}")]
    Pem { file: String, reason: String },
    #[error("{file}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)")]
    NoCertificate { file: String },
    #[error(
        "{file}: no private key found (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE \
         KEY\" or \"BEGIN EC PRIVATE KEY\" block; encrypted keys are not supported)"
    )]
    NoKey { file: String },
    #[error("{file}: {what}")]
    Layout { file: String, what: String },
    #[error("{file}: unusable private key: {reason} (supported: RSA, ECDSA P-256/P-384, Ed25519)")]
    BadKey { file: String, reason: String },
    #[error("{file}: invalid certificate: {reason}")]
    BadCertificate { file: String, reason: String },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("tls_server_sni_maps: {0}")]
    SniMaps(String),
    #[error("no certificate configured: set smtpd_tls_chain_files, or smtpd_tls_cert_file and smtpd_tls_key_file")]
    NotConfigured,
    #[error("TLS library: {0}")]
    Library(String),
}

/// smtpd's TLS server configuration for one configuration epoch.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Loads the certificates `tls` names and opens `tls_server_sni_maps`.
    pub fn new(tls: &SmtpdTls) -> Result<ServerTls, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let default = default_chains(tls, &provider)?;
        let sni = if tls.sni_maps.is_empty() {
            None
        } else {
            let spec = crate::restrictions::regroup(&tls.sni_maps).join(", ");
            let tables = Tables::open(&spec, &crate::scripts::open_ctx())
                .map_err(|e| CertError::SniMaps(format!("{spec}: {e}")))?;
            Some(SniMaps {
                tables,
                provider: provider.clone(),
                cache: Mutex::default(),
            })
        };
        let resolver = Arc::new(Resolver {
            default: Arc::new(default),
            sni,
        });
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Library(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// True when an SNI table changed on disk since it was opened (the epoch is rebuilt then).
    pub fn is_stale(&self) -> bool {
        self.resolver
            .sni
            .as_ref()
            .is_some_and(|s| s.tables.is_stale())
    }
}

/// What a finished handshake established, with the name the client asked for (SNI).
pub fn summary(conn: &rustls::ServerConnection) -> TlsSummary {
    TlsSummary::of(conn, conn.server_name().map(str::to_string))
}

/// Whether smtpd's configuration asks for TLS at all (STARTTLS offered or required, or a
/// wrapper-mode service).
pub fn wanted(tls: &SmtpdTls) -> bool {
    tls.security_level != postern_config::ServerTlsLevel::None || tls.wrappermode
}

/// The chains used when the client sends no SNI name or one the SNI tables do not know.
fn default_chains(
    tls: &SmtpdTls,
    provider: &CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, CertError> {
    if !tls.chain_files.is_empty() {
        let mut all = Vec::new();
        for file in &tls.chain_files {
            all.extend(chain_file(file, provider)?);
        }
        return Ok(all);
    }
    if tls.cert_file.is_empty() {
        return Err(CertError::NotConfigured);
    }
    let key_file = if tls.key_file.is_empty() {
        &tls.cert_file
    } else {
        &tls.key_file
    };
    Ok(vec![cert_and_key(&tls.cert_file, key_file, provider)?])
}

/// Every PEM block of `file`, in order.
fn sections(file: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, CertError> {
    let bytes = std::fs::read(file).map_err(|e| CertError::Read {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            file: file.to_string(),
            reason: e.to_string(),
        })
}

fn certificates(sections: &[(SectionKind, Vec<u8>)]) -> Vec<CertificateDer<'static>> {
    sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect()
}

fn private_key(kind: SectionKind, der: &[u8]) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem(kind, der.to_vec())
}

/// `smtpd_tls_cert_file` (the server certificate, then its chain) and `smtpd_tls_key_file`.
fn cert_and_key(
    cert_file: &str,
    key_file: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let certs = certificates(&sections(cert_file)?);
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            file: cert_file.to_string(),
        });
    }
    let key = sections(key_file)?
        .into_iter()
        .find_map(|(kind, der)| private_key(kind, &der))
        .ok_or_else(|| CertError::NoKey {
            file: key_file.to_string(),
        })?;
    certified(certs, key, cert_file, key_file, provider)
}

/// One `smtpd_tls_chain_files` entry (also the format of `tls_server_sni_maps` values): a
/// private key and its certificate chain, server certificate first. A file may hold several
/// keys (RSA and ECDSA, say), each followed by its own chain.
fn chain_file(file: &str, provider: &CryptoProvider) -> Result<Vec<Arc<CertifiedKey>>, CertError> {
    let sections = sections(file)?;
    let keys = sections
        .iter()
        .filter(|(kind, der)| private_key(*kind, der).is_some())
        .count();
    if keys == 0 {
        return Err(CertError::NoKey {
            file: file.to_string(),
        });
    }
    if keys == 1 {
        // One key: every certificate in the file is its chain, whichever comes first.
        let certs = certificates(&sections);
        if certs.is_empty() {
            return Err(CertError::NoCertificate {
                file: file.to_string(),
            });
        }
        let key = sections
            .iter()
            .find_map(|(kind, der)| private_key(*kind, der))
            .ok_or_else(|| CertError::NoKey {
                file: file.to_string(),
            })?;
        return Ok(vec![certified(certs, key, file, file, provider)?]);
    }
    let mut groups: Vec<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>)> = Vec::new();
    for (kind, der) in &sections {
        if let Some(key) = private_key(*kind, der) {
            groups.push((key, Vec::new()));
        } else if *kind == SectionKind::Certificate {
            match groups.last_mut() {
                Some((_, chain)) => chain.push(CertificateDer::from(der.clone())),
                None => {
                    return Err(CertError::Layout {
                        file: file.to_string(),
                        what: "a certificate comes before the first private key; with several \
                               keys in one file, each key must be followed by its certificate \
                               chain"
                            .to_string(),
                    })
                }
            }
        }
    }
    let mut out = Vec::new();
    for (n, (key, chain)) in groups.into_iter().enumerate() {
        if chain.is_empty() {
            return Err(CertError::Layout {
                file: file.to_string(),
                what: format!("private key {} is not followed by a certificate", n + 1),
            });
        }
        out.push(certified(chain, key, file, file, provider)?);
    }
    Ok(out)
}

/// Checks that the key is usable and belongs to the first certificate.
fn certified(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: &str,
    key_file: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::BadKey {
            file: key_file.to_string(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(certs, signing);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(ck))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertError::Mismatch {
            cert: cert_file.to_string(),
            key: key_file.to_string(),
        }),
        Err(e) => Err(CertError::BadCertificate {
            file: cert_file.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The chains one name (or the default) may be answered with.
type Chains = Arc<Vec<Arc<CertifiedKey>>>;

/// Picks a certificate by the SNI name, falling back to the default chains.
struct Resolver {
    default: Chains,
    sni: Option<SniMaps>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("chains", &self.default.len())
            .field("sni", &self.sni.is_some())
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = match (&self.sni, hello.server_name()) {
            (Some(sni), Some(name)) => sni.chains(name),
            _ => None,
        };
        let chains = by_name.unwrap_or_else(|| self.default.clone());
        choose(&chains, hello.signature_schemes())
    }
}

/// The first chain whose key can sign with a scheme the client offered (an ECDSA chain for a
/// client that only does ECDSA), else the first chain (the handshake then fails cleanly).
fn choose(
    chains: &[Arc<CertifiedKey>],
    schemes: &[rustls::SignatureScheme],
) -> Option<Arc<CertifiedKey>> {
    chains
        .iter()
        .find(|ck| ck.key.choose_scheme(schemes).is_some())
        .or_else(|| chains.first())
        .cloned()
}

/// At most this many distinct SNI table values are kept loaded; a pattern table could map
/// every name a client makes up to a different file name.
const SNI_CACHE_LIMIT: usize = 256;

/// `tls_server_sni_maps`: SNI name (or parent domain `.example.com`) → chain files.
struct SniMaps {
    tables: Tables,
    provider: Arc<CryptoProvider>,
    /// Loaded chains by table value; `None` for a value whose files failed to load (logged
    /// once, then the default certificate is used).
    cache: Mutex<HashMap<String, Option<Chains>>>,
}

impl SniMaps {
    fn chains(&self, name: &str) -> Option<Chains> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let value = match self.lookup(&name) {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => {
                crate::warn!("smtpd", "tls_server_sni_maps lookup of \"{name}\": {e}");
                return None;
            }
        };
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(&value) {
                return hit.clone();
            }
        }
        let loaded = self.load(&value);
        if let Err(e) = &loaded {
            crate::warn!(
                "smtpd",
                "tls_server_sni_maps: cannot load TLS certificate for SNI name \"{name}\": {e}: \
                 using the default certificate"
            );
        }
        let loaded = loaded.ok().map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= SNI_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(value, loaded.clone());
        }
        loaded
    }

    /// The name itself, then its parent domains with a leading dot, as Postfix searches
    /// domain-keyed tables.
    fn lookup(&self, name: &str) -> Result<Option<String>, postern_maps::LookupError> {
        if let Some(v) = self.tables.find(name, Scope::Full)? {
            return Ok(Some(v));
        }
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.is_empty() {
                break;
            }
            if let Some(v) = self.tables.find(&format!(".{parent}"), Scope::Partial)? {
                return Ok(Some(v));
            }
            rest = parent;
        }
        Ok(None)
    }

    /// A table value: one or more chain files (comma or space separated).
    fn load(&self, value: &str) -> Result<Vec<Arc<CertifiedKey>>, CertError> {
        let mut all = Vec::new();
        for file in value
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
        {
            all.extend(chain_file(file, &self.provider)?);
        }
        if all.is_empty() {
            return Err(CertError::NoCertificate {
                file: value.to_string(),
            });
        }
        Ok(all)
    }
}
