//! A policy plugin that misbehaves on request, for host/runtime/tests/sandbox.rs.
//! `mode` in the binding's config: `loop`, `alloc`, `trap`, `dns`, `annotate`, anything else
//! answers DUNNO.

wit_bindgen::generate!({
    path: "../../../../../wit",
    world: "policy-plugin",
    generate_all,
});

use exports::postern::plugin::policy::{Decision, Guest, PolicyRequest, Verdict};
use postern::plugin::types::{EnhancedCode, PluginError, Reply};
use postern::plugin::{annotations, config, dns};

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
            _ => Ok(Verdict { decision: Decision::Dunno, actions: Vec::new() }),
        }
    }
}

export!(Sandbox);
