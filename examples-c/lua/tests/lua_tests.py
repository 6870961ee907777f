#!/usr/bin/env python3
"""Tests of the Lua modules libfota / libfota2 through luatos.lua, against the
platform simulator (platform.py), nginx and small scripted servers, all on
127.0.0.1.

    lua_tests.py --lua LUA --modules DIR --case CASE [--nginx PATH]
                 [--openssl PATH] [--asan LIBASAN] [--fota-posix PATH]

DIR holds libfota.so and libfota2.so (LUA_CPATH=DIR/?.so). CASE:

  seeds     the Lua example blocks of seeds/libfota.md and seeds/libfota2.md,
            extracted from those files and run unchanged: each request and
            timer statement on its own, and the whole block; the platform's
            refusal (27) of the platform request
  results   every libfota code 0-5 with the detailed fota code; headers
            table, body and method reach the server; libfota's positional
            arguments (storge_location path/address, len, param1, ota_port,
            timeout) are honoured; with --fota-posix, FOTA_HOSTS works for
            fota-posix too
  platform  the platform codes 3, 25, 26, 27, 40, 43; the query sent; `###`;
            the opts table is left as it was
  args      wrong types, a nil callback, NUL bytes, huge strings: a Lua error
            or a result code, never a crash; luatos.lua's error and
            --max-seconds exits
  busy      a request while one runs gets 4/13 (across both modules);
            progress(); abort()
  tls       https with server_cert (libfota2 and libfota), and without it;
            client_cert/client_key for a server that asks for one
  verify    libfota2's verification keys (image_sha256, image_len, image_key,
            allow_downgrade, security_counter) with images signed by imgtool
  leak      20 timer-driven requests in a row: Lua memory and the C state
            back where they started
  all       every case (the ASan run)

--asan LIBASAN preloads AddressSanitizer into the interpreter (the modules
in DIR must be built with -fsanitize=address); any report fails the run.

Exit status: 0 passed, 1 failed, 77 skipped (nginx missing; openssl for
tls, imgtool for verify).
Python 3 standard library only (plus nginx and openssl).
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
LUA_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(LUA_DIR, "..", "posix", "tests"))
from servers import Failed, Server, Tls, free_port, nginx_server  # noqa: E402
from tls import Pki  # noqa: E402

LUATOS = os.path.join(LUA_DIR, "luatos.lua")
PLATFORM = os.path.join(HERE, "platform.py")
SEEDS = os.path.join(HERE, "seeds")
PRODUCT_KEY = "fotademo-key"
IMEI = "864040064024194"          # luatos.lua's mobile.imei()
MAX_SECONDS = 30                  # luatos.lua --max-seconds of every run
RUN_TIMEOUT_S = 60
SKIP = 77


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, ok, what, detail=""):
        print("%s %s" % ("ok  " if ok else "FAIL", what))
        if not ok:
            self.failures += 1
            if detail:
                print("     " + detail.replace("\n", "\n     "))
        return ok


class Run:
    """One luatos.lua run: exit status, stdout, stderr, the FOTA_OUT path."""

    def __init__(self, rc, out, err, image):
        self.rc, self.out, self.err, self.image = rc, out, err, image

    @property
    def cbs(self):
        return [l[4:] for l in self.out.splitlines() if l.startswith("cb: ")]

    def image_bytes(self):
        if not os.path.exists(self.image):
            return None
        with open(self.image, "rb") as f:
            return f.read()

    def describe(self):
        return "exit %s\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out[-3000:], self.err[-3000:])


class Env:
    """Servers and images of one case, and a way to run scripts."""

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.hosts = {}
        self.runs = 0
        self.stack = []

    def path(self, name):
        return os.path.join(self.workdir, name)

    def image(self, name, size):
        data = os.urandom(size)
        os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
        with open(self.path(name), "wb") as f:
            f.write(data)
        return data

    def start(self, server):
        self.stack.append(server)
        return server.__enter__()

    def nginx(self, name="nginx", tls=None):
        d = self.path(name)
        os.makedirs(d)
        s = self.start(nginx_server(self.args.nginx, d, self.path("www"), tls=tls))
        return s.port

    def platform(self, name, *extra):
        """A platform simulator serving platform.bin; returns (port, log path)."""
        port = free_port("127.0.0.1")
        log = self.path(name + "-queries.log")
        argv = [sys.executable, PLATFORM, "--port", str(port), "--image", self.path("platform.bin"),
                "--project-key", PRODUCT_KEY, "--log", log] + list(extra)
        self.start(Server(name, argv, "127.0.0.1", port, self.workdir))
        return port, log

    def stop(self):
        while self.stack:
            self.stack.pop().stop()

    def run(self, script, pre=(), max_seconds=MAX_SECONDS):
        self.runs += 1
        name = "run%02d" % self.runs
        with open(self.path(name + ".lua"), "w") as f:
            f.write(script)
        image = self.path(name + ".bin")
        env = dict(os.environ)
        env["LUA_CPATH"] = os.path.join(self.args.modules, "?.so")
        env["FOTA_OUT"] = image
        env["FOTA_HOSTS"] = ",".join("%s=%s" % kv for kv in self.hosts.items())
        if self.args.asan:
            env["LD_PRELOAD"] = self.args.asan
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=99"
        argv = [self.args.lua, LUATOS, "--max-seconds", str(max_seconds)]
        for chunk in pre:
            argv += ["-e", chunk]
        argv.append(self.path(name + ".lua"))
        p = subprocess.run(argv, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=RUN_TIMEOUT_S)
        run = Run(p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"), image)
        if "ERROR: AddressSanitizer" in run.err or "ERROR: LeakSanitizer" in run.err:
            run.rc = "asan"
        return run


def expect(c, run, what, rc, cbs, image=None):
    """`run` exited with `rc` (0: after printing rtos.reboot), its callbacks
    printed exactly `cbs`, and FOTA_OUT holds `image` (None: no file)."""
    ok = run.rc == rc and run.cbs == cbs
    if rc == 0:
        ok = ok and "rtos.reboot" in run.out.splitlines()
    got = run.image_bytes()
    ok = ok and got == image
    return c.check(ok, what, "wanted exit %s, cb lines %s, image %s; got cb lines %s, image %s\n%s"
                   % (rc, cbs, "none" if image is None else "%d bytes" % len(image),
                      run.cbs, "none" if got is None else "%d bytes" % len(got), run.describe()))


# ---- seeds ------------------------------------------------------------------

def seed_block(name):
    """The first ```lua block of seeds/NAME.md, split into the prelude (up to
    the end of the callback function), the `local` definitions and the
    statements that start a request or a timer."""
    with open(os.path.join(SEEDS, name + ".md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"```lua\n(.*?)```", text, re.S).group(1)
    lines = block.splitlines()
    end = lines.index("end")
    defs, calls = [], []
    for line in lines[end + 1:]:
        s = line.strip()
        if s and not s.startswith("--"):
            (defs if s.startswith("local ") else calls).append(line)
    return block, lines[:end + 1], defs, calls


def case_seeds(c, env):
    platform_img = env.image("platform.bin", 300 * 1024)
    own_img = env.image("www/xxx/upgrade", 200 * 1024)
    nport = env.nginx()
    for module in ("libfota", "libfota2"):
        pport, log = env.platform(module + "-platform")
        env.hosts = {"iot.openluat.com": "127.0.0.1:%d" % pport, "xxxxxx.com": "127.0.0.1:%d" % nport}
        key = 'PRODUCT_KEY = "%s"' % PRODUCT_KEY
        block, prelude, defs, calls = seed_block(module)
        c.check(len(calls) == 4, "%s.md: 4 request/timer statements found" % module, repr(calls))
        for call in calls:
            own = "xxxxxx.com" in call or "opts)" in call
            script = "\n".join(prelude + defs + [call]) + "\n"
            r = env.run(script, pre=[key])
            expect(c, r, "%s.md: `%s` -> cb 0, %s image flashed, rtos.reboot"
                   % (module, call.strip(), "server's" if own else "platform's"),
                   0, ["0 0 0"], own_img if own else platform_img)
        # The platform request when the device already runs the newest version.
        r = env.run("\n".join(prelude + [calls[0]]) + "\n", pre=[key, 'VERSION = "1.0.1"'])
        expect(c, r, "%s.md: `%s` at the newest version -> cb 4 6 27 (platform code 27), nothing flashed"
               % (module, calls[0].strip()), 2, ["4 6 27"])
        # The whole block: the second request finds the first running.
        r = env.run(block, pre=[key])
        expect(c, r, "%s.md: the whole block -> busy (4 13) for the 2nd request, then the platform's image"
               % module, 0, ["4 13 0", "0 0 0"], platform_img)
        queries = []
        if os.path.exists(log):
            with open(log) as f:
                queries = f.read().splitlines()
        want = "imei=%s&project_key=%s&firmware_name=fotademo_LuatOS-SoC_PC&version=2035.1.0" % (
            IMEI, PRODUCT_KEY)
        c.check(queries and queries[0] == want, "%s: the platform got `%s`" % (module, want), repr(queries))
    # The self-hosted URLs as sent: libfota's verbatim, libfota2's with '?' and the parameters.
    with open(os.path.join(env.path("nginx"), "nginx-access.log")) as f:
        access = f.read()
    for target in ("/xxx/upgrade?version=1.0.0",
                   "/xxx/upgrade?imei=%s&project_key=%s&firmware_name=fotademo_LuatOS-SoC_PC&version=2035.1.0"
                   % (IMEI, PRODUCT_KEY)):
        c.check("GET %s HTTP/1.1" % target in access, "the server got GET %s" % target, access[-1500:])


# ---- scripted servers ---------------------------------------------------------

class Scripted:
    """A TCP server on 127.0.0.1 answering every connection with `response`
    (bytes) after reading the request head and its Content-Length body,
    which it records; then it closes the connection."""

    def __init__(self, response):
        self.response = response
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data)
                want = data.index(b"\r\n\r\n") + 4 + int(m.group(1)) if m and b"\r\n\r\n" in data else 0
                while len(data) < want:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                try:
                    conn.sendall(self.response)
                except OSError:
                    pass

    def stop(self):
        self.sock.close()


ASK = """
local libfota = require "libfota"
local libfota2 = require "libfota2"
-- In a task: make a request and wait for its callback's arguments.
local function ask(start)
    start(function(...) sys.publish("FOTA_DONE", ...) end)
    return select(2, sys.waitUntil("FOTA_DONE"))
end
"""


def case_results(c, env):
    small = os.urandom(5000)
    ok_server = Scripted(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(small) + small)
    short = Scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    empty = Scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    own_img = env.image("www/xxx/upgrade", 100 * 1024)
    nport = env.nginx()
    closed = free_port("127.0.0.1")
    env.hosts = {"xxxxxx.com": "127.0.0.1"}  # no port: libfota's ota_port gives it
    custom = env.path("custom.bin")
    script = ASK + """
sys.taskInit(function()
    ask(function(cb) libfota2.request(cb, {url = "http://127.0.0.1:%(closed)d/x", retries = 0}) end)
    ask(function(cb) libfota2.request(cb, {url = "ftp://127.0.0.1/x"}) end)
    ask(function(cb) libfota2.request(cb, {url = "http://127.0.0.1:%(short)d/x", retries = 0}) end)
    ask(function(cb) libfota2.request(cb, {url = "http://127.0.0.1:%(empty)d/x"}) end)
    ask(function(cb) libfota2.request(cb, {url = "http://127.0.0.1:%(nginx)d/missing"}) end)
    ask(function(cb) libfota2.request(cb) end)                       -- no PRODUCT_KEY
    PRODUCT_KEY = "k"; VERSION = "abc"
    ask(function(cb) libfota2.request(cb) end)                       -- bad VERSION
    ask(function(cb) libfota.request(cb) end)
    VERSION = "1.0.0"; PRODUCT_KEY = nil
    ask(function(cb) libfota.request(cb) end)
    ask(function(cb) libfota.request(cb, "http://127.0.0.1:%(closed)d/x", nil, nil, nil, nil, 1500) end)
    ask(function(cb) libfota.request(cb, "http://") end)
    -- libfota's positional arguments reach the flash hooks and the socket
    ask(function(cb) libfota.request(cb, "http://xxxxxx.com/xxx/upgrade", "%(custom)s", 200000, io.stdout, %(nginx)d) end)
    ask(function(cb) libfota.request(cb, "http://xxxxxx.com/xxx/upgrade", 0x8000, 150000, nil, %(nginx)d) end)
    ask(function(cb) libfota.request(cb, "http://xxxxxx.com/xxx/upgrade", "%(custom)s", 1000, nil, %(nginx)d) end)
    -- libfota2: method, headers table, body
    ask(function(cb) libfota2.request(cb, {url = "http://127.0.0.1:%(ok)d/fw", method = "POST",
        headers = {["X-Device"] = "abc", ["X-Count"] = 7}, body = "hello"}) end)
    rtos.reboot()
end)
""" % {"closed": closed, "short": short.port, "empty": empty.port, "nginx": nport, "ok": ok_server.port,
       "custom": custom}
    try:
        r = env.run(script)
    finally:
        for s in (ok_server, short, empty):
            s.stop()
    want = ["1 1 0", "2 2 0", "3 3 0", "4 4 0", "4 6 0", "5 5 0", "5 5 0", "5 5 0", "5 5 0",
            "1 1 0", "2 2 0", "0 0 0", "0 0 0", "4 9 0", "0 0 0"]
    expect(c, r, "codes 0-5 through Lua, each with fota's code (1, 2, 3, 4, no update 6, 5 x4, "
           "libfota: 1 within its timeout, 2, storge_location path, address, len too small; "
           "libfota2 POST)", 0, want, small)
    with open(custom, "rb") as f:
        c.check(f.read() == own_img, "libfota: storge_location (a path) and ota_port honoured: image in it")
    c.check("flash init: address=0x0 max_len=200000 param1=set path=%s" % custom in r.err,
            "libfota: len and param1 reach the flash init hook", r.err[-2000:])
    c.check("address=0x8000 max_len=150000" in r.err, "libfota: storge_location (an address) reaches it",
            r.err[-2000:])
    if env.args.fota_posix:
        out = env.path("posix.bin")
        hosts = dict(os.environ, FOTA_HOSTS="xxxxxx.com=127.0.0.1:%d" % nport)
        p = subprocess.run([env.args.fota_posix, "--out", out, "http://xxxxxx.com/xxx/upgrade"], env=hosts,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT_S)
        got = open(out, "rb").read() if os.path.exists(out) else None
        c.check(p.returncode == 0 and got == own_img, "fota-posix: FOTA_HOSTS maps xxxxxx.com to nginx",
                p.stdout.decode() + p.stderr.decode())
    req = ok_server.requests[-1] if ok_server.requests else b""
    c.check(req.startswith(b"POST /fw") and b"\r\nX-Device: abc\r\n" in req and b"\r\nX-Count: 7\r\n" in req
            and req.endswith(b"\r\n\r\nhello"), "libfota2: method, headers table and body sent", repr(req))


def case_platform(c, env):
    img = env.image("platform.bin", 50 * 1024)
    key = 'PRODUCT_KEY = "%s"' % PRODUCT_KEY
    pport, log = env.platform("platform", "--generating", "2035.1.0")
    env.hosts = {"iot.openluat.com": "127.0.0.1:%d" % pport}
    nport = env.nginx()
    env.image("www/xxx/upgrade", 1000)
    script = ASK + """
local opts = {}
sys.taskInit(function()
    PRODUCT_KEY = "wrong"
    ask(function(cb) libfota2.request(cb) end)
    PRODUCT_KEY = "%(key)s"; PROJECT = "other"
    ask(function(cb) libfota2.request(cb) end)
    PROJECT = "fotademo"
    ask(function(cb) libfota2.request(cb, {imei = "000"}) end)
    ask(function(cb) libfota2.request(cb, {version = "2035.1.1"}) end)
    ask(function(cb) libfota2.request(cb, opts) end)                 -- 43: delta being generated
    ask(function(cb) libfota2.request(cb, {url = "###http://127.0.0.1:%(nginx)d/xxx/upgrade?exact=1"}) end)
    assert(next(opts) == nil, "opts was changed")
    sys.timerLoopStart(libfota2.request, 60000, libfota_cb, opts)
end)
function libfota_cb(result)
    if result == 0 then rtos.reboot() end
end
""" % {"key": PRODUCT_KEY, "nginx": nport}
    r = env.run(script, pre=[key])
    expect(c, r, "platform codes 25, 26, 3, 27, 43 (then the image on the next timer request)", 0,
           ["4 15 25", "4 15 26", "4 15 3", "4 6 27", "4 15 43", "0 0 0", "0 0 0"], img)
    with open(os.path.join(env.path("nginx"), "nginx-access.log")) as f:
        c.check("GET /xxx/upgrade?exact=1 HTTP/1.1" in f.read(), "### URL sent verbatim")
    # 40: the seventh request of the day from one device.
    pport, log = env.platform("platform40", "--latest", "2035.1.0")
    env.hosts = {"iot.openluat.com": "127.0.0.1:%d" % pport}
    script = """
local libfota2 = require "libfota2"
local n = 0
sys.timerLoopStart(libfota2.request, 3600 * 1000, function(result, code, platform)
    n = n + 1
    if platform == 40 then rtos.reboot() end
end)
"""
    r = env.run(script, pre=[key])
    expect(c, r, "platform code 40 after 6 requests in a day (timer loop, virtual clock)", 0,
           ["4 6 27"] * 6 + ["4 15 40"])


def case_args(c, env):
    env.hosts = {}
    script = r"""
local libfota = require "libfota"
local libfota2 = require "libfota2"
local function cb() end
local function try(what, f, ...)
    local ok, err = pcall(f, ...)
    print("try", what, ok and "ok" or "error", ok and "" or tostring(err))
end
local big = string.rep("a", 1024 * 1024)
try("nil cb 2", libfota2.request, nil)
try("nil cb 1", libfota.request, nil)
try("cb number", libfota2.request, 5, {})
try("opts string", libfota2.request, cb, "http://x")
try("url number", libfota2.request, cb, {url = 5})
try("url NUL", libfota2.request, cb, {url = "http://a\0b"})
try("timeout string", libfota2.request, cb, {timeout = "x"})
try("timeout negative", libfota2.request, cb, {timeout = -1})
try("timeout float", libfota2.request, cb, {timeout = 1.5})
try("timeout huge", libfota2.request, cb, {timeout = 2^40})
try("headers string", libfota2.request, cb, {headers = "X: y"})
try("headers array", libfota2.request, cb, {headers = {"X: y"}})
try("headers value table", libfota2.request, cb, {headers = {X = {}}})
try("header injection", libfota2.request, cb, {headers = {X = "a\r\nHost: evil"}})
try("header NUL", libfota2.request, cb, {headers = {X = "a\0b"}})
try("port 0", libfota2.request, cb, {port = 0})
try("show_url string", libfota2.request, cb, {show_url = "yes"})
try("storage table", libfota2.request, cb, {storage = {}})
try("param1 number", libfota2.request, cb, {param1 = 1})
try("body number", libfota2.request, cb, {body = 5})
try("image_sha256 short", libfota2.request, cb, {image_sha256 = "abc"})
try("image_sha256 not hex", libfota2.request, cb, {image_sha256 = string.rep("g", 64)})
try("allow_downgrade string", libfota2.request, cb, {allow_downgrade = "yes"})
try("v1 url number", libfota.request, cb, 5)
try("v1 storage table", libfota.request, cb, "http://x/", {})
try("v1 len string", libfota.request, cb, "http://x/", nil, "x")
try("v1 param1 number", libfota.request, cb, "http://x/", nil, nil, 5)
try("v1 port 70000", libfota.request, cb, "http://x/", nil, nil, nil, 70000)
try("v1 timeout table", libfota.request, cb, "http://x/", nil, nil, nil, nil, {})
try("v1 show_otaurl number", libfota.request, cb, "http://x/", nil, nil, nil, nil, nil, nil, nil, nil, nil, 1)
try("poll negative", libfota2.poll, -1)
try("result_str", libfota2.result_str, 2^62)
-- Accepted, answered with a code: huge strings, header injection.
local codes = {}
local function ask(name, start)
    start(function(...) codes[#codes + 1] = name .. " " .. table.concat({...}, " ") end)
    while libfota2.progress().pending > 0 do libfota2.poll(100) end
end
ask("url 1MiB", function(f) libfota2.request(f, {url = "http://127.0.0.1/" .. big}) end)
ask("key 1MiB", function(f) libfota2.request(f, {project_key = big, url = "http://127.0.0.1:1/", retries = 0}) end)
ask("header name empty", function(f) libfota2.request(f, {url = "http://127.0.0.1:1/", retries = 0, headers = {[""] = "x"}}) end)
ask("v1 url 1MiB", function(f) libfota.request(f, "http://127.0.0.1/" .. big) end)
ask("method 1MiB", function(f) libfota2.request(f, {url = "http://127.0.0.1:1/", retries = 0, method = big}) end)
for _, line in ipairs(codes) do print("code", line) end
rtos.reboot()
"""
    r = env.run(script)
    tries = dict((l.split("\t")[1], l.split("\t")[2:]) for l in r.out.splitlines() if l.startswith("try\t"))
    ok_names = {"result_str"}
    bad = [k for k, v in tries.items() if (v[0] == "ok") != (k in ok_names)]
    c.check(r.rc == 0 and len(tries) == 32 and not bad,
            "32 wrong calls: a Lua error each (result_str of any integer is fine), no crash",
            "bad: %s\n%s" % (bad, r.describe()))
    for k in ("nil cb 2", "url number", "timeout negative", "headers array", "header injection", "url NUL",
              "v1 port 70000"):
        print("     %s: %s" % (k, " ".join(tries.get(k, ["?"]))))
    codes = [l[5:] for l in r.out.splitlines() if l.startswith("code\t")]
    want = ["url 1MiB 2 2 0", "key 1MiB 4 14 0", "header name empty 4 14 0", "v1 url 1MiB 2 2 0",
            "method 1MiB 4 14 0"]
    c.check(codes == want, "huge strings, an empty header name: result codes (2 / 4 with fota 14)",
            "got %s\n%s" % (codes, r.describe()))
    # luatos.lua's own exits: an error, and the time limit.
    r = env.run("sys.timerStart(function() error('boom') end, 10)\n")
    c.check(r.rc == 1 and "boom" in r.err, "luatos.lua: an error in a timer -> exit 1 with the message",
            r.describe())
    r = env.run("sys.timerLoopStart(function() end, 1000)\n", max_seconds=1)
    c.check(r.rc == 3 and "--max-seconds 1 passed" in r.err, "luatos.lua: --max-seconds 1 -> exit 3",
            r.describe())


def case_busy(c, env):
    img = env.image("www/fw.bin", 256 * 1024)
    nport = env.nginx()
    env.hosts = {}
    slow = "http://127.0.0.1:%d/slow/fw.bin" % nport
    script = """
local libfota = require "libfota"
local libfota2 = require "libfota2"
libfota2.request(function(result) if result == 0 then rtos.reboot() end end, {url = "%s"})
libfota2.request(function() end, {url = "%s"})
libfota.request(function() end, "%s")
sys.timerStart(function()
    local p = libfota2.progress()
    print("progress", p.state, p.pending, p.bytes_written > 0)
end, 300)
""" % (slow, slow, slow)
    r = env.run(script)
    expect(c, r, "busy: libfota2 and libfota requests while one runs -> cb 4 13, then the first ends with 0",
           0, ["4 13 0", "4 13 0", "0 0 0"], img)
    c.check("progress\t4\t1\ttrue" in r.out, "progress() while downloading: state 4, 1 pending, bytes written",
            r.out)
    script = """
local libfota2 = require "libfota2"
libfota2.request(function() end, {url = "%s"})
sys.timerStart(libfota2.abort, 300)
""" % slow
    r = env.run(script)
    expect(c, r, "abort() from Lua: cb 4 12, nothing flashed (then nothing left to run: exit 2)", 2,
           ["4 12 0"])


def case_tls(c, env):
    if not (env.args.openssl and os.access(env.args.openssl, os.X_OK)):
        print("SKIP: openssl not found")
        return SKIP
    pki = Pki(env.args.openssl, env.path("pki"))
    pki.ca("ca", "/CN=fota lua test CA")
    cert, key = pki.leaf("server", "ca", "/CN=localhost", "DNS:localhost")
    pki.ca("clientca", "/CN=fota lua client CA")
    pki.leaf("client", "clientca", "/CN=device-0001", client=True)
    img = env.image("www/fw.bin", 64 * 1024)
    port = env.nginx("nginx-tls", tls=Tls(cert, key))
    mport = env.nginx("nginx-mtls", tls=Tls(cert, key, client_ca=pki.path("clientca.pem")))
    env.hosts = {}
    url = "https://localhost:%d/fw.bin" % port
    murl = "https://localhost:%d/fw.bin" % mport
    script = ASK + """
local function read(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("a")
    f:close()
    return data
end
local ca, cert, key = read("%(ca)s"), read("%(cert)s"), read("%(key)s")
sys.taskInit(function()
    ask(function(cb) libfota2.request(cb, {url = "%(url)s", retries = 0}) end)
    ask(function(cb) libfota2.request(cb, {url = "%(url)s", server_cert = ca}) end)
    os.remove(os.getenv("FOTA_OUT"))
    ask(function(cb) libfota.request(cb, "%(url)s", nil, nil, nil, nil, nil, ca) end)
    ask(function(cb) libfota2.request(cb, {url = "%(murl)s", server_cert = ca}) end)
    os.remove(os.getenv("FOTA_OUT"))
    ask(function(cb) libfota2.request(cb, {url = "%(murl)s", server_cert = ca, client_cert = cert, client_key = key}) end)
    os.remove(os.getenv("FOTA_OUT"))
    ask(function(cb) libfota.request(cb, "%(murl)s", nil, nil, nil, nil, nil, ca, cert, key) end)
    rtos.reboot()
end)
""" % {"ca": pki.path("ca.pem"), "cert": pki.path("client.pem"), "key": pki.path("client.key"),
       "url": url, "murl": murl}
    r = env.run(script)
    expect(c, r, "https: without server_cert 1 (fota 11); libfota2 and libfota with it 0; a server that "
           "wants a client certificate: without one 4 (its 400: fota 6), with one 0 (libfota2, libfota)", 0,
           ["1 11 0", "0 0 0", "0 0 0", "4 6 0", "0 0 0", "0 0 0"], img)


def case_verify(c, env):
    from verify import imgtool_command  # noqa: E402 (imgtool on PATH or as a module)
    tool = imgtool_command()
    if not tool:
        print("SKIP: imgtool not found")
        return SKIP
    d = env.path("keys")
    os.makedirs(d)

    def imgtool(*argv, **kw):
        return subprocess.run(tool + list(argv), check=True, capture_output=True, timeout=60, **kw).stdout

    key = os.path.join(d, "key.pem")
    imgtool("keygen", "-k", key, "-t", "ecdsa-p256")
    pub = os.path.join(d, "pub.pem")
    with open(pub, "wb") as f:
        f.write(imgtool("getpub", "-k", key, "-e", "pem"))
    images = {}
    for name, version, extra in (("signed.bin", "1.2.3", []), ("counted.bin", "1.2.3", ["--security-counter", "7"])):
        raw = os.path.join(d, name + ".raw")
        with open(raw, "wb") as f:
            f.write(os.urandom(30000))
        out = env.path("www/" + name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        imgtool("sign", "--key", key, "--header-size", "0x200", "--pad-header", "--align", "4", "--version",
                version, "--slot-size", "0x100000", *extra, raw, out)
        images[name] = open(out, "rb").read()
    bad = bytearray(images["signed.bin"])
    bad[0x200 + 100] ^= 1
    with open(env.path("www/tampered.bin"), "wb") as f:
        f.write(bad)
    nport = env.nginx()
    env.hosts = {}
    base = "http://127.0.0.1:%d/" % nport
    sha = hashlib.sha256(images["signed.bin"]).hexdigest()
    script = ASK + """
local f = assert(io.open("%(pub)s", "rb"))
local key = f:read("a")
f:close()
local function check(what, opts)
    local result, code = ask(function(cb) libfota2.request(cb, opts) end)
    print("verify", what, result, code, libfota2.progress().verify_reason)
end
sys.taskInit(function()
    check("sha256 hex", {url = "%(base)ssigned.bin", image_sha256 = "%(sha)s", image_len = %(len)d})
    check("sha256 wrong", {url = "%(base)ssigned.bin", image_sha256 = string.rep("\0", 32)})
    check("length wrong", {url = "%(base)ssigned.bin", image_len = 5})
    check("signed", {url = "%(base)ssigned.bin", image_key = key, version = "1.2.0"})
    check("tampered", {url = "%(base)stampered.bin", image_key = key, version = "1.2.0"})
    check("downgrade", {url = "%(base)ssigned.bin", image_key = key, version = "1.3.0"})
    check("downgrade allowed", {url = "%(base)ssigned.bin", image_key = key, version = "1.3.0", allow_downgrade = true})
    check("counter low", {url = "%(base)scounted.bin", image_key = key, version = "1.0.0", security_counter = 8})
    check("counter ok", {url = "%(base)scounted.bin", image_key = key, version = "1.0.0", security_counter = 7})
    rtos.reboot()
end)
""" % {"pub": pub, "base": base, "sha": sha, "len": len(images["signed.bin"])}
    r = env.run(script)
    got = [l.split("\t")[1:] for l in r.out.splitlines() if l.startswith("verify\t")]
    want = [["sha256 hex", "0", "0", "0"], ["sha256 wrong", "4", "10", "2"], ["length wrong", "4", "10", "1"],
            ["signed", "0", "0", "0"], ["tampered", "4", "10", "6"], ["downgrade", "4", "10", "9"],
            ["downgrade allowed", "0", "0", "0"], ["counter low", "4", "10", "10"], ["counter ok", "0", "0", "0"]]
    c.check(r.rc == 0 and got == want,
            "verified images through libfota2: image_sha256 (hex), image_len, image_key, allow_downgrade, "
            "security_counter; progress().verify_reason", "got %s\n%s" % (got, r.describe()))
    c.check(r.image_bytes() == images["counted.bin"], "the last verified image is in the file flash")


def case_leak(c, env):
    env.image("www/fw.bin", 20 * 1024)
    nport = env.nginx()
    env.hosts = {}
    script = """
local libfota2 = require "libfota2"
local opts = {url = "http://127.0.0.1:%d/fw.bin"}
local n, timer = 0
local function cb(result)
    n = n + 1
    collectgarbage("collect")
    collectgarbage("collect")
    local p = libfota2.progress()
    print("mem", n, result, collectgarbage("count"), p.state, p.pending)
    if n == 20 then
        local keys = 0
        for _ in pairs(opts) do keys = keys + 1 end
        print("opts", keys, opts.url)
        rtos.reboot()
    end
end
timer = sys.timerLoopStart(libfota2.request, 1000, cb, opts)
""" % nport
    r = env.run(script)
    mem = [l.split("\t") for l in r.out.splitlines() if l.startswith("mem\t")]
    ok = r.rc == 0 and len(mem) == 20 and all(m[2] == "0" for m in mem)
    kb = [float(m[3]) for m in mem] if ok else []
    c.check(ok, "20 timer-driven requests, each result 0", r.describe())
    if not ok:
        return
    print("     Lua memory (KiB) after requests 1, 2, 10, 20: %s %s %s %s"
          % (kb[0], kb[1], kb[9], kb[19]))
    c.check(kb[19] <= kb[1], "Lua memory after request 20 is not above request 2's (%.3f vs %.3f KiB)"
            % (kb[19], kb[1]))
    c.check(all(m[4] == "0" and m[5] == "0" for m in mem),
            "C state idle at every callback (fota state 0, nothing pending)", repr(mem))
    c.check("opts\t1\thttp://127.0.0.1:%d/fw.bin" % nport in r.out, "the opts table is unchanged", r.out)


CASES = {"seeds": case_seeds, "results": case_results, "platform": case_platform, "args": case_args,
         "busy": case_busy, "tls": case_tls, "verify": case_verify, "leak": case_leak}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lua", required=True)
    ap.add_argument("--modules", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES) + ["all"])
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    ap.add_argument("--asan")
    ap.add_argument("--fota-posix", help="fota-posix, to check FOTA_HOSTS with it too (case results)")
    args = ap.parse_args()
    args.modules = os.path.abspath(args.modules)
    if not os.access(args.nginx, os.X_OK):
        print("SKIP: nginx not found")
        return SKIP
    c = Checker()
    names = sorted(CASES) if args.case == "all" else [args.case]
    for name in names:
        print("== %s (%s)" % (name, os.path.basename(args.lua)))
        workdir = tempfile.mkdtemp(prefix="fota-lua-%s-" % name)
        env = Env(args, workdir)
        try:
            rc = CASES[name](c, env)
            if rc == SKIP and len(names) == 1:
                return SKIP
        except Failed as e:
            c.check(False, "%s: servers" % name, str(e))
        finally:
            env.stop()
        if c.failures == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("     (files kept in %s)" % workdir)
    print("%s: %s" % ("PASS" if c.failures == 0 else "FAIL", args.case))
    return 0 if c.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
