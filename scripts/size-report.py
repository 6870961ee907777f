#!/usr/bin/env python3
"""Section sizes of the library's share of a linked image (used by size.sh).

usage: size-report.py ELF MAP

ELF was linked from libfota.a alone, with --gc-sections and every fota_*
entry point as a GC root, so each allocated byte in it is the library's
share of a firmware that calls the whole API. Prints one line of key=value
pairs: text, rodata (including unwind tables: .ARM.exidx, .eh_frame), data,
bss, unwind, builtins_text (the part of text from the compiler-builtins
members of the archive: memcpy/memmove/memset/64-bit division) and of it
builtins_mem (memcpy/memmove/memset/memcmp/bcmp/strlen/__aeabi_mem*: what the
firmware's libc provides instead with cmake's FOTA_LIBC_MEM).
"""
import re
import struct
import sys

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHT_NOBITS = 8


def sections(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        sys.exit(f"{path}: not a 32-bit ELF")
    end = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(end + "I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
    hdrs = [struct.unpack_from(end + "IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = hdrs[shstrndx]
    for h in hdrs:
        name_off, sh_type, flags, _addr, _off, size = h[:6]
        raw = data[strtab[4] + name_off:]
        yield raw[:raw.index(b"\0")].decode(), sh_type, flags, size


# The C names and compiler_builtins::mem::* (the code behind them).
MEM = re.compile(r"^\.text\.((memcpy|memmove|memset|memcmp|bcmp|strlen|__aeabi_mem(cpy|move|set|clr)[48]?)$"
                 r"|_RNv.*17compiler_builtins3mem)")


def main():
    elf, map_path = sys.argv[1], sys.argv[2]
    out = dict(text=0, rodata=0, data=0, bss=0, unwind=0, builtins_text=0, builtins_mem=0)
    for name, sh_type, flags, size in sections(elf):
        if not flags & SHF_ALLOC:
            continue
        if flags & SHF_EXECINSTR:
            out["text"] += size
        elif sh_type == SHT_NOBITS:
            out["bss"] += size
        elif flags & SHF_WRITE:
            out["data"] += size
        else:
            out["rodata"] += size
            if name in (".ARM.exidx", ".eh_frame", ".eh_frame_hdr"):
                out["unwind"] += size
    # lld map: "VMA LMA Size Align Out In Symbol"; input sections are the
    # lines naming "archive(member):(section)".
    pat = re.compile(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S*\(([^)]*)\):\((\.text[^)]*)\)")
    for line in open(map_path):
        m = pat.match(line)
        if m and m.group(2).startswith("compiler_builtins"):
            out["builtins_text"] += int(m.group(1), 16)
            if MEM.match(m.group(3)):
                out["builtins_mem"] += int(m.group(1), 16)
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
