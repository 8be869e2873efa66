//! DKIM signing keys (`[[key]]` in `plugins.toml`): loaded once by the host, used by name.
//!
//! A signing plugin never sees key material. It builds the DKIM header and asks the host to
//! sign with a named key; the host checks the plugin was granted that key and calls
//! [`SigningKey::sign`]. So a compromised plugin can at worst sign with the keys it was given,
//! never copy them out.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{EncodePublicKey as _, PrivateKeyInfo, SecretDocument};
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest as _, Sha256};

/// A DKIM signing algorithm (the `a=` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `rsa-sha256` (RFC 6376 §3.3.1).
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
}

/// One `[[key]]` entry of plugins.toml (parsed by the lead in plugins_toml.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub name: String,
    pub path: PathBuf,
    pub selector: String,
    pub domain: String,
    /// Where the entry was written (`file:line`), for error messages.
    pub origin: String,
}

/// Smallest RSA modulus accepted. RFC 8301 §3.2: signers MUST use RSA keys of at least 1024
/// bits (and SHOULD use 2048); receivers may ignore signatures made with smaller ones, so a
/// smaller key would produce signatures that fail for no visible reason.
const MIN_RSA_BITS: usize = 1024;

enum Material {
    Rsa(RsaPrivateKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key ready to sign, with the selector and domain its DKIM record lives under.
///
/// Debug prints the algorithm, selector and domain only: the key must not reach a log.
pub struct SigningKey {
    material: Material,
    selector: String,
    domain: String,
    /// Computed at load time so that publishing it can not fail later.
    public_key_dkim: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads `spec.path` and parses it as [`SigningKey::from_pem`] does. Errors name
    /// `spec.origin`, the key's name and the path, never key bytes.
    pub fn load(spec: &KeySpec) -> anyhow::Result<SigningKey> {
        let path = spec.path.display();
        let context = || format!("{}: key \"{}\": {path}", spec.origin, spec.name);
        let pem = std::fs::read_to_string(&spec.path)
            .map(Zeroizing::new)
            .context("cannot read the key file")
            .with_context(context)?;
        Self::from_pem(&pem, &spec.selector, &spec.domain).with_context(context)
    }

    /// PEM: PKCS#8 "PRIVATE KEY" (RSA or Ed25519) and PKCS#1 "RSA PRIVATE KEY" (opendkim-genkey output).
    ///
    /// RSA keys under 1024 bits are refused (RFC 8301 §3.2). Text before the `-----BEGIN`
    /// line (OpenSSL's "Bag Attributes", comments) is skipped.
    pub fn from_pem(pem: &str, selector: &str, domain: &str) -> anyhow::Result<SigningKey> {
        let Some(start) = pem.find("-----BEGIN ") else {
            bail!(
                "not a PEM private key: no \"-----BEGIN\" line (expected \
                 \"-----BEGIN PRIVATE KEY-----\" or \"-----BEGIN RSA PRIVATE KEY-----\")"
            );
        };
        let (label, document) = SecretDocument::from_pem(pem[start..].trim_end())
            .map_err(|e| anyhow::anyhow!("malformed PEM: {e}"))?;
        let material = match label {
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(document.as_bytes())
                .map(Material::Rsa)
                .map_err(|e| anyhow::anyhow!("malformed PKCS#1 RSA private key: {e}"))?,
            "PRIVATE KEY" => parse_pkcs8(document.as_bytes())?,
            "ENCRYPTED PRIVATE KEY" => bail!(
                "the key is encrypted with a passphrase; store it unencrypted \
                 (`openssl pkcs8 -in KEY -out KEY.pem -nocrypt`) and make the file readable by \
                 Postern only"
            ),
            other => bail!(
                "unsupported PEM block \"{other}\": expected \"PRIVATE KEY\" (PKCS#8, RSA or \
                 Ed25519) or \"RSA PRIVATE KEY\" (PKCS#1)"
            ),
        };
        let public_key_dkim = match &material {
            Material::Rsa(key) => {
                let bits = key.n().bits();
                if bits < MIN_RSA_BITS {
                    bail!(
                        "RSA key is {bits} bits; DKIM signing keys must have at least \
                         {MIN_RSA_BITS} bits (RFC 8301), 2048 recommended: \
                         `opendkim-genkey -b 2048`"
                    );
                }
                let der = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| anyhow::anyhow!("cannot encode the RSA public key: {e}"))?;
                base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
            }
            Material::Ed25519(key) => {
                base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
            }
        };
        Ok(SigningKey {
            material,
            selector: selector.to_owned(),
            domain: domain.to_owned(),
            public_key_dkim,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            Material::Rsa(_) => Algorithm::RsaSha256,
            Material::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// The `s=` tag.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The `d=` tag.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// RsaSha256: RSASSA-PKCS1-v1_5 over SHA-256(data). Ed25519Sha256: RFC 8463 = Ed25519 over SHA-256(data).
    ///
    /// The RSA private-key operation is blinded with OS randomness, so its timing does not
    /// depend on the key (the signature is the same either way: PKCS#1 v1.5 is deterministic).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let digest = Sha256::digest(data);
        match &self.material {
            Material::Rsa(key) => key
                .sign_with_rng(
                    &mut rsa::rand_core::OsRng,
                    Pkcs1v15Sign::new::<Sha256>(),
                    &digest,
                )
                .map_err(|e| format!("RSA signing with {}: {e}", self.describe())),
            Material::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                Ok(key.sign(&digest).to_bytes().to_vec())
            }
        }
    }

    /// The public key as the base64 DER for a DKIM `p=` tag (SubjectPublicKeyInfo for RSA, raw 32 bytes for ed25519).
    pub fn public_key_dkim(&self) -> String {
        self.public_key_dkim.clone()
    }

    fn describe(&self) -> String {
        format!("the key for {}._domainkey.{}", self.selector, self.domain)
    }
}

/// A PKCS#8 `PrivateKeyInfo`, dispatched on its algorithm OID.
fn parse_pkcs8(der: &[u8]) -> anyhow::Result<Material> {
    let info = PrivateKeyInfo::try_from(der)
        .map_err(|e| anyhow::anyhow!("malformed PKCS#8 private key: {e}"))?;
    let oid = info.algorithm.oid;
    if oid == rsa::pkcs1::ALGORITHM_OID {
        RsaPrivateKey::try_from(info)
            .map(Material::Rsa)
            .map_err(|e| anyhow::anyhow!("malformed PKCS#8 RSA private key: {e}"))
    } else if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
        ed25519_dalek::SigningKey::try_from(info)
            .map(Material::Ed25519)
            .map_err(|e| anyhow::anyhow!("malformed PKCS#8 Ed25519 private key: {e}"))
    } else {
        bail!("unsupported key algorithm {oid}: DKIM keys are RSA or Ed25519")
    }
}

/// The loaded keys, by `[[key]]` name.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: HashMap<String, Arc<SigningKey>>,
}

impl KeyStore {
    /// Loads every key it can. A key that fails is left out and its error, naming the entry's
    /// origin and path, is returned, so the caller decides whether that stops startup (`check`)
    /// or only disables the plugins that use it. A repeated name keeps the first key.
    pub fn load(specs: &[KeySpec]) -> (KeyStore, Vec<String>) {
        let mut store = KeyStore::default();
        let mut errors = Vec::new();
        for spec in specs {
            if store.keys.contains_key(&spec.name) {
                errors.push(format!(
                    "{}: key \"{}\" is defined twice; the first definition is used",
                    spec.origin, spec.name
                ));
                continue;
            }
            match SigningKey::load(spec) {
                Ok(key) => store.insert(&spec.name, key),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        (store, errors)
    }

    pub fn get(&self, name: &str) -> Option<Arc<SigningKey>> {
        self.keys.get(name).cloned()
    }

    /// Adds or replaces the key called `name`.
    pub fn insert(&mut self, name: &str, key: SigningKey) {
        self.keys.insert(name.to_owned(), Arc::new(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _, LineEnding};
    use rsa::RsaPublicKey;
    use std::path::Path;
    use std::sync::OnceLock;

    const DATA: &[u8] = b"from:to:subject:dkim-signature:v=1; a=rsa-sha256; b=";

    /// One 1024-bit key for every RSA test: generation is the slow part (1024 bits is the
    /// smallest size the loader accepts, and the quickest to make).
    fn rsa_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap())
    }

    /// The Ed25519 key of RFC 8463 Appendix A (brisbane._domainkey.football.example.com).
    fn rfc8463_key() -> ed25519_dalek::SigningKey {
        let seed = base64::engine::general_purpose::STANDARD
            .decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
            .unwrap();
        ed25519_dalek::SigningKey::from_bytes(&seed.try_into().unwrap())
    }
    const RFC8463_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    fn assert_rsa_signature_verifies(key: &SigningKey, public: &RsaPublicKey) {
        let signature = key.sign(DATA).unwrap();
        assert_eq!(
            signature.len(),
            128,
            "a 1024-bit key makes 128-byte signatures"
        );
        let scheme = || Pkcs1v15Sign::new::<Sha256>();
        public
            .verify(scheme(), &Sha256::digest(DATA), &signature)
            .unwrap();
        assert!(public
            .verify(scheme(), &Sha256::digest(b"other data"), &signature)
            .is_err());
        // The published p= value is the same public key.
        let published = base64::engine::general_purpose::STANDARD
            .decode(key.public_key_dkim())
            .unwrap();
        let published = RsaPublicKey::from_public_key_der(&published).unwrap();
        assert_eq!(&published, public);
        published
            .verify(scheme(), &Sha256::digest(DATA), &signature)
            .unwrap();
    }

    #[test]
    fn rsa_pkcs1_pem_signs_and_the_signature_verifies() {
        let pem = rsa_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let key = SigningKey::from_pem(&pem, "sel", "example.com").unwrap();
        assert_eq!(key.algorithm(), Algorithm::RsaSha256);
        assert_eq!((key.selector(), key.domain()), ("sel", "example.com"));
        assert_rsa_signature_verifies(&key, &rsa_key().to_public_key());
    }

    #[test]
    fn rsa_pkcs8_pem_signs_and_the_signature_verifies() {
        let pem = rsa_key().to_pkcs8_pem(LineEnding::CRLF).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let key = SigningKey::from_pem(&pem, "s2", "example.org").unwrap();
        assert_eq!(key.algorithm(), Algorithm::RsaSha256);
        assert_rsa_signature_verifies(&key, &rsa_key().to_public_key());
    }

    #[test]
    fn blinded_rsa_signature_equals_the_plain_pkcs1_v15_signature() {
        let pem = rsa_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&pem, "s", "d").unwrap();
        let plain = rsa_key()
            .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(DATA))
            .unwrap();
        assert_eq!(key.sign(DATA).unwrap(), plain);
    }

    #[test]
    fn ed25519_pkcs8_signs_sha256_of_the_data_per_rfc_8463() {
        let pem = rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&pem, "brisbane", "football.example.com").unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519Sha256);
        assert_eq!(key.public_key_dkim(), RFC8463_PUBLIC);

        let signature = key.sign(DATA).unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
        let public = rfc8463_key().verifying_key();
        public.verify(&Sha256::digest(DATA), &signature).unwrap();
        // Signed is the digest, not the data itself.
        assert!(public.verify(DATA, &signature).is_err());
        assert!(public
            .verify(&Sha256::digest(b"other data"), &signature)
            .is_err());
    }

    #[test]
    fn text_before_the_pem_block_is_skipped() {
        let pem = rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let with_preamble = format!("Bag Attributes\n    localKeyID: 01\n{}\n\n", *pem);
        let key = SigningKey::from_pem(&with_preamble, "s", "d").unwrap();
        assert_eq!(key.public_key_dkim(), RFC8463_PUBLIC);
    }

    #[test]
    fn debug_shows_algorithm_selector_and_domain_but_no_key() {
        let pem = rsa_key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&pem, "sel", "example.com").unwrap();
        let debug = format!("{key:?}");
        assert_eq!(
            debug,
            "SigningKey { algorithm: RsaSha256, selector: \"sel\", domain: \"example.com\", .. }"
        );
        let ed = SigningKey::from_pem(
            &rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap(),
            "b",
            "f",
        )
        .unwrap();
        assert!(!format!("{ed:?}").contains(RFC8463_PUBLIC));
        assert!(format!("{ed:?}").contains("Ed25519Sha256"));
    }

    #[test]
    fn unusable_pem_is_refused_with_the_reason() {
        let cases = [
            ("just some text", "no \"-----BEGIN\" line"),
            (
                "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
                "malformed PEM",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
                "unsupported PEM block \"EC PRIVATE KEY\"",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted with a passphrase",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
                "malformed PKCS#1 RSA private key",
            ),
        ];
        for (pem, reason) in cases {
            let error = format!("{:#}", SigningKey::from_pem(pem, "s", "d").unwrap_err());
            assert!(error.contains(reason), "{error:?} should say {reason:?}");
        }
    }

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("postern-signing-{}-{test}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn spec(name: &str, path: &Path, line: u32) -> KeySpec {
        KeySpec {
            name: name.to_owned(),
            path: path.to_owned(),
            selector: "sel".to_owned(),
            domain: "example.com".to_owned(),
            origin: format!("/etc/postern/plugins.toml:{line}"),
        }
    }

    #[test]
    fn load_errors_name_the_origin_the_key_and_the_path() {
        let dir = TempDir::new("load-errors");
        let garbage = dir.write("garbage.pem", "this is not a key\n");
        let small_key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
        let small = dir.write(
            "small.pem",
            &small_key.to_pkcs1_pem(LineEnding::LF).unwrap(),
        );
        let missing = dir.0.join("missing.pem");

        for (path, reason) in [
            (&missing, "cannot read the key file"),
            (&garbage, "not a PEM private key"),
            (&small, "RSA key is 512 bits"),
        ] {
            let error = SigningKey::load(&spec("dkim", path, 12)).unwrap_err();
            let error = format!("{error:#}");
            let want = format!(
                "/etc/postern/plugins.toml:12: key \"dkim\": {}",
                path.display()
            );
            assert!(
                error.starts_with(&want),
                "{error:?} should start with {want:?}"
            );
            assert!(error.contains(reason), "{error:?} should say {reason:?}");
        }
    }

    #[test]
    fn load_reads_a_key_file() {
        let dir = TempDir::new("load-ok");
        let path = dir.write(
            "ed.pem",
            &rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap(),
        );
        let key = SigningKey::load(&spec("ed", &path, 3)).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519Sha256);
        assert_eq!((key.selector(), key.domain()), ("sel", "example.com"));
    }

    #[test]
    fn key_store_keeps_the_good_keys_and_reports_the_bad_ones() {
        let dir = TempDir::new("store");
        let rsa_path = dir.write("rsa.pem", &rsa_key().to_pkcs1_pem(LineEnding::LF).unwrap());
        let ed_path = dir.write(
            "ed.pem",
            &rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap(),
        );
        let missing = dir.0.join("missing.pem");
        let specs = [
            spec("rsa", &rsa_path, 1),
            spec("gone", &missing, 5),
            spec("ed", &ed_path, 9),
            spec("rsa", &ed_path, 13),
        ];
        let (mut store, errors) = KeyStore::load(&specs);

        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("/etc/postern/plugins.toml:5: key \"gone\""));
        assert!(errors[1].starts_with("/etc/postern/plugins.toml:13: key \"rsa\" is defined twice"));
        assert_eq!(store.get("rsa").unwrap().algorithm(), Algorithm::RsaSha256);
        assert_eq!(
            store.get("ed").unwrap().algorithm(),
            Algorithm::Ed25519Sha256
        );
        assert!(store.get("gone").is_none());

        let replacement = SigningKey::from_pem(
            &rfc8463_key().to_pkcs8_pem(LineEnding::LF).unwrap(),
            "new",
            "example.net",
        )
        .unwrap();
        store.insert("rsa", replacement);
        assert_eq!(store.get("rsa").unwrap().selector(), "new");
    }
}
