#!/usr/bin/env python3
"""Power loss: fota-posix --state killed with SIGKILL and started again.

Each case downloads a 4 MiB image with a resume record (--state) and kills
the process with SIGKILL, then starts it again with the same state file and
output until it finishes. Every finished run must leave an image that is
byte-identical to the one served; a kill must never leave a wrong image.

    powerloss.py --fota PATH --case CASE [--nginx PATH]

Cases:
  matrix     nginx; 60+ kills spread over the download: right after a write
             (before the state save), in the middle of a write, in the middle
             of a state save, between its rename and the directory fsync, in
             done(), in end(true), right after the last byte; and a few
             SIGKILLs from outside at random moments (a rate-limited
             location). Reports runs, resumed, restarted, bytes fetched per
             image byte, state saves.
  no-range   python3 -m http.server (no Range support): every restart from
             byte 0, never a spliced image
  changed    the image replaced on the server between a kill and the restart:
             restart from 0, the new image committed (and verified)
  corrupt    a state file truncated, bit-flipped, from another URL, from an
             older image: ignored, download from 0, the right image
  discard    --discard-state (fota_state_discard) forgets the record

Kills inside fota-posix come from FOTA_POSIX_CRASH=POINT:N (flash.c raises
SIGKILL there and prints `crash: ... (received N bytes)` first, so the bytes
fetched are known). Exit status: 0 passed, 1 failed, 77 skipped.
Python 3 standard library only.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
from e2e import Checker
from servers import Failed, http_server, nginx_server

SKIP = 77
IMAGE = 4 * 1024 * 1024
RUN_TIMEOUT_S = 60
RECV_MAX = 16384     # bytes per receive, like a device's TCP window (fota-posix --recv-max)
GRANULARITY = 4096   # allowed per kill on top of 1.05 x the image
EXTERNAL_RATE = "2m"  # the rate-limited location for kills from outside


class Case(Checker):
    """A Checker (its `expect`) with the state of one kill sequence."""

    def __init__(self, fota, workdir):
        super().__init__(fota, workdir, None)
        self.out = os.path.join(workdir, "out.bin")
        self.state = os.path.join(workdir, "state")
        self.runs = self.kills = self.resumed = self.restarted = self.saves = 0
        self.received = 0

    def run(self, url, crash=None, extra=(), kill_after=None):
        """One fota-posix run; returns (exit code, stderr). `crash`: the
        FOTA_POSIX_CRASH point; `kill_after`: SIGKILL from outside after so
        many seconds."""
        env = dict(os.environ)
        env.pop("FOTA_POSIX_CRASH", None)
        if crash:
            env["FOTA_POSIX_CRASH"] = crash
        argv = [self.fota, "--verbose", "--state", self.state, "--out", self.out,
                "--timeout", "30000", "--retries", "0", "--recv-max", str(RECV_MAX)]
        argv += list(extra) + [url]
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if kill_after is not None:
                try:
                    p.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
            out, err = p.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        err = err.decode("utf-8", "replace")
        self.runs += 1
        if p.returncode == -signal.SIGKILL:
            self.kills += 1
        m = re.search(r"resumed at byte (\d+)", err)
        if m:
            self.resumed += 1
        elif self.runs > 1 and "flash: init" in err:
            self.restarted += 1
        self.saves += err.count("flash: state save ")
        got = re.findall(r"received:? (\d+) bytes", err)
        if got:
            self.received += int(got[-1])
        print("     run %d (%s): exit %s, %s, received %s" % (
            self.runs, crash or ("killed after %.2f s" % kill_after if kill_after else "to the end"),
            p.returncode, "resumed at %s" % m.group(1) if m else
            ("from byte 0" if "flash: init" in err else "no image"),
            got[-1] if got else "?"), flush=True)
        # Never a wrong image: whatever is at OUT is a complete served one.
        return p.returncode, err

    def identical(self, want, what):
        ok = os.path.isfile(self.out) and open(self.out, "rb").read() == want
        self.expect("%s: %s is byte-identical to the served image" % (what, os.path.basename(self.out)), ok)
        if os.path.exists(self.out):
            os.unlink(self.out)

    def no_wrong_image(self, served, what):
        """OUT, if present, is one of the served images, whole."""
        if os.path.exists(self.out):
            data = open(self.out, "rb").read()
            self.expect("%s: no wrong image committed" % what, any(data == s for s in served))


def write_image(www, name, seed):
    data = random.Random(seed).randbytes(IMAGE)
    with open(os.path.join(www, name), "wb") as f:
        f.write(data)
    return data


def nginx(c, args, www, extra=""):
    """nginx in a directory of its own under the case's."""
    workdir = os.path.join(c.workdir, "ng")
    os.makedirs(workdir, exist_ok=True)
    return nginx_server(args.nginx, workdir, www, extra=extra)


def nginx_sent(workdir):
    """Body bytes nginx handed to the kernel, per request (access log)."""
    path = os.path.join(workdir, "nginx-access.log")
    if not os.path.exists(path):
        return 0
    total = 0
    for line in open(path):
        m = re.search(r'" (200|206) (\d+) ', line)
        if m:
            total += int(m.group(2))
    return total


def case_matrix(c, args, www):
    img = write_image(www, "img.bin", 1)
    sha = hashlib.sha256(img).hexdigest()
    extra = ["--sha256", sha]
    slow = 'location /limited/ {\n            alias %s/;\n            limit_rate %s;\n        }' % (
        www, EXTERNAL_RATE)
    with nginx(c, args, www, extra=slow) as s:
        url = "http://127.0.0.1:%d/img.bin" % s.port
        # Kill points, in order: the first such moment once the image has
        # that many bytes (a run resumed past it is killed at its first).
        kinds = ["byte", "save", "byte", "write", "byte", "rename", "byte", "save"]
        step = IMAGE // 66
        points = ["%s:%d" % (kinds[i % len(kinds)],
                             (i + 1) * step + random.Random(i).randrange(step // 2))
                  for i in range(64)]
        points += ["byte:%d" % IMAGE, "done:1", "end:1"]
        served = [img]
        for point in points:
            rc, err = c.run(url, crash=point, extra=extra)
            if rc != -signal.SIGKILL:
                c.expect("run with %s ends killed or with FOTA_OK (exit %s)" % (point, rc),
                         rc == 0, err[-1500:])
                if rc == 0:
                    c.identical(img, "after %s" % point)
            c.no_wrong_image(served, point)
        internal, fetched_internal = c.kills, c.received
        # Kills from outside at random moments, through a rate-limited location.
        limited = "http://127.0.0.1:%d/limited/img.bin" % s.port
        rnd = random.Random(7)
        external = 0
        for _ in range(8):
            rc, err = c.run(limited, extra=extra, kill_after=rnd.uniform(0.05, 0.6))
            external += rc == -signal.SIGKILL
            c.no_wrong_image(served, "external kill")
            if rc == 0:
                c.identical(img, "external run")
        rc, err = c.run(limited, extra=extra)
        c.expect("the last run finishes (exit %s)" % rc, rc == 0, err[-1500:])
        c.identical(img, "final")
        sent = nginx_sent(os.path.join(c.workdir, "ng"))
    # The kills from inside cover one whole download (the last one is in
    # end(true), after the record was forgotten): each may lose what it had
    # received and not yet written (half a write when killed inside one).
    bound = 1.05 * IMAGE + GRANULARITY * internal
    print("figures: runs %d, killed %d (%d inside the download, %d from outside), resumed %d, "
          "restarted from 0 %d, corrupt 0, state saves %d; inside: fetched %d bytes = %.4f x "
          "the image (bound 1.05 x + %d x %d B = %.4f x), %.0f B per kill; sent by nginx over "
          "all runs %d bytes (%.2f x: what loopback socket buffers held at each kill)"
          % (c.runs, c.kills, internal, external, c.resumed, c.restarted, c.saves,
             fetched_internal, fetched_internal / IMAGE, internal, GRANULARITY, bound / IMAGE,
             (fetched_internal - IMAGE) / internal, sent, sent / IMAGE), flush=True)
    c.expect("at least 60 kills inside the download (%d)" % internal, internal >= 60)
    c.expect("fetched %d <= %d bytes" % (fetched_internal, bound), fetched_internal <= bound)
    c.expect("most runs resumed (%d of %d)" % (c.resumed, c.runs), c.resumed >= c.runs * 0.8)


def case_no_range(c, args, www):
    img = write_image(www, "img.bin", 2)
    with http_server(c.workdir, www) as s:
        url = "http://127.0.0.1:%d/img.bin" % s.port
        for k in range(1, 6):
            before = c.received
            rc, err = c.run(url, crash="byte:%d" % (k * IMAGE // 6))
            c.expect("run %d killed (exit %s)" % (k, rc), rc == -signal.SIGKILL, err[-1500:])
            c.expect("  fetched from byte 0 again (%d bytes)" % (c.received - before),
                     c.received - before >= k * IMAGE // 6)
            c.no_wrong_image([img], "no-range kill %d" % k)
        before = c.received
        rc, err = c.run(url)
        c.expect("last run FOTA_OK (exit %s)" % rc, rc == 0, err[-1500:])
        c.expect("  the whole image fetched again: never spliced",
                 c.received - before >= IMAGE, err[-1500:])
        c.identical(img, "no-range")


def case_changed(c, args, www):
    write_image(www, "img.bin", 3)
    with nginx(c, args, www) as s:
        url = "http://127.0.0.1:%d/img.bin" % s.port
        rc, _ = c.run(url, crash="byte:%d" % (IMAGE // 2))
        c.expect("killed half way (exit %s)" % rc, rc == -signal.SIGKILL)
        time.sleep(1.1)  # a new Last-Modified second, so a new ETag
        new = write_image(www, "img.bin", 4)
        sha = hashlib.sha256(new).hexdigest()
        before = c.received
        rc, err = c.run(url, extra=["--sha256", sha])
        c.expect("restart FOTA_OK with the new image verified (exit %s)" % rc, rc == 0, err[-1500:])
        c.expect("  resumed from 0 (the record named the old image)",
                 "resumed from: 0" in err)
        c.expect("  the whole new image fetched (%d bytes)" % (c.received - before),
                 c.received - before >= IMAGE)
        c.identical(new, "changed")
        # The old record had the URL's id: with the same URL and no digest it
        # is taken up, the If-Range fails, the whole new image arrives.
        rc, _ = c.run(url, crash="byte:%d" % (IMAGE // 2))
        time.sleep(1.1)
        newer = write_image(www, "img.bin", 5)
        before = c.received
        rc, err = c.run(url)
        c.expect("restart after a change, no digest given: FOTA_OK (exit %s)" % rc, rc == 0, err[-1500:])
        c.expect("  taken up, then refused by If-Range: a 200 from byte 0",
                 "resumed at byte" in err and c.received - before >= IMAGE, err[-1500:])
        c.identical(newer, "changed, no digest")
        c.no_wrong_image([newer], "changed")


def case_corrupt(c, args, www):
    img = write_image(www, "img.bin", 6)
    write_image(www, "other.bin", 7)
    with nginx(c, args, www) as s:
        url = "http://127.0.0.1:%d/img.bin" % s.port

        def slots():
            return [c.state + ".0", c.state + ".1"]

        def damage(kind):
            if kind == "other URL":
                for p in slots():
                    if os.path.exists(p):
                        os.unlink(p)
                c.run("http://127.0.0.1:%d/other.bin" % s.port, crash="byte:%d" % (IMAGE // 3))
                return
            for p in slots():
                data = bytearray(open(p, "rb").read())
                if kind == "truncated":
                    data = data[:len(data) // 2]
                else:
                    data[40] ^= 0x10
                open(p, "wb").write(bytes(data))

        for kind in ["truncated", "bit-flipped", "other URL"]:
            rc, _ = c.run(url, crash="byte:%d" % (IMAGE // 2))
            c.expect("%s: killed half way (exit %s)" % (kind, rc), rc == -signal.SIGKILL)
            damage(kind)
            rc, err = c.run(url)
            c.expect("%s: FOTA_OK (exit %s)" % (kind, rc), rc == 0, err[-1500:])
            c.expect("  %s: state ignored, download from byte 0" % kind,
                     "resumed from: 0" in err, err[-1500:])
            c.identical(img, kind)
        # A record of an older image of the same URL: If-Range proves it is gone.
        rc, _ = c.run(url, crash="byte:%d" % (IMAGE // 2))
        time.sleep(1.1)
        newer = write_image(www, "img.bin", 8)
        rc, err = c.run(url)
        c.expect("older image: FOTA_OK (exit %s)" % rc, rc == 0, err[-1500:])
        c.identical(newer, "older image")


def case_discard(c, args, www):
    img = write_image(www, "img.bin", 9)
    with nginx(c, args, www) as s:
        url = "http://127.0.0.1:%d/img.bin" % s.port
        rc, _ = c.run(url, crash="byte:%d" % (IMAGE // 2))
        c.expect("killed half way (exit %s)" % rc, rc == -signal.SIGKILL)
        rc, err = c.run(url, extra=["--discard-state"])
        c.expect("--discard-state: FOTA_OK from byte 0 (exit %s)" % rc,
                 rc == 0 and "resumed from: 0" in err, err[-1500:])
        c.identical(img, "discard")


CASES = {"matrix": case_matrix, "no-range": case_no_range, "changed": case_changed,
         "corrupt": case_corrupt, "discard": case_discard}
NEEDS_NGINX = {"matrix", "changed", "corrupt", "discard"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()
    if args.case in NEEDS_NGINX and not os.path.exists(args.nginx):
        print("skipped: nginx not found")
        return SKIP
    workdir = tempfile.mkdtemp(prefix="fota-powerloss-")
    www = os.path.join(workdir, "www")
    os.makedirs(www)
    c = Case(os.path.abspath(args.fota), workdir)
    started = time.monotonic()
    try:
        CASES[args.case](c, args, www)
    except Failed as e:
        c.failures.append(str(e))
        print("FAIL %s" % e)
    finally:
        if not c.failures:
            shutil.rmtree(workdir, ignore_errors=True)
    print("%s: %d runs, %d killed, %.1f s, %s" % (
        args.case, c.runs, c.kills, time.monotonic() - started,
        "%d FAILED" % len(c.failures) if c.failures else "passed"))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
