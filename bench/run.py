#!/usr/bin/env python3
"""Postern vs Postfix throughput benchmark (Python 3.11+, standard library only).

Drives each MTA with Postfix's `smtp-source` at several concurrency levels, one message per SMTP
session, and measures messages/s accepted (smtp-source finished) and accepted-and-delivered (all
messages present in the recipient's Maildir `new/`), CPU seconds of the server's whole process
tree and its peak memory. See bench/README.md for the method and how to read the output.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ceiling  # bench/ceiling.py, next to this file

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024

# Servers that are running right now; stopped by the atexit hook if the run is interrupted.
LIVE: list["Server"] = []


# ---------------------------------------------------------------------------------------------
# /proc accounting
# ---------------------------------------------------------------------------------------------


def read_stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, session, cpu ticks incl. reaped children, rss bytes) of one process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    # rest[0] is field 3 (state); utime stime cutime cstime are fields 14-17, rss is field 24.
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return int(rest[1]), int(rest[3]), ticks, int(rest[21]) * PAGE


def process_tree(root: int, sid: int) -> dict[int, tuple[int, int, int, int]]:
    """Every process in the server's session plus every descendant of its root process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                table[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st[0], []).append(pid)
    members = {pid for pid, st in table.items() if sid > 0 and st[1] == sid}
    frontier, visited = [root], set()
    while frontier:
        parent = frontier.pop()
        if parent in visited:
            continue
        visited.add(parent)
        if parent in table:
            members.add(parent)
        frontier.extend(children.get(parent, ()))
    return {pid: table[pid] for pid in members}


def cpu_seconds(root: int, sid: int) -> float:
    """utime+stime of live tree members plus cutime+cstime (children they have reaped)."""
    return sum(st[2] for st in process_tree(root, sid).values()) / CLK_TCK


def read_kb(pid: int, path: str, key: str) -> int | None:
    """A `Key:   N kB` value from /proc/PID/status or smaps_rollup, in bytes."""
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Sampler(threading.Thread):
    """Samples the server's process tree every `interval` s: RSS sum, PSS sum, process count."""

    def __init__(self, root: int, sid: int, interval: float, pss_every: int = 5):
        super().__init__(daemon=True)
        self.root, self.sid, self.interval, self.pss_every = root, sid, interval, pss_every
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0
        self.pids_seen: set[int] = set()

    def sample(self) -> None:
        tree = process_tree(self.root, self.sid)
        self.pids_seen.update(tree)
        self.peak_rss = max(self.peak_rss, sum(st[3] for st in tree.values()))
        self.peak_procs = max(self.peak_procs, len(tree))
        if self.samples % self.pss_every == 0:
            pss = sum(read_kb(pid, "smaps_rollup", "Pss") or 0 for pid in tree)
            self.peak_pss = max(self.peak_pss, pss)
        self.samples += 1

    def run(self) -> None:
        while True:
            self.sample()
            if self.stop_event.wait(self.interval):
                return

    def finish(self) -> None:
        self.stop_event.set()
        self.join(5)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def banner_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            line = s.makefile("rb").readline()
            if line.startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                return True
    except OSError:
        pass
    return False


class Server:
    """One MTA instance in a private work directory. Subclasses write config and start it."""

    name = "?"

    def __init__(self, work: Path, port: int, args: argparse.Namespace):
        self.work, self.port, self.args = work, port, args
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.sid = 0
        self.lifetime_cpu: float | None = None
        self.exit_status: int | None = None

    # -- to override
    def prepare(self) -> None: ...
    def command(self) -> list[str]: ...
    def new_session(self) -> bool:
        return True

    @property
    def maillog(self) -> Path:
        return self.work / "maillog"

    def maildir_new(self) -> Path:
        return self.work / "mail" / self.args.recipient.split("@")[0] / "new"

    def delivered(self) -> int:
        """Messages delivered so far (bench/relay.py counts log lines instead)."""
        return count_files(self.maildir_new())

    def start(self) -> None:
        self.prepare()
        out = open(self.work / "server.out", "wb")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session(),
        )
        out.close()
        self.pid = self.proc.pid
        LIVE.append(self)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early ({self.proc.returncode}); {self.tail()}")
            if banner_ok(self.port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer on 127.0.0.1:{self.port}; {self.tail()}")
            time.sleep(0.05)
        st = read_stat(self.pid)
        # Only trust session membership if the server leads its own session; otherwise fall back
        # to descendants of its root process (never our own session: we must not kill ourselves).
        self.sid = self.pid if st and st[1] == self.pid else -1

    def tail(self) -> str:
        text = ""
        for p in (self.work / "server.out", self.maillog):
            try:
                text += p.read_text(errors="replace")[-2000:]
            except OSError:
                pass
        return "output:\n" + text if text else "no output"

    def stop(self) -> None:
        """SIGTERM, up to 10 s grace, then SIGKILL; reaps the root with wait4 for lifetime CPU."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if self in LIVE:
            LIVE.remove(self)
        if proc.returncode is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    pid, status, ru = os.wait4(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == self.pid:
                    self._reaped(proc, status, ru)
                    break
                time.sleep(0.02)
            else:
                self.kill_tree()
                try:
                    pid, status, ru = os.wait4(self.pid, 0)
                    self._reaped(proc, status, ru)
                except ChildProcessError:
                    pass
        # Children the server left behind (its session) are ours too: give them 2 s, then kill.
        deadline = time.monotonic() + 2
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill_tree()

    def _reaped(self, proc: subprocess.Popen, status: int, ru) -> None:
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.exit_status = proc.returncode
        self.lifetime_cpu = ru.ru_utime + ru.ru_stime

    def leftovers(self) -> list[int]:
        if not self.sid:
            return []
        mine = os.getsid(0)
        return [pid for pid, st in process_tree(self.pid, self.sid).items()
                if pid != os.getpid() and st[1] != mine]

    def kill_tree(self) -> None:
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def queue_left(self) -> int:
        """Messages still in the queue after the run (incoming/active/deferred/hold).

        Only complete queue files count: both Postfix and Postern mark a finished queue file
        with the owner-execute bit, and Postern keeps pre-created, not-yet-used files (mode
        0600) in incoming/."""
        n = 0
        for d in ("incoming", "active", "deferred", "hold"):
            for root, _, files in os.walk(self.work / "queue" / d):
                for f in files:
                    try:
                        if os.stat(os.path.join(root, f)).st_mode & 0o100:
                            n += 1
                    except OSError:
                        pass
        return n


class Postern(Server):
    name = "postern"

    def prepare(self) -> None:
        w = self.work
        (w / "etc").mkdir()
        (w / "mail").mkdir()
        (w / "etc" / "main.cf").write_text(
            "# written by bench/run.py\n"
            "myhostname = bench.localdomain\n"
            "mydestination = localhost\n"
            "inet_interfaces = 127.0.0.1\n"
            f"queue_directory = {w}/queue\n"
            f"mail_spool_directory = {w}/mail/\n"
            f"maillog_file = {w}/maillog\n"
            "smtpd_client_connection_count_limit = 0\n"
            "default_process_limit = 200\n"
            + (self.restriction_lines() if self.args.restrictions else "")
            + (self.wasm_policy_lines() if self.args.wasm_policy else "")
        )
        (w / "etc" / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - - smtpd\n")

    def wasm_policy_lines(self) -> str:
        """--wasm-policy WASM: the Rust example policy plugin on every RCPT (issue 4's benchmark).
        Its reject list names nobody the load sends to, so every call answers DUNNO."""
        (self.work / "etc" / "plugins.toml").write_text(
            "[[plugin]]\n"
            'name = "bench"\n'
            f'component = "{Path(self.args.wasm_policy).resolve()}"\n'
            'roles = ["policy"]\n'
            f'instances = "{self.args.wasm_instances}"\n'
            "[plugin.config]\n"
            'reject = "blocked@example.com"\n'
            'text = "benchmark"\n'
        )
        return ("smtpd_recipient_restrictions = check_policy_service wasm:bench,\n"
                "    permit_mynetworks, reject_unauth_destination\n")

    def restriction_lines(self) -> str:
        """--restrictions: a 10-element recipient restriction list with two hash: lookups, each
        table 1000 entries that do not match the load (issue 3's benchmark)."""
        etc = self.work / "etc"
        for name, fmt in (("client_access", "192.0.{}.{} REJECT"), ("sender_access", "user{}@spam{}.example REJECT")):
            rows = [fmt.format(i // 256, i % 256) for i in range(1000)]
            (etc / name).write_text("\n".join(rows) + "\n")
            subprocess.run([str(self.args.postern), "map", "build", f"hash:{etc / name}"], check=True,
                           stdout=subprocess.DEVNULL)
        return (
            "smtpd_recipient_restrictions =\n"
            "    reject_non_fqdn_sender,\n"
            "    reject_invalid_helo_hostname,\n"
            "    reject_unlisted_recipient,\n"
            f"    check_client_access hash:{etc}/client_access,\n"
            f"    check_sender_access hash:{etc}/sender_access,\n"
            "    reject_multi_recipient_bounce,\n"
            "    reject_unauth_pipelining,\n"
            "    permit_mynetworks,\n"
            "    reject_unauth_destination,\n"
            "    permit\n"
        )

    def command(self) -> list[str]:
        return [str(self.args.postern), "-c", str(self.work / "etc"), "run"]

    def memory_hwm(self) -> int | None:
        return read_kb(self.pid, "status", "VmHWM")


POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
"""


def postconf(name: str) -> str:
    try:
        out = subprocess.run(["postconf", "-h", "-d", name], capture_output=True, text=True, timeout=20)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Postfix(Server):
    name = "postfix"

    def __init__(self, work: Path, port: int, args: argparse.Namespace):
        super().__init__(work, port, args)
        self.version = args.postfix_version

    def prepare(self) -> None:
        import grp
        import pwd

        w = self.work
        owner = pwd.getpwnam(postconf("mail_owner") or "postfix").pw_uid
        postdrop = grp.getgrnam(postconf("setgid_group") or "postdrop").gr_gid
        for d in ("etc", "queue", "data", "mail"):
            (w / d).mkdir()
        os.chmod(w / "mail", 0o1777)  # local(8) creates the Maildir as the recipient user
        # Queue layout and modes as in Postfix's postfix-files (what `postfix set-permissions`
        # would do), created here so that nothing outside the work directory is touched.
        q = w / "queue"
        for d in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                  "incoming", "private", "saved", "trace"):
            (q / d).mkdir(mode=0o700)
            os.chown(q / d, owner, -1)
        for d, mode in (("maildrop", 0o730), ("public", 0o710)):
            (q / d).mkdir()
            os.chmod(q / d, mode)
            os.chown(q / d, owner, postdrop)
        (q / "pid").mkdir(mode=0o755)
        os.chmod(w / "data", 0o700)
        os.chown(w / "data", owner, -1)
        log = ""
        services = POSTFIX_SERVICES
        if self.version[:2] >= (3, 4):
            log = f"maillog_file = {w}/maillog\nmaillog_file_prefixes = {w}\n"
            services += "postlog   unix-dgram n  -       n       -       1       postlogd\n"
        (w / "etc" / "main.cf").write_text(
            "# written by bench/run.py: a private Postfix instance, defaults otherwise\n"
            "compatibility_level = 3.6\n"
            f"config_directory = {w}/etc\n"
            f"queue_directory = {w}/queue\n"
            f"data_directory = {w}/data\n"
            "myhostname = bench.localdomain\n"
            "mydestination = localhost\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            f"mail_spool_directory = {w}/mail/\n"
            "local_recipient_maps =\n"
            "alias_maps =\n"
            "alias_database =\n"
            "smtpd_client_connection_count_limit = 0\n"
            "default_process_limit = 200\n"
            "biff = no\n" + log
        )
        (w / "etc" / "master.cf").write_text(
            f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + services
        )

    def command(self) -> list[str]:
        # master(8) itself, not `postfix start`: it stays our child (so wait4 sees its rusage)
        # and calls setsid() itself, which makes its session the whole Postfix process tree.
        return [self.args.postfix_master, "-c", str(self.work / "etc")]

    def new_session(self) -> bool:
        return False  # master(8) must not already be a process-group leader to call setsid()

    def memory_hwm(self) -> int | None:
        return None


# ---------------------------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------------------------

WARN_RE = re.compile(r": (warning|error|fatal|panic): ")
STATUS_RE = re.compile(r"status=(sent|deferred|bounced|expired)")


def count_files(d: Path) -> int:
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def scan_log(path: Path) -> dict:
    res = {"warnings": 0, "warning_examples": [], "sent": 0, "deferred": 0, "bounced": 0, "expired": 0}
    try:
        f = open(path, errors="replace")
    except OSError:
        return res
    with f:
        for line in f:
            if WARN_RE.search(line):
                res["warnings"] += 1
                if len(res["warning_examples"]) < 5:
                    res["warning_examples"].append(line.strip()[:300])
            m = STATUS_RE.search(line)
            if m:
                res[m.group(1)] += 1
    return res


def what_is_in(d: Path, limit: int = 8) -> list[str]:
    """A few paths under `d`, to diagnose deliveries that went somewhere unexpected."""
    found = []
    for root, dirs, files in os.walk(d):
        for name in files[:limit]:
            found.append(str(Path(root, name).relative_to(d)))
        if len(found) >= limit:
            break
    return found[:limit]


def run_one(kind: type[Server], conc: int, args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"postern-bench-{kind.name}-c{conc}-", dir=args.tmpdir))
    os.chmod(work, 0o755)  # Postfix daemons run as postfix/nobody and must traverse it
    server = kind(work, free_port(), args)
    n = args.messages
    rec: dict = {"system": kind.name, "concurrency": conc, "messages": n, "size": args.size, "workdir": str(work)}
    src: subprocess.Popen | None = None
    try:
        server.start()
        os.sync()  # do not make this run pay for the previous run's dirty pages
        sampler = Sampler(server.pid, server.sid, args.sample_interval)
        cpu0 = cpu_seconds(server.pid, server.sid)
        sampler.start()
        src_out = open(work / "smtp-source.out", "wb")
        src_err = open(work / "smtp-source.err", "wb")
        cmd = [args.smtp_source, "-c", "-s", str(conc), "-m", str(n), "-l", str(args.size),
               "-M", "bench.client", "-f", args.sender, "-t", args.recipient,
               *getattr(args, "source_extra", []), f"127.0.0.1:{server.port}"]
        rec["command"] = " ".join(cmd)
        t0 = time.monotonic()
        src = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=src_out, stderr=src_err)
        src_out.close()
        src_err.close()
        t_accept = t_deliver = None
        source_deadline = t0 + max(120.0, n / 10)
        deliver_budget = max(60.0, n / 50)
        delivered, last_change, last_count = 0, t0, 0
        while True:
            now = time.monotonic()
            delivered = server.delivered()
            if delivered != last_count:
                last_count, last_change = delivered, now
            if t_accept is None:
                if src.poll() is not None:
                    t_accept = now
                elif now > source_deadline:
                    src.kill()
                    src.wait()
                    t_accept = now
                    rec["source_timeout"] = True
            if delivered >= n:
                t_deliver = now
                break
            if t_accept is not None:
                if now - t_accept > deliver_budget:
                    rec["delivery_timeout"] = True
                    break
                if now - last_change > args.stall:
                    rec["delivery_stalled"] = True
                    break
            time.sleep(0.02)
        t_end = time.monotonic()
        if t_accept is None:  # everything delivered before smtp-source noticed it was done
            src.wait(timeout=60)
            t_accept = time.monotonic()
        cpu1 = cpu_seconds(server.pid, server.sid)
        sampler.finish()
        hwm = server.memory_hwm() if server.pid else None
        if sampler.samples == 0:
            sampler.sample()

        out = (work / "smtp-source.out").read_text(errors="replace")
        counts = re.findall(r"\d+", out)
        accepted = int(counts[-1]) if counts else 0
        err = (work / "smtp-source.err").read_text(errors="replace").strip().splitlines()
        accept_s = t_accept - t0
        deliver_s = (t_deliver or t_end) - t0
        rec.update(
            source_exit=src.returncode,
            source_errors=err[-5:],
            accepted=accepted,
            accepted_seconds=round(accept_s, 3),
            accepted_rate=round(accepted / accept_s, 1) if accept_s > 0 else 0.0,
            delivered=delivered,
            delivered_seconds=round(deliver_s, 3),
            delivered_rate=round(delivered / deliver_s, 1) if deliver_s > 0 else 0.0,
            complete=delivered >= n and src.returncode == 0,
            cpu_seconds=round(cpu1 - cpu0, 3),
            peak_rss_mb=round(sampler.peak_rss / MB, 1),
            peak_pss_mb=round(sampler.peak_pss / MB, 1),
            peak_processes=sampler.peak_procs,
            vmhwm_mb=round(hwm / MB, 1) if hwm else None,
            samples=sampler.samples,
        )
        if delivered > n:
            rec["duplicates"] = delivered - n
        rec.update(getattr(server, "extra_results", dict)())
        if delivered == 0:
            rec["mail_dir_contents"] = what_is_in(work / "mail")
    except Exception as e:  # one broken cell must not hide the others' results
        rec.update(error=str(e)[-3000:], complete=False)
    finally:
        if src is not None and src.poll() is None:
            src.kill()
            src.wait()
        server.stop()
        rec["root_rusage_cpu_seconds"] = round(server.lifetime_cpu, 3) if server.lifetime_cpu is not None else None
        rec["server_exit"] = server.exit_status
        rec["queue_left"] = server.queue_left()
        rec["log"] = scan_log(server.maillog)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return rec


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def machine_info(args: argparse.Namespace) -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = "?"
    try:
        best = ""
        tmp = str(Path(args.tmpdir or tempfile.gettempdir()).resolve())
        for line in open("/proc/mounts"):
            parts = line.split()
            if (tmp == parts[1] or tmp.startswith(parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
                best, fs = parts[1], f"{parts[2]} on {parts[1]} ({parts[0]})"
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": os.uname().release,
        "loadavg_at_start": os.getloadavg()[0],
        "filesystem": fs,
        "postern_rev": rev,
        "postfix_version": ".".join(map(str, args.postfix_version)) if args.postfix_version else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def newer_sources(built: float) -> list[str]:
    """The repository's sources changed after a binary built at `built` (an mtime): Rust files,
    manifests and the lock file under host/ and wit/. An empty list for a binary at least as new."""
    found = []
    for pattern in ("host/**/*.rs", "host/**/Cargo.toml", "wit/**/*.wit", "Cargo.lock", "Cargo.toml"):
        for f in REPO.glob(pattern):
            if "target" not in f.parts and f.stat().st_mtime > built:
                found.append(str(f.relative_to(REPO)))
    return sorted(found)


def stale_warning(binary: Path, stale: list[str]) -> str | None:
    """The warning for a Postern binary older than the sources (`newer_sources`), if any."""
    if not stale:
        return None
    return (f"WARNING: {binary} is older than {len(stale)} source file(s) ({', '.join(stale[:3])}): "
            "it may not be this tree's code; rebuild it")


def median_run(runs: list[dict]) -> dict:
    """The run with the median delivered rate (the lower middle one of an even count); failed
    runs count only when every run failed."""
    ok = [r for r in runs if not r.get("error")] or runs
    ok.sort(key=lambda r: r.get("delivered_rate", 0.0))
    chosen = ok[(len(ok) - 1) // 2]
    if len(runs) > 1:
        chosen["all_delivered_rates"] = [r.get("delivered_rate") for r in runs]
        chosen["median_of"] = len(runs)
    return chosen


def round_ratios(postern: list[dict], postfix: list[dict]) -> list[float | None]:
    """Postern's delivered rate over Postfix's, round by round (the two ran back to back)."""
    return [ratio(a.get("delivered_rate"), b.get("delivered_rate"))
            if not a.get("error") and not b.get("error") else None
            for a, b in zip(postern, postfix)]


def report(results: list[dict], levels: list[int], args: argparse.Namespace) -> dict:
    summary: dict = {"levels": {}}
    for conc in levels:
        rows = {r["system"]: r for r in results if r["concurrency"] == conc}
        print(f"\nC={conc}: {args.messages} messages x {args.size} B body, one message per SMTP session")
        print(f"  {'system':8} {'accepted/s':>10} {'delivered/s':>11} {'CPU s':>7} {'CPU ms/msg':>10} "
              f"{'peak RSS MB':>11} {'peak PSS MB':>11} {'procs':>5}  notes")
        for name in ("postern", "postfix"):
            r = rows.get(name)
            if r is None:
                continue
            notes = []
            if r.get("error"):
                notes.append("ERROR: " + r["error"].splitlines()[0][:120])
            else:
                if not r["complete"]:
                    notes.append(f"INCOMPLETE {r['delivered']}/{r['messages']} delivered")
                if r.get("source_exit"):
                    notes.append(f"smtp-source exit {r['source_exit']}: {' | '.join(r['source_errors'][-2:])}")
                if r.get("duplicates"):
                    notes.append(f"{r['duplicates']} extra files in Maildir")
                if r.get("vmhwm_mb"):
                    notes.append(f"VmHWM {r['vmhwm_mb']} MB")
            if r.get("queue_left"):
                notes.append(f"{r['queue_left']} left in queue")
            if r.get("log", {}).get("warnings"):
                notes.append(f"{r['log']['warnings']} log warnings/errors")
            cpu_ms = r["cpu_seconds"] * 1000 / r["delivered"] if r.get("delivered") else None
            print(f"  {name:8} {fmt(r.get('accepted_rate')):>10} {fmt(r.get('delivered_rate')):>11} "
                  f"{fmt(r.get('cpu_seconds'), '.2f'):>7} {fmt(cpu_ms, '.2f'):>10} "
                  f"{fmt(r.get('peak_rss_mb')):>11} {fmt(r.get('peak_pss_mb')):>11} "
                  f"{fmt(r.get('peak_processes'), 'd'):>5}  {'; '.join(notes)}")
        pe, pf = rows.get("postern"), rows.get("postfix")
        lvl = {}
        if pe and pf and not pe.get("error") and not pf.get("error"):
            lvl = {
                "delivered_ratio": ratio(pe["delivered_rate"], pf["delivered_rate"]),
                "accepted_ratio": ratio(pe["accepted_rate"], pf["accepted_rate"]),
                "cpu_ratio": ratio(pe["cpu_seconds"], pf["cpu_seconds"]),
                "rss_ratio": ratio(pe["peak_rss_mb"], pf["peak_rss_mb"]),
            }
            print(f"  postern/postfix: delivered {fmt(lvl['delivered_ratio'], '.2f')}x, "
                  f"accepted {fmt(lvl['accepted_ratio'], '.2f')}x, CPU {fmt(lvl['cpu_ratio'], '.2f')}x, "
                  f"peak RSS {fmt(lvl['rss_ratio'], '.2f')}x")
            if pe.get("round_ratios"):
                lvl["round_ratios"] = pe["round_ratios"]
                print("  delivered ratio round by round: "
                      + ", ".join(f"{fmt(x, '.2f')}x" for x in pe["round_ratios"]))
        summary["levels"][conc] = lvl

    print("\nTargets")
    pe_rows = [r for r in results if r["system"] == "postern"]
    ratios = [summary["levels"][c].get("delivered_ratio") for c in levels]
    complete = all(r.get("complete") for r in results)
    if pe_rows and any(r["system"] == "postfix" for r in results):
        ok = all(x is not None and x >= 3.0 for x in ratios) and complete
        worst = min((x for x in ratios if x is not None), default=None)
        verdict = "PASS" if ok else "FAIL"
        print(f"  accepted-and-delivered throughput >= 3x Postfix at every C: {verdict} "
              f"(lowest ratio {fmt(worst, '.2f')}x{'' if complete else '; some runs incomplete'})")
        summary["throughput_target"] = verdict
    else:
        print("  accepted-and-delivered throughput >= 3x Postfix: not measured (needs both systems)")
    at50 = [r for r in pe_rows if r["concurrency"] == 50 and not r.get("error")]
    if at50:
        peak = max(max(r["peak_rss_mb"], r.get("vmhwm_mb") or 0) for r in at50)
        verdict = "PASS" if peak < 64 else "FAIL"
        print(f"  Postern peak memory at C=50 < 64 MB: {verdict} ({peak:.1f} MB)")
        summary["memory_target"] = verdict
    else:
        print("  Postern peak memory at C=50 < 64 MB: not measured")
    return summary


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def stop_all() -> None:
    for s in list(LIVE):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print(f"warning: stopping {s.name}: {e}", file=sys.stderr)


def on_signal(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postern", type=Path, default=REPO / "target" / "release" / "postern",
                   help="postern binary (default: target/release/postern)")
    p.add_argument("--messages", "-n", type=int, default=2000, help="messages per concurrency level (2000)")
    p.add_argument("--concurrency", default="1,10,50", help="comma-separated session counts (1,10,50)")
    p.add_argument("--size", type=int, default=1024, help="body bytes per message, smtp-source -l (1024)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per cell; the run with the median delivered msg/s is reported (1)")
    p.add_argument("--skip-postfix", action="store_true", help="do not run Postfix")
    p.add_argument("--skip-postern", action="store_true", help="do not run Postern (check the Postfix side)")
    p.add_argument("--wasm-policy", metavar="WASM",
                   help="give Postern a Wasm policy plugin (e.g. the built examples/policy-rust) on every RCPT")
    p.add_argument("--wasm-instances", default="auto",
                   choices=["auto", "transaction", "pooled", "call"],
                   help="instances = … for the --wasm-policy plugin (auto)")
    p.add_argument("--restrictions", action="store_true",
                   help="give Postern a 10-element smtpd_recipient_restrictions list with two hash: lookups")
    p.add_argument("--keep", action="store_true", help="keep the work directories (config, queue, Maildir, logs)")
    p.add_argument("--json", type=Path, help="write all results to this file")
    p.add_argument("--tmpdir", help="parent of the work directories (its filesystem decides fsync cost)")
    p.add_argument("--recipient", default="nobody@localhost",
                   help="envelope recipient; Postfix needs an existing local user (nobody@localhost)")
    p.add_argument("--sender", default="bench@example.org")
    p.add_argument("--stall", type=float, default=15.0,
                   help="give up when no delivery happened for this many seconds after smtp-source ended")
    p.add_argument("--sample-interval", type=float, default=0.05, help="memory sampling period, s (0.05)")
    p.add_argument("--smtp-source", default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    p.add_argument("--no-ceiling", action="store_true",
                   help="with C=1, do not measure the ceiling (smtp-sink plus one fdatasync; bench/ceiling.py)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    levels = list(dict.fromkeys(int(x) for x in args.concurrency.split(",") if x.strip()))
    if not Path(args.smtp_source).exists():
        print("smtp-source not found: install Postfix (Debian/Ubuntu: apt-get install postfix)", file=sys.stderr)
        return 2
    systems: list[type[Server]] = []
    if not args.skip_postern:
        if not args.postern.exists():
            print(f"{args.postern} does not exist; build it with\n  cargo build --release -p postern\n"
                  "or pass --postern PATH (or --skip-postern to measure Postfix alone)", file=sys.stderr)
            return 2
        args.postern = args.postern.resolve()
        built = args.postern.stat().st_mtime
        args.postern_built = datetime.datetime.fromtimestamp(
            built, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        args.postern_stale = newer_sources(built)
        systems.append(Postern)
    args.postfix_version = None
    if not args.skip_postfix:
        why = None
        version = postconf("mail_version")
        master = Path(postconf("daemon_directory") or "/usr/lib/postfix/sbin") / "master"
        if not version or not master.exists():
            why = "Postfix is not installed"
        elif os.geteuid() != 0:
            why = "running Postfix's master(8) needs root"
        if why:
            print(f"note: skipping Postfix: {why}", file=sys.stderr)
        else:
            args.postfix_version = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
            args.postfix_master = str(master)
            systems.append(Postfix)
    if not systems:
        print("nothing to run", file=sys.stderr)
        return 2

    atexit.register(stop_all)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background (SIG_IGN)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    info = machine_info(args)
    info["command"] = " ".join(["python3", "bench/run.py", *sys.argv[1:]])
    print(f"Postern benchmark {info['date']}: {info['cpus']} CPUs ({info['cpu_model']}), kernel {info['kernel']}, "
          f"load {info['loadavg_at_start']:.2f}")
    if Postern in systems:
        info["postern_binary"] = f"{args.postern} (built {args.postern_built}, tree {info['postern_rev']})"
    print(f"  work dirs on {info['filesystem']}")
    print(f"  postern {info.get('postern_binary', '-')}; postfix {info['postfix_version'] or '-'}")
    print(f"  command: python3 bench/run.py {' '.join(sys.argv[1:])}".rstrip())
    if Postern in systems and args.postern_stale:
        info["postern_stale"] = args.postern_stale
        print("  " + stale_warning(args.postern, args.postern_stale))
    if "tmpfs" in info["filesystem"]:
        print("  warning: the work directory is on tmpfs, where fsync costs nothing; use --tmpdir on a disk")

    results: list[dict] = []
    try:
        for conc in levels:
            # Rounds alternate the systems (Postern, Postfix, Postern, ...) so that a machine
            # that drifts during the cell (another tenant, a file system that ages) weighs on
            # both alike; each round's pair also gives a ratio of its own.
            runs: dict[str, list[dict]] = {kind.name: [] for kind in systems}
            for i in range(args.repeat):
                for kind in systems:
                    print(f"  running {kind.name} C={conc}" + (f" ({i + 1}/{args.repeat})" if args.repeat > 1 else ""),
                          end="", flush=True)
                    r = run_one(kind, conc, args)
                    runs[kind.name].append(r)
                    state = (f"error: {r['error'].splitlines()[0][:160]}" if r.get("error") else
                             f"{r['delivered']}/{r['messages']} delivered in {r['delivered_seconds']} s")
                    print(f": {state}", flush=True)
            chosen = {kind.name: median_run(runs[kind.name]) for kind in systems}
            if len(chosen) == 2 and args.repeat > 1:
                chosen["postern"]["round_ratios"] = round_ratios(runs["postern"], runs["postfix"])
            results.extend(chosen.values())
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        stop_all()
        if not results:
            return 130
    summary = report(results, levels, args)
    if 1 in levels and not args.no_ceiling:
        rate = {r["system"]: r.get("delivered_rate") for r in results if r["concurrency"] == 1}
        summary["ceiling_c1"] = ceiling.measure(args.smtp_source, args.tmpdir, args.messages, args.size)
        print("\nC=1 ceiling (round trips of a server that stores nothing, plus one durable write)")
        print("\n".join(ceiling.describe(summary["ceiling_c1"], rate.get("postfix"), rate.get("postern"))))
    for r in results:
        for ex in r.get("log", {}).get("warning_examples", [])[:3]:
            print(f"  [{r['system']} C={r['concurrency']}] {ex}")
        if r.get("mail_dir_contents") is not None:
            print(f"  [{r['system']} C={r['concurrency']}] nothing in {args.recipient}'s Maildir new/; "
                  f"mail/ holds {r['mail_dir_contents'] or 'nothing'}")
        if r.get("error"):
            print(f"  [{r['system']} C={r['concurrency']}] {r['error']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {
            "messages": args.messages, "concurrency": levels, "size": args.size, "repeat": args.repeat,
            "recipient": args.recipient}, "results": results, "summary": summary}, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    return 0 if all(r.get("complete") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
