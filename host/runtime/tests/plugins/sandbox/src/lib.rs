//! A policy plugin that misbehaves on request, for host/runtime/tests/sandbox.rs.
//! `mode` in the binding's config: `loop`, `alloc`, `trap`, `sleep`, `dns`, `dns-budget`,
//! `annotate`, `file`, `socket`, `kv`, `sign`; anything else answers DUNNO. Every probe answers
//! with a 550 whose text reports what happened, so the test can assert on it.

wit_bindgen::generate!({
    path: "../../../../../wit",
    world: "policy-plugin",
    generate_all,
});

use exports::postern::plugin::policy::{Decision, Guest, PolicyRequest, Verdict};
use postern::plugin::types::{EnhancedCode, PluginError, Reply};
use postern::plugin::{annotations, config, dns, kv, signing};

struct Sandbox;

fn reply(text: String) -> Verdict {
    Verdict {
        decision: Decision::Reject(Reply {
            code: 550,
            enhanced: Some(EnhancedCode { class: 5, subject: 7, detail: 1 }),
            text: vec![text],
        }),
        actions: Vec::new(),
    }
}

impl Guest for Sandbox {
    fn check(_request: PolicyRequest) -> Result<Verdict, PluginError> {
        match config::get("mode").as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap") => std::process::abort(),
            Some("dns") => {
                let answer = match dns::lookup_txt("example.com") {
                    Ok(_) => "answered".to_string(),
                    Err(dns::DnsError::Denied) => "denied".to_string(),
                    Err(e) => format!("{e:?}"),
                };
                Ok(reply(answer))
            }
            Some("annotate") => {
                let seen = annotations::get("spf").map(|a| format!("{}:{}", a.plugin, a.value));
                annotations::set("spf", "pass");
                Ok(reply(seen.unwrap_or_else(|| "none".into())))
            }
            Some("sleep") => {
                // Blocked in a WASI call, not running wasm: only the wall-clock timeout stops it.
                std::thread::sleep(std::time::Duration::from_millis(400));
                Ok(reply("woke".into()))
            }
            Some("dns-budget") => {
                let mut n = 0;
                while n < 1000 {
                    match dns::lookup_ipv4("host.example") {
                        Err(dns::DnsError::Denied) => break,
                        _ => n += 1,
                    }
                }
                Ok(reply(format!("{n} queries")))
            }
            Some("file") => {
                let path = config::get("path").unwrap_or_else(|| "/etc/hostname".into());
                Ok(reply(match std::fs::read(&path) {
                    Ok(b) => format!("read {} bytes", b.len()),
                    Err(e) => format!("file error: {e}"),
                }))
            }
            Some("socket") => {
                let target = config::get("target").unwrap_or_else(|| "127.0.0.1:25".into());
                Ok(reply(match std::net::TcpStream::connect(&target) {
                    Ok(_) => "connected".to_string(),
                    Err(e) => format!("socket error: {e}"),
                }))
            }
            Some("kv") => {
                let bucket = config::get("bucket").unwrap_or_else(|| "counters".into());
                Ok(reply(match kv::Bucket::open(&bucket) {
                    Err(e) => format!("open: {e:?}"),
                    Ok(b) => match b.increment("hits", 1, 0) {
                        Ok(n) => {
                            let first = b.set_if_absent("first", b"yes", 0);
                            format!("hits={n} first={first:?}")
                        }
                        Err(e) => format!("increment: {e:?}"),
                    },
                }))
            }
            Some("sign") => {
                let key = config::get("key").unwrap_or_default();
                Ok(reply(match signing::SigningKey::open(&key) {
                    Err(e) => format!("open: {e:?}"),
                    Ok(k) => match k.sign(b"message to sign") {
                        Ok(sig) => format!(
                            "{:?} {} {} {}",
                            k.key_algorithm(),
                            k.selector(),
                            k.domain(),
                            sig.iter().map(|b| format!("{b:02x}")).collect::<String>()
                        ),
                        Err(e) => format!("sign: {e:?}"),
                    },
                }))
            }
            _ => Ok(Verdict { decision: Decision::Dunno, actions: Vec::new() }),
        }
    }
}

export!(Sandbox);
