#!/usr/bin/env python3
"""The Cortex-M4F firmware (QEMU mps2-an386) against real servers, over its
serial link and the host bridge (bridge.py).

Each firmware run is one fota_request(): the bridge hands the firmware the
URL, the CA, the expected result and image length; the firmware checks the
result, the NOR flash contract and the commit, and writes the committed
image to a host file that this script compares with the served file.

    qemu.py --fw fota-fw.elf --case CASE [--nginx PATH] [--openssl PATH]

Cases:
  http    nginx (Content-Length: 24001 B, 1 B; a missing file -> 6, nothing
          programmed), the chunked server of servers.py (24001 B in chunks
          of 1 B .. 16 KiB with extensions and a trailer), a closed port -> 1
  https   certificates made by openssl at test time (tls.py's Pki): nginx
          (TLS 1.3) and `openssl s_server -tls1_3 -WWW` with chain, host-name
          and validity checks (the time comes from the host through the
          bridge); refused with 11 and nothing programmed: a wrong CA, a
          certificate for another name, an expired certificate (and, as
          its control, one made the same way but valid now is accepted)
  faults  faultproxy.py between the firmware and nginx: drops and resets on
          the first connection, in the HTTP body, in the TLS handshake and in
          the HTTPS body, and a stall in the HTTP body (the idle timeout, 1 s,
          ends it); the download resumes (Range) byte-identically
  signed  MCUboot images signed by the real imgtool (keys made at test time)
          from nginx, with the image key (imgtool getpub -e pem), the current
          version 1.2.0 and security counter: accepted and committed
          byte-identically after fota read it back through the NOR model's
          read hook; refused with 10 (FOTA_ERR_VERIFY), nothing committed and
          the verify_reason checked: one body byte flipped, another key, a
          security counter below the device's, a NOR cell that does not
          program (caught by the read-back), and a downgrade (1.1.0),
          refused before the NOR model saw an init or an erase
  resume  power loss: with the NOR model's resume hooks (reopen, two state
          slots), the bridge cuts the power of a run from nginx after 40000
          of 66536 bytes (QEMU stopped, the NOR chip saved, QEMU quit); a
          second run on the saved chip resumes from its resume record (at
          byte > 0), fetches only the rest and commits byte-identically,
          leaving a tombstone as the newest record; a third run on the chip
          the second one left downloads the image whole from byte 0

Also checks the painted-stack figure of every successful request against
the budget in scripts/size-budget.txt (qemu-stack http|https|signed|resume N:
fails above N + 5 %).

Every request runs with the NOR model's read hook: fota reads each image
back before it commits (the firmware checks that it read all of it).

Exit status: 0 passed, 1 failed, 77 skipped (no qemu-system-arm, no nginx,
no openssl, no imgtool). Python 3 standard library only (imgtool is run as a
program).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "examples-c", "posix", "tests"))
from bridge import config, new_chip, newest_record, run_firmware  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from servers import Failed, Tls, chunked_server, free_port, nginx_server, openssl_server  # noqa: E402
from tls import Pki  # noqa: E402
from verify import REASON, VERIFY_ERR, imgtool_command  # noqa: E402

SKIP = 77
IMAGES = {"img-24001.bin": 24001, "img-1b.bin": 1, "img-16k.bin": 16384,
          "img-66536.bin": 66536}
BUDGET = os.path.join(ROOT, "scripts", "size-budget.txt")
STACK_MARGIN = 0.05
SLACK_B = 3000  # TLS handshake and response heads of a resumed download
FOTA_ERR_VERIFY = VERIFY_ERR[0]
FOTA_VERIFY_READBACK = 11  # fota.h
SIGNED_BODY = 12000  # body bytes of the signed image (plus a 512-byte header and TLVs)
RESUME_INTERVAL = 16384  # fota_opts_t.state_interval of the resume case
RESUME_CUT = 40000  # bytes handed to the firmware before the power cut


def budget():
    """{'http': N, 'https': N} from the `qemu-stack KIND N` lines."""
    out = {}
    with open(BUDGET) as f:
        for line in f:
            w = line.split()
            if len(w) == 3 and w[0] == "qemu-stack":
                out[w[1]] = int(w[2])
    return out


class Case:
    """Runs the firmware and records failed expectations (keeps going)."""

    def __init__(self, fw, workdir, www):
        self.fw, self.workdir, self.www = fw, workdir, www
        self.failures = []
        self.seq = 0
        self.budget = budget()

    def expect(self, what, ok, detail=""):
        print("%s %s" % ("ok  " if ok else "FAIL", what), flush=True)
        if not ok:
            self.failures.append(what)
            if detail:
                print("     " + detail.rstrip().replace("\n", "\n     "), flush=True)

    def run(self, what, url, want=0, name=None, ca=None, retries=0, idle_ms=5000, reason=0,
            chip=None, **verified):
        """One request. `want`: the result code; with 0, `name` is the served
        file that must end up in the NOR flash, byte for byte (read back by
        fota through the NOR model's read hook first). `reason`: the
        verify_reason the firmware must see; `chip`: the NOR chip file QEMU
        loads (run_firmware()) and the firmware writes back at the end;
        `verified`: the image_key, version,
        state_interval ... keywords of bridge.config()."""
        self.seq += 1
        dump = os.path.join(self.workdir, "nor-%03d.bin" % self.seq)
        image = b""
        if want == 0:
            with open(os.path.join(self.www, name), "rb") as f:
                image = f.read()
        cfg = config(url, ca, want, len(image), dump, retries, idle_timeout_ms=idle_ms,
                     expect_reason=reason, chip=chip, **verified)
        rc, out, rep, bridge = run_firmware(self.fw, cfg, chip=chip)
        detail = "url: %s\nexit: %s\nbridge errors: %s\nfirmware output:\n%s" % (
            url, rc, bridge.errors, out[-3000:])
        ok = rc == 0 and rep is not None and rep["verdict"] == "PASS" and not bridge.errors
        summary = ("result %d, verify_reason %d, %d B in %d writes, %d B read back, %d retries, "
                   "%d connections, stack %d B, %d ms"
                   % (rep["result"], rep["reason"], rep["written"], rep["writes"], rep["read"],
                      rep["retries"], len(bridge.connections), rep["stack"], rep["ms"])
                   if rep else "no report")
        self.expect("%s -> %d (%s)" % (what, want, summary), ok, detail)
        if want == 0:
            same = os.path.exists(dump) and open(dump, "rb").read() == image
            self.expect("  NOR image identical to %s (%d B)" % (name, len(image)), same)
        else:
            why = [l.strip() for l in out.splitlines() if l.startswith("  fota: ")
                   and not l.startswith("  fota: GET")]
            if why:
                print("     (%s)" % "; ".join(why[-2:]))  # "image refused: <check>", the end
            self.expect("  nothing committed, no image dumped",
                        rep is not None and rep["commits"] == 0 and not os.path.exists(dump))
        if rep is not None and want == 0:
            kind = "https" if url.startswith("https:") else "http"
            if kind == "http" and verified.get("image_key") is not None:
                kind = "signed"
            if verified.get("state_interval"):
                kind = "resume"  # the record read and the kept bytes read back
            limit = self.budget.get(kind)
            if limit is not None:
                top = int(limit * (1 + STACK_MARGIN))
                self.expect("  painted stack %d B <= %d B (budget %s %d B + 5 %%)"
                            % (rep["stack"], top, kind, limit), rep["stack"] <= top,
                            "if the growth is intended, update scripts/size-budget.txt and "
                            "BENCHMARKS.md (scripts/firmware-figures.sh)")
        return rep, bridge


def case_http(c, args):
    if not args.nginx:
        print("SKIP: nginx not found")
        return SKIP
    with nginx_server(args.nginx, sub(c, "nginx"), c.www) as s:
        base = "http://localhost:%d/" % s.port
        c.run("nginx, Content-Length, 24001 B (short last page)", base + "img-24001.bin",
              name="img-24001.bin")
        c.run("nginx, 1 B", base + "img-1b.bin", name="img-1b.bin")
        rep, _ = c.run("nginx, missing file", base + "no-such-image.bin", want=6)
        c.expect("  404 seen, no flash init", rep is not None and rep["status"] == 404
                 and rep["inits"] == 0)
    with chunked_server(sub(c, "chunked"), c.www) as s:
        c.run("chunked server (chunks of 1 B .. 16 KiB, extensions, trailer)",
              "http://localhost:%d/img-24001.bin" % s.port, name="img-24001.bin")
    c.run("closed port", "http://localhost:%d/img-1b.bin" % free_port("127.0.0.1"), want=1)
    return None


def case_https(c, args):
    if not (args.nginx and args.openssl):
        print("SKIP: nginx or openssl not found")
        return SKIP
    pki = make_pki(args.openssl, c.workdir)
    ca = open(pki.path("ca.pem"), "rb").read()
    with nginx_server(args.nginx, sub(c, "nginx"), c.www,
                      tls=Tls(pki.path("server.pem"), pki.path("server.key"))) as s:
        base = "https://localhost:%d/" % s.port
        rep, bridge = c.run("nginx over TLS 1.3, 16 KiB (chain, name, validity checked)",
                            base + "img-16k.bin", name="img-16k.bin", ca=ca)
        c.expect("  the firmware asked the bridge for the time",
                 bridge.commands.get("t", 0) >= 1, str(bridge.commands))
        c.run("nginx over TLS 1.3, wrong CA", base + "img-16k.bin", want=11,
              ca=open(pki.path("other-ca.pem"), "rb").read())
    with openssl_server(args.openssl, c.workdir, c.www, pki.path("server.pem"),
                        pki.path("server.key")) as s:
        c.run("openssl s_server -tls1_3 -WWW (body ends with the close)",
              "https://localhost:%d/img-24001.bin" % s.port, name="img-24001.bin", ca=ca)
    with openssl_server(args.openssl, c.workdir, c.www, pki.path("dated.pem"),
                        pki.path("dated.key"), name="s_server-dated") as s:
        c.run("s_server, control: made by `openssl ca` like the expired one, valid now",
              "https://localhost:%d/img-1b.bin" % s.port, name="img-1b.bin", ca=ca)
    for cert, what in (("other-name", "certificate for DNS:other.example"),
                       ("expired", "certificate expired 2021-01-01")):
        with openssl_server(args.openssl, c.workdir, c.www, pki.path(cert + ".pem"),
                            pki.path(cert + ".key"), name="s_server-" + cert) as s:
            c.run("s_server, %s" % what, "https://localhost:%d/img-16k.bin" % s.port,
                  want=11, ca=ca)
    return None


def case_faults(c, args):
    if not (args.nginx and args.openssl):
        print("SKIP: nginx or openssl not found")
        return SKIP
    name = "img-24001.bin"
    size = IMAGES[name]

    def through_proxy(port, fault, scheme, resumed_from, ca=None, idle_ms=5000):
        """`fault` on the first connection; the second must ask for the rest
        from at least `resumed_from`: the proxy then forwards at most the
        bytes before the fault, the rest of the image and SLACK_B of
        handshake and heads (a restart from 0 forwards the whole image again)."""
        with FaultProxy(("127.0.0.1", port), fault, "first") as proxy:
            c.run("%s through the proxy, %s on the first connection" % (scheme, fault),
                  "%s://localhost:%d/%s" % (scheme, proxy.port, name), name=name, ca=ca,
                  retries=3, idle_ms=idle_ms)
        cut = int(fault.split(":")[1])
        most = cut + size - resumed_from + SLACK_B
        c.expect("  %d connections, %d B forwarded (<= %d: resumed from >= %d)"
                 % (proxy.connections, proxy.forwarded, most, resumed_from),
                 proxy.connections == 2 and proxy.forwarded <= most)

    with nginx_server(args.nginx, sub(c, "nginx"), c.www) as s:
        # Written in 4 KiB steps (fota's receive buffer), page-aligned.
        through_proxy(s.port, "drop:9000", "http", 4096)
        through_proxy(s.port, "reset:15000", "http", 8192)
        # The connection stays open and silent: the firmware's receive
        # timeout (RECV answered "nothing in time") runs into the idle timeout.
        through_proxy(s.port, "stall:13000", "http", 12288, idle_ms=1000)
    pki = make_pki(args.openssl, c.workdir)
    with nginx_server(args.nginx, sub(c, "nginx-tls"), c.www,
                      tls=Tls(pki.path("server.pem"), pki.path("server.key"))) as s:
        ca = open(pki.path("ca.pem"), "rb").read()
        # The server's first flight is about 1 kB: 700 cuts the handshake.
        # 20000 comes after the first 16 KiB record (written, then resumed
        # from there); before it nothing is written and the resume starts at 0.
        through_proxy(s.port, "drop:700", "https", 0, ca)
        through_proxy(s.port, "reset:20000", "https", 16384, ca)
    return None


class Imgtool:
    """MCUboot's `imgtool` (PyPI): keys made at test time in `keydir`, images
    signed into `www`."""

    def __init__(self, command, keydir, www):
        self.command, self.keydir, self.www = command, keydir, www
        os.makedirs(keydir)

    def _run(self, *argv):
        return subprocess.run(self.command + list(argv), check=True, capture_output=True,
                              timeout=60).stdout

    def key(self, name):
        """A new ECDSA P-256 key `name`; returns its public key, PEM
        (`imgtool getpub -e pem`: the firmware's image_key)."""
        k = os.path.join(self.keydir, name + ".pem")
        self._run("keygen", "-k", k, "-t", "ecdsa-p256")
        return self._run("getpub", "-k", k, "-e", "pem")

    def sign(self, name, body, version, key, *extra):
        """www/name: `body` random bytes signed with `key` as an MCUboot image
        (512-byte header, TLVs after the body); returns its bytes."""
        raw = os.path.join(self.keydir, name + ".raw")
        with open(raw, "wb") as f:
            f.write(os.urandom(body))
        out = os.path.join(self.www, name)
        self._run("sign", "--key", os.path.join(self.keydir, key + ".pem"), "--header-size",
                  "0x200", "--pad-header", "--align", "4", "--version", version,
                  "--slot-size", "0x40000", *extra, raw, out)
        with open(out, "rb") as f:
            return f.read()


def signed_images(imgtool, workdir, www):
    """Into www: signed.bin (12000 B body, 1.3.0, security counter 7),
    bad-body.bin (the same with one body byte flipped), old.bin (1.1.0), all
    signed with the key "good". Returns {"good": PEM, "other": PEM}."""
    tool = Imgtool(imgtool, os.path.join(workdir, "keys"), www)
    pub = {name: tool.key(name) for name in ("good", "other")}
    bad = bytearray(tool.sign("signed.bin", SIGNED_BODY, "1.3.0", "good",
                              "--security-counter", "7"))
    tool.sign("old.bin", 4000, "1.1.0", "good")
    bad[0x200 + SIGNED_BODY // 2] ^= 0x20
    with open(os.path.join(www, "bad-body.bin"), "wb") as f:
        f.write(bad)
    return pub


def case_signed(c, args):
    if not (args.nginx and args.imgtool):
        print("SKIP: nginx or imgtool not found")
        return SKIP
    pub = signed_images(args.imgtool, c.workdir, c.www)
    key = dict(image_key=pub["good"], version="1.2.0")
    with nginx_server(args.nginx, sub(c, "nginx"), c.www) as s:
        base = "http://localhost:%d/" % s.port
        c.run("MCUboot image signed by imgtool, 1.3.0 after 1.2.0, security counter 7",
              base + "signed.bin", name="signed.bin", security_counter=7, **key)
        c.run("one body byte flipped", base + "bad-body.bin", want=FOTA_ERR_VERIFY,
              reason=REASON["image-hash"], **key)
        c.run("another key", base + "signed.bin", want=FOTA_ERR_VERIFY, reason=REASON["key-hash"],
              image_key=pub["other"], version="1.2.0")
        c.run("security counter 7 below the device's 8", base + "signed.bin", want=FOTA_ERR_VERIFY,
              reason=REASON["security-counter"], security_counter=8, **key)
        c.run("a NOR cell at offset 0 that does not program (one bit stays 1)",
              base + "signed.bin", want=FOTA_ERR_VERIFY, reason=FOTA_VERIFY_READBACK,
              stuck_bit_at=0, security_counter=7, **key)
        rep, _ = c.run("downgrade: 1.1.0 after 1.2.0", base + "old.bin", want=FOTA_ERR_VERIFY,
                       reason=REASON["downgrade"], **key)
        c.expect("  refused before the NOR was touched (no init, no erase)",
                 rep is not None and rep["inits"] == 0 and rep["erased"] == 0)
    return None


def case_resume(c, args):
    if not args.nginx:
        print("SKIP: nginx not found")
        return SKIP
    name = "img-66536.bin"
    size = IMAGES[name]
    chip = os.path.join(c.workdir, "nor-chip.bin")
    new_chip(chip)
    with nginx_server(args.nginx, sub(c, "nginx"), c.www) as s:
        url = "http://localhost:%d/%s" % (s.port, name)
        dump = os.path.join(c.workdir, "nor-cut.bin")
        cfg = config(url, None, 0, size, dump, state_interval=RESUME_INTERVAL)
        rc, out, rep, bridge = run_firmware(c.fw, cfg, chip=chip, cut_after=RESUME_CUT)
        newest = newest_record(chip)
        c.expect("run 1: power cut after %d B handed to the firmware; no report, nothing "
                 "committed; the saved chip's newest record (slot, sequence, live): %s"
                 % (bridge.relayed, newest),
                 bridge.power_cut and rep is None and not os.path.exists(dump)
                 and newest is not None and newest[2] and not bridge.errors,
                 "exit: %s\nbridge errors: %s\nfirmware output:\n%s"
                 % (rc, bridge.errors, out[-3000:]))
        rep, bridge = c.run("run 2 on the saved chip (resume hooks, state interval %d)"
                            % RESUME_INTERVAL, url, name=name, chip=chip,
                            state_interval=RESUME_INTERVAL)
        if rep is not None:
            resumed = rep["resumed"]
            most = size - resumed + SLACK_B
            print("     resumed from byte %d of %d, %d B fetched in run 2, %d state saves, %d ms"
                  % (resumed, size, bridge.relayed, rep["saves"], rep["ms"]))
            c.expect("  resumed from byte %d (> 0, one reopen), %d B fetched (<= %d: the rest)"
                     % (resumed, bridge.relayed, most),
                     resumed > 0 and rep["reopens"] == 1 and bridge.relayed <= most
                     and bridge.relayed < size)
        newest = newest_record(chip)
        c.expect("  the chip it left: the newest record is a tombstone %s" % (newest,),
                 newest is not None and not newest[2])
        # The committed image is not taken up again: the same request
        # downloads it whole.
        rep, bridge = c.run("run 3 on the chip run 2 left", url, name=name, chip=chip,
                            state_interval=RESUME_INTERVAL)
        c.expect("  from byte 0 (no reopen, one init), %d B fetched (>= %d)"
                 % (bridge.relayed, size),
                 rep is not None and rep["resumed"] == 0 and rep["reopens"] == 0
                 and rep["inits"] == 1 and bridge.relayed >= size)
    return None


def make_pki(openssl, workdir):
    """A CA, another CA, and certificates for localhost, another name and an
    expired one, made by openssl in workdir/pki."""
    pki = Pki(openssl, os.path.join(workdir, "pki"))
    pki.ca("ca", "/CN=fota test CA")
    pki.ca("other-ca", "/CN=fota other CA")
    pki.leaf("server", "ca", "/CN=localhost", "DNS:localhost")
    pki.leaf("other-name", "ca", "/CN=other.example", "DNS:other.example")
    pki.leaf("expired", "ca", "/CN=localhost", "DNS:localhost",
             start="20200101000000Z", end="20210101000000Z")
    # Control: made like the expired one, but valid from yesterday.
    now = time.time()
    pki.leaf("dated", "ca", "/CN=localhost", "DNS:localhost",
             start=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now - 86400)),
             end=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now + 30 * 86400)))
    return pki


def sub(c, name):
    d = os.path.join(c.workdir, name)
    os.makedirs(d)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fw", required=True, help="fota-fw.elf (built with TLS)")
    ap.add_argument("--case", required=True,
                    choices=["http", "https", "faults", "signed", "resume"])
    ap.add_argument("--nginx", default=shutil.which("nginx") or
                    ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None))
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    ap.add_argument("--imgtool", help="imgtool (default: on PATH, or python3 -m imgtool.main)")
    args = ap.parse_args()
    args.imgtool = [args.imgtool] if args.imgtool else imgtool_command()
    for tool in ("qemu-system-arm", "timeout"):
        if not shutil.which(tool):
            print("SKIP: %s not found; install it with scripts/setup.sh" % tool)
            return SKIP
    if not os.path.isfile(args.fw):
        print("FAIL: %s not found (the cortex_m_fw_build test builds it)" % args.fw)
        return 1
    workdir = tempfile.mkdtemp(prefix="fota-qemu-%s-" % args.case)
    try:
        www = os.path.join(workdir, "www")
        os.makedirs(www)
        for name, size in IMAGES.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(os.urandom(size))
        c = Case(os.path.abspath(args.fw), workdir, www)
        case = {"http": case_http, "https": case_https, "faults": case_faults,
                "signed": case_signed, "resume": case_resume}[args.case]
        try:
            if case(c, args) == SKIP:
                return SKIP
        except Failed as e:
            c.expect("servers", False, str(e))
        if c.failures:
            print("%d FAILED: %s" % (len(c.failures), "; ".join(c.failures)))
            return 1
        print("all passed")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
