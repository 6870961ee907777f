#!/usr/bin/env python3
"""End-to-end tests of fota-posix against real HTTP servers.

Each case starts its server(s) in a fresh temporary directory, runs the
fota-posix program against them, checks the results and always stops the
servers (terminate, then kill). Every wait is bounded.

    e2e.py --fota PATH --case CASE [--nginx PATH]

Cases:
  nginx        nginx (HTTP/1.1, Content-Length, Range support) on 127.0.0.1
  nginx-ipv6   the same on [::1]; skipped (exit 77) without IPv6 loopback
  http-server  python3 -m http.server (HTTP/1.0, no Range)
  chunked      an HTTP/1.1 server sending Transfer-Encoding: chunked with
               varying chunk sizes (and, under /close/, bodies that end when
               the connection closes)
  errors       closed port, malformed URLs, command-line errors, --help

The servers are started by servers.py (shared with faults.py).

Exit status: 0 passed, 1 failed, 77 skipped (CTest SKIP_RETURN_CODE).
Python 3 standard library only.
"""

import argparse
import filecmp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from servers import (STOP_TIMEOUT_S, Failed, chunked_server, http_server, ipv6_loopback_works,
                     nginx_server, url_host)

SKIP = 77
IMAGES = {
    "img-1b.bin": 1,
    "img-1k.bin": 1024,
    "img-1m.bin": 1024 * 1024,
    "img-8m.bin": 8 * 1024 * 1024,
}
MISSING = "no-such-image.bin"
RUN_TIMEOUT_S = 60          # one fota-posix run, killed after this
FOTA_TIMEOUT_MS = "30000"   # fota's own overall deadline


# ---- helpers ----------------------------------------------------------------

def make_images(www):
    os.makedirs(www)
    for name, size in IMAGES.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))


class Checker:
    """Runs fota-posix and records failed expectations (keeps going)."""

    def __init__(self, fota, workdir, www):
        self.fota, self.workdir, self.www = fota, workdir, www
        self.failures = []
        self.checks = 0
        self.seq = 0

    def run(self, args):
        started = time.monotonic()
        try:
            p = subprocess.run([self.fota] + args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:  # run() killed it
            return None, e.stdout or b"", e.stderr or b"", RUN_TIMEOUT_S
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"), time.monotonic() - started)

    def out_path(self):
        self.seq += 1
        return os.path.join(self.workdir, "out-%03d.bin" % self.seq)

    def expect(self, what, ok, detail=""):
        self.checks += 1
        status = "ok  " if ok else "FAIL"
        print("%s %s" % (status, what), flush=True)
        if not ok:
            self.failures.append(what)
            if detail:
                print("     " + detail.rstrip().replace("\n", "\n     "), flush=True)

    def expect_result(self, what, args, code, name, stdout_must=None):
        """Runs with `args`; expects exit `code` and `result: code name` last."""
        rc, out, err, secs = self.run(args)
        lines = out.splitlines()
        last = lines[-1] if lines else ""
        want = "result: %d %s" % (code, name)
        detail = "argv: %s\nexit: %s (%.2f s)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(args), rc, secs, out[-2000:], err[-2000:])
        ok = rc == code and last == want
        if stdout_must is not None:
            ok = ok and stdout_must in out
        self.expect("%s -> %s (exit %s, %.2f s)" % (what, want, rc, secs), ok, detail)
        return rc, out, err, secs

    def download(self, base_url, name, extra=(), what=""):
        """The image arrives byte for byte; exit 0; no .part left. `extra`:
        more fota-posix arguments (e.g. --ca), `what` says why they matter."""
        out = self.out_path()
        rc, _, err, secs = self.expect_result(
            "download %s%s%s" % (base_url, name, " " + what if what else ""),
            ["--timeout", FOTA_TIMEOUT_MS] + list(extra) + ["--out", out, base_url + name],
            0, "FOTA_OK")
        if rc == 0:
            same = os.path.isfile(out) and filecmp.cmp(out, os.path.join(self.www, name),
                                                       shallow=False)
            self.expect("  %s is identical to the served image" % os.path.basename(out), same)
            self.expect("  no %s.part left" % os.path.basename(out),
                        not os.path.exists(out + ".part"))
            # stderr is not a terminal here: plain lines, one per 10% or per second.
            progress = [l for l in err.splitlines() if l.startswith("progress:")]
            limit = 11 + int(secs) + 1
            self.expect("  %d progress lines (1..%d, not one per write)" % (len(progress), limit),
                        1 <= len(progress) <= limit, err[-2000:])
            os.unlink(out)

    def no_output(self, out):
        self.expect("  no %s and no %s.part" % ((os.path.basename(out),) * 2),
                    not os.path.exists(out) and not os.path.exists(out + ".part"))

    def missing(self, base_url):
        out = self.out_path()
        self.expect_result("missing image %s%s" % (base_url, MISSING),
                           ["--timeout", FOTA_TIMEOUT_MS, "--out", out, base_url + MISSING],
                           6, "FOTA_NO_UPDATE")
        self.no_output(out)

    def too_large(self, base_url, name="img-1m.bin"):
        size = IMAGES[name]
        out = self.out_path()
        self.expect_result("%s (%d bytes) with --max-len %d" % (name, size, size - 1),
                           ["--timeout", FOTA_TIMEOUT_MS, "--max-len", str(size - 1),
                            "--out", out, base_url + name], 9, "FOTA_ERR_TOO_LARGE")
        self.no_output(out)
        out = self.out_path()
        self.expect_result("%s (%d bytes) with --max-len %d" % (name, size, size),
                           ["--timeout", FOTA_TIMEOUT_MS, "--max-len", str(size),
                            "--out", out, base_url + name], 0, "FOTA_OK")
        if os.path.exists(out):
            os.unlink(out)


# ---- servers (nginx, http.server, chunked: servers.py) ------------------------

class StalledServer:
    """Answers 200 with a Content-Length, sends part of the body, then stalls
    (in a thread of this process; stopped by closing its sockets)."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stop_event = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.conns.append(conn)
            try:
                conn.settimeout(2)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 10000)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=STOP_TIMEOUT_S)
        for conn in self.conns:
            conn.close()
        self.listener.close()
        return False


def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ---- cases -------------------------------------------------------------------

def case_nginx(c, args, workdir, www, ipv6=False):
    if not args.nginx or not os.access(args.nginx, os.X_OK):
        print("SKIP: nginx not found")
        return SKIP
    host = "::1" if ipv6 else "127.0.0.1"
    if ipv6 and not ipv6_loopback_works():
        print("SKIP: IPv6 loopback (::1) does not work here")
        return SKIP
    with nginx_server(args.nginx, workdir, www, host) as s:
        base = "http://%s:%d/" % (url_host(host), s.port)
        names = ["img-1k.bin", "img-1m.bin"] if ipv6 else list(IMAGES)
        for name in names:
            c.download(base, name)
        # By name: getaddrinfo() and, when "localhost" has addresses of both
        # families, falling back from the one nginx does not listen on.
        families = {ai[0] for ai in socket.getaddrinfo("localhost", s.port, 0,
                                                        socket.SOCK_STREAM)}
        if (socket.AF_INET6 if ipv6 else socket.AF_INET) in families:
            c.download("http://localhost:%d/" % s.port, "img-1k.bin")
        else:
            print("note: localhost has no %s address here; not tested by name"
                  % ("IPv6" if ipv6 else "IPv4"))
        c.missing(base)
        if not ipv6:
            c.too_large(base)
            discard_and_stack_report(c, base, "img-1m.bin")
    return None


def discard_and_stack_report(c, base, name):
    """--discard keeps no file; --stack-report prints a plausible figure."""
    out = c.out_path()
    _, _, err, _ = c.expect_result(
        "download %s%s --discard --stack-report" % (base, name),
        ["--timeout", FOTA_TIMEOUT_MS, "--discard", "--stack-report", "--out", out, base + name],
        0, "FOTA_OK", stdout_must="wrote nothing (--discard): %d bytes"
        % os.path.getsize(os.path.join(c.www, name)))
    c.no_output(out)
    m = re.search(r"^stack: (\d+) bytes", err, re.M)
    c.expect("  --stack-report: %s (between 256 B and 64 KiB)" % (m.group(0) if m else "no line"),
             m is not None and 256 <= int(m.group(1)) <= 65536, err)


def case_http_server(c, args, workdir, www):
    with http_server(workdir, www) as s:
        base = "http://127.0.0.1:%d/" % s.port
        for name in IMAGES:
            c.download(base, name)
        c.missing(base)
        c.too_large(base)


def case_chunked(c, args, workdir, www):
    with chunked_server(workdir, www) as s:
        base = "http://127.0.0.1:%d/" % s.port
        for name in IMAGES:
            c.download(base, name)
        # Length unknown: the limit is only hit while writing; OUT.part must go.
        c.too_large(base)
        c.too_large(base, "img-8m.bin")
        c.missing(base)
        close_base = base + "close/"
        for name in ("img-1b.bin", "img-1m.bin"):
            c.download(close_base, name)


def case_errors(c, args, workdir, www):
    # A bound socket that does not listen: the port stays ours and refuses.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        out = c.out_path()
        c.expect_result("closed port %d" % port,
                        ["--timeout", "10000", "--retries", "0", "--out", out,
                         "http://127.0.0.1:%d/img-1k.bin" % port], 1, "FOTA_ERR_CONNECT")
        c.no_output(out)
    for url in ("not a url", "http://", "ftp://127.0.0.1/img.bin", "http://127.0.0.1:99999/x",
                "http://127.0.0.1:80:80/x"):
        out = c.out_path()
        c.expect_result("malformed URL %r" % url, ["--out", out, url], 2, "FOTA_ERR_URL")
        c.no_output(out)

    with StalledServer() as stalled:
        url = "http://127.0.0.1:%d/img.bin" % stalled.port
        # The overall deadline passes while the body stalls: 7, nothing left.
        out = c.out_path()
        _, _, _, secs = c.expect_result("stalled body with --timeout 1000", ["--timeout", "1000",
                                        "--out", out, url], 7, "FOTA_ERR_TIMEOUT")
        c.expect("  ended within 5 s (%.2f s)" % secs, secs < 5)
        c.no_output(out)
        # Ctrl-C (SIGINT) calls fota_abort(): 12, and OUT.part is removed.
        out = c.out_path()
        proc = subprocess.Popen([c.fota, "--out", out, url], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            started = wait_for(lambda: os.path.exists(out + ".part"), 10)
            c.expect("  %s.part appears while the body stalls" % os.path.basename(out), started)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            sout, serr = proc.communicate(timeout=10)
            secs = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=STOP_TIMEOUT_S)
        lines = sout.decode("utf-8", "replace").splitlines()
        c.expect("SIGINT during the download -> result: 12 FOTA_ERR_ABORTED (exit %s, %.2f s)"
                 % (proc.returncode, secs),
                 proc.returncode == 12 and lines[-1:] == ["result: 12 FOTA_ERR_ABORTED"]
                 and secs < 3, serr.decode("utf-8", "replace")[-1000:])
        c.no_output(out)

    # The platform (no URL) checks its parameters before connecting: offline-safe.
    c.expect_result("--project-key with version 1.0 (not X.Y.Z)",
                    ["--project-key", "k", "--version", "1.0", "--imei", "1"],
                    5, "FOTA_ERR_PLATFORM_PARAM")

    rc, out, err, _ = c.run(["--help"])
    flags = ["--out", "--max-len", "--timeout", "--retries", "--retry-delay", "--idle-timeout",
             "--ca", "--insecure", "--discard", "--stack-report", "--client-cert", "--client-key", "--max-fragment", "--version",
             "--project-key", "--imei", "--firmware-name", "--verbose", "--help"]
    undocumented = [f for f in flags if f not in out]
    c.expect("--help exits 0 (exit %s)" % rc, rc == 0, err)
    c.expect("--help documents every flag and exit 14", not undocumented and " 14 " in out,
             "missing: %s" % undocumented)

    for what, argv in (("unknown flag", ["--bogus", "http://127.0.0.1/x"]),
                       ("flag without value", ["http://127.0.0.1/x", "--out"]),
                       ("bad number", ["--max-len", "12k", "http://127.0.0.1/x"]),
                       ("negative number", ["--timeout", "-1", "http://127.0.0.1/x"]),
                       ("two URLs", ["http://127.0.0.1/a", "http://127.0.0.1/b"]),
                       ("no URL and no project key", [])):
        rc, _, err, _ = c.expect_result(what, argv, 14, "FOTA_ERR_INVALID_ARG")
        c.expect("  %s prints the usage on stderr" % what, "Usage:" in err, err[-500:])
    out = c.out_path()
    c.expect_result("unreadable --ca file", ["--ca", os.path.join(workdir, "none.pem"),
                                             "--out", out, "http://127.0.0.1/x"],
                    14, "FOTA_ERR_INVALID_ARG")
    c.no_output(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", help="path of the fota-posix program")
    ap.add_argument("--case", choices=["nginx", "nginx-ipv6", "http-server", "chunked", "errors"])
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()
    if not args.fota or not args.case:
        ap.error("--fota and --case are required")

    case = {
        "nginx": lambda c, workdir, www: case_nginx(c, args, workdir, www),
        "nginx-ipv6": lambda c, workdir, www: case_nginx(c, args, workdir, www, ipv6=True),
        "http-server": lambda c, workdir, www: case_http_server(c, args, workdir, www),
        "chunked": lambda c, workdir, www: case_chunked(c, args, workdir, www),
        "errors": lambda c, workdir, www: case_errors(c, args, workdir, www),
    }[args.case]
    return run_case(args.fota, args.case, "fota-e2e-", case)


def run_case(fota, name, prefix, case):
    """Runs `case(checker, workdir, www)` in a new work directory with the
    test images; prints the verdict and returns the exit status (0, 1, or
    SKIP when the case returned SKIP). Shared with tls.py."""
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        www = os.path.join(workdir, "www")
        make_images(www)
        c = Checker(os.path.abspath(fota), workdir, www)
        try:
            if case(c, workdir, www) == SKIP:
                return SKIP
        except Failed as e:
            c.failures.append(str(e))
            print("FAIL %s" % e)
        secs = time.monotonic() - started
        if c.failures:
            print("%s: %d of %d checks failed (%.1f s)" % (name, len(c.failures), c.checks, secs))
            return 1
        print("%s: all %d checks passed (%.1f s)" % (name, c.checks, secs))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
