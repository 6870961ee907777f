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

    figures.py --tls-fw DIR --no-tls-fw DIR [--nginx P] [--openssl P] [--check]

--check: fail when a painted-stack figure is more than 5 % above the
`qemu-stack` lines of scripts/size-budget.txt.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tls-fw", required=True, help="build dir of the TLS firmware")
    ap.add_argument("--no-tls-fw", required=True, help="build dir of the no-TLS firmware")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    print("## sizes (linker maps, arm-none-eabi-gcc -Os, --gc-sections, LTO)\n")
    print("| build | fota .text | .rodata | compiler-builtins .text | flash (all three) "
          "| .data | .bss | static RAM | libc/libgcc for fota | whole firmware flash |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    static = {}
    for variant, d in (("TLS", args.tls_fw), ("no TLS", args.no_tls_fw)):
        mp = os.path.join(d, "fota-fw.map")
        s = map_sizes(mp)
        f, b = s["fota"], s["builtins"]
        flash = f["text"] + f["rodata"] + b["text"] + b["rodata"]
        ram = f["data"] + f["bss"] + b["data"] + b["bss"]
        static[variant] = ram
        extra = libc_for_fota(mp)
        print("| %s | %d | %d | %d | **%d** | %d | %d | **%d** | %s | %d |"
              % (variant, f["text"], f["rodata"], b["text"] + b["rodata"], flash, f["data"] + b["data"],
                 f["bss"] + b["bss"], ram, ", ".join(extra) or "none",
                 s["all"]["text"] + s["all"]["rodata"] + s["all"]["data"]))

    work = tempfile.mkdtemp(prefix="fota-figures-")
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        for n in (1, SMALL, LARGE):
            with open(os.path.join(www, "img-%d.bin" % n), "wb") as f:
                f.write(os.urandom(n))
        pki = make_pki(args.openssl, work)
        ca = open(pki.path("ca.pem"), "rb").read()
        tls_fw = os.path.join(args.tls_fw, "fota-fw.elf")
        plain_fw = os.path.join(args.no_tls_fw, "fota-fw.elf")
        os.makedirs(os.path.join(work, "nginx"))
        os.makedirs(os.path.join(work, "nginx-tls"))
        reps = {}
        with nginx_server(args.nginx, os.path.join(work, "nginx"), www) as h, \
                nginx_server(args.nginx, os.path.join(work, "nginx-tls"), www,
                             tls=Tls(pki.path("server.pem"), pki.path("server.key"))) as t:
            for fw_name, fw in (("TLS", tls_fw), ("no TLS", plain_fw)):
                for n in (1, SMALL, LARGE):
                    reps[(fw_name, "http", n)] = request(
                        fw, "http://localhost:%d/img-%d.bin" % (h.port, n), n, www)
            for n in (1, SMALL, LARGE):
                reps[("TLS", "https", n)] = request(
                    tls_fw, "https://localhost:%d/img-%d.bin" % (t.port, n), n, www, ca)
            again = request(tls_fw, "https://localhost:%d/img-%d.bin" % (t.port, SMALL), SMALL,
                            www, ca)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def insns(key):
        return reps[key]["fota_ticks"] * INSNS_PER_TICK

    print("\n## requests (qemu-system-arm -M mps2-an386 -icount shift=0; nginx on loopback "
          "through the bridge)\n")
    print("| build | request | body bytes | fota instructions | painted stack (B) |")
    print("|---|---|---:|---:|---:|")
    for (fw_name, scheme, n), rep in sorted(reps.items()):
        print("| %s | %s | %d | %d | %d |" % (fw_name, scheme, n, insns((fw_name, scheme, n)),
                                              rep["stack"]))
    print("| TLS | https (again) | %d | %d | %d |" % (SMALL, again["fota_ticks"] * INSNS_PER_TICK,
                                                      again["stack"]))

    span = LARGE - SMALL
    print("\n## derived\n")
    print("| figure | value |")
    print("|---|---:|")
    stacks = {}
    for fw_name in ("TLS", "no TLS"):
        per = (insns((fw_name, "http", LARGE)) - insns((fw_name, "http", SMALL))) / span
        print("| instructions per body byte, http, %s build | %.3f |" % (fw_name, per))
    per = (insns(("TLS", "https", LARGE)) - insns(("TLS", "https", SMALL))) / span
    print("| instructions per body byte, https (16 KiB records) | %.1f |" % per)
    print("| instructions per handshake (https minus http, 1 B) | %d |"
          % (insns(("TLS", "https", 1)) - insns(("TLS", "http", 1))))
    stacks["http"] = max(r["stack"] for (fw, s, _), r in reps.items() if s == "http")
    stacks["https"] = max(r["stack"] for (fw, s, _), r in reps.items() if s == "https")
    stacks["http-no-tls"] = max(r["stack"] for (fw, s, _), r in reps.items()
                                if s == "http" and fw == "no TLS")
    print("| peak stack, http (TLS build / no-TLS build) | %d / %d B |"
          % (max(r["stack"] for (fw, s, _), r in reps.items() if s == "http" and fw == "TLS"),
             stacks["http-no-tls"]))
    print("| peak stack, https | %d B |" % stacks["https"])
    print("| RAM in all, https (static + peak stack) | %d B |" % (static["TLS"] + stacks["https"]))
    print("| RAM in all, no TLS (static + peak stack) | %d B |"
          % (static["no TLS"] + stacks["http-no-tls"]))

    if args.check:
        limits = budget()
        bad = False
        for k in ("http", "https"):
            top = int(limits[k] * (1 + STACK_MARGIN))
            ok = stacks[k] <= top
            bad |= not ok
            print("firmware-figures: %s painted stack %d B, budget %d B (+5%%: %d B): %s"
                  % (k, stacks[k], limits[k], top, "ok" if ok else "FAIL"))
        if bad:
            print("firmware-figures: if intended, update scripts/size-budget.txt and BENCHMARKS.md")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
