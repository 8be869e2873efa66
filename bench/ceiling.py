#!/usr/bin/env python3
"""What the fastest possible MTA could reach on this machine at one SMTP session.

At concurrency 1 every message costs a fixed sequence of round trips (smtp-source does not
pipeline: connect and greeting, HELO, MAIL, RCPT, DATA, the content, QUIT) plus, in any MTA that
keeps its promise, one flush of the queue file to stable storage before the 250. Neither depends
on the MTA's code. This measures both:

- `smtp-sink` (Postfix's test server: one process, accepts every command, stores nothing) driven
  by the same `smtp-source` command line: the rate of the round trips alone;
- a 4 KiB in-place write plus `fdatasync` in the work directory's file system, the cheapest
  durable write there is (Postern's accept path does exactly this);

and combines them into a ceiling: 1 / (1/sink rate + fdatasync time) messages per second. An
MTA that also delivers each message (a Maildir file and its fsync) shares the disk and the CPUs
with that work, so it stays below this ceiling. `bench/run.py` prints it next to the C=1
results; run alone:

    python3 bench/ceiling.py --tmpdir /mnt/disk
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def sink_rate(smtp_source: str, messages: int, size: int, conc: int = 1) -> float | None:
    """Messages per second smtp-source reaches against smtp-sink, or None without smtp-sink."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        return None
    port = free_port()
    cmd = [sink]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]  # smtp-sink will not run as root
    cmd += [f"127.0.0.1:{port}", "256"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(port):
            return None
        t0 = time.monotonic()
        src = subprocess.run([smtp_source, "-s", str(conc), "-m", str(messages), "-l", str(size),
                              "-M", "bench.client", "-f", "bench@example.org", "-t", "nobody@localhost",
                              f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        elapsed = time.monotonic() - t0
        return messages / elapsed if src.returncode == 0 and elapsed > 0 else None
    finally:
        proc.kill()
        proc.wait()


def fdatasync_seconds(directory: str | None, count: int = 2000) -> float:
    """Median time of a 4 KiB in-place rewrite plus fdatasync of one file in `directory`."""
    fd, path = tempfile.mkstemp(prefix="postern-ceiling-", dir=directory)
    try:
        block = b"x" * 4096
        os.pwrite(fd, block, 0)
        os.fsync(fd)  # the block is allocated: later syncs flush data only, as in Postern's queue
        times = []
        for _ in range(count):
            t = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        os.close(fd)
        os.unlink(path)


def measure(smtp_source: str, tmpdir: str | None, messages: int, size: int, repeat: int = 3) -> dict:
    """The sink rate (median of `repeat` runs), the fdatasync time and the ceiling they give."""
    rates = [r for r in (sink_rate(smtp_source, messages, size) for _ in range(repeat)) if r]
    sync = fdatasync_seconds(tmpdir)
    out: dict = {"fdatasync_us": round(sync * 1e6, 1), "sink_rates": [round(r, 1) for r in rates]}
    if rates:
        sink = statistics.median(rates)
        out["sink_rate"] = round(sink, 1)
        out["ceiling_rate"] = round(1 / (1 / sink + sync), 1)
    return out


def describe(c: dict, postfix_rate: float | None = None, postern_rate: float | None = None) -> list[str]:
    """Report lines for a `measure` result, with the ratios it allows when rates are given."""
    if "ceiling_rate" not in c:
        return [f"  fdatasync {c['fdatasync_us']:.0f} us; smtp-sink not available, no ceiling"]
    lines = [f"  smtp-sink (stores nothing) {c['sink_rate']:.1f} msgs/s; 4 KiB write + fdatasync "
             f"{c['fdatasync_us']:.0f} us; ceiling {c['ceiling_rate']:.1f} msgs/s"]
    parts = []
    if postfix_rate:
        parts.append(f"{c['ceiling_rate'] / postfix_rate:.2f}x Postfix")
    if postern_rate:
        parts.append(f"Postern reached {100 * postern_rate / c['ceiling_rate']:.0f} % of it")
    if parts:
        lines.append("  ceiling = " + ", ".join(parts))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tmpdir", help="directory on the file system to measure fdatasync on")
    p.add_argument("--messages", "-n", type=int, default=3000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--smtp-source", default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    args = p.parse_args()
    if not Path(args.smtp_source).exists():
        print("smtp-source not found: install Postfix (Debian/Ubuntu: apt-get install postfix)", file=sys.stderr)
        return 2
    c = measure(args.smtp_source, args.tmpdir, args.messages, args.size, args.repeat)
    print("C=1 ceiling (round trips of a server that stores nothing, plus one durable write)")
    print("\n".join(describe(c)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
