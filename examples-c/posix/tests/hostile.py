#!/usr/bin/env python3
"""fota-posix against a hostile HTTP server: redirects to other schemes, dot
segments, redirect loops, an image that changes between a drop and the
resume (long ETags, missing validators), and 503 with Retry-After.

    hostile.py --fota PATH --case {redirects,resume,busy}

The server runs in this process on 127.0.0.1 (a thread per connection) and
records every request line; each scenario is a path. Every wait is bounded.
Exit status: 0 passed, 1 failed. Python 3 standard library only.
"""

import argparse
import os
import socket
import socketserver
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e import run_case

SIZE = 300 * 1024
CUT = 100 * 1024


class Hostile(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, images):
        super().__init__(("127.0.0.1", 0), Handler)
        self.images = images          # name -> bytes
        self.requests = []            # (path, headers dict) in arrival order
        self.lock = threading.Lock()
        self.hits = {}                # path -> times asked

    @property
    def port(self):
        return self.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def response(status, headers, body=b""):
    head = "HTTP/1.1 %s\r\n" % status + "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode() + body


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 16384:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
                   for l in lines[1:] if ":" in l}
        s = self.server
        with s.lock:
            s.requests.append((path, headers))
            n = s.hits.get(path, 0)
            s.hits[path] = n + 1
        try:
            self.request.sendall(self.answer(path, headers, n))
        except OSError:
            pass
        self.request.close()

    def answer(self, path, headers, n):
        a, b = self.server.images["a"], self.server.images["b"]
        whole = lambda img, etag=None: response(
            "200 OK", [("Content-Length", len(img))] + ([("ETag", etag)] if etag else []), img)

        def partial(img, etag):
            start = int(headers["range"].split("=")[1].rstrip("-"))
            h = [("Content-Range", "bytes %d-%d/%d" % (start, len(img) - 1, len(img))),
                 ("Content-Length", len(img) - start)] + ([("ETag", etag)] if etag else [])
            return response("206 Partial Content", h, img[start:])

        if path == "/img.bin":
            return whole(a)
        if path == "/dir/ftp":
            return response("302 Found", [("Location", "ftp://127.0.0.1/x"), ("Content-Length", 0)])
        if path == "/dir/file":
            return response("302 Found", [("Location", "file:///etc/passwd"), ("Content-Length", 0)])
        if path == "/dir/sub/dots":
            return response("302 Found", [("Location", "../../x/./../img.bin"), ("Content-Length", 0)])
        if path == "/loop":
            return response("302 Found", [("Location", "/loop"), ("Content-Length", 0)])
        if path.startswith("/splice/"):
            # /splice/<first-etag-kind>/<second-etag-kind>: image A is cut after
            # CUT bytes; a Range request gets image B's bytes with its own validator.
            _, _, first, second = path.split("/")
            etags = {"long-a": '"%s"' % ("a" * 128), "long-b": '"%s"' % ("b" * 128),
                     "sha512": '"%s"' % ("f" * 128), "none": None}
            if "range" in headers:
                return partial(b if second != first else a, etags[second])
            if n == 0:
                return whole(a, etags[first])[:len(whole(a, etags[first])) - (SIZE - CUT)]
            return whole(b if second != first else a, etags[second])
        if path == "/busy":
            if n == 0:
                return response("503 Service Unavailable",
                                [("Retry-After", "1"), ("Content-Length", 0)])
            return whole(a)
        return response("404 Not Found", [("Content-Length", 0)])


def case_redirects(c, workdir, srv):
    base = "http://127.0.0.1:%d" % srv.port
    for what, path in (("ftp://", "/dir/ftp"), ("file://", "/dir/file")):
        out = c.out_path()
        c.expect_result("302 to %s with --max-redirects 3" % what,
                        ["--max-redirects", "3", "--out", out, base + path], 2, "FOTA_ERR_URL")
        c.no_output(out)
        asked = [p for p, _ in srv.requests if p != path]
        c.expect("  nothing else was requested (%s)" % asked, not asked)
        srv.requests.clear()
    out = c.out_path()
    c.expect_result("302 to ../../x/./../img.bin", ["--max-redirects", "3", "--out", out,
                                                    base + "/dir/sub/dots"], 0, "FOTA_OK")
    c.expect("  dot segments removed: /img.bin was asked (%s)" % [p for p, _ in srv.requests],
             [p for p, _ in srv.requests] == ["/dir/sub/dots", "/img.bin"])
    c.expect("  the image arrived", os.path.isfile(out) and open(out, "rb").read() == srv.images["a"])
    srv.requests.clear()
    out = c.out_path()
    c.expect_result("redirect loop with --max-redirects 3",
                    ["--max-redirects", "3", "--out", out, base + "/loop"], 4, "FOTA_ERR_RESPONSE")
    c.expect("  4 requests (the first and 3 redirects)", len(srv.requests) == 4)
    c.no_output(out)
    out = c.out_path()
    c.expect_result("302 without --max-redirects", ["--out", out, base + "/loop"], 6,
                    "FOTA_NO_UPDATE")


def case_resume(c, workdir, srv):
    base = "http://127.0.0.1:%d" % srv.port
    a, b = srv.images["a"], srv.images["b"]
    for first, second, want, what in (
            ("long-a", "long-b", b, "128-byte ETag changed between drop and resume"),
            ("long-a", "none", b, "ETag before the drop, none on the 206"),
            ("none", "none", a, "no validator at all"),
            ("sha512", "sha512", a, "130-byte (SHA-512 hex) ETag kept")):
        out = c.out_path()
        path = "/splice/%s/%s" % (first, second)
        c.expect_result(what, ["--retries", "3", "--retry-delay", "1", "--out", out,
                               base + path], 0, "FOTA_OK")
        got = open(out, "rb").read() if os.path.isfile(out) else b""
        c.expect("  the committed file is one whole image, never A[:%d] + B[%d:]" % (CUT, CUT),
                 got == want, "got %d bytes; A? %s B? %s" % (len(got), got == a, got == b))
        ranged = [h.get("range") for p, h in srv.requests if p == path][1:]
        if first == second == "sha512":
            c.expect("  resumed with Range and If-Range", ranged == ["bytes=%d-" % CUT] and
                     [h.get("if-range") for p, h in srv.requests if p == path][1:] ==
                     ['"%s"' % ("f" * 128)], str(ranged))
        elif first == "none":
            c.expect("  no Range without a validator (%s)" % ranged, ranged == [None])
        srv.requests.clear()


def case_busy(c, workdir, srv):
    base = "http://127.0.0.1:%d" % srv.port
    out = c.out_path()
    rc, _, err, secs = c.expect_result("503 with Retry-After: 1, then the image",
                                       ["--retries", "2", "--out", out, base + "/busy"],
                                       0, "FOTA_OK")
    c.expect("  waited about the second asked for (%.2f s)" % secs, 0.9 < secs < 5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", required=True)
    ap.add_argument("--case", required=True, choices=["redirects", "resume", "busy"])
    args = ap.parse_args()
    case = {"redirects": case_redirects, "resume": case_resume, "busy": case_busy}[args.case]
    images = {"a": os.urandom(SIZE), "b": os.urandom(SIZE)}

    def run(c, workdir, www):
        with Hostile(images) as srv:
            return case(c, workdir, srv)
    return run_case(args.fota, args.case, "fota-hostile-", run)


if __name__ == "__main__":
    sys.exit(main())
