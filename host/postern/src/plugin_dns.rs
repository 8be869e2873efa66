//! The plugins' `dns` import, answered by the daemon's resolver ([`crate::dns`]): the same
//! servers, timeouts and NXDOMAIN / NODATA / temporary-failure distinction as smtpd's own
//! DNS-based restrictions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use postern_runtime::services::{BoxFuture, DnsBackend, DnsFailure, Mx};

use crate::dns::{Answer, RecordType, Resolver};

#[derive(Debug)]
pub struct PluginDns {
    resolver: Arc<dyn Resolver>,
}

impl PluginDns {
    pub fn new(resolver: Arc<dyn Resolver>) -> PluginDns {
        PluginDns { resolver }
    }

    async fn records(&self, name: &str, rtype: RecordType) -> Result<Vec<String>, DnsFailure> {
        match self.resolver.lookup(name, rtype).await {
            Answer::Records(r) => Ok(r),
            Answer::NxDomain => Err(DnsFailure::NoSuchDomain),
            Answer::NoRecords => Err(DnsFailure::NoRecords),
            Answer::TempFail(e) => Err(DnsFailure::Temporary(e)),
        }
    }
}

/// `host.example.` → `host.example`.
fn name(s: String) -> String {
    match s.strip_suffix('.') {
        Some(n) => n.to_string(),
        None => s,
    }
}

impl DnsBackend for PluginDns {
    fn txt<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<Vec<Vec<u8>>, DnsFailure>> {
        Box::pin(async move {
            let r = self.records(n, RecordType::Txt).await?;
            Ok(r.into_iter().map(String::into_bytes).collect())
        })
    }

    fn ipv4<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, DnsFailure>> {
        Box::pin(async move {
            let r = self.records(n, RecordType::A).await?;
            Ok(r.iter().filter_map(|a| a.parse().ok()).collect())
        })
    }

    fn ipv6<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, DnsFailure>> {
        Box::pin(async move {
            let r = self.records(n, RecordType::Aaaa).await?;
            Ok(r.iter().filter_map(|a| a.parse().ok()).collect())
        })
    }

    fn mx<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<Vec<Mx>, DnsFailure>> {
        Box::pin(async move {
            let r = self.records(n, RecordType::Mx).await?;
            Ok(r.into_iter()
                .filter_map(|rec| {
                    let (pref, host) = rec.split_once(' ')?;
                    Some(Mx {
                        preference: pref.parse().ok()?,
                        exchange: name(host.to_string()),
                    })
                })
                .collect())
        })
    }

    fn ptr<'a>(&'a self, addr: IpAddr) -> BoxFuture<'a, Result<Vec<String>, DnsFailure>> {
        Box::pin(async move {
            let q = match addr {
                IpAddr::V4(_) => crate::dns::reverse_name(addr, "in-addr.arpa"),
                IpAddr::V6(_) => crate::dns::reverse_name(addr, "ip6.arpa"),
            };
            let r = self.records(&q, RecordType::Ptr).await?;
            Ok(r.into_iter().map(name).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticResolver;

    #[tokio::test]
    async fn answers_keep_nxdomain_nodata_and_tempfail_apart() {
        let r = StaticResolver::new()
            .with(
                "mx.example",
                RecordType::Mx,
                Answer::Records(vec!["10 in.mx.example.".into()]),
            )
            .with(
                "a.example",
                RecordType::A,
                Answer::Records(vec!["192.0.2.1".into()]),
            )
            .with("a.example", RecordType::Txt, Answer::NoRecords)
            .with("gone.example", RecordType::A, Answer::NxDomain)
            .with(
                "slow.example",
                RecordType::A,
                Answer::TempFail("timeout".into()),
            );
        let dns: Arc<dyn DnsBackend> = Arc::new(PluginDns::new(Arc::new(r)));
        assert_eq!(
            dns.mx("mx.example").await,
            Ok(vec![Mx {
                preference: 10,
                exchange: "in.mx.example".into()
            }])
        );
        assert_eq!(
            dns.ipv4("a.example").await,
            Ok(vec![Ipv4Addr::new(192, 0, 2, 1)])
        );
        assert_eq!(dns.txt("a.example").await, Err(DnsFailure::NoRecords));
        assert_eq!(
            dns.ipv4("gone.example").await,
            Err(DnsFailure::NoSuchDomain)
        );
        assert_eq!(
            dns.ipv4("slow.example").await,
            Err(DnsFailure::Temporary("timeout".into()))
        );
    }
}
