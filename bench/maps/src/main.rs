//! `bench-maps`: builds a large `hash:` table with Postern and, when installed, with Postfix's
//! postmap(1) (`hash:` = Berkeley DB, `lmdb:`), and compares build time, index size and lookup
//! latency. See bench/maps/README.md for how to run it and the last recorded figures.
//!
//! Two lookup measurements:
//! - in-process (Postern only): each lookup timed alone, hits and misses, p50/p99;
//! - batch, the same way for both systems: `postmap -q - TABLE < keys` and
//!   `postern map query TABLE - < keys`, one process answering every key, timed for N keys and
//!   for 1 key; (T(N) − T(1)) / (N − 1) is the per-key cost without process start-up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern_maps::{build_hash, HashTable, Table};

type Res<T> = Result<T, String>;

/// `context: error` for `?`.
fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: impl std::fmt::Display) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

struct Options {
    entries: usize,
    lookups: usize,
    dir: Option<PathBuf>,
    keep: bool,
    postern: Option<PathBuf>,
    postmap: PathBuf,
    skip_postfix: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-maps [--entries N] [--lookups N] [--dir DIR] [--keep] [--postern PATH] \
         [--postmap PATH] [--skip-postfix]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        entries: 1_000_000,
        lookups: 100_000,
        dir: None,
        keep: false,
        postern: None,
        postmap: PathBuf::from("/usr/sbin/postmap"),
        skip_postfix: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--entries" => o.entries = value().parse().unwrap_or_else(|_| usage()),
            "--lookups" => o.lookups = value().parse().unwrap_or_else(|_| usage()),
            "--dir" => o.dir = Some(PathBuf::from(value())),
            "--postern" => o.postern = Some(PathBuf::from(value())),
            "--postmap" => o.postmap = PathBuf::from(value()),
            "--keep" => o.keep = true,
            "--skip-postfix" => o.skip_postfix = true,
            _ => usage(),
        }
    }
    if o.lookups < 2 || o.entries < 1 {
        usage();
    }
    o
}

/// xorshift64*: reproducible key sampling without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn key(i: usize) -> String {
    format!("user{i}@d{}.example.com", i % 1000)
}

/// One row of the result table; `None` = not measured.
#[derive(Default)]
struct Row {
    name: String,
    build: Option<Duration>,
    bytes: Option<u64>,
    hit: Option<(f64, f64)>,
    miss: Option<(f64, f64)>,
    batch_hit: Option<f64>,
    batch_miss: Option<f64>,
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn timed_lookups(t: &HashTable, keys: &[String], expect_hit: bool) -> Res<(f64, f64)> {
    let mut ns = Vec::with_capacity(keys.len());
    for k in keys {
        let start = Instant::now();
        let r = t.lookup(k);
        ns.push(start.elapsed().as_nanos() as u64);
        match r {
            Ok(v) if v.is_some() == expect_hit => {}
            other => return Err(format!("lookup of {k}: unexpected {other:?}")),
        }
    }
    Ok(percentiles(ns))
}

fn run(cmd: &mut Command, input: Option<&Path>) -> Res<Duration> {
    if let Some(p) = input {
        cmd.stdin(ctx(std::fs::File::open(p), p.display())?);
    }
    cmd.stdout(Stdio::null());
    let start = Instant::now();
    let status = ctx(cmd.status(), format!("{cmd:?}"))?;
    let took = start.elapsed();
    if !(status.success() || status.code() == Some(1)) {
        return Err(format!("{cmd:?}: {status}"));
    }
    Ok(took)
}

/// Per-key µs of a batch query command: best of three (T(N) − T(1)) / (N − 1).
fn batch(make: &dyn Fn() -> Command, all: &Path, one: &Path, n: usize) -> Res<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let full = run(&mut make(), Some(all))?.as_secs_f64();
        let single = run(&mut make(), Some(one))?.as_secs_f64();
        best = best.min((full - single).max(0.0) / (n - 1) as f64 * 1e6);
    }
    Ok(best)
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Res<()> {
    let mut f = std::io::BufWriter::new(ctx(std::fs::File::create(path), path.display())?);
    for l in lines {
        ctx(writeln!(f, "{l}"), path.display())?;
    }
    ctx(f.flush(), path.display())
}

fn postern_supports_map(bin: &Path) -> bool {
    Command::new(bin)
        .arg("help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("map query"))
        .unwrap_or(false)
}

fn main() -> std::process::ExitCode {
    match bench(&parse_args()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-maps: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench(o: &Options) -> Res<()> {
    let dir = o.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("postern-bench-maps-{}", std::process::id()))
    });
    ctx(std::fs::create_dir_all(&dir), dir.display())?;
    println!(
        "bench-maps: {} entries, {} lookups each for hits and misses, in {}",
        o.entries,
        o.lookups,
        dir.display()
    );

    let src = dir.join("table");
    write_lines(
        &src,
        (0..o.entries).map(|i| format!("{} relay{i}.example.net:25", key(i))),
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hits: Vec<String> = (0..o.lookups).map(|_| key(rng.below(o.entries))).collect();
    let misses: Vec<String> = (0..o.lookups)
        .map(|i| format!("nobody{i}@d{}.example.com", i % 1000))
        .collect();
    let (hits_file, misses_file, one_file) =
        (dir.join("hits"), dir.join("misses"), dir.join("one"));
    write_lines(&hits_file, hits.iter().cloned())?;
    write_lines(&misses_file, misses.iter().cloned())?;
    write_lines(&one_file, hits.iter().take(1).cloned())?;

    let mut rows = Vec::new();
    // Postern, in-process.
    let start = Instant::now();
    let report = ctx(build_hash(&src), "build")?;
    let build = start.elapsed();
    let table = ctx(HashTable::open(&src), "open")?;
    timed_lookups(&table, &hits[..hits.len().min(10_000)], true)?; // warm the page cache
    rows.push(Row {
        name: "postern hash: (in-process)".into(),
        build: Some(build),
        bytes: Some(report.bytes),
        hit: Some(timed_lookups(&table, &hits, true)?),
        miss: Some(timed_lookups(&table, &misses, false)?),
        ..Row::default()
    });

    // Postern, the CLI in batch mode.
    let postern = o.postern.clone().or_else(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/postern");
        p.exists().then_some(p)
    });
    match postern.filter(|p| postern_supports_map(p)) {
        Some(bin) => {
            let spec = format!("hash:{}", src.display());
            let make = || {
                let mut c = Command::new(&bin);
                c.args(["map", "query", &spec, "-"]);
                c
            };
            rows.push(Row {
                name: "postern map query -".into(),
                batch_hit: Some(batch(&make, &hits_file, &one_file, o.lookups)?),
                batch_miss: Some(batch(&make, &misses_file, &one_file, o.lookups)?),
                ..Row::default()
            });
        }
        None => println!(
            "(no postern binary with `map query`: build it with cargo build --release -p postern, \
             or pass --postern PATH)"
        ),
    }

    if !o.skip_postfix && o.postmap.exists() {
        rows.extend(postfix_rows(o, &dir, &hits_file, &misses_file, &one_file)?);
    } else if !o.skip_postfix {
        println!(
            "({} not found: Postfix columns skipped)",
            o.postmap.display()
        );
    }

    print_table(&rows);
    if !o.keep && o.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn postfix_rows(o: &Options, dir: &Path, hits: &Path, misses: &Path, one: &Path) -> Res<Vec<Row>> {
    let cfg = dir.join("postfix-config");
    ctx(std::fs::create_dir_all(&cfg), cfg.display())?;
    ctx(
        std::fs::write(cfg.join("main.cf"), "compatibility_level = 3.6\n"),
        "main.cf",
    )?;
    let types = Command::new(o.postmap.with_file_name("postconf"))
        .args(["-c", &cfg.display().to_string(), "-m"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for kind in ["hash", "lmdb"] {
        if !types.lines().any(|l| l.trim() == kind) {
            println!("(postmap has no {kind}: support; install postfix-{kind} to compare)");
            continue;
        }
        // A directory per type: Postfix's index files must not meet each other or Postern's.
        let sub = dir.join(format!("postfix-{kind}"));
        ctx(std::fs::create_dir_all(&sub), sub.display())?;
        let src = sub.join("table");
        ctx(std::fs::copy(dir.join("table"), &src), src.display())?;
        let spec = format!("{kind}:{}", src.display());
        let cfg_arg = cfg.display().to_string();
        let build = run(Command::new(&o.postmap).args(["-c", &cfg_arg, &spec]), None)?;
        let index = match kind {
            "hash" => sub.join("table.db"),
            _ => sub.join("table.lmdb"),
        };
        let make = || {
            let mut c = Command::new(&o.postmap);
            c.args(["-c", &cfg_arg, "-q", "-", &spec]);
            c
        };
        rows.push(Row {
            name: format!("postfix {kind}: (postmap -q -)"),
            build: Some(build),
            bytes: std::fs::metadata(&index).ok().map(|m| m.len()),
            batch_hit: Some(batch(&make, hits, one, o.lookups)?),
            batch_miss: Some(batch(&make, misses, one, o.lookups)?),
            ..Row::default()
        });
    }
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    let f = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    println!();
    println!(
        "{:<30} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "table",
        "build s",
        "size MB",
        "hit p50",
        "hit p99",
        "miss p50",
        "miss p99",
        "batch hit",
        "batch miss"
    );
    println!(
        "{:<30} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "", "", "", "µs", "µs", "µs", "µs", "µs/key", "µs/key"
    );
    for r in rows {
        println!(
            "{:<30} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
            r.name,
            f(r.build.map(|d| d.as_secs_f64()), 2),
            f(r.bytes.map(|b| b as f64 / 1_048_576.0), 1),
            f(r.hit.map(|h| h.0), 2),
            f(r.hit.map(|h| h.1), 2),
            f(r.miss.map(|m| m.0), 2),
            f(r.miss.map(|m| m.1), 2),
            f(r.batch_hit, 2),
            f(r.batch_miss, 2),
        );
    }
}
