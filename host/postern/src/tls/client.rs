//! The client side of TLS for smtp(8) and lmtp(8) (Postfix `tls_client.c`, `tls_verify.c`).
//!
//! One [`ClientTls`] per configuration: a rustls `ClientConfig` (ring provider, the client
//! certificate of `smtp_tls_cert_file` when set) and the trust anchors of `smtp_tls_CAfile` /
//! `smtp_tls_CApath` (the system store when both are empty, loaded the first time a certificate
//! is checked).
//!
//! As in Postfix, the handshake itself accepts any certificate (handshake signatures are still
//! checked) and the certificate is judged right after it, before any mail is sent: the names a
//! certificate must carry depend on the connection (`hostname` is the MX host, `nexthop` the
//! destination, `match=` in `smtp_tls_policy_maps`), so one `ClientConfig` serves every
//! connection of a configuration and [`ClientTls::check`] gives [`Trust`]: *Untrusted* (no
//! chain to a trust anchor), *Trusted* (chain, names not asked for or not matched), *Verified*
//! (chain and a matching name). Levels `verify` and `secure` need *Verified*.

use std::sync::{Arc, OnceLock, Weak};

use postern_config::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TlsSummary;

/// The client TLS state of one configuration.
pub struct ClientTls {
    /// Without SNI (Postfix's default).
    pub config: Arc<ClientConfig>,
    /// The same with SNI, for `smtp_tls_servername`.
    pub config_sni: Arc<ClientConfig>,
    provider: Arc<CryptoProvider>,
    /// Trust anchors; `Err` names the file that could not be read.
    roots: OnceLock<Result<Arc<RootCertStore>, String>>,
    ca_file: String,
    ca_path: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

/// How far a server certificate could be checked (Postfix's log words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// No chain to a trust anchor; the reason, for logs.
    Untrusted(String),
    /// Chains to a trust anchor, but no asked-for name matched (or none was asked for).
    Trusted,
    /// Chains to a trust anchor and carries a name that was asked for.
    Verified,
}

impl Trust {
    /// `Untrusted`, `Trusted`, `Verified`: the first word of Postfix's "TLS connection
    /// established" line.
    pub fn word(&self) -> &'static str {
        match self {
            Trust::Untrusted(_) => "Untrusted",
            Trust::Trusted => "Trusted",
            Trust::Verified => "Verified",
        }
    }
}

/// A name a certificate may match: `mx.example.com` (also through a `*.example.com` wildcard)
/// or `.example.com` (any name below example.com, Postfix's `dot-nexthop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    Exact(String),
    Below(String),
}

impl Name {
    /// A pattern as written in `match=` or `smtp_tls_*_cert_match` after the keywords
    /// (`hostname`, `nexthop`, `dot-nexthop`) were replaced.
    pub fn parse(text: &str) -> Option<Name> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        match t.strip_prefix('.') {
            Some("") => None,
            Some(d) => Some(Name::Below(d.to_string())),
            None if t.is_empty() => None,
            None => Some(Name::Exact(t)),
        }
    }
}

/// The client TLS state of `cfg`, built once per configuration (a reload builds a new one).
/// `Err` is the text for the log and the deferral (`cannot load … FILE: why`).
pub fn for_config(cfg: &Arc<Config>) -> Result<Arc<ClientTls>, String> {
    type Cached = Option<(Weak<Config>, Result<Arc<ClientTls>, String>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((c, r)) = cache.as_ref() {
        if c.upgrade().is_some_and(|c| Arc::ptr_eq(&c, cfg)) {
            return r.clone();
        }
    }
    let t = &cfg.smtp_tls;
    let built = ClientTls::new(&t.ca_file, &t.ca_path, &t.cert_file, &t.key_file).map(Arc::new);
    if let Err(e) = &built {
        crate::warn!("smtp", "TLS client initialization failed: {e}");
    }
    *cache = Some((Arc::downgrade(cfg), built.clone()));
    built
}

impl ClientTls {
    /// Loads the client certificate (when `cert_file` is set) and, when a CA file or directory
    /// is named, the trust anchors, so that a wrong path is reported at once.
    pub fn new(
        ca_file: &str,
        ca_path: &str,
        cert_file: &str,
        key_file: &str,
    ) -> Result<ClientTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyCertificate(provider.clone()));
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS protocol versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = if cert_file.trim().is_empty() {
            builder.with_no_client_auth()
        } else {
            let cert_file = cert_file.trim();
            let key_file = match key_file.trim() {
                "" => cert_file,
                k => k,
            };
            let certs = load_certs(cert_file, "smtp_tls_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| format!("cannot load smtp_tls_key_file {key_file}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("smtp_tls_cert_file {cert_file}: {e}"))?
        };
        // Postfix sends no SNI unless smtp_tls_servername asks for it.
        let config_sni = Arc::new(config.clone());
        config.enable_sni = false;
        let tls = ClientTls {
            config: Arc::new(config),
            config_sni,
            provider,
            roots: OnceLock::new(),
            ca_file: ca_file.trim().to_string(),
            ca_path: ca_path.trim().to_string(),
        };
        if !tls.ca_file.is_empty() || !tls.ca_path.is_empty() {
            tls.roots()?;
        }
        Ok(tls)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        self.roots
            .get_or_init(|| load_roots(&self.ca_file, &self.ca_path).map(Arc::new))
            .clone()
    }

    /// Judges the certificate chain a server presented (`certs[0]` is the server's own) and
    /// whether it carries one of `names`. An empty `names` can at most be *Trusted*.
    pub fn check(&self, certs: &[CertificateDer<'_>], names: &[Name]) -> Trust {
        let Some(end) = certs.first() else {
            return Trust::Untrusted("no certificate".into());
        };
        let roots = match self.roots() {
            Ok(r) => r,
            Err(e) => return Trust::Untrusted(e),
        };
        let parsed = match rustls::server::ParsedCertificate::try_from(end) {
            Ok(p) => p,
            Err(e) => return Trust::Untrusted(format!("bad certificate: {e}")),
        };
        if let Err(e) = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &certs[1..],
            UnixTime::now(),
            self.provider.signature_verification_algorithms.all,
        ) {
            return Trust::Untrusted(e.to_string());
        }
        let sans = OnceLock::new();
        let matched = names.iter().any(|n| match n {
            Name::Exact(host) => ServerName::try_from(host.as_str())
                .is_ok_and(|sn| rustls::client::verify_server_name(&parsed, &sn).is_ok()),
            Name::Below(domain) => {
                sans.get_or_init(|| dns_names(end.as_ref()))
                    .iter()
                    .any(|san: &String| {
                        san.len() > domain.len() + 1
                            && san.ends_with(domain.as_str())
                            && san.as_bytes()[san.len() - domain.len() - 1] == b'.'
                    })
            }
        });
        if matched {
            Trust::Verified
        } else {
            Trust::Trusted
        }
    }
}

fn load_certs(file: &str, param: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot load {param} {file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("cannot load {param} {file}: no certificate in it"));
    }
    Ok(certs)
}

/// `smtp_tls_CAfile` and every file in `smtp_tls_CApath`; the system store when both are empty.
fn load_roots(ca_file: &str, ca_path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_empty() && ca_path.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err("no trust anchors in the system certificate store".into());
        }
        return Ok(roots);
    }
    if !ca_file.is_empty() {
        for c in load_certs(ca_file, "smtp_tls_CAfile")? {
            roots
                .add(c)
                .map_err(|e| format!("cannot load smtp_tls_CAfile {ca_file}: {e}"))?;
        }
    }
    if !ca_path.is_empty() {
        let dir = std::fs::read_dir(ca_path)
            .map_err(|e| format!("cannot load smtp_tls_CApath {ca_path}: {e}"))?;
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            // Files that hold no certificate (hash links to CRLs, READMEs) are skipped.
            if let Ok(it) = CertificateDer::pem_file_iter(&path) {
                roots.add_parsable_certificates(it.flatten());
            }
        }
    }
    Ok(roots)
}

/// What a finished client handshake established (no SNI is sent, so none is recorded).
pub fn summary(conn: &rustls::ClientConnection) -> TlsSummary {
    TlsSummary::of(conn, None)
}

/// The handshake accepts any certificate; [`ClientTls::check`] judges it afterwards. The
/// signatures of the handshake itself are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The dNSName entries of a certificate's subjectAltName (RFC 5280 §4.2.1.6), lower case,
/// for `.domain` matching; webpki answers "is it valid for this one name" only.
fn dns_names(der: &[u8]) -> Vec<String> {
    dns_names_inner(der).unwrap_or_default()
}

fn dns_names_inner(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert, _) = tlv(der)?; // Certificate
    let (_, mut tbs, _) = tlv(cert)?; // TBSCertificate
    while !tbs.is_empty() {
        let (tag, body, rest) = tlv(tbs)?;
        tbs = rest;
        // [3] EXPLICIT Extensions
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = tlv(body)?;
        while !exts.is_empty() {
            let (_, ext, rest) = tlv(exts)?;
            exts = rest;
            let (tag, oid, mut ext_rest) = tlv(ext)?;
            // 2.5.29.17 subjectAltName
            if tag != 0x06 || oid != [0x55, 0x1d, 0x11] {
                continue;
            }
            let (mut tag, mut value, mut after) = tlv(ext_rest)?;
            if tag == 0x01 {
                // critical BOOLEAN
                ext_rest = after;
                (tag, value, after) = tlv(ext_rest)?;
            }
            let _ = after;
            if tag != 0x04 {
                return None;
            }
            let (_, mut names, _) = tlv(value)?;
            let mut out = Vec::new();
            while !names.is_empty() {
                let (tag, name, rest) = tlv(names)?;
                names = rest;
                // [2] IMPLICIT IA5String dNSName
                if tag == 0x82 {
                    let n = std::str::from_utf8(name).ok()?;
                    out.push(n.trim_end_matches('.').to_ascii_lowercase());
                }
            }
            return Some(out);
        }
    }
    Some(Vec::new())
}

/// One DER TLV: (tag, contents, what follows). Single-byte tags only, as X.509 uses.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((tag, b.get(start..end)?, b.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            Name::parse("Mx.Example."),
            Some(Name::Exact("mx.example".into()))
        );
        assert_eq!(Name::parse(".example"), Some(Name::Below("example".into())));
        assert_eq!(Name::parse("."), None);
        assert_eq!(Name::parse(""), None);
    }

    #[test]
    fn subject_alt_names_and_trust() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf =
            rcgen::CertificateParams::new(vec!["mx1.example.net".into(), "*.w.example".into()])
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("leaf");
        assert_eq!(
            dns_names(leaf.der().as_ref()),
            vec!["mx1.example.net".to_string(), "*.w.example".to_string()]
        );
        let dir = std::env::temp_dir().join(format!("postern-tls-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write");
        let tls = ClientTls::new(&ca_file.display().to_string(), "", "", "").expect("tls");
        let chain = [leaf.der().clone()];
        let exact = |n: &str| Name::Exact(n.into());
        assert_eq!(
            tls.check(&chain, &[exact("mx1.example.net")]),
            Trust::Verified
        );
        assert_eq!(tls.check(&chain, &[exact("a.w.example")]), Trust::Verified);
        assert_eq!(
            tls.check(&chain, &[Name::Below("example.net".into())]),
            Trust::Verified
        );
        assert_eq!(tls.check(&chain, &[exact("example.net")]), Trust::Trusted);
        assert_eq!(
            tls.check(&chain, &[Name::Below("mx1.example.net".into())]),
            Trust::Trusted
        );
        // Another CA's file: the same chain is untrusted.
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).expect("cert");
        std::fs::write(&ca_file, other.cert.pem()).expect("write");
        let tls = ClientTls::new(&ca_file.display().to_string(), "", "", "").expect("tls");
        assert!(matches!(
            tls.check(&chain, &[exact("mx1.example.net")]),
            Trust::Untrusted(_)
        ));
        let missing = dir.join("missing.pem").display().to_string();
        let e = ClientTls::new(&missing, "", "", "").expect_err("missing CA file");
        assert!(
            e.contains("smtp_tls_CAfile") && e.contains("missing.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
