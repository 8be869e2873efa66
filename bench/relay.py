#!/usr/bin/env python3
"""Postern vs Postfix relay benchmark (issue 5's headline figure; Python 3.11+, stdlib only).

smtp-source -> MTA (fsync-durable queue) -> Postfix's smtp-sink, one message per inbound SMTP
session. For each MTA and each cell it reports messages/s end to end (accepted by the MTA and
acknowledged by the sink), messages per CPU-second of the MTA's whole process tree, p50/p99 of
the queue delay (the `delay=` of each `status=sent` log line: arrival to the sink's 250) and
peak memory. Cells: 1 KiB at each concurrency, plus a 50 KiB and a 10-recipient variant.
The process machinery (starting, CPU and memory accounting, stopping) is bench/run.py's; see
bench/README.md for how to run it and read it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (bench/run.py)

DELAY_RE = re.compile(rb"delay=([0-9.]+),")


class LogCounter:
    """Follows a mail log as it grows: `status=sent` lines and their `delay=` values."""

    def __init__(self, path: Path, rcpts: int):
        self.path, self.rcpts = path, max(1, rcpts)
        self.offset, self.partial = 0, b""
        self.sent, self.delays = 0, []

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.sent // self.rcpts
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if b"status=sent" in line:
                self.sent += 1
                m = DELAY_RE.search(line)
                if m:
                    self.delays.append(float(m.group(1)))
        return self.sent // self.rcpts

    def percentiles(self) -> dict:
        if not self.delays:
            return {}
        d = sorted(self.delays)
        pick = lambda q: d[min(len(d) - 1, int(q * len(d)))]  # noqa: E731
        return {"p50_delay_s": pick(0.50), "p99_delay_s": pick(0.99), "mean_delay_s": round(statistics.fmean(d), 4)}


class Sink:
    """Postfix's smtp-sink on a free loopback port, accepting everything."""

    def __init__(self, binary: str):
        self.port = base.free_port()
        cmd = [binary]
        if base.os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        cmd += [f"127.0.0.1:{self.port}", "1024"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("smtp-sink did not start")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def relaying(kind: type[base.Server]) -> type[base.Server]:
    """`kind` configured to relay everything for the benchmark domain to the sink."""

    class Relay(kind):  # type: ignore[misc, valid-type]
        def prepare(self) -> None:
            super().prepare()
            main_cf = self.work / "etc" / "main.cf"
            with open(main_cf, "a") as f:
                f.write(f"relayhost = [127.0.0.1]:{self.args.sink_port}\n")
            self.counter = LogCounter(self.maillog, self.args.rcpts)

        def delivered(self) -> int:
            return self.counter.poll()

        def extra_results(self) -> dict:
            self.counter.poll()
            return {"sent_lines": self.counter.sent, **self.counter.percentiles()}

    Relay.name = kind.name
    return Relay


def cell_name(size: int, rcpts: int) -> str:
    return f"{size // 1024} KiB" + (f", {rcpts} rcpts" if rcpts > 1 else "")


def report(results: list[dict]) -> dict:
    print(f"\n  {'cell':22} {'system':8} {'msgs/s':>8} {'msgs/CPU-s':>10} {'p50 s':>6} {'p99 s':>6} "
          f"{'RSS MB':>7} {'PSS MB':>7}  notes")
    summary: dict = {}
    cells = list(dict.fromkeys((r["cell"], r["concurrency"]) for r in results))
    for cell, conc in cells:
        rows = {r["system"]: r for r in results if r["cell"] == cell and r["concurrency"] == conc}
        label = f"{cell}, C={conc}"
        for name in ("postern", "postfix"):
            r = rows.get(name)
            if r is None:
                continue
            per_cpu = r["delivered"] / r["cpu_seconds"] if r.get("cpu_seconds") else None
            r["msgs_per_cpu_second"] = round(per_cpu, 1) if per_cpu else None
            notes = []
            if r.get("error"):
                notes.append("ERROR: " + r["error"].splitlines()[0][:100])
            elif not r.get("complete"):
                notes.append(f"INCOMPLETE {r.get('delivered')}/{r['messages']}")
            if r.get("queue_left"):
                notes.append(f"{r['queue_left']} left in queue")
            if r.get("log", {}).get("warnings"):
                notes.append(f"{r['log']['warnings']} log warnings")
            print(f"  {label:22} {name:8} {base.fmt(r.get('delivered_rate')):>8} {base.fmt(per_cpu):>10} "
                  f"{base.fmt(r.get('p50_delay_s'), '.2f'):>6} {base.fmt(r.get('p99_delay_s'), '.2f'):>6} "
                  f"{base.fmt(r.get('peak_rss_mb')):>7} {base.fmt(r.get('peak_pss_mb')):>7}  {'; '.join(notes)}")
        pe, pf = rows.get("postern"), rows.get("postfix")
        if pe and pf and not pe.get("error") and not pf.get("error"):
            ratios = {"throughput": base.ratio(pe["delivered_rate"], pf["delivered_rate"]),
                      "per_cpu": base.ratio(pe.get("msgs_per_cpu_second"), pf.get("msgs_per_cpu_second"))}
            print(f"  {'':22} ratio    {base.fmt(ratios['throughput'], '.2f'):>7}x "
                  f"{base.fmt(ratios['per_cpu'], '.2f'):>9}x")
            summary[label] = ratios
    print("\nTargets (1 KiB, C=50)")
    head = summary.get("1 KiB, C=50")
    if head:
        for key, want, what in (("throughput", 4.0, "end-to-end relay"), ("per_cpu", 5.0, "messages per CPU-second")):
            got = head.get(key)
            verdict = "PASS" if got is not None and got >= want else "FAIL"
            print(f"  {what} >= {want:.0f}x Postfix: {verdict} ({base.fmt(got, '.2f')}x)")
            summary[f"{key}_target"] = verdict
    else:
        print("  not measured (needs both systems at C=50 with 1 KiB messages)")
    return summary


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postern", type=Path, default=base.REPO / "target" / "release" / "postern")
    p.add_argument("--messages", "-n", type=int, default=2000, help="messages per cell (2000)")
    p.add_argument("--concurrency", default="1,10,50", help="inbound sessions for the 1 KiB cells (1,10,50)")
    p.add_argument("--variants", default="50k,10rcpt",
                   help="extra cells at the highest concurrency: 50k (50 KiB body), 10rcpt (10 recipients); "
                        "'none' for none (50k,10rcpt)")
    p.add_argument("--repeat", type=int, default=1, help="rounds per cell, the systems alternating; each system's median run is reported (1)")
    p.add_argument("--skip-postfix", action="store_true")
    p.add_argument("--skip-postern", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument("--json", type=Path, help="write all results to this file")
    p.add_argument("--tmpdir", help="parent of the work directories (its filesystem decides fsync cost)")
    p.add_argument("--stall", type=float, default=15.0)
    p.add_argument("--sample-interval", type=float, default=0.05)
    p.add_argument("--smtp-source", default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    p.add_argument("--smtp-sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    a = p.parse_args()
    # What bench/run.py's machinery reads.
    a.recipient, a.sender = "user@relay.example", "bench@example.org"
    a.restrictions, a.wasm_policy = False, None
    return a


def main() -> int:
    args = parse_args()
    for tool in (args.smtp_source, args.smtp_sink):
        if not Path(tool).exists():
            print(f"{tool} not found: install Postfix (apt-get install postfix)", file=sys.stderr)
            return 2
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    cells = [(c, 1024, 1) for c in levels]
    top = max(levels)
    for v in [] if args.variants == "none" else args.variants.split(","):
        cells.append((top, 50 * 1024, 1) if v.strip() == "50k" else (top, 1024, 10))
    systems = []
    if not args.skip_postern:
        if not args.postern.exists():
            print(f"{args.postern} does not exist; cargo build --release -p postern", file=sys.stderr)
            return 2
        args.postern = args.postern.resolve()
        warning = base.stale_warning(args.postern, base.newer_sources(args.postern.stat().st_mtime))
        if warning:
            print(warning, file=sys.stderr)
        systems.append(relaying(base.Postern))
    args.postfix_version = None
    if not args.skip_postfix:
        version = base.postconf("mail_version")
        master = Path(base.postconf("daemon_directory") or "/usr/lib/postfix/sbin") / "master"
        if version and master.exists() and base.os.geteuid() == 0:
            args.postfix_version = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
            args.postfix_master = str(master)
            systems.append(relaying(base.Postfix))
        else:
            print("note: skipping Postfix (not installed, or not root)", file=sys.stderr)
    atexit.register(base.stop_all)
    signal.signal(signal.SIGINT, base.on_signal)
    signal.signal(signal.SIGTERM, base.on_signal)
    info = base.machine_info(args)
    info["command"] = " ".join(["python3", "bench/relay.py", *sys.argv[1:]])
    print(f"Postern relay benchmark {info['date']}: {info['cpus']} CPUs ({info['cpu_model']}), "
          f"work dirs on {info['filesystem']}, tree {info['postern_rev']}, postfix {info['postfix_version'] or '-'}")
    if "tmpfs" in info["filesystem"]:
        print("  warning: the work directory is on tmpfs, where fsync costs nothing; use --tmpdir on a disk")
    results = []
    try:
        for conc, size, rcpts in cells:
            # The systems alternate round by round, as in bench/run.py.
            runs: dict[str, list[dict]] = {kind.name: [] for kind in systems}
            for i in range(args.repeat):
                for kind in systems:
                    sink = Sink(args.smtp_sink)
                    try:
                        args.sink_port, args.size, args.rcpts = sink.port, size, rcpts
                        args.source_extra = ["-r", str(rcpts)] if rcpts > 1 else []
                        print(f"  {kind.name} {cell_name(size, rcpts)} C={conc}"
                              + (f" ({i + 1}/{args.repeat})" if args.repeat > 1 else ""), end="", flush=True)
                        r = base.run_one(kind, conc, args)
                    finally:
                        sink.stop()
                    r["cell"] = cell_name(size, rcpts)
                    runs[kind.name].append(r)
                    print(": " + (f"error: {r['error'].splitlines()[0][:120]}" if r.get("error") else
                                  f"{r['delivered']}/{r['messages']} relayed in {r['delivered_seconds']} s"), flush=True)
            results.extend(base.median_run(runs[kind.name]) for kind in systems)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        base.stop_all()
    summary = report(results)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results, "summary": summary}, indent=2) + "\n")
    return 0 if results and all(r.get("complete") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
