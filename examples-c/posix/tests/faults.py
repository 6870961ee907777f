#!/usr/bin/env python3
"""Fault-injection matrix and abort-latency test of fota-posix.

    faults.py --fota PATH --mode matrix [--nginx PATH] [--jobs N] [--points N]
    faults.py --fota PATH --mode abort  [--nginx PATH]

matrix: a 1 MiB image is served by nginx (Range, ETag), by `python3 -m
  http.server` (ignores Range: a retry gets the whole image again, fota
  restarts from byte 0) and by a chunked HTTP/1.1 server (length unknown:
  fota restarts from byte 0 without Range). Each run puts faultproxy.py
  between fota-posix and one server with one fault: drops, resets and stalls
  at response-byte offsets spread over the image (including the response
  head and its edges), a truncated head, garbage instead of HTTP, accept and
  close, on the first connection or on every connection. fota-posix runs with
  `--retries 3 --retry-delay 5` (and `--idle-timeout 300` where the proxy
  stalls). Every run must end either with exit 0 and the output file
  byte-identical to the image, or with the documented code expected for that
  fault (3, 4, 7) and neither the output file nor OUT.part. An output file
  that differs from the image is a corrupt committed image: always a failure.
  The summary gives runs, recovered runs, corrupt images (must be 0) and the
  response bytes the proxy forwarded divided by the image size, per server;
  with one drop per run against nginx it must stay at most 1.01.

  Bodies delimited only by the connection close (HTTP/1.0 without a length)
  are not in the matrix: a drop there cannot be told from the end of the
  image (see README, "Server contract").

abort: fota-posix --verbose is interrupted with SIGINT (and SIGTERM) while
  the body stalls, while nginx sends slowly (limit_rate) and while fota sleeps
  before a retry. Each run must exit 12 (FOTA_ERR_ABORTED) and leave neither
  the output file nor OUT.part; the latency from the signal to the result
  callback (printed by fota-posix) and to the process exit must stay below
  ABORT_BOUND_MS (the library's bound is FOTA_ABORT_SLICE_MS = 250 ms plus one
  hook call).

Exit status: 0 passed, 1 failed, 77 skipped (nginx missing).
Python 3 standard library only; everything on 127.0.0.1; every wait bounded.
"""

import argparse
import concurrent.futures
import os
import random
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

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from faultproxy import FaultProxy
from servers import Failed, chunked_server, http_server, nginx_server

SKIP = 77
IMAGE = "img.bin"
IMAGE_SIZE = 1024 * 1024
RUN_TIMEOUT_S = 60              # one fota-posix run, killed after this
FOTA_TIMEOUT_MS = "30000"       # fota's own overall deadline
RETRY_ARGS = ["--retries", "3", "--retry-delay", "5"]
STALL_IDLE_MS = "300"           # --idle-timeout where the proxy stalls
RATIO_GOAL = 1.01               # bytes forwarded / image, nginx, one drop per run
ABORT_BOUND_MS = 2000           # generous: documented bound is 250 ms + one hook call
DOCUMENTED = {1: "FOTA_ERR_CONNECT", 3: "FOTA_ERR_DISCONNECTED", 4: "FOTA_ERR_RESPONSE",
              7: "FOTA_ERR_TIMEOUT", 12: "FOTA_ERR_ABORTED"}
OK = 0


# ---- helpers -----------------------------------------------------------------

def head_length(port, path, host="127.0.0.1"):
    """Bytes of the response head a server sends for GET `path` (a probe)."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                  % (path.encode(), host.encode(), port))
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data and time.monotonic() < deadline and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise Failed("no response head from 127.0.0.1:%d%s" % (port, path))
    return end + 4


def stream_length(port, path):
    """Bytes of the whole response to GET `path` (head, framing, body)."""
    total = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                  % (path.encode(), port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            total += len(chunk)
    return total


def spread(count, head, stream_len, rng):
    """`count` response-byte offsets in [0, stream_len]: evenly spread with a
    little jitter, plus (when count leaves room for them) the edges of the
    head and of the first receive buffers and the last bytes."""
    edges = {0, 1, head // 2, head - 1, head, head + 1, head + 4095, head + 4096,
             head + 4097, stream_len - 1, stream_len}
    points = set(p for p in edges if 0 <= p <= stream_len) if count >= 4 * len(edges) else set()
    even = count - len(points)
    step = stream_len / max(1, even)
    for i in range(even):
        points.add(min(stream_len, int(i * step + rng.random() * step)))
    i = 0
    while len(points) < count and i < 10 * count:  # a jittered point hit an edge
        points.add(rng.randrange(stream_len + 1))
        i += 1
    return sorted(points)


class Run:
    """One fota-posix run through one proxy with one fault."""

    def __init__(self, server, fault, scope, expect, extra=()):
        self.server, self.fault, self.scope = server, fault, scope
        self.expect = set(expect)        # exit codes this fault may end with
        self.extra = list(extra)
        self.rc = None
        self.forwarded = 0
        self.connections = 0
        self.corrupt = False
        self.problems = []
        self.secs = 0.0
        self.stderr = ""

    @property
    def kind(self):
        return self.fault.partition(":")[0]

    def label(self):
        return "%s %s (%s)" % (self.server, self.fault, self.scope)


class Matrix:
    def __init__(self, fota, workdir, image_path, image):
        self.fota, self.workdir, self.image_path, self.image = fota, workdir, image_path, image
        self.seq = 0
        self.lock = threading.Lock()

    def out_path(self):
        with self.lock:
            self.seq += 1
            return os.path.join(self.workdir, "out-%04d.bin" % self.seq)

    def execute(self, run, upstream_port, path):
        out = self.out_path()
        started = time.monotonic()
        with FaultProxy(("127.0.0.1", upstream_port), run.fault, run.scope) as proxy:
            argv = [self.fota, "--timeout", FOTA_TIMEOUT_MS] + RETRY_ARGS + run.extra + [
                "--out", out, "http://127.0.0.1:%d%s" % (proxy.port, path)]
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=RUN_TIMEOUT_S)
                run.rc = p.returncode
                run.stderr = p.stderr.decode("utf-8", "replace")
                last = (p.stdout.decode("utf-8", "replace").splitlines() or [""])[-1]
            except subprocess.TimeoutExpired:
                run.rc, last = None, ""
                run.problems.append("killed after %d s" % RUN_TIMEOUT_S)
        run.secs = time.monotonic() - started
        run.forwarded = proxy.forwarded
        run.connections = proxy.connections
        if proxy.errors:
            run.problems.append("proxy errors: %s" % "; ".join(proxy.errors[:3]))
        self.check(run, out, last)
        return run

    def check(self, run, out, last):
        exists = os.path.exists(out)
        if exists:
            with open(out, "rb") as f:
                same = f.read() == self.image
            run.corrupt = not same
            os.unlink(out)
        if os.path.exists(out + ".part"):
            run.problems.append("OUT.part left behind")
            os.unlink(out + ".part")
        if run.corrupt:
            run.problems.append("CORRUPT image committed (differs from the served one)")
        if run.rc == OK:
            if not exists:
                run.problems.append("exit 0 but no output file")
        elif run.rc is not None:
            if exists:
                run.problems.append("exit %d but an output file exists" % run.rc)
            if run.rc not in DOCUMENTED:
                run.problems.append("exit %d is not a documented fault code" % run.rc)
        if run.rc is not None:
            want = "result: %d " % run.rc
            if not last.startswith(want):
                run.problems.append("last stdout line %r, not %r..." % (last, want))
        if run.rc not in run.expect:
            run.problems.append("exit %s, expected %s" % (run.rc, sorted(run.expect)))


def plan(servers, points, rng):
    """The runs, as (Run, port, path). `servers` maps a name to (port, path,
    response head bytes, response stream bytes)."""
    runs = []
    stall = ["--idle-timeout", STALL_IDLE_MS]
    for name, (port, path, head, stream) in servers.items():
        n_drop = points if name == "nginx" else max(24, points // 8)
        n_reset = max(12, points // 6) if name == "nginx" else max(12, points // 16)
        n_stall = 6 if name == "nginx" else 4

        def add(fault, scope, expect, extra=()):
            runs.append((Run(name, fault, scope, expect, extra), port, path))

        add("none", "first", [OK])
        for n in spread(n_drop, head, stream, rng):
            add("drop:%d" % n, "first", [OK])
        for n in spread(n_reset, head, stream, rng):
            add("reset:%d" % n, "first", [OK])
        for n in spread(n_stall, head, stream, rng):
            add("stall:%d" % n, "first", [OK], stall)
        add("trunchead", "first", [OK])
        add("garbage", "first", [4])
        add("acceptclose", "first", [OK])
        # Every connection broken the same way: retries run out.
        add("trunchead", "all", [3])
        add("garbage", "all", [4])
        add("acceptclose", "all", [3])
        add("drop:0", "all", [3])
        add("reset:%d" % (head // 2), "all", [3])
        add("stall:%d" % (head + 100000), "all", [7], stall)
        # Each connection brings 400 kB: Range makes progress (3 retries
        # suffice for 1 MiB); a restart from 0 never gets further.
        add("drop:%d" % (head + 400000), "all", [OK] if name == "nginx" else [3])
    return runs


def case_matrix(args, workdir, www, image):
    if not args.nginx or not os.access(args.nginx, os.X_OK):
        print("SKIP: nginx not found")
        return SKIP
    rng = random.Random(4)  # the same points every time
    started = time.monotonic()
    with nginx_server(args.nginx, workdir, www) as ng, http_server(workdir, www) as hs, \
            chunked_server(workdir, www) as ch:
        servers = {}
        for name, srv in (("nginx", ng), ("http.server", hs), ("chunked", ch)):
            servers[name] = (srv.port, "/" + IMAGE, head_length(srv.port, "/" + IMAGE),
                             stream_length(srv.port, "/" + IMAGE))
        runs = plan(servers, args.points, rng)
        m = Matrix(args.fota, workdir, os.path.join(www, IMAGE), image)
        print("matrix: %d runs, %d in parallel; response heads: %s" % (
            len(runs), args.jobs, ", ".join("%s %d B" % (k, v[2]) for k, v in servers.items())),
            flush=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(lambda r: m.execute(*r), runs))
    secs = time.monotonic() - started
    return report(done, secs)


def report(runs, secs):
    failed = [r for r in runs if r.problems]
    for r in failed[:40]:
        print("FAIL %s: exit %s, %d connections, %.2f s" % (r.label(), r.rc, r.connections, r.secs))
        for p in r.problems:
            print("     " + p)
        if r.stderr:
            print("     stderr: " + r.stderr[-600:].replace("\n", "\n             "))
    corrupt = sum(r.corrupt for r in runs)
    recovered = sum(r.rc == OK for r in runs)
    faulted = [r for r in runs if r.kind != "none"]
    print()
    print("%-12s %-14s %-5s %5s %9s %9s %7s %7s" % ("server", "fault", "scope", "runs",
                                                     "recovered", "corrupt", "ratio", "max"))
    groups = {}
    for r in runs:
        # One row per fault kind; faults on every connection one row each.
        groups.setdefault((r.server, r.kind if r.scope == "first" else r.fault, r.scope),
                          []).append(r)
    for (server, kind, scope), rs in groups.items():
        ratios = [r.forwarded / IMAGE_SIZE for r in rs]
        print("%-12s %-14s %-5s %5d %9d %9d %7.4f %7.4f" % (
            server, kind, scope, len(rs), sum(r.rc == OK for r in rs), sum(r.corrupt for r in rs),
            statistics.mean(ratios), max(ratios)))
    print()
    ok = not failed
    for server in ("nginx", "http.server", "chunked"):
        single = [r for r in runs if r.server == server and r.scope == "first"
                  and r.kind in ("drop", "reset", "stall")]
        drops = [r for r in single if r.kind == "drop"]
        if not single:
            continue
        ratios = [r.forwarded / IMAGE_SIZE for r in single]
        dratios = [r.forwarded / IMAGE_SIZE for r in drops]
        print("bytes forwarded / image, %s, one drop/reset/stall per run (%d runs): "
              "mean %.4f, max %.4f; drops only (%d runs): mean %.4f, max %.4f" % (
                  server, len(single), statistics.mean(ratios), max(ratios), len(drops),
                  statistics.mean(dratios), max(dratios)))
        if server == "nginx" and max(ratios) > RATIO_GOAL:
            print("FAIL: nginx (Range) ratio max %.4f > %.2f" % (max(ratios), RATIO_GOAL))
            ok = False
    print("summary: %d runs (%d with a fault), %d recovered (exit 0, byte-identical), "
          "%d ended with the expected documented code, corrupt images committed: %d, "
          "failed checks: %d, wall time %.1f s" % (
              len(runs), len(faulted), recovered, len(runs) - recovered - len(failed),
              corrupt, len(failed), secs))
    if corrupt:
        ok = False
    print("matrix: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


# ---- abort -------------------------------------------------------------------

LATENCY_RE = re.compile(r"abort latency: ([0-9.]+) ms")


def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def abort_once(fota, workdir, url, extra, ready, sig, seq, rng):
    """Starts fota-posix, waits for `ready(out)`, sends `sig`; returns
    (problems, callback latency ms, exit latency ms)."""
    out = os.path.join(workdir, "abort-%02d.bin" % seq)
    argv = [fota, "--verbose", "--timeout", FOTA_TIMEOUT_MS] + extra + ["--out", out, url]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    problems = []
    cb_ms = exit_ms = None
    try:
        if not wait_for(lambda: ready(out) or proc.poll() is not None, 10) or proc.poll() is not None:
            problems.append("not in the expected state within 10 s (exit %s)" % proc.poll())
        time.sleep(0.05 + rng.random() * 0.3)  # anywhere inside a wait slice
        t0 = time.monotonic()
        proc.send_signal(sig)
        sout, serr = proc.communicate(timeout=10)
        exit_ms = (time.monotonic() - t0) * 1000
    finally:
        if proc.poll() is None:
            proc.kill()
            sout, serr = proc.communicate(timeout=5)
    sout = sout.decode("utf-8", "replace")
    serr = serr.decode("utf-8", "replace")
    m = LATENCY_RE.search(serr)
    if m:
        cb_ms = float(m.group(1))
    else:
        problems.append("no 'abort latency' line on stderr")
    lines = sout.splitlines()
    if proc.returncode != 12 or lines[-1:] != ["result: 12 FOTA_ERR_ABORTED"]:
        problems.append("exit %s, last line %r; expected 12 FOTA_ERR_ABORTED"
                        % (proc.returncode, lines[-1:]))
    if os.path.exists(out) or os.path.exists(out + ".part"):
        problems.append("output file or OUT.part left behind")
    for what, ms in (("callback", cb_ms), ("exit", exit_ms)):
        if ms is not None and ms > ABORT_BOUND_MS:
            problems.append("%s latency %.1f ms > %d ms" % (what, ms, ABORT_BOUND_MS))
    if problems:
        problems.append("stderr: " + serr[-800:])
    return problems, cb_ms, exit_ms


def case_abort(args, workdir, www, image):
    if not args.nginx or not os.access(args.nginx, os.X_OK):
        print("SKIP: nginx not found")
        return SKIP
    rng = random.Random(12)
    started = time.monotonic()
    failures = 0
    rows = []
    with nginx_server(args.nginx, workdir, www) as ng:
        head = head_length(ng.port, "/" + IMAGE)
        part = lambda out: os.path.exists(out + ".part")  # noqa: E731
        scenarios = []
        with FaultProxy(("127.0.0.1", ng.port), "stall:%d" % (head + 300000), "all") as stall, \
                FaultProxy(("127.0.0.1", ng.port), "acceptclose", "all") as refuse:
            scenarios = [
                ("body stalled (proxy), SIGINT", "http://127.0.0.1:%d/%s" % (stall.port, IMAGE),
                 [], lambda out: part(out) and stall.fault_event.is_set(), signal.SIGINT),
                ("body stalled (proxy), SIGTERM", "http://127.0.0.1:%d/%s" % (stall.port, IMAGE),
                 [], lambda out: part(out) and stall.fault_event.is_set(), signal.SIGTERM),
                ("slow body (nginx limit_rate), SIGINT",
                 "http://127.0.0.1:%d/slow/%s" % (ng.port, IMAGE), [], part, signal.SIGINT),
                ("pause before a retry (--retry-delay 20000), SIGINT",
                 "http://127.0.0.1:%d/%s" % (refuse.port, IMAGE),
                 ["--retries", "3", "--retry-delay", "20000"],
                 lambda out: refuse.connections >= 1, signal.SIGINT),
            ]
            seq = 0
            for what, url, extra, ready, sig in scenarios:
                lat = []
                for _ in range(args.abort_repeats):
                    seq += 1
                    problems, cb_ms, exit_ms = abort_once(args.fota, workdir, url, extra, ready,
                                                          sig, seq, rng)
                    status = "FAIL" if problems else "ok  "
                    print("%s %s: exit 12; signal to callback %s ms, to exit %.1f ms" % (
                        status, what, "%.1f" % cb_ms if cb_ms is not None else "?",
                        exit_ms or -1), flush=True)
                    for p in problems:
                        print("     " + p.replace("\n", "\n     "))
                    failures += bool(problems)
                    if cb_ms is not None:
                        lat.append((cb_ms, exit_ms))
                rows.append((what, lat))
    secs = time.monotonic() - started
    print()
    all_cb = [c for _, lat in rows for c, _ in lat]
    all_exit = [e for _, lat in rows for _, e in lat if e is not None]
    for what, lat in rows:
        if lat:
            print("abort latency, %s: callback mean %.1f ms, max %.1f ms; exit max %.1f ms" % (
                what, statistics.mean(c for c, _ in lat), max(c for c, _ in lat),
                max(e for _, e in lat)))
    if all_cb:
        print("summary: %d aborts, signal to callback mean %.1f ms, max %.1f ms; signal to "
              "exit max %.1f ms (bound %d ms); %d failed; %.1f s"
              % (len(all_cb), statistics.mean(all_cb), max(all_cb), max(all_exit),
                 ABORT_BOUND_MS, failures, secs))
    print("abort: %s" % ("passed" if failures == 0 and all_cb else "FAILED"))
    return 0 if failures == 0 and all_cb else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", required=True, help="path of the fota-posix program")
    ap.add_argument("--mode", choices=["matrix", "abort"], required=True)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--jobs", type=int, default=max(2, min(8, 2 * (os.cpu_count() or 1))),
                    help="runs in parallel (default: 2 x CPUs, 2..8)")
    ap.add_argument("--points", type=int, default=240,
                    help="drop points against nginx (default: 240)")
    ap.add_argument("--abort-repeats", type=int, default=5)
    args = ap.parse_args()
    args.fota = os.path.abspath(args.fota)
    workdir = tempfile.mkdtemp(prefix="fota-faults-")
    try:
        www = os.path.join(workdir, "www")
        os.makedirs(www)
        image = random.Random(1).randbytes(IMAGE_SIZE)
        with open(os.path.join(www, IMAGE), "wb") as f:
            f.write(image)
        try:
            if args.mode == "matrix":
                return case_matrix(args, workdir, www, image)
            return case_abort(args, workdir, www, image)
        except Failed as e:
            print("FAIL %s" % e)
            return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
