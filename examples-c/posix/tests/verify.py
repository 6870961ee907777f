#!/usr/bin/env python3
"""Verified images through fota-posix: MCUboot images signed by the real
`imgtool` (keys made at test time) served by nginx and the chunked server,
every kind of tampering refused with 10 and no file; the caller's expected
SHA-256 and length; the server's Repr-Digest; a signed image resumed
through the fault proxy.

    verify.py --fota PATH --case {signed,digest,resume} [--nginx PATH] [--imgtool PATH]

Exit status: 0 passed, 1 failed, 77 skipped (no imgtool or nginx).
"""

import argparse
import hashlib
import base64
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e import FOTA_TIMEOUT_MS, SKIP, run_case
from faultproxy import FaultProxy
from hostile import Handler, Hostile, response
from servers import chunked_server, nginx_server

VERIFY_ERR = (10, "FOTA_ERR_VERIFY")
# fota_progress_t.verify_reason values (fota.h FOTA_VERIFY_*).
REASON = {"length": 1, "sha256": 2, "repr-digest": 3, "header": 4, "tlv": 5, "image-hash": 6,
          "key-hash": 7, "signature": 8, "downgrade": 9, "security-counter": 10}


def imgtool_command():
    """imgtool on PATH, else the installed module, else None."""
    if shutil.which("imgtool"):
        return [shutil.which("imgtool")]
    probe = subprocess.run([sys.executable, "-c", "import imgtool.main"], capture_output=True)
    return [sys.executable, "-m", "imgtool.main"] if probe.returncode == 0 else None


def imgtool(args, *argv):
    subprocess.run(args.imgtool + list(argv), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_images(args, workdir, www):
    """Keys and images: returns {name: bytes} of what is served, and key paths."""
    d = os.path.join(workdir, "keys")
    os.makedirs(d)
    keys = {}
    for name in ("good", "other"):
        k = os.path.join(d, name + ".pem")
        imgtool(args, "keygen", "-k", k, "-t", "ecdsa-p256")
        pub = os.path.join(d, name + ".pub.pem")
        with open(pub, "wb") as f:
            f.write(subprocess.run(args.imgtool + ["getpub", "-k", k, "-e", "pem"], check=True,
                                   capture_output=True, timeout=60).stdout)
        keys[name] = (k, pub)
    images = {}

    def sign(name, size, version, extra=(), key="good"):
        raw = os.path.join(d, name + ".raw")
        with open(raw, "wb") as f:
            f.write(os.urandom(size))
        out = os.path.join(www, name)
        k = ["--key", keys[key][0]] if key else []
        imgtool(args, "sign", *k, "--header-size", "0x200", "--pad-header", "--align", "4",
                "--version", version, "--slot-size", "0x1000000", *extra, raw, out)
        images[name] = open(out, "rb").read()

    sign("small.bin", 1000, "1.2.3+4")
    sign("big.bin", 3 * 1024 * 1024 + 17, "1.3.0")
    sign("counted.bin", 50_000, "1.2.3", ["--security-counter", "7"])
    sign("old.bin", 50_000, "1.1.0")
    sign("unsigned.bin", 50_000, "1.2.3", key=None)
    good = images["small.bin"]
    body_end = 0x200 + 1000
    info = body_end  # no protected TLVs: the TLV info follows the body
    tampered = {
        "bad-header.bin": 4,                 # load address
        "bad-body.bin": 0x200 + 500,
        "bad-hash-tlv.bin": info + 4 + 4 + 5,
        "bad-signature.bin": len(good) - 10,
    }
    for name, at in tampered.items():
        b = bytearray(good)
        b[at] ^= 0x20
        images[name] = bytes(b)
    c = bytearray(images["counted.bin"])
    c[0x200 + 50_000 + 4 + 4] ^= 0x01        # the protected SEC_CNT value
    images["bad-protected.bin"] = bytes(c)
    images["truncated.bin"] = good[:-20]
    images["raw.bin"] = os.urandom(5000)
    b = bytearray(good)
    b[info + 6:info + 8] = (4000).to_bytes(2, "little")  # the first TLV's length: past the end
    images["tlv-past-end.bin"] = bytes(b)
    for name, data in images.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(data)
    return images, keys


def sub(workdir, name):
    d = os.path.join(workdir, name)
    os.makedirs(d)
    return d


def fetch(c, what, url, extra, want, images=None, name=None, reason=None, no_init=False):
    out = c.out_path()
    rc, _, err, _ = c.expect_result(what, ["--verbose", "--timeout", FOTA_TIMEOUT_MS] + extra +
                                    ["--out", out, url], *want)
    if want[0] == 0:
        got = open(out, "rb").read() if os.path.isfile(out) else b""
        c.expect("  committed byte-identical", got == images[name])
        os.unlink(out)
    else:
        c.no_output(out)
    if reason is not None:
        c.expect("  verify reason %d (%s)" % (REASON[reason], reason),
                 "verify reason %d\n" % REASON[reason] in err, err[-1500:])
    if no_init:
        c.expect("  refused before the flash was initialised", "flash: init" not in err,
                 err[-1500:])


def case_signed(c, args, workdir, www):
    images, keys = make_images(args, workdir, www)
    key = ["--image-key", keys["good"][1], "--version", "1.2.0"]
    with nginx_server(args.nginx, sub(workdir, "nginx"), www) as n, \
            chunked_server(sub(workdir, "chunked"), www) as ch:
        for base, server in (("http://127.0.0.1:%d/" % n.port, "nginx"),
                             ("http://127.0.0.1:%d/" % ch.port, "chunked")):
            for name in ("small.bin", "big.bin", "counted.bin"):
                fetch(c, "%s %s signed 1.x, --version 1.2.0" % (server, name), base + name, key,
                      (0, "FOTA_OK"), images, name)
        base = "http://127.0.0.1:%d/" % n.port
        for name, reason in (("bad-header.bin", "image-hash"), ("bad-body.bin", "image-hash"),
                             ("bad-protected.bin", "image-hash"),
                             ("bad-hash-tlv.bin", "image-hash"),
                             ("bad-signature.bin", "signature"), ("unsigned.bin", "signature"),
                             ("truncated.bin", "tlv"), ("tlv-past-end.bin", "tlv")):
            fetch(c, name, base + name, key, VERIFY_ERR, reason=reason)
        fetch(c, "another key", base + "small.bin",
              ["--image-key", keys["other"][1], "--version", "1.2.0"], VERIFY_ERR,
              reason="key-hash")
        fetch(c, "downgrade 1.1.0 after 1.2.0", base + "old.bin", key, VERIFY_ERR,
              reason="downgrade", no_init=True)
        fetch(c, "downgrade with --allow-downgrade", base + "old.bin", key + ["--allow-downgrade"],
              (0, "FOTA_OK"), images, "old.bin")
        fetch(c, "not an MCUboot image", base + "raw.bin", key, VERIFY_ERR)
        fetch(c, "security counter 7 < 8", base + "counted.bin", key + ["--security-counter", "8"],
              VERIFY_ERR, reason="security-counter")
        fetch(c, "security counter 7 >= 7", base + "counted.bin", key + ["--security-counter", "7"],
              (0, "FOTA_OK"), images, "counted.bin")
        fetch(c, "no SEC_CNT with --security-counter", base + "small.bin",
              key + ["--security-counter", "1"], VERIFY_ERR, reason="security-counter")
        bad_key = os.path.join(workdir, "bad.pem")
        with open(bad_key, "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        fetch(c, "a key that is not P-256", base + "small.bin", ["--image-key", bad_key],
              (14, "FOTA_ERR_INVALID_ARG"))


class DigestHandler(Handler):
    """/right, /wrong, /malformed: the image with such a Repr-Digest."""

    def answer(self, path, headers, n):
        img = self.server.images["a"]
        digests = {"/right": base64.b64encode(hashlib.sha256(img).digest()).decode(),
                   "/wrong": base64.b64encode(hashlib.sha256(img + b"x").digest()).decode(),
                   "/malformed": "not base64!"}
        if path not in digests:
            return response("404 Not Found", [("Content-Length", 0)])
        return response("200 OK", [("Content-Length", len(img)), ("ETag", '"d1"'),
                                   ("Repr-Digest", "sha-256=:%s:" % digests[path])], img)


def case_digest(c, args, workdir, www):
    img = os.urandom(200_000)
    srv = Hostile({"a": img, "b": img})
    srv.RequestHandlerClass = DigestHandler
    with srv:
        base = "http://127.0.0.1:%d" % srv.port
        good = {"a": img}
        fetch(c, "Repr-Digest right", base + "/right", [], (0, "FOTA_OK"), good, "a")
        fetch(c, "Repr-Digest wrong", base + "/wrong", [], VERIFY_ERR, reason="repr-digest")
        fetch(c, "Repr-Digest malformed", base + "/malformed", [], (4, "FOTA_ERR_RESPONSE"))
        sha = hashlib.sha256(img).hexdigest()
        fetch(c, "--sha256 right, --image-len right", base + "/right",
              ["--sha256", sha, "--image-len", str(len(img))], (0, "FOTA_OK"), good, "a")
        fetch(c, "--sha256 wrong", base + "/right", ["--sha256", "0" * 64], VERIFY_ERR,
              reason="sha256")
        fetch(c, "--image-len wrong", base + "/right", ["--image-len", str(len(img) - 1)],
              VERIFY_ERR, reason="length", no_init=True)


def case_resume(c, args, workdir, www):
    images, keys = make_images(args, workdir, www)
    key = ["--image-key", keys["good"][1], "--version", "1.2.0", "--retries", "3",
           "--retry-delay", "1"]
    with nginx_server(args.nginx, sub(workdir, "nginx"), www) as n:
        for fault in ("drop:1500000", "reset:700000"):
            with FaultProxy(("127.0.0.1", n.port), fault, "first") as proxy:
                url = "http://127.0.0.1:%d/big.bin" % proxy.port
                fetch(c, "signed 3 MiB image, %s, resumed" % fault, url, key, (0, "FOTA_OK"),
                      images, "big.bin")
                c.expect("  two connections, %d bytes forwarded (image %d)" % (
                    proxy.forwarded, len(images["big.bin"])),
                    proxy.connections == 2 and proxy.forwarded < len(images["big.bin"]) + 4096)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", required=True)
    ap.add_argument("--case", required=True, choices=["signed", "digest", "resume"])
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()
    args.imgtool = imgtool_command()
    if args.case != "digest" and (not args.imgtool or not os.path.exists(args.nginx)):
        print("skipped: needs imgtool and nginx")
        return SKIP
    case = {"signed": case_signed, "digest": case_digest, "resume": case_resume}[args.case]
    return run_case(args.fota, args.case, "fota-verify-",
                    lambda c, workdir, www: case(c, args, workdir, www))


if __name__ == "__main__":
    sys.exit(main())
