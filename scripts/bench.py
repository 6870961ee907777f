#!/usr/bin/env python3
"""Throughput of fota-posix next to curl, TLS handshake time and peak stack.

    bench.py --fota PATH [--size MIB] [--runs N] [--handshakes N]
             [--nginx PATH] [--openssl PATH] [--curl PATH]

One nginx on 127.0.0.1 serves a SIZE MiB image (default 64) over HTTP and,
with an EC P-256 certificate made here by openssl, over HTTPS (TLS 1.3).
For each of http/https and each sink (a file, or discarded) fota-posix and
`curl -o` download it in alternating runs (N each, default 5), fota first in
odd pairs and curl first in even ones; printed: the median MB/s of each and
the median of the per-pair ratios fota/curl. Both write into the same
directory, on tmpfs (/dev/shm) when there is one, so that the disk does not
decide (fota's file flash fsyncs in its `done` hook; on tmpfs that is free).
Every fota run must exit 0 and, for the file sink, produce the image.

Then: the time of a whole 1-byte download over http and over https (median
of N alternating runs of each): the difference is the handshake with
certificate verification, and fota-posix --stack-report over http and https.

Prints markdown tables. Python 3 standard library, nginx, curl, openssl.
"""

import argparse
import filecmp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "examples-c", "posix", "tests"))
from servers import Tls, nginx_server  # noqa: E402
from tls import Pki  # noqa: E402

RUN_TIMEOUT_S = 600
MB = 1e6  # throughput in MB/s (10^6 bytes), as curl and fota-posix print it


class BenchError(Exception):
    pass


def timed(argv):
    """Runs argv; returns (seconds, stdout, stderr); raises on a non-zero exit."""
    start = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_TIMEOUT_S)
    secs = time.monotonic() - start
    if p.returncode != 0:
        raise BenchError("%s: exit %d\n%s%s" % (" ".join(argv), p.returncode,
                                                p.stdout.decode()[-1000:],
                                                p.stderr.decode()[-1000:]))
    return secs, p.stdout.decode(), p.stderr.decode()


class Clients:
    """The fota-posix and curl command lines for one URL scheme and sink."""

    def __init__(self, args, outdir, ca):
        self.args, self.outdir, self.ca = args, outdir, ca

    def fota(self, url, sink, extra=()):
        argv = [self.args.fota, "--timeout", "600000", "--max-len", str(self.args.size << 20)] \
            + list(extra)
        if url.startswith("https:"):
            argv += ["--ca", self.ca]
        if sink == "discard":
            return argv + ["--discard", url]
        return argv + ["--out", os.path.join(self.outdir, "fota.bin"), url]

    def curl(self, url, sink):
        out = "/dev/null" if sink == "discard" else os.path.join(self.outdir, "curl.bin")
        argv = [self.args.curl, "--silent", "--show-error", "--fail", "-o", out]
        if url.startswith("https:"):
            argv += ["--cacert", self.ca, "--tlsv1.3"]
        return argv + [url]


def throughput(clients, url, sink, image, runs):
    """Alternating pairs; returns (fota MB/s list, curl MB/s list, ratios)."""
    size = os.path.getsize(image)
    fota, curl, ratios = [], [], []
    for i in range(runs):
        order = ("fota", "curl") if i % 2 == 0 else ("curl", "fota")
        secs = {}
        for who in order:
            argv = clients.fota(url, sink) if who == "fota" else clients.curl(url, sink)
            secs[who], _, _ = timed(argv)
        if sink == "file":
            got = os.path.join(clients.outdir, "fota.bin")
            if not filecmp.cmp(got, image, shallow=False):
                raise BenchError("fota-posix wrote a different image (%s)" % url)
            os.unlink(got)
            os.unlink(os.path.join(clients.outdir, "curl.bin"))
        fota.append(size / secs["fota"] / MB)
        curl.append(size / secs["curl"] / MB)
        ratios.append(secs["curl"] / secs["fota"])
    return fota, curl, ratios


def handshake(clients, base_http, base_https, runs):
    """Median seconds of a 1-byte download over http and https (fota-posix)."""
    http, https = [], []
    for _ in range(runs):
        http.append(timed(clients.fota(base_http + "one.bin", "discard"))[0])
        https.append(timed(clients.fota(base_https + "one.bin", "discard"))[0])
    return statistics.median(http), statistics.median(https)


def stack(clients, url):
    _, _, err = timed(clients.fota(url, "discard", ["--stack-report"]))
    m = re.search(r"^stack: (\d+) bytes", err, re.M)
    if not m:
        raise BenchError("no stack line from --stack-report:\n" + err[-1000:])
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", required=True, help="fota-posix (a Release build)")
    ap.add_argument("--size", type=int, default=64, help="image size in MiB (default 64)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each client (default 5)")
    ap.add_argument("--handshakes", type=int, default=21,
                    help="1-byte downloads over each scheme (default 21)")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    ap.add_argument("--curl", default=shutil.which("curl") or "curl")
    args = ap.parse_args()

    tmp_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else None
    work = tempfile.mkdtemp(prefix="fota-bench-", dir=tmp_root)
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        image = os.path.join(www, "image.bin")
        with open(image, "wb") as f:
            for _ in range(args.size):
                f.write(os.urandom(1 << 20))
        with open(os.path.join(www, "one.bin"), "wb") as f:
            f.write(b"\x5a")
        pki = Pki(args.openssl, os.path.join(work, "pki"))
        pki.ca("ca", "/CN=fota bench CA")
        pki.leaf("server", "ca", "/CN=localhost", "DNS:localhost")
        outdir = os.path.join(work, "out")
        os.makedirs(outdir)
        clients = Clients(args, outdir, pki.path("ca.pem"))
        tls = Tls(pki.path("server.pem"), pki.path("server.key"))
        os.makedirs(os.path.join(work, "n1"))
        os.makedirs(os.path.join(work, "n2"))
        with nginx_server(args.nginx, os.path.join(work, "n1"), www) as plain, \
                nginx_server(args.nginx, os.path.join(work, "n2"), www, tls=tls) as secure:
            bases = {"http": "http://127.0.0.1:%d/" % plain.port,
                     "https": "https://localhost:%d/" % secure.port}
            print("| scheme | sink | fota-posix MB/s | curl MB/s | fota/curl (median of %d pairs)"
                  " |" % args.runs)
            print("|---|---|---:|---:|---:|")
            for scheme in ("http", "https"):
                for sink in ("file", "discard"):
                    f, c, r = throughput(clients, bases[scheme] + "image.bin", sink, image,
                                         args.runs)
                    print("| %s | %s | %.0f | %.0f | %.3f (min %.3f, max %.3f) |" % (
                        scheme, sink, statistics.median(f), statistics.median(c),
                        statistics.median(r), min(r), max(r)), flush=True)
            print("\n%d MiB image, nginx on 127.0.0.1, outputs on %s.\n"
                  % (args.size, "tmpfs" if tmp_root else "disk"))
            t_http, t_https = handshake(clients, bases["http"], bases["https"], args.handshakes)
            s_http, s_https = stack(clients, bases["http"] + "image.bin"), \
                stack(clients, bases["https"] + "image.bin")
        print("| fota-posix, 1-byte image | http | https |")
        print("|---|---:|---:|")
        print("| whole run, median of %d (ms) | %.1f | %.1f |" % (
            args.handshakes, t_http * 1e3, t_https * 1e3))
        print("| TLS 1.3 handshake with verification (difference, ms) | | %.1f |"
              % ((t_https - t_http) * 1e3))
        print("| peak stack, x86_64 (`--stack-report`, bytes) | %d | %d |" % (s_http, s_https))
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        print("bench: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
