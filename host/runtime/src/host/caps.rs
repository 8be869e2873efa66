//! `dns`, `kv` and `signing`: each answers `denied` unless the binding's grants allow it, and
//! forwards to the runtime's service backends (`crate::services`).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::{HostState, MAX_HANDLES};
use crate::bindings::wit_host::{dns, kv, signing, types};
use crate::services::{Algorithm, DnsFailure, KvFailure, SigningKey};
use crate::types::{from_ip, ip};

/// A granted kv bucket the guest opened.
pub struct BucketHandle {
    name: String,
}

/// A granted signing key the guest opened; the private key stays in the host.
pub struct KeyHandle {
    key: Arc<SigningKey>,
}

impl HostState {
    /// Spends one query of the per-call budget; `Err(denied)` when not granted or spent.
    fn dns_query(&mut self) -> Result<(), dns::DnsError> {
        if !self.binding.grants.dns {
            return Err(dns::DnsError::Denied);
        }
        if self.dns_left == 0 {
            self.warn(&format!(
                "DNS query refused: the per-call budget of {} queries is spent",
                self.binding.dns_queries
            ));
            return Err(dns::DnsError::Denied);
        }
        self.dns_left -= 1;
        Ok(())
    }

    pub(crate) fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, String> {
        if self.handles >= MAX_HANDLES {
            return Err(format!("more than {MAX_HANDLES} open handles"));
        }
        let r = self.table.push(value).map_err(|e| e.to_string())?;
        self.handles += 1;
        Ok(r)
    }

    pub(crate) fn release<T: 'static>(&mut self, r: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.handles = self.handles.saturating_sub(1);
        Ok(())
    }
}

fn dns_error(e: DnsFailure) -> dns::DnsError {
    match e {
        DnsFailure::NoSuchDomain => dns::DnsError::NoSuchDomain,
        DnsFailure::NoRecords => dns::DnsError::NoRecords,
        DnsFailure::Temporary(s) => dns::DnsError::Temporary(s),
    }
}

impl dns::Host for HostState {
    async fn lookup_txt(&mut self, name: String) -> Result<Vec<Vec<u8>>, dns::DnsError> {
        self.dns_query()?;
        let dns = self.env.dns();
        dns.txt(&name).await.map_err(dns_error)
    }

    async fn lookup_ipv4(&mut self, name: String) -> Result<Vec<types::IpAddress>, dns::DnsError> {
        self.dns_query()?;
        let dns = self.env.dns();
        let found = dns.ipv4(&name).await.map_err(dns_error)?;
        Ok(found.into_iter().map(|a| ip(a.into())).collect())
    }

    async fn lookup_ipv6(&mut self, name: String) -> Result<Vec<types::IpAddress>, dns::DnsError> {
        self.dns_query()?;
        let dns = self.env.dns();
        let found = dns.ipv6(&name).await.map_err(dns_error)?;
        Ok(found.into_iter().map(|a| ip(a.into())).collect())
    }

    async fn lookup_mx(&mut self, name: String) -> Result<Vec<dns::MxRecord>, dns::DnsError> {
        self.dns_query()?;
        let dns = self.env.dns();
        let found = dns.mx(&name).await.map_err(dns_error)?;
        Ok(found
            .into_iter()
            .map(|m| dns::MxRecord {
                preference: m.preference,
                exchange: m.exchange,
            })
            .collect())
    }

    async fn lookup_ptr(
        &mut self,
        address: types::IpAddress,
    ) -> Result<Vec<String>, dns::DnsError> {
        self.dns_query()?;
        let dns = self.env.dns();
        dns.ptr(from_ip(&address)).await.map_err(dns_error)
    }
}

fn kv_error(e: KvFailure) -> kv::KvError {
    match e {
        KvFailure::Temporary(s) => kv::KvError::Temporary(s),
        KvFailure::TooLarge => {
            kv::KvError::Temporary("key or value too large, or bucket full".into())
        }
    }
}

fn ttl(seconds: u32) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)))
}

impl HostState {
    fn bucket(&self, b: &Resource<BucketHandle>) -> Result<String, kv::KvError> {
        self.table
            .get(b)
            .map(|h| h.name.clone())
            .map_err(|_| kv::KvError::NoSuchBucket)
    }
}

impl kv::Host for HostState {}

impl kv::HostBucket for HostState {
    async fn open(&mut self, name: String) -> Result<Resource<BucketHandle>, kv::KvError> {
        if !self.binding.grants.kv.contains(&name) {
            return Err(kv::KvError::Denied);
        }
        self.push(BucketHandle { name })
            .map_err(kv::KvError::Temporary)
    }

    async fn get(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, kv::KvError> {
        let bucket = self.bucket(&b)?;
        let kv = self.env.kv();
        kv.get(&bucket, &key).await.map_err(kv_error)
    }

    async fn set(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
        ttl_seconds: u32,
    ) -> Result<(), kv::KvError> {
        let bucket = self.bucket(&b)?;
        let kv = self.env.kv();
        kv.set(&bucket, &key, value, ttl(ttl_seconds))
            .await
            .map_err(kv_error)
    }

    async fn set_if_absent(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
        ttl_seconds: u32,
    ) -> Result<bool, kv::KvError> {
        let bucket = self.bucket(&b)?;
        let kv = self.env.kv();
        kv.set_if_absent(&bucket, &key, value, ttl(ttl_seconds))
            .await
            .map_err(kv_error)
    }

    async fn increment(
        &mut self,
        b: Resource<BucketHandle>,
        key: String,
        delta: i64,
        ttl_seconds: u32,
    ) -> Result<i64, kv::KvError> {
        let bucket = self.bucket(&b)?;
        let kv = self.env.kv();
        kv.increment(&bucket, &key, delta, ttl(ttl_seconds))
            .await
            .map_err(kv_error)
    }

    async fn delete(&mut self, b: Resource<BucketHandle>, key: String) -> Result<(), kv::KvError> {
        let bucket = self.bucket(&b)?;
        let kv = self.env.kv();
        kv.delete(&bucket, &key).await.map_err(kv_error)
    }

    async fn drop(&mut self, b: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.release(b)
    }
}

impl HostState {
    fn key(&self, k: &Resource<KeyHandle>) -> Result<Arc<SigningKey>, signing::SigningError> {
        self.table
            .get(k)
            .map(|h| h.key.clone())
            .map_err(|_| signing::SigningError::NoSuchKey)
    }
}

impl signing::Host for HostState {}

impl signing::HostSigningKey for HostState {
    async fn open(&mut self, name: String) -> Result<Resource<KeyHandle>, signing::SigningError> {
        if !self.binding.grants.signing.contains(&name) {
            return Err(signing::SigningError::Denied);
        }
        let key = self
            .env
            .key(&name)
            .ok_or(signing::SigningError::NoSuchKey)?;
        self.push(KeyHandle { key })
            .map_err(signing::SigningError::Failed)
    }

    async fn key_algorithm(&mut self, k: Resource<KeyHandle>) -> signing::Algorithm {
        match self.key(&k).map(|k| k.algorithm()) {
            Ok(Algorithm::RsaSha256) => signing::Algorithm::RsaSha256,
            _ => signing::Algorithm::Ed25519Sha256,
        }
    }

    async fn selector(&mut self, k: Resource<KeyHandle>) -> String {
        self.key(&k)
            .map(|k| k.selector().to_string())
            .unwrap_or_default()
    }

    async fn domain(&mut self, k: Resource<KeyHandle>) -> String {
        self.key(&k)
            .map(|k| k.domain().to_string())
            .unwrap_or_default()
    }

    async fn sign(
        &mut self,
        k: Resource<KeyHandle>,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, signing::SigningError> {
        let key = self.key(&k)?;
        key.sign(&data).map_err(signing::SigningError::Failed)
    }

    async fn drop(&mut self, k: Resource<KeyHandle>) -> wasmtime::Result<()> {
        self.release(k)
    }
}
