#!/usr/bin/env python3
"""HTTP servers for the fota-posix tests, shared by e2e.py and faults.py.

Each server runs as a child process in a caller-given work directory and is
used as a context manager: started, waited for (bounded), always stopped
(terminate, then kill).

  nginx_server()    nginx: HTTP/1.1, Content-Length, Range, ETag; /slow/NAME
                    serves the same files at a limited rate; with tls=Tls(...)
                    over HTTPS (protocols, groups, client certificates)
  openssl_server()  openssl s_server -WWW: HTTPS, HTTP/1.0, the body ends
                    with the connection; TLS 1.3 or 1.2 only
  http_server()     python3 -m http.server: HTTP/1.0, ignores Range
  chunked_server()  an HTTP/1.1 server sending Transfer-Encoding: chunked (and,
                    under /close/, bodies that end when the connection closes)

    servers.py --serve-chunked DIR --port PORT [--chunk-sizes N,N,...]
                                      runs the chunked server

Python 3 standard library only.
"""

import argparse
import http.server
import os
import socket
import subprocess
import sys
import time
import urllib.parse

READY_TIMEOUT_S = 10        # a server must accept connections within this
STOP_TIMEOUT_S = 5          # after terminate(), before kill()
SLOW_RATE = "256k"          # nginx limit_rate under /slow/ (bytes per second)


class Failed(Exception):
    pass


def free_port(host):
    """A port nobody listens on right now (bind port 0, read it, release it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as srv:
            srv.bind(("::1", 0))
            srv.listen(1)
            with socket.create_connection(("::1", srv.getsockname()[1]), timeout=2):
                return True
    except OSError:
        return False


def url_host(host):
    return "[%s]" % host if ":" in host else host


class Server:
    """A server process: started, waited for, always stopped."""

    def __init__(self, name, argv, host, port, workdir, cwd=None):
        self.name, self.argv, self.host, self.port = name, argv, host, port
        self.log_path = os.path.join(workdir, "server-%s.log" % name)
        self.cwd = cwd
        self.proc = None

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, cwd=self.cwd,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed("%s exited with %s before accepting connections:\n%s"
                             % (self.name, self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise Failed("%s did not accept connections on %s:%d within %d s:\n%s"
                     % (self.name, self.host, self.port, READY_TIMEOUT_S, self.log_text()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.log.close()

    def log_text(self):
        try:
            self.log.flush()
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""


NGINX_CONF = """\
worker_processes 1;
error_log {d}/nginx-error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    default_type application/octet-stream;
    server {{
        listen {listen};
        root {www};{tls}
        location /slow/ {{
            alias {www}/;
            limit_rate {rate};
        }}{extra}
    }}
}}
"""


class Tls:
    """HTTPS settings of nginx_server(): certificate chain and key (PEM
    files), the protocols and key-exchange groups offered, and optionally a
    CA (PEM) that client certificates must chain to (ssl_verify_client on)."""

    def __init__(self, cert, key, protocols="TLSv1.3", groups="X25519:prime256v1",
                 client_ca=None):
        self.cert, self.key, self.protocols, self.groups = cert, key, protocols, groups
        self.client_ca = client_ca

    def nginx_directives(self):
        lines = ["ssl_certificate %s;" % self.cert,
                 "ssl_certificate_key %s;" % self.key,
                 "ssl_protocols %s;" % self.protocols,
                 "ssl_ecdh_curve %s;" % self.groups,
                 "ssl_session_tickets off;"]
        if self.client_ca:
            lines += ["ssl_verify_client on;", "ssl_client_certificate %s;" % self.client_ca]
        return "".join("\n        " + l for l in lines)


def nginx_server(nginx, workdir, www, host="127.0.0.1", tls=None, extra=""):
    """nginx on a free port of `host`; over HTTPS with `tls` (a Tls). Each
    instance needs its own `workdir` (config, pid file, logs, temp paths).
    `extra`: more directives for the server block (e.g. a location)."""
    port = free_port(host)
    conf = os.path.join(workdir, "nginx.conf")
    listen = "%s:%d" % (url_host(host), port) + (" ssl" if tls else "")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=workdir, www=www, rate=SLOW_RATE, listen=listen,
                                  tls=tls.nginx_directives() if tls else "",
                                  extra="\n        " + extra if extra else ""))
    argv = [nginx, "-p", workdir, "-c", conf, "-e", os.path.join(workdir, "nginx-error.log"),
            "-g", "daemon off; master_process off;"]
    return Server("nginx-tls" if tls else "nginx", argv, host, port, workdir)


def openssl_server(openssl, workdir, www, cert, key, version="-tls1_3", name="s_server"):
    """`openssl s_server -WWW` on 127.0.0.1: GET /NAME answers `HTTP/1.0 200 ok`
    and the file of `www`, without a length, then closes. One connection at
    a time. `version`: -tls1_3 or -tls1_2 (the only protocol it accepts)."""
    port = free_port("127.0.0.1")
    argv = [openssl, "s_server", "-accept", "127.0.0.1:%d" % port, "-WWW", "-quiet",
            "-cert", cert, "-key", key, version]
    return Server(name, argv, "127.0.0.1", port, workdir, cwd=www)


def http_server(workdir, www):
    port = free_port("127.0.0.1")
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
            "--directory", www, str(port)]
    return Server("http.server", argv, "127.0.0.1", port, workdir)


def chunked_server(workdir, www, chunk_sizes=None):
    """`chunk_sizes`: the chunk sizes to cycle through (default CHUNK_SIZES)."""
    port = free_port("127.0.0.1")
    argv = [sys.executable, os.path.abspath(__file__), "--serve-chunked", www,
            "--port", str(port)]
    if chunk_sizes:
        argv += ["--chunk-sizes", ",".join(str(n) for n in chunk_sizes)]
    return Server("chunked", argv, "127.0.0.1", port, workdir)


# Chunk sizes cycled through by the chunked server: tiny, odd, around and
# above fota's 4 KiB receive buffer.
CHUNK_SIZES = [1, 7, 100, 4095, 4096, 4097, 5000, 65536, 3, 16384, 1500, 30000]


class ChunkedHandler(http.server.BaseHTTPRequestHandler):
    """GET /NAME: the file in chunks; GET /close/NAME: no length, then close."""
    protocol_version = "HTTP/1.1"
    root = "."
    sizes = CHUNK_SIZES

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        until_close = path.startswith("/close/")
        name = os.path.basename(path)
        file = os.path.join(self.root, name)
        if not name or not os.path.isfile(file):
            self.send_error(404)
            return
        with open(file, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if until_close:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pos, i = 0, 0
        while pos < len(data):
            chunk = data[pos:pos + self.sizes[i % len(self.sizes)]]
            ext = b";part=%d" % i if i % 4 == 3 else b""  # chunk extensions are legal
            size = b"%X" % len(chunk) if i % 2 else b"%x" % len(chunk)  # hex in either case
            self.wfile.write(b"%s%s\r\n%s\r\n" % (size, ext, chunk))
            pos += len(chunk)
            i += 1
        self.wfile.write(b"0\r\nX-Trailer: end\r\n\r\n")

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, BrokenPipeError):
            pass  # the client stopped reading (e.g. --max-len exceeded)

    def log_message(self, fmt, *args):
        sys.stderr.write("chunked: " + (fmt % args) + "\n")


def serve_chunked(root, port, sizes=None):
    ChunkedHandler.root = root
    if sizes:
        ChunkedHandler.sizes = sizes
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), ChunkedHandler)
    server.daemon_threads = True
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve-chunked", metavar="DIR", required=True,
                    help="serve the files of DIR with the chunked server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--chunk-sizes", metavar="N,N,...", default="",
                    help="chunk sizes to cycle through (default: CHUNK_SIZES)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.chunk_sizes.split(",") if n]
    serve_chunked(args.serve_chunked, args.port, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
