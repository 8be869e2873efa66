//! `smtpd_sasl_type = passwd-file`: a file of `user:hash` lines (Dovecot's passwd-file format;
//! fields after the second are ignored, `#` starts a comment line).
//!
//! Hashes are recognised by their Modular Crypt Format prefix — `$argon2id$` (also `$argon2i$`,
//! `$argon2d$`), `$2b$`/`$2y$`/`$2a$` (bcrypt), `$6$` (SHA-512-crypt), `$5$` (SHA-256-crypt) — or
//! by a Dovecot-style `{SCHEME}` prefix (`{ARGON2ID}`, `{BLF-CRYPT}`, `{SHA512-CRYPT}`,
//! `{SHA256-CRYPT}`, `{CRYPT}`). A clear-text password is accepted only when it is written
//! `{PLAIN}password`, so that a typo in a hash never turns into a password that works.
//!
//! The file is read again whenever its modification time, size or inode changes, so editing it
//! needs no reload. Checking runs on the blocking thread pool (Argon2 and bcrypt are slow on
//! purpose). An unknown user costs the same as a wrong password: the password is checked
//! against another entry's hash and the answer thrown away, so response times do not tell an
//! attacker which names exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{AuthContext, AuthFuture, AuthResult, Authenticator, Credentials, Login, FAILURE_TEXT};

/// A password hash as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hash {
    Argon2(String),
    Bcrypt(String),
    Sha512Crypt(String),
    Sha256Crypt(String),
    Plain(String),
    /// A scheme this build cannot check; the entry never matches.
    Unsupported(String),
}

impl Hash {
    /// Classifies the password field of a line.
    fn parse(field: &str) -> Hash {
        if let Some(rest) = field.strip_prefix('{') {
            if let Some((scheme, value)) = rest.split_once('}') {
                let value = value.to_string();
                return match scheme.to_ascii_uppercase().as_str() {
                    "PLAIN" | "CLEARTEXT" | "CLEAR" => Hash::Plain(value),
                    "ARGON2ID" | "ARGON2I" | "ARGON2D" if value.starts_with("$argon2") => {
                        Hash::Argon2(value)
                    }
                    "BLF-CRYPT" | "BCRYPT" => match Hash::parse(&value) {
                        h @ Hash::Bcrypt(_) => h,
                        _ => Hash::Unsupported(scheme.to_string()),
                    },
                    "SHA512-CRYPT" | "SHA256-CRYPT" | "CRYPT" | "MD5-CRYPT" => {
                        match Hash::parse(&value) {
                            h @ (Hash::Sha512Crypt(_) | Hash::Sha256Crypt(_) | Hash::Bcrypt(_)) => {
                                h
                            }
                            _ => Hash::Unsupported(scheme.to_string()),
                        }
                    }
                    _ => Hash::Unsupported(scheme.to_string()),
                };
            }
        }
        if field.starts_with("$argon2") {
            Hash::Argon2(field.to_string())
        } else if ["$2b$", "$2y$", "$2a$"]
            .iter()
            .any(|p| field.starts_with(p))
        {
            Hash::Bcrypt(field.to_string())
        } else if field.starts_with("$6$") {
            Hash::Sha512Crypt(field.to_string())
        } else if field.starts_with("$5$") {
            Hash::Sha256Crypt(field.to_string())
        } else {
            let scheme = field
                .strip_prefix('$')
                .and_then(|r| r.split('$').next())
                .map_or_else(|| "no {SCHEME} prefix".to_string(), |s| format!("${s}$"));
            Hash::Unsupported(scheme)
        }
    }

    /// Whether `password` matches. Slow on purpose for the real hash schemes.
    fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Argon2(h) => {
                use argon2::{Argon2, PasswordHash, PasswordVerifier};
                match PasswordHash::new(h) {
                    Ok(parsed) => Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                    Err(_) => false,
                }
            }
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Sha512Crypt(h) => sha_crypt::sha512_check(password, h).is_ok(),
            Hash::Sha256Crypt(h) => sha_crypt::sha256_check(password, h).is_ok(),
            Hash::Plain(p) => constant_time_eq(p.as_bytes(), password.as_bytes()),
            Hash::Unsupported(_) => false,
        }
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[derive(Debug)]
struct Entry {
    /// The name as written in the file (what the session logs as `sasl_username`).
    name: String,
    hash: Hash,
}

/// What identifies one version of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    /// Keyed by the lower-cased name (Dovecot's default `auth_username_format = %Lu`).
    entries: HashMap<String, Entry>,
    /// The first usable hash, checked against when the user is unknown.
    decoy: Option<Hash>,
}

/// The passwd-file back end.
#[derive(Debug, Clone)]
pub struct PasswdFile {
    path: PathBuf,
    loaded: Arc<Mutex<Loaded>>,
}

impl PasswdFile {
    pub fn new(path: PathBuf) -> PasswdFile {
        PasswdFile {
            path,
            loaded: Arc::default(),
        }
    }

    /// The blocking check: re-reads the file when it changed, then verifies.
    pub fn check(&self, creds: &Credentials) -> Result<Option<String>, String> {
        let stamp = stamp(&self.path).map_err(|e| {
            crate::warn!(
                "smtpd",
                "SASL: cannot open password file {}: {e}",
                self.path.display()
            );
            "password file unavailable".to_string()
        })?;
        let (hash, name, known) = {
            let mut loaded = self
                .loaded
                .lock()
                .map_err(|_| "password table unavailable".to_string())?;
            if loaded.stamp != Some(stamp) {
                *loaded = load(&self.path, stamp).map_err(|e| {
                    crate::warn!(
                        "smtpd",
                        "SASL: cannot read password file {}: {e}",
                        self.path.display()
                    );
                    "password file unavailable".to_string()
                })?;
            }
            if creds.username.contains(['\0', '\n', '\r']) {
                (loaded.decoy.clone(), String::new(), false)
            } else {
                match loaded.entries.get(&creds.username.to_lowercase()) {
                    Some(e) => (Some(e.hash.clone()), e.name.clone(), true),
                    None => (loaded.decoy.clone(), String::new(), false),
                }
            }
        };
        // PLAIN's authorization identity: only "as myself" (no proxy logins here).
        let authz_ok = creds.authzid.is_empty() || creds.authzid.eq_ignore_ascii_case(&name);
        let matched = hash.is_some_and(|h| h.verify(&creds.password));
        Ok((known && matched && authz_ok).then_some(name))
    }
}

impl Authenticator for PasswdFile {
    fn verify<'a>(&'a self, creds: &'a Credentials, ctx: &'a AuthContext) -> AuthFuture<'a> {
        Box::pin(async move {
            let me = self.clone();
            let c = creds.clone();
            let outcome = tokio::task::spawn_blocking(move || me.check(&c)).await;
            match outcome {
                Ok(Ok(Some(username))) => AuthResult::Ok(Login {
                    username,
                    method: ctx.method.clone(),
                }),
                Ok(Ok(None)) => AuthResult::Failed(FAILURE_TEXT.to_string()),
                Ok(Err(reason)) => AuthResult::TempFail(reason),
                Err(_) => AuthResult::TempFail("password check failed".to_string()),
            }
        })
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let md = std::fs::metadata(path)?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&md);
    #[cfg(not(unix))]
    let ino = 0;
    Ok(Stamp {
        mtime: md.modified().ok(),
        len: md.len(),
        ino,
    })
}

fn load(path: &Path, stamp: Stamp) -> std::io::Result<Loaded> {
    let text = std::fs::read_to_string(path)?;
    let mut loaded = Loaded {
        stamp: Some(stamp),
        ..Loaded::default()
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ':');
        let (Some(name), Some(field)) = (fields.next(), fields.next()) else {
            crate::warn!(
                "smtpd",
                "{}:{}: expected user:hash; line ignored",
                path.display(),
                n + 1
            );
            continue;
        };
        let name = name.trim();
        let hash = Hash::parse(field.trim());
        if let Hash::Unsupported(scheme) = &hash {
            // The scheme, never the field: it may be a clear-text password.
            crate::warn!(
                "smtpd",
                "{}:{}: user {name}: unsupported password scheme ({scheme}); use argon2id, \
                 bcrypt, SHA512-CRYPT, SHA256-CRYPT or {{PLAIN}}",
                path.display(),
                n + 1
            );
        } else if loaded.decoy.is_none() {
            loaded.decoy = Some(hash.clone());
        }
        loaded.entries.insert(
            name.to_lowercase(),
            Entry {
                name: name.to_string(),
                hash,
            },
        );
    }
    Ok(loaded)
}

/// An Argon2id hash (PHC string, the crate's default parameters) of `password` with a fresh
/// random salt, for `postern sasl hash` and tests.
pub fn hash_argon2id(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use std::io::Read;
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl passwd -6 -salt saltsalt 'correct horse'` and `-5`.
    const SHA512: &str = "$6$saltsalt$";
    const SHA256: &str = "$5$saltsalt$";

    fn creds(user: &str, pw: &str) -> Credentials {
        Credentials {
            authzid: String::new(),
            username: user.into(),
            password: pw.into(),
        }
    }

    fn openssl(flag: &str, pw: &str) -> Option<String> {
        let out = std::process::Command::new("openssl")
            .args(["passwd", flag, "-salt", "saltsalt", pw])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(tag: &str, text: &str) -> TempFile {
            let p = std::env::temp_dir().join(format!(
                "postern-sasl-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&p, text).expect("write passwd file");
            TempFile(p)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn every_scheme_checks_right_and_wrong_passwords() {
        let argon = hash_argon2id("correct horse").expect("argon2");
        assert!(argon.starts_with("$argon2id$"), "{argon}");
        let bcrypt_2b = bcrypt::hash("correct horse", 4).expect("bcrypt");
        let bcrypt_2y = bcrypt_2b.replacen("$2b$", "$2y$", 1);
        let mut hashes = vec![
            argon.clone(),
            format!("{{ARGON2ID}}{argon}"),
            bcrypt_2b.clone(),
            format!("{{BLF-CRYPT}}{bcrypt_2y}"),
            "{PLAIN}correct horse".to_string(),
        ];
        // Known vectors from crypt(3) implementations when openssl is there to make them.
        for (flag, prefix) in [("-6", SHA512), ("-5", SHA256)] {
            if let Some(h) = openssl(flag, "correct horse") {
                assert!(h.starts_with(prefix), "{h}");
                hashes.push(h.clone());
                hashes.push(format!("{{CRYPT}}{h}"));
            }
        }
        for h in &hashes {
            let hash = Hash::parse(h);
            assert!(!matches!(hash, Hash::Unsupported(_)), "{h}");
            assert!(hash.verify("correct horse"), "{h} should match");
            assert!(!hash.verify("correct horsE"), "{h} should not match");
            assert!(!hash.verify(""), "{h} should not match the empty password");
        }
    }

    #[test]
    fn spec_vector_for_sha512_crypt() {
        // Ulrich Drepper's SHA-crypt specification, first SHA-512 example.
        let h = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLi\
                 BFdcbYEdFCoEOfaS35inz1";
        assert!(Hash::parse(h).verify("Hello world!"));
        let h = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
        assert!(Hash::parse(h).verify("Hello world!"));
    }

    #[test]
    fn clear_text_needs_its_prefix() {
        assert!(matches!(Hash::parse("hunter2"), Hash::Unsupported(_)));
        assert!(!Hash::parse("hunter2").verify("hunter2"));
        assert!(matches!(Hash::parse("$1$abc$def"), Hash::Unsupported(_)));
        assert!(matches!(Hash::parse("{MD4}abc"), Hash::Unsupported(_)));
    }

    #[test]
    fn file_lookup_unknown_user_and_reload() {
        let f = TempFile::new(
            "lookup",
            "# test users\n\nAlice:{PLAIN}pw-one:1000:1000::/home/alice\nbroken line\n\
             bob:hunter2\n",
        );
        let pf = PasswdFile::new(f.0.clone());
        assert_eq!(
            pf.check(&creds("alice", "pw-one")),
            Ok(Some("Alice".into()))
        );
        assert_eq!(pf.check(&creds("alice", "pw-two")), Ok(None));
        assert_eq!(pf.check(&creds("nobody", "pw-one")), Ok(None));
        // A bare clear-text field is not a password.
        assert_eq!(pf.check(&creds("bob", "hunter2")), Ok(None));
        // PLAIN authzid: only the user's own name.
        let mut c = creds("alice", "pw-one");
        c.authzid = "bob".into();
        assert_eq!(pf.check(&c), Ok(None));
        c.authzid = "Alice".into();
        assert_eq!(pf.check(&c), Ok(Some("Alice".into())));

        // Edited in place: the new password works without a reload.
        std::fs::write(&f.0, "alice:{PLAIN}pw-two-longer\n").expect("rewrite");
        assert_eq!(
            pf.check(&creds("alice", "pw-two-longer")),
            Ok(Some("alice".into()))
        );
        assert_eq!(pf.check(&creds("alice", "pw-one")), Ok(None));

        std::fs::remove_file(&f.0).expect("remove");
        assert!(pf.check(&creds("alice", "pw-two-longer")).is_err());
    }

    #[tokio::test]
    async fn back_end_answers_through_the_trait() {
        let hash = bcrypt::hash("pw", 4).expect("bcrypt");
        let f = TempFile::new("trait", &format!("carol:{hash}\n"));
        let pf = PasswdFile::new(f.0.clone());
        let ctx = AuthContext {
            method: "LOGIN".into(),
            client_addr: "192.0.2.1".parse().expect("ip"),
            client_port: 1,
            secured: false,
        };
        let ok = pf.verify(&creds("carol", "pw"), &ctx).await;
        assert_eq!(
            ok,
            AuthResult::Ok(Login {
                username: "carol".into(),
                method: "LOGIN".into()
            })
        );
        let bad = pf.verify(&creds("carol", "nope"), &ctx).await;
        assert!(matches!(bad, AuthResult::Failed(_)), "{bad:?}");
        let missing = PasswdFile::new(f.0.with_extension("missing"));
        let r = missing.verify(&creds("carol", "pw"), &ctx).await;
        assert!(matches!(r, AuthResult::TempFail(_)), "{r:?}");
    }
}
