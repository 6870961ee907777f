#!/usr/bin/env python3
"""Figures of fota in the QEMU firmware (run by scripts/firmware-figures.sh).

  flash and static RAM: from the linker map of each firmware build, the input
      sections of libfota.a (fota and the compiler-builtins members it brings:
      memcpy/memset/memmove/memcmp, 64-bit division), plus any libc/libgcc
      member pulled in for libfota.a (none today: libfota.a comes first on
      the link line and supplies all of them);
  peak stack: the painted stack of fota_request() and its hooks (REPORT
      stack=), for an HTTP and an HTTPS request;
  instructions: under `qemu-system-arm -icount shift=0` one instruction is
      1 ns of virtual time and the firmware's timer ticks at 25 MHz: fota's
      instructions are 40 x the ticks inside fota_request() outside the hooks
      (REPORT fota_ticks=; the net, flash, sleep, random, time and log hooks
      are the platform's). Per body byte: the difference between an 80 KiB
      and a 16 KiB download over 64 KiB; per handshake: an https minus an
      http request of 1 byte. Resolution about +-3 ticks (120 instructions)
      per request.

    figures.py --builds DIR [--nginx P] [--openssl P] [--check]

DIR/tls, DIR/tls-4k, DIR/no-tls: the firmware built with the default
features, with tls-4k-records, and without TLS (scripts/firmware-figures.sh).

--check: fail when a painted-stack figure is more than 5 % above the
`qemu-stack` lines of scripts/size-budget.txt.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
from bridge import config, run_firmware  # noqa: E402
from qemu import ROOT, STACK_MARGIN, budget, make_pki  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "examples-c", "posix", "tests"))
from servers import Tls, nginx_server  # noqa: E402

INSNS_PER_TICK = 40       # 1 ns per instruction / 25 MHz timer
SMALL, LARGE = 16384, 81920
ENTRY = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
NAME_ONLY = re.compile(r"^ (\.\S+|COMMON)$")
HELPER_ARCHIVES = re.compile(r"lib(c|c_nano|g|g_nano|gcc|m|nosys)\.a\(")


def kind(section):
    if section.startswith(".text"):
        return "text"
    if section.startswith(".rodata") or section.startswith(".ARM.ex"):
        return "rodata"
    if section.startswith(".data"):
        return "data"
    if section.startswith(".bss") or section == "COMMON":
        return "bss"
    return None


def map_sizes(path):
    """{'fota': {...}, 'builtins': {...}, 'libc': {...}, 'firmware': {...}}:
    bytes per kind (text, rodata, data, bss) of the input sections kept."""
    out = {k: dict(text=0, rodata=0, data=0, bss=0) for k in ("fota", "builtins", "libc", "all")}
    lines = open(path).read().split("Linker script and memory map", 1)[1].splitlines()
    pending = None
    for line in lines:
        if pending is not None:
            line = " " + pending + " " + line.strip()
            pending = None
        m = NAME_ONLY.match(line)
        if m:
            pending = m.group(1)
            continue
        m = ENTRY.match(line)
        if not m:
            continue
        sec, addr, size, origin = m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)
        k = kind(sec)
        if k is None or size == 0 or (addr == 0 and k != "text"):
            continue
        out["all"][k] += size
        if "libfota.a(" in origin:
            out["builtins" if "compiler_builtins" in origin else "fota"][k] += size
        elif HELPER_ARCHIVES.search(origin):
            out["libc"][k] += size
    return out


def libc_for_fota(path):
    """libc/libgcc members the map says were pulled in for libfota.a."""
    head = open(path).read().split("Discarded input sections", 1)[0]
    members = re.findall(r"^(\S+\.a\([^)]*\))\n\s+(\S+)", head, re.M)
    return [m for m, by in members if HELPER_ARCHIVES.search(m) and "libfota.a(" in by]


def request(fw, url, size, www, ca=None, name=None):
    cfg = config(url, ca, 0, size, None, 0)
    rc, out, rep, bridge = run_firmware(fw, cfg, icount=True, fill_s=0.02)
    if rc != 0 or rep is None or rep["verdict"] != "PASS" or bridge.errors:
        sys.exit("figures: %s failed (exit %s): %s\n%s" % (url, rc, bridge.errors, out[-2000:]))
    return rep


VARIANTS = (  # name, FOTA_FEATURES, requests
    ("tls", "", ("http", "https")),
    ("tls-4k", "tls-4k-records", ("https",)),
    ("no-tls", "none", ("http",)),
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", required=True,
                    help="directory with one firmware build per variant: %s"
                    % ", ".join(v[0] for v in VARIANTS))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    print("## sizes (linker maps, arm-none-eabi-gcc -Os, --gc-sections, LTO)\n")
    print("| build | fota .text | .rodata | compiler-builtins | flash (all three) "
          "| .data | .bss | static RAM | libc/libgcc for fota | whole firmware flash |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    static = {}
    for variant, _, _ in VARIANTS:
        mp = os.path.join(args.builds, variant, "fota-fw.map")
        s = map_sizes(mp)
        f, b = s["fota"], s["builtins"]
        flash = f["text"] + f["rodata"] + b["text"] + b["rodata"]
        static[variant] = f["data"] + f["bss"] + b["data"] + b["bss"]
        print("| %s | %d | %d | %d | **%d** | %d | %d | **%d** | %s | %d |"
              % (variant, f["text"], f["rodata"], b["text"] + b["rodata"], flash,
                 f["data"] + b["data"], f["bss"] + b["bss"], static[variant],
                 ", ".join(libc_for_fota(mp)) or "none",
                 s["all"]["text"] + s["all"]["rodata"] + s["all"]["data"]))

    reps = {}
    work = tempfile.mkdtemp(prefix="fota-figures-")
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        for n in (1, SMALL, LARGE):
            with open(os.path.join(www, "img-%d.bin" % n), "wb") as f:
                f.write(os.urandom(n))
        pki = make_pki(args.openssl, work)
        ca = open(pki.path("ca.pem"), "rb").read()
        os.makedirs(os.path.join(work, "nginx"))
        os.makedirs(os.path.join(work, "nginx-tls"))
        with nginx_server(args.nginx, os.path.join(work, "nginx"), www) as h, \
                nginx_server(args.nginx, os.path.join(work, "nginx-tls"), www,
                             tls=Tls(pki.path("server.pem"), pki.path("server.key"))) as t:
            ports = {"http": h.port, "https": t.port}
            for variant, _, schemes in VARIANTS:
                fw = os.path.join(args.builds, variant, "fota-fw.elf")
                for scheme in schemes:
                    for n in (1, SMALL, LARGE):
                        url = "%s://localhost:%d/img-%d.bin" % (scheme, ports[scheme], n)
                        reps[(variant, scheme, n)] = request(
                            fw, url, n, www, ca if scheme == "https" else None)
            # Repeatability: the same https request again.
            again = request(os.path.join(args.builds, "tls", "fota-fw.elf"),
                            "https://localhost:%d/img-%d.bin" % (t.port, SMALL), SMALL, www, ca)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def insns(key):
        return reps[key]["fota_ticks"] * INSNS_PER_TICK

    print("\n## requests (qemu-system-arm -M mps2-an386 -icount shift=0; nginx on loopback "
          "through the bridge)\n")
    print("| build | request | body bytes | fota instructions | painted stack (B) |")
    print("|---|---|---:|---:|---:|")
    for key, rep in reps.items():
        print("| %s | %s | %d | %d | %d |" % (key + (insns(key), rep["stack"])))
    print("| tls | https (again) | %d | %d | %d |"
          % (SMALL, again["fota_ticks"] * INSNS_PER_TICK, again["stack"]))

    print("\n## derived\n")
    print("| build | request | instructions per body byte | per handshake | peak stack "
          "| RAM in all (static + stack) |")
    print("|---|---|---:|---:|---:|---:|")
    stacks = {}
    for variant, _, schemes in VARIANTS:
        for scheme in schemes:
            per = (insns((variant, scheme, LARGE)) - insns((variant, scheme, SMALL))) \
                / (LARGE - SMALL)
            hs = "-"
            if scheme == "https" and (variant, "http", 1) in reps:
                hs = "%d" % (insns((variant, "https", 1)) - insns((variant, "http", 1)))
            elif scheme == "https":
                hs = "%d (minus tls http)" % (insns((variant, "https", 1))
                                              - insns(("tls", "http", 1)))
            stack = max(reps[(variant, scheme, n)]["stack"] for n in (1, SMALL, LARGE))
            stacks[(variant, scheme)] = stack
            print("| %s | %s | %.3f | %s | %d | %d |"
                  % (variant, scheme, per, hs, stack, static[variant] + stack))

    if args.check:
        limits = budget()
        bad = False
        for scheme in ("http", "https"):
            top = int(limits[scheme] * (1 + STACK_MARGIN))
            got = stacks[("tls", scheme)]
            bad |= got > top
            print("firmware-figures: %s painted stack (tls build) %d B, budget %d B (+5%%: %d B): %s"
                  % (scheme, got, limits[scheme], top, "ok" if got <= top else "FAIL"))
        if bad:
            print("firmware-figures: if intended, update scripts/size-budget.txt and BENCHMARKS.md")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
