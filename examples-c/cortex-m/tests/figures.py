#!/usr/bin/env python3
"""Figures of fota in the QEMU firmware (run by scripts/firmware-figures.sh).

  flash and static RAM: from the linker map of each firmware build, the input
      sections of libfota.a (fota and the compiler-builtins members it brings:
      memcpy/memset/memmove/memcmp, 64-bit division), plus the libc/libgcc
      members pulled in for libfota.a (cmake/fota.cmake's FOTA_LIBC_MEM,
      on by default, leaves mem* to newlib);
  peak stack: the painted stack of fota_request() and its hooks (REPORT
      stack=), for each kind of request (KINDS: http, https, http with an
      expected SHA-256, http with the read hook, a signed MCUboot image);
  instructions: under `qemu-system-arm -icount shift=0` one instruction is
      1 ns of virtual time and the firmware's timer ticks at 25 MHz: fota's
      instructions are 40 x the ticks inside fota_request() outside the hooks
      (REPORT fota_ticks=; the net, flash, sleep, random, time and log hooks
      are the platform's). Per body byte: the difference between an 80 KiB
      and a 16 KiB download over 64 KiB; per handshake: an https minus an
      http request of 1 byte; per verification: a signed image of 1 body
      byte (imgtool, key made at test time) with its key, minus the same
      file with only its SHA-256 (both read back): the ECDSA P-256
      verification, the key's parsing and hash, the MCUboot header and TLV
      checks. Resolution about +-3 ticks (120 instructions) per request.

    figures.py --builds DIR [--nginx P] [--openssl P] [--check]

DIR/tls, DIR/tls-4k, DIR/no-tls, DIR/no-tls-signed: the firmware built with
the default features, with tls-4k-records, without TLS, and without TLS but
with signed-images (scripts/firmware-figures.sh).

--check: fail when a painted-stack figure is more than 5 % above the
`qemu-stack` lines of scripts/size-budget.txt (BUDGETED).
"""

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
from bridge import config, run_firmware  # noqa: E402
from qemu import ROOT, STACK_MARGIN, Imgtool, budget, make_pki  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "examples-c", "posix", "tests"))
from servers import Tls, nginx_server  # noqa: E402
from verify import imgtool_command  # noqa: E402

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
    out["by_origin"] = {}
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
        out["by_origin"][origin] = out["by_origin"].get(origin, 0) + size
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


def request(fw, url, image, **opts):
    """One request under -icount that must commit `image` (bytes);
    `opts`: bridge.config() keywords."""
    cfg = config(url, expect_len=len(image), **opts)
    rc, out, rep, bridge = run_firmware(fw, cfg, icount=True, fill_s=0.02)
    if rc != 0 or rep is None or rep["verdict"] != "PASS" or bridge.errors:
        sys.exit("figures: %s failed (exit %s): %s\n%s" % (url, rc, bridge.errors, out[-2000:]))
    return rep


# Kinds of request: scheme, served file (n: body bytes), options. Without
# read hook unless said (the per-byte figures of http/https stay those of
# fota alone); "signed": the MCUboot image signed by imgtool, with its key,
# and read back, "signed-sha256": the same file with only its SHA-256 and
# read back (a signed minus a signed-sha256 request is the verification).
KINDS = {
    "http": ("http", "img-%d.bin", {}),
    "https": ("https", "img-%d.bin", {}),
    "http+sha256": ("http", "img-%d.bin", {"sha256": True}),
    "http+read-back": ("http", "img-%d.bin", {"read_back": True}),
    "signed": ("http", "signed-%d.bin", {"read_back": True, "key": True}),
    "signed-sha256": ("http", "signed-%d.bin", {"read_back": True, "sha256": True}),
}
VARIANTS = (  # name, FOTA_FEATURES, kinds of request
    ("tls", "", ("http", "https", "http+sha256", "http+read-back", "signed", "signed-sha256")),
    ("tls-4k", "tls-4k-records", ("https",)),
    ("no-tls", "none", ("http",)),
    ("no-tls-signed", "signed-images", ("http", "signed", "signed-sha256")),
)
# scripts/size-budget.txt `qemu-stack` line -> (build, kind) measured for it.
BUDGETED = {"http": ("tls", "http+read-back"), "https": ("tls", "https"),
            "signed": ("tls", "signed")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", required=True,
                    help="directory with one firmware build per variant: %s"
                    % ", ".join(v[0] for v in VARIANTS))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    ap.add_argument("--imgtool", help="imgtool (default: on PATH, or python3 -m imgtool.main)")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    args.imgtool = [args.imgtool] if args.imgtool else imgtool_command()
    if not args.imgtool:
        sys.exit("figures: imgtool not found (scripts/setup.sh installs it)")

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
        helpers = libc_for_fota(mp)
        helper_bytes = sum(s["by_origin"].get(m, 0) for m in helpers)
        print("| %s | %d | %d | %d | **%d** | %d | %d | **%d** | %d B (%d members) | %d |"
              % (variant, f["text"], f["rodata"], b["text"] + b["rodata"], flash,
                 f["data"] + b["data"], f["bss"] + b["bss"], static[variant],
                 helper_bytes, len(helpers),
                 s["all"]["text"] + s["all"]["rodata"] + s["all"]["data"]))

    reps = {}
    work = tempfile.mkdtemp(prefix="fota-figures-")
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        images = {}
        for n in (1, SMALL, LARGE):
            images["img-%d.bin" % n] = os.urandom(n)
            with open(os.path.join(www, "img-%d.bin" % n), "wb") as f:
                f.write(images["img-%d.bin" % n])
        tool = Imgtool(args.imgtool, os.path.join(work, "keys"), www)
        key = tool.key("fw")
        for n in (1, SMALL, LARGE):
            images["signed-%d.bin" % n] = tool.sign("signed-%d.bin" % n, n, "1.3.0", "fw")
        pki = make_pki(args.openssl, work)
        ca = open(pki.path("ca.pem"), "rb").read()
        os.makedirs(os.path.join(work, "nginx"))
        os.makedirs(os.path.join(work, "nginx-tls"))
        with nginx_server(args.nginx, os.path.join(work, "nginx"), www) as h, \
                nginx_server(args.nginx, os.path.join(work, "nginx-tls"), www,
                             tls=Tls(pki.path("server.pem"), pki.path("server.key"))) as t:
            ports = {"http": h.port, "https": t.port}

            def run(variant, kind, n):
                scheme, name, how = KINDS[kind]
                image = images[name % n]
                return request(
                    os.path.join(args.builds, variant, "fota-fw.elf"),
                    "%s://localhost:%d/%s" % (scheme, ports[scheme], name % n), image,
                    ca=ca if scheme == "https" else None, read_back=how.get("read_back", False),
                    image_sha256=hashlib.sha256(image).digest() if how.get("sha256") else None,
                    image_key=key if how.get("key") else None,
                    version="1.2.0" if how.get("key") else None)

            for variant, _, kinds in VARIANTS:
                for kind in kinds:
                    for n in (1, SMALL, LARGE):
                        reps[(variant, kind, n)] = run(variant, kind, n)
            # Repeatability: the same https and signed requests again.
            again = {kind: run("tls", kind, n) for kind, n in (("https", SMALL), ("signed", 1))}
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
    for kind, rep in again.items():
        n = SMALL if kind == "https" else 1
        print("| tls | %s (again) | %d | %d | %d |"
              % (kind, n, rep["fota_ticks"] * INSNS_PER_TICK, rep["stack"]))

    print("\n## derived\n")
    print("| build | request | instructions per body byte | per handshake | per verification "
          "| peak stack | RAM in all (static + stack) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    stacks = {}
    for variant, _, kinds in VARIANTS:
        for kind in kinds:
            per = (insns((variant, kind, LARGE)) - insns((variant, kind, SMALL))) \
                / (LARGE - SMALL)
            hs = verification = "-"
            if kind == "https" and (variant, "http", 1) in reps:
                hs = "%d" % (insns((variant, "https", 1)) - insns((variant, "http", 1)))
            elif kind == "https":
                hs = "%d (minus tls http)" % (insns((variant, "https", 1))
                                              - insns(("tls", "http", 1)))
            if kind == "signed":
                verification = "%d" % (insns((variant, "signed", 1))
                                       - insns((variant, "signed-sha256", 1)))
            stack = max(reps[(variant, kind, n)]["stack"] for n in (1, SMALL, LARGE))
            stacks[(variant, kind)] = stack
            print("| %s | %s | %.3f | %s | %s | %d | %d |"
                  % (variant, kind, per, hs, verification, stack, static[variant] + stack))

    if args.check:
        limits = budget()
        bad = False
        for line, (variant, kind) in BUDGETED.items():
            top = int(limits[line] * (1 + STACK_MARGIN))
            got = stacks[(variant, kind)]
            bad |= got > top
            print("firmware-figures: qemu-stack %s: %s painted stack (%s build) %d B, budget %d B "
                  "(+5%%: %d B): %s" % (line, kind, variant, got, limits[line], top,
                                        "ok" if got <= top else "FAIL"))
        if bad:
            print("firmware-figures: if intended, update scripts/size-budget.txt and BENCHMARKS.md")
            return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
