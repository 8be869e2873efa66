//! `bench-plugins`: what a Wasm policy call costs in Postern's runtime — compile (cold and from
//! the on-disk cache), a warm call on the instance of the current transaction (the common case:
//! one instance per message, several calls on it), a call on a pooled instance, a call with a
//! fresh instance, and a call that traps. Each figure is the median of several rounds of many
//! calls, including the marshalling of a full policy request and verdict. See
//! bench/plugins/README.md for how to run it and the last figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_runtime::{
    Binding, ClientInfo, InstanceMode, Options, PolicyPlugin, PolicyRequest, Protocol, Runtime,
    ServerInfo, Stage, Transaction,
};

fn usage() -> ! {
    eprintln!("usage: bench-plugins [--calls N] [--rounds N] NAME=PATH.wasm …");
    eprintln!("  e.g. bench-plugins rust=examples/policy-rust/target/wasm32-wasip2/release/policy_rust.wasm");
    std::process::exit(2)
}

fn request() -> PolicyRequest {
    PolicyRequest {
        stage: Stage::Rcpt,
        instance: "1a2b.3c4d.5e6f".into(),
        client: ClientInfo {
            address: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            port: 40000,
            reverse_name: Some("client.example.org".into()),
            verified_name: Some("client.example.org".into()),
            helo: Some("client.example.org".into()),
            protocol: Protocol::Esmtp,
            tls: None,
            sasl_method: None,
            sasl_username: None,
        },
        server: ServerInfo {
            address: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 25,
            hostname: "mx.example.test".into(),
            service: "smtpd".into(),
        },
        queue_id: Some("4XqZ1a2b3c".into()),
        sender: Some("sender@example.org".into()),
        recipient: Some("someone@example.test".into()),
        recipient_count: 0,
        size: 1024,
        argument: None,
        context: None,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn binding(name: &str, path: &Path, mode: InstanceMode) -> Binding {
    let mut b = Binding::new(name, path);
    b.instances = mode;
    // The example policies read these; nothing in the load is listed, so every call is DUNNO.
    b.config
        .insert("reject".into(), "listed@example.test".into());
    b.timeout = Duration::from_secs(5);
    b
}

/// Median per-call time of `rounds` rounds of `calls` calls made by `call`.
async fn time_calls<F, Fut>(calls: u32, rounds: u32, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..calls.min(200) {
        call().await;
    }
    let mut per = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..calls {
            call().await;
        }
        per.push(t.elapsed() / calls);
    }
    median(per)
}

async fn bench(name: &str, path: &Path, calls: u32, rounds: u32) -> Result<(), String> {
    let cache = std::env::temp_dir().join(format!("postern-bench-plugins-{}", std::process::id()));
    let opts = || Options {
        cache_dir: Some(cache.clone()),
        ..Options::default()
    };
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let rt = Runtime::with_options(opts()).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let warm = rt
        .load_policy(binding(name, path, InstanceMode::Transaction))
        .map_err(|e| format!("{e:#}"))?;
    let cold = t.elapsed();
    drop(rt);
    // A new runtime (a restart) finds the compiled component in the cache.
    let rt = Runtime::with_options(opts()).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let _ = rt
        .load_policy(binding(name, path, InstanceMode::Transaction))
        .map_err(|e| format!("{e:#}"))?;
    let cached = t.elapsed();
    let warm = Arc::new(warm);
    let pooled = Arc::new(
        rt.load_policy(binding(name, path, InstanceMode::Pooled))
            .map_err(|e| format!("{e:#}"))?,
    );
    let fresh = Arc::new(
        rt.load_policy(binding(name, path, InstanceMode::Call))
            .map_err(|e| format!("{e:#}"))?,
    );
    let req = request();
    let check = |p: &Arc<PolicyPlugin>, txn: Option<Transaction>| {
        let (p, req) = (p.clone(), req.clone());
        async move {
            let v = p.check(&req, txn.as_ref()).await;
            assert!(v.is_ok(), "{v:?}");
        }
    };
    let txn = Transaction::new();
    let t_warm = time_calls(calls, rounds, || check(&warm, Some(txn.clone()))).await;
    let t_pooled = time_calls(calls, rounds, || check(&pooled, Some(Transaction::new()))).await;
    let fresh_calls = (calls / 10).max(100);
    let t_fresh = time_calls(fresh_calls, rounds, || check(&fresh, None)).await;
    let per_message = time_calls(fresh_calls, rounds, || {
        check(&warm, Some(Transaction::new()))
    })
    .await;
    println!(
        "{name:<8} {:>8.1} {:>10.1} {:>9.1} {:>11.1} {:>11.1} {:>11.1} {:>13.1}",
        size as f64 / 1e6,
        cold.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3,
        t_warm.as_secs_f64() * 1e6,
        t_pooled.as_secs_f64() * 1e6,
        t_fresh.as_secs_f64() * 1e6,
        per_message.as_secs_f64() * 1e6,
    );
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut calls = 20_000u32;
    let mut rounds = 5u32;
    let mut plugins = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => {
                calls = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "-h" | "--help" => usage(),
            _ => match a.split_once('=') {
                Some((n, p)) => plugins.push((n.to_string(), PathBuf::from(p))),
                None => usage(),
            },
        }
    }
    if plugins.is_empty() {
        usage();
    }
    println!("per-call figures: median of {rounds} rounds; warm/pooled {calls} calls per round");
    println!(
        "{:<8} {:>8} {:>10} {:>9} {:>11} {:>11} {:>11} {:>13}",
        "plugin",
        "size MB",
        "compile ms",
        "cached ms",
        "warm µs",
        "pooled µs",
        "fresh µs",
        "1st in txn µs"
    );
    for (name, path) in &plugins {
        if let Err(e) = bench(name, path, calls, rounds).await {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}
