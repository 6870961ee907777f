#!/usr/bin/env python3
"""A simulator of the LuatOS IoT platform's firmware upgrade API, for tests.

    platform.py --port PORT --image FILE [--project-key KEY]
                [--firmware-name NAME] [--device ID]... [--latest VERSION]
                [--generating VERSION]... [--daily-limit N] [--log FILE]

Serves GET /api/site/firmware_upgrade on 127.0.0.1 (loopback only) and
checks the query as the platform does, in this order:

  project_key unknown                         -> code 25
  firmware_name unknown for the project       -> code 26
  device (imei=, mac= or uid=) unknown        -> code 3
  more than N requests from the device today  -> code 40 (default N = 6)
  version >= the latest one                   -> code 27
  version listed with --generating, 1st time  -> code 43 (delta being made)
  otherwise                                   -> 200 and the image

A refusal is HTTP 403 with the platform's JSON body
{"code":N,"msg":"..."}. Versions compare as numbers field by field
("2035.1.0" < "2035.1.2"). Each request's query string is appended to --log
(one line), so tests can check what the device sent.

Python 3 standard library only.
"""

import argparse
import datetime
import http.server
import json
import sys
import threading
import urllib.parse

MESSAGES = {
    3: "invalid device",
    25: "invalid project key",
    26: "invalid firmware name",
    27: "already the newest version",
    40: "too many upgrade requests today",
    43: "delta package being generated, retry in 1-3 minutes",
}


def version_key(v):
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return None


class Platform:
    def __init__(self, args):
        self.args = args
        with open(args.image, "rb") as f:
            self.image = f.read()
        self.lock = threading.Lock()
        self.requests = {}        # (device, date) -> count
        self.generated = set()    # versions whose 43 was answered

    def answer(self, query):
        """(status, body bytes) for the parsed query."""
        a = self.args
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        device = q.get("imei") or q.get("mac") or q.get("uid")
        version = version_key(q.get("version", ""))
        with self.lock:
            if q.get("project_key") != a.project_key:
                return self.refuse(25)
            if q.get("firmware_name") != a.firmware_name:
                return self.refuse(26)
            if device not in a.device:
                return self.refuse(3)
            day = (device, datetime.date.today())
            self.requests[day] = self.requests.get(day, 0) + 1
            if self.requests[day] > a.daily_limit:
                return self.refuse(40)
            # fota only sends "x.y.z" numbers to the platform; anything
            # else is answered like the newest version.
            if version is None or version >= version_key(a.latest):
                return self.refuse(27)
            if q["version"] in a.generating and q["version"] not in self.generated:
                self.generated.add(q["version"])
                return self.refuse(43)
            return 200, self.image

    @staticmethod
    def refuse(code):
        return 403, json.dumps({"code": code, "msg": MESSAGES[code]}).encode()


def make_handler(platform, log):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if log:
                with open(log, "a") as f:
                    f.write(url.query + "\n")
            if url.path != "/api/site/firmware_upgrade":
                status, body = 404, b'{"code":404,"msg":"not found"}'
            else:
                status, body = platform.answer(url.query)
            self.send_response(status)
            ctype = "application/octet-stream" if status == 200 else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--project-key", default="fotademo-key")
    ap.add_argument("--firmware-name", default="fotademo_LuatOS-SoC_PC")
    ap.add_argument("--device", action="append", default=[])
    ap.add_argument("--latest", default="2035.1.1")
    ap.add_argument("--generating", action="append", default=[])
    ap.add_argument("--daily-limit", type=int, default=6)
    ap.add_argument("--log")
    args = ap.parse_args()
    if not args.device:
        args.device = ["864040064024194"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                             make_handler(Platform(args), args.log))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
