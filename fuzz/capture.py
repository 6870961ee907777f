#!/usr/bin/env python3
"""Captures real HTTP responses and writes the fuzz seed corpora.

Starts nginx (HTTP/1.1, Content-Length, Range), `python3 -m http.server`
(HTTP/1.0, body until close) and a small chunked server on 127.0.0.1 in a
temporary directory, requests a few small files (plus a 404, a redirect, a
HEAD and Range requests) over raw sockets, saves the raw response bytes, and
turns them into seeds in the input format of each target (see
fuzz/src/lib.rs):

    fuzz/corpus/head/      raw responses
    fuzz/corpus/chunked/   split header + chunked bodies
    fuzz/corpus/url/       mode, port, URL / Location / parameters
    fuzz/corpus/session/   config + control stream + responses

    fuzz/capture.py [--out fuzz/corpus] [--nginx PATH]

Existing seeds with the same names are overwritten; nothing else is touched.
Python 3 standard library only; every server is stopped on exit.
"""

import argparse
import os
import random
import shutil
import socket
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "examples-c", "posix", "tests"))
from servers import chunked_server, http_server, nginx_server  # noqa: E402

FILES = {"a100.bin": 100, "b1k.bin": 1024, "c3k.bin": 3000}
CONN_SEP = b"\xfe\xffNEXT\xff\xfe"   # fuzz/src/lib.rs CONN_SEP
# Small chunks, so that 3 KB files have many (hex in both cases, extensions
# and a trailer come from the server in servers.py).
CHUNK_SIZES = [1, 7, 100, 300, 3, 1500]


def fetch(port, target, method="GET", headers=()):
    """Raw bytes of the response to one request (Connection: close)."""
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: fota/0.1.0\r\n" \
          "Accept-Encoding: identity\r\n" % (method, target, port)
    for h in headers:
        req += h + "\r\n"
    req += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req.encode())
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out
            out += data


def split_head(resp):
    i = resp.index(b"\r\n\r\n") + 4
    return resp[:i], resp[i:]


def header(resp, name):
    head, _ = split_head(resp)
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower():
            return v.strip().decode()
    return None


def session_seed(responses, granularity=0, max_len=0, retries=0, redirects=0,
                 control=b"", faults=0, fail_write=0, busy=0):
    """fuzz/src/lib.rs check_session format."""
    g = 0 if granularity == 0 else granularity.bit_length()  # 1 << (n-1)
    config = bytes([g, *struct.pack("<H", max_len), retries | (redirects << 2),
                    faults, fail_write, busy, len(control)])
    return config + control + CONN_SEP.join(responses)


def url_seed(mode, port, fields):
    return bytes([mode]) + struct.pack("<H", port) + "\n".join(fields).encode()


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def capture(nginx, httpsrv, chunked):
    """Raw responses of the three servers (their ports), by seed name."""
    raw = {}
    for name in FILES:
        raw["nginx-" + name] = fetch(nginx, "/" + name)
        raw["httpserver-" + name] = fetch(httpsrv, "/" + name)
        raw["chunked-" + name] = fetch(chunked, "/" + name)
    raw["chunked-close-b1k.bin"] = fetch(chunked, "/close/b1k.bin")
    raw["nginx-404"] = fetch(nginx, "/missing.bin")
    raw["httpserver-404"] = fetch(httpsrv, "/missing.bin")
    raw["chunked-404"] = fetch(chunked, "/missing.bin")
    raw["nginx-301-dir"] = fetch(nginx, "/dir")
    raw["nginx-head-b1k.bin"] = fetch(nginx, "/b1k.bin", method="HEAD")
    raw["nginx-refusal.json"] = fetch(nginx, "/refusal.json")
    etag = header(raw["nginx-c3k.bin"], b"ETag")
    raw["nginx-range-1000-c3k.bin"] = fetch(
        nginx, "/c3k.bin", headers=["Range: bytes=1000-", "If-Range: %s" % etag])
    raw["nginx-range-badetag-c3k.bin"] = fetch(
        nginx, "/c3k.bin", headers=["Range: bytes=1000-", 'If-Range: "other"'])
    raw["nginx-range-416-c3k.bin"] = fetch(nginx, "/c3k.bin",
                                           headers=["Range: bytes=5000-"])
    raw["httpserver-range-ignored-c3k.bin"] = fetch(httpsrv, "/c3k.bin",
                                                    headers=["Range: bytes=1000-"])
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()

    rng = random.Random(8)
    work = tempfile.mkdtemp(prefix="fota-capture-")
    try:
        www = os.path.join(work, "www")
        os.makedirs(os.path.join(www, "dir"))
        for name, size in FILES.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(bytes(rng.randrange(256) for _ in range(size)))
        with open(os.path.join(www, "dir", "index.html"), "wb") as f:
            f.write(b"<html>dir</html>\n")
        with open(os.path.join(www, "refusal.json"), "wb") as f:
            f.write(b'{"code":27,"msg":"already the newest version"}')
        dirs = [os.path.join(work, d) for d in ("nginx", "http", "chunked")]
        for d in dirs:
            os.makedirs(d)
        with nginx_server(args.nginx, dirs[0], www) as ng, \
                http_server(dirs[1], www) as hs, \
                chunked_server(dirs[2], www, CHUNK_SIZES) as cs:
            raw = capture(ng.port, hs.port, cs.port)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = args.out
    # head: every raw response.
    for name, resp in raw.items():
        write(out, "head", name, resp)

    # chunked: bodies of the chunked responses, whole and in parts.
    for name in FILES:
        _, body = split_head(raw["chunked-" + name])
        write(out, "chunked", name + "-whole", b"\x00" + body)
        write(out, "chunked", name + "-split", bytes([3, 2, 9, 150]) + body)
    write(out, "chunked", "ext-trailers",
          b"\x00" + b"5;a=\"b c\"\r\nhello\r\n1\n \r\n0\r\nX-Sum: 1\r\nY: 2\n\r\n")

    # session: one response each, then the interesting combinations.
    for name, resp in raw.items():
        write(out, "session", name, session_seed([resp]))
    c3k = raw["nginx-c3k.bin"]
    head, _ = split_head(c3k)
    dropped = c3k[:len(head) + 1000]
    # Dropped after 1000 body bytes (reset), resumed with a real 206.
    write(out, "session", "resume-206", session_seed(
        [dropped, raw["nginx-range-1000-c3k.bin"]], retries=2, control=b"\x20\x00"))
    # Resume refused by If-Range: a 200 with the whole image instead.
    write(out, "session", "resume-200", session_seed(
        [dropped, raw["nginx-range-badetag-c3k.bin"]], retries=2, control=b"\x20\x00"))
    write(out, "session", "resume-416", session_seed(
        [dropped, raw["nginx-range-416-c3k.bin"], c3k], retries=3, control=b"\x20\x00\x00"))
    # Granularity 256 with small reads, max_len just enough / too small.
    write(out, "session", "granular-small-reads", session_seed(
        [c3k], granularity=256, max_len=3000, control=b"\x00" + bytes(range(0, 120, 7))))
    write(out, "session", "too-large", session_seed([c3k], max_len=2999))
    # Chunked with would-block and tiny reads; until-close.
    write(out, "session", "chunked-wouldblock", session_seed(
        [raw["chunked-b1k.bin"]], granularity=64,
        control=b"\x00\xf0\x03\xf1\x10\x05\xf2\x80"))
    # A redirect followed to the image.
    write(out, "session", "redirect", session_seed(
        [raw["nginx-301-dir"], raw["nginx-a100.bin"]], redirects=1))
    # Flash faults: the first write fails; done busy then ok; end fails.
    write(out, "session", "fault-write", session_seed([c3k], granularity=512, fail_write=1))
    write(out, "session", "fault-busy", session_seed([c3k], faults=0x80, busy=5))
    write(out, "session", "fault-end", session_seed([c3k], faults=0x84))

    # url: handmade URLs and parameters, plus the captured Location.
    loc = header(raw["nginx-301-dir"], b"Location") or "/dir/"
    base = "http://127.0.0.1:8080/c3k.bin"
    seeds = {
        "custom": (0x01, 0, [base, loc, "b0wlkey", "fotademo_LuatOS-SoC_AIR601",
                             "1025.1.0", "C81234567830"]),
        "platform": (0x05, 0, ["", "/api/x", "b0wl", "fw", "1.2.3", "861234567890123"]),
        "query": (0x02, 8080, ["http://fw.example.com:81/p/a.bin?x=1&", "img.bin", "k y",
                               "", "2.0.0", "aa:bb:cc"]),
        "ipv6": (0x03 | (20 << 3), 0, ["https://[::1]:8443?q#f", "?v=2", "", "n", "v",
                                       "uid-\u00e9"]),
        "verbatim": (0x00, 0, ["###http://h/x?y", "#frag", "k", "", "", ""]),
        "relative": (0x01 | (8 << 3), 443, ["HTTP://Example.COM", "//cdn.example/fw",
                                            "k", "f", "1.0.0", "i"]),
    }
    for name, (mode, port, fields) in seeds.items():
        write(out, "url", name, url_seed(mode, port, fields))

    total = sum(len(os.listdir(os.path.join(out, t))) for t in os.listdir(out))
    print("capture: %d seeds under %s" % (total, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
