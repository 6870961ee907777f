#!/usr/bin/env python3
"""Throughput and CPU time of fota-posix next to curl, TLS handshake time and peak stack.

    bench.py --fota PATH [--size MIB] [--runs N] [--handshakes N] [--out-dir DIR]
             [--nginx PATH] [--openssl PATH] [--curl PATH]
    bench.py --compare PATH... [--size MIB] [--runs N]

One nginx on 127.0.0.1 serves a SIZE MiB image (default 256, from tmpfs when
there is one) over HTTP and, with an EC P-256 certificate made here by
openssl, over HTTPS (TLS 1.3, AES-128-GCM). For each of http/https and each
sink fota-posix and curl download it in alternating pairs (N pairs, default
7), fota first in odd pairs and curl first in even ones:

  discard  `fota-posix --discard` against `curl -o /dev/null`;
  file     `fota-posix --no-readback --out F` (writes F.part, fsync in its
           `done` hook, renames) against `curl -o F` followed by `sync F`
           (fsync of the file): both make the image durable, neither reads
           it back. Both write into DIR (default: a temporary directory on
           the disk that holds /var/tmp).
  file+readback (http only)  the same with fota-posix's default read-back
           (fota reads the file back and compares its SHA-256 with the
           bytes it wrote before it commits): what that check costs.

Per pair: the throughput ratio curl time / fota time (wall clock of the
whole process, `sync` included for curl) and the CPU ratio fota CPU / curl
CPU (user + system time of the processes, from wait4), the same bytes for
both, so it is the ratio of CPU time per byte. Printed: the median MB/s of
each client, the median, min and max of the per-pair ratios, then the four
goals of issue 17 with their measured medians. Every fota run must exit 0
and, for the file sink, produce the image.

--compare: several fota-posix builds (e.g. configured with other
FOTA_CARGO_PROFILE / FOTA_RX_BUF / FOTA_TARGET_FEATURES) and curl, discard
sink only, all in one alternating series per scheme (the order reversed
every other round); printed: the median wall and CPU seconds of each and its
CPU time over curl's.

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

# Issue 17's goals: (scheme, sink, what, bound); "speed" is the median of
# curl time / fota time (at least the bound), "cpu" the median of fota CPU
# time / curl CPU time for the same bytes (at most the bound).
GOALS = [("http", "discard", "speed", 0.95), ("http", "file", "speed", 0.95),
         ("https", "discard", "speed", 0.5), ("http", "discard", "cpu", 1.2)]


class BenchError(Exception):
    pass


def timed(argv):
    """Runs argv; returns (seconds, stdout, stderr); raises on a non-zero exit."""
    secs, _, out, err = measured(argv)
    return secs, out, err


def measured(argv):
    """Runs argv; returns (wall seconds, CPU seconds (user + system), stdout,
    stderr); raises on a non-zero exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            p.wait()
            raise
        secs = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise BenchError("%s: exit %d\n%s%s" % (" ".join(argv), p.returncode,
                                                stdout[-1000:], stderr[-1000:]))
    return secs, usage.ru_utime + usage.ru_stime, stdout, stderr


class Clients:
    """The fota-posix and curl command lines for one URL scheme and sink."""

    def __init__(self, args, outdir, ca):
        self.args, self.outdir, self.ca = args, outdir, ca

    def fota(self, url, sink, extra=(), exe=None):
        argv = [exe or self.args.fota, "--timeout", "600000", "--max-len", str(self.args.size << 20)] \
            + list(extra)
        if url.startswith("https:"):
            argv += ["--ca", self.ca]
        if sink == "discard":
            return argv + ["--discard", url]
        if sink == "file":
            argv.append("--no-readback")
        return argv + ["--out", os.path.join(self.outdir, "fota.bin"), url]

    def curl(self, url, sink):
        """The command lines of one curl download: curl, then for the file
        sink `sync FILE`, which fsyncs it as fota-posix's done hook does."""
        out = "/dev/null" if sink == "discard" else os.path.join(self.outdir, "curl.bin")
        argv = [self.args.curl, "--silent", "--show-error", "--fail", "-o", out]
        if url.startswith("https:"):
            argv += ["--cacert", self.ca, "--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"]
        if sink == "discard":
            return [argv + [url]]
        return [argv + [url], ["sync", out]]


def throughput(clients, url, sink, image, runs):
    """Alternating pairs; returns (fota MB/s, curl MB/s, speed ratios, CPU ratios)."""
    size = os.path.getsize(image)
    fota, curl, speed, cpu = [], [], [], []
    for i in range(runs):
        order = ("fota", "curl") if i % 2 == 0 else ("curl", "fota")
        secs, cpus = {}, {}
        for who in order:
            argvs = [clients.fota(url, sink)] if who == "fota" else clients.curl(url, sink)
            secs[who] = cpus[who] = 0.0
            for argv in argvs:
                wall, used, _, _ = measured(argv)
                secs[who] += wall
                cpus[who] += used
        if sink != "discard":
            got = os.path.join(clients.outdir, "fota.bin")
            if not filecmp.cmp(got, image, shallow=False):
                raise BenchError("fota-posix wrote a different image (%s)" % url)
            os.unlink(got)
            os.unlink(os.path.join(clients.outdir, "curl.bin"))
        fota.append(size / secs["fota"] / MB)
        curl.append(size / secs["curl"] / MB)
        speed.append(secs["curl"] / secs["fota"])
        cpu.append(cpus["fota"] / max(cpus["curl"], 1e-6))
    return fota, curl, speed, cpu


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


def compare(clients, bases, exes, runs):
    """--compare: the builds `exes` and curl, discard sink, alternating."""
    print("| scheme | client | wall s (median) | CPU s (median) | CPU / curl's |")
    print("|---|---|---:|---:|---:|")
    who = list(exes) + ["curl"]
    for scheme in ("http", "https"):
        url = bases[scheme] + "image.bin"
        wall, cpu = {w: [] for w in who}, {w: [] for w in who}
        for i in range(runs):
            for w in who if i % 2 == 0 else who[::-1]:
                argv = clients.curl(url, "discard")[0] if w == "curl" \
                    else clients.fota(url, "discard", exe=w)
                secs, used, _, _ = measured(argv)
                wall[w].append(secs)
                cpu[w].append(used)
        base = statistics.median(cpu["curl"])
        for w in who:
            print("| %s | %s | %.3f | %.3f | %.2f |" % (
                scheme, w, statistics.median(wall[w]), statistics.median(cpu[w]),
                statistics.median(cpu[w]) / base), flush=True)


def fs_type(path):
    """The file system type of `path` (from /proc/mounts), or "?"."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mnt, fstype = line.split()[:3]
                real = os.path.realpath(path)
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, fstype
    except OSError:
        pass
    return kind


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", help="fota-posix (a Release build)")
    ap.add_argument("--compare", nargs="+", metavar="PATH",
                    help="compare these fota-posix builds and curl (discard sink)")
    ap.add_argument("--size", type=int, default=256, help="image size in MiB (default 256)")
    ap.add_argument("--runs", type=int, default=7, help="pairs of runs (default 7)")
    ap.add_argument("--out-dir", help="where the file sink writes (default: a temporary "
                    "directory in /var/tmp, on disk)")
    ap.add_argument("--handshakes", type=int, default=21,
                    help="1-byte downloads over each scheme (default 21)")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    ap.add_argument("--curl", default=shutil.which("curl") or "curl")
    args = ap.parse_args()
    if not args.fota and not args.compare:
        ap.error("--fota or --compare is required")

    tmp_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else None
    work = tempfile.mkdtemp(prefix="fota-bench-", dir=tmp_root)
    outdir = tempfile.mkdtemp(prefix="fota-bench-out-", dir=args.out_dir or "/var/tmp")
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
        clients = Clients(args, outdir, pki.path("ca.pem"))
        tls = Tls(pki.path("server.pem"), pki.path("server.key"))
        os.makedirs(os.path.join(work, "n1"))
        os.makedirs(os.path.join(work, "n2"))
        with nginx_server(args.nginx, os.path.join(work, "n1"), www) as plain, \
                nginx_server(args.nginx, os.path.join(work, "n2"), www, tls=tls) as secure:
            bases = {"http": "http://127.0.0.1:%d/" % plain.port,
                     "https": "https://localhost:%d/" % secure.port}
            if args.compare:
                compare(clients, bases, args.compare, args.runs)
                return 0
            print("| scheme | sink | fota-posix MB/s | curl MB/s | speed: curl time / fota time"
                  " | CPU: fota / curl |")
            print("|---|---|---:|---:|---:|---:|")
            medians = {}
            for scheme in ("http", "https"):
                for sink in ("discard", "file") + (("file+readback",) if scheme == "http" else ()):
                    f, c, r, u = throughput(clients, bases[scheme] + "image.bin", sink, image,
                                            args.runs)
                    medians[scheme, sink, "speed"] = statistics.median(r)
                    medians[scheme, sink, "cpu"] = statistics.median(u)
                    print("| %s | %s | %.0f | %.0f | %.3f (min %.3f, max %.3f) |"
                          " %.3f (min %.3f, max %.3f) |" % (
                              scheme, sink, statistics.median(f), statistics.median(c),
                              statistics.median(r), min(r), max(r),
                              statistics.median(u), min(u), max(u)), flush=True)
            print("\n%d MiB image served by nginx on 127.0.0.1 from %s; file sink in %s "
                  "(%s); medians of %d alternating pairs.\n"
                  % (args.size, "tmpfs" if tmp_root else "disk", outdir, fs_type(outdir),
                     args.runs))
            print("| goal (issue 17) | measured | met |")
            print("|---|---:|---|")
            for scheme, sink, what, bound in GOALS:
                value = medians[scheme, sink, what]
                if what == "speed":
                    text, met = "%s %s throughput >= %.2f of curl" % (scheme, sink, bound), \
                        value >= bound
                else:
                    text, met = "%s %s CPU time per byte <= %.1fx curl" % (scheme, sink, bound), \
                        value <= bound
                print("| %s | %.3f | %s |" % (text, value, "yes" if met else "**no**"))
            print()
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
        shutil.rmtree(outdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
