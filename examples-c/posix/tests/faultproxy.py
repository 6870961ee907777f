#!/usr/bin/env python3
"""A fault-injection TCP proxy for the fota-posix tests (loopback only).

It listens on 127.0.0.1, forwards every connection to an upstream HTTP server
and breaks the response stream on purpose. A fault applies to the first
connection only (scope "first") or to every connection (scope "all"); the
other connections pass through untouched.

Fault kinds (N = response bytes forwarded on that connection first):

  none          forward everything
  drop:N        forward N bytes, then close in an orderly way (FIN)
  reset:N       forward N bytes, then reset the connection (SO_LINGER 0: RST)
  stall:N       forward N bytes, then forward nothing more but keep both
                sockets open until the client gives up (bounded: STALL_MAX_S)
  trunchead     forward the first half of the response head, then close
  garbage       read the request, answer GARBAGE_LEN bytes that are not HTTP,
                then close (no upstream connection)
  acceptclose   accept and close at once (no upstream connection)

The proxy counts the response bytes it forwarded to clients over all
connections (`forwarded`), and the connections it accepted (`connections`).

As a module:

    with FaultProxy(("127.0.0.1", 8080), "drop:5000", scope="first") as p:
        ... connect to 127.0.0.1:p.port ...
    print(p.forwarded, p.connections)

As a program (runs until SIGINT/SIGTERM or --duration, then prints the counts):

    faultproxy.py --upstream 127.0.0.1:8080 --fault drop:5000 [--scope all] [--port P]

Every loop and wait is bounded: sockets poll in POLL_S steps, a connection
lives at most CONN_MAX_S, stop() joins its threads with a timeout.
Python 3 standard library only.
"""

import argparse
import fcntl
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time

POLL_S = 0.05          # select() step: how fast stop() and faults are noticed
CONN_MAX_S = 60        # longest life of one proxied connection
STALL_MAX_S = 60       # longest stall (the client normally gives up much sooner)
CONNECT_TIMEOUT_S = 5  # connecting upstream
JOIN_TIMEOUT_S = 5     # stop(): per thread
GARBAGE_LEN = 512
KINDS = ("none", "drop", "reset", "stall", "trunchead", "garbage", "acceptclose")
WITH_BYTES = ("drop", "reset", "stall")


def parse_fault(text):
    """'drop:1000' -> ('drop', 1000); 'garbage' -> ('garbage', None)."""
    kind, _, n = text.partition(":")
    if kind not in KINDS:
        raise ValueError("unknown fault kind %r (one of %s)" % (kind, ", ".join(KINDS)))
    if kind in WITH_BYTES:
        if not n.isdigit():
            raise ValueError("%s needs a byte count: %s:N" % (kind, kind))
        return kind, int(n)
    if n:
        raise ValueError("%s takes no byte count" % kind)
    return kind, None


def wait_sent(sock, timeout_s=1.0):
    """Waits (bounded) until the kernel has no unacknowledged bytes of `sock`
    queued (Linux TIOCOUTQ), so that a reset does not discard bytes counted as
    forwarded. Best effort elsewhere."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                    b"\0\0\0\0"))[0]
        except (OSError, AttributeError):
            return
        if queued == 0:
            return
        time.sleep(0.002)


def reset_close(sock):
    """Closes with an RST instead of a FIN (after the forwarded bytes left)."""
    wait_sent(sock)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def orderly_close(sock):
    """Sends a FIN, then closes."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """One listening proxy with one fault; see the module documentation."""

    def __init__(self, upstream, fault="none", scope="first", port=0):
        if scope not in ("first", "all"):
            raise ValueError("scope must be 'first' or 'all'")
        self.upstream = upstream
        self.kind, self.n = parse_fault(fault) if isinstance(fault, str) else fault
        self.scope = scope
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))  # loopback only
        self.listener.listen(16)
        self.listener.settimeout(POLL_S)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.forwarded = 0       # response bytes sent to clients, all connections
        self.connections = 0     # connections accepted
        self.faults_done = 0     # connections on which the fault was applied
        self.fault_event = threading.Event()  # set when a fault first took effect
        self.errors = []         # unexpected proxy-side exceptions (for diagnosis)
        self.stop_event = threading.Event()
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    # ---- lifecycle ----------------------------------------------------------

    def start(self):
        self.acceptor.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.acceptor.join(timeout=JOIN_TIMEOUT_S)
        for t in list(self.threads):
            t.join(timeout=JOIN_TIMEOUT_S)
        self.listener.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- internals ----------------------------------------------------------

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            faulty = self.scope == "all" or number == 1
            t = threading.Thread(target=self._serve, args=(client, faulty), daemon=True)
            self.threads.append(t)
            t.start()

    def _count(self, n):
        with self.lock:
            self.forwarded += n

    def _faulted(self):
        with self.lock:
            self.faults_done += 1
        self.fault_event.set()

    def _serve(self, client, faulty):
        kind = self.kind if faulty else "none"
        upstream = None
        try:
            if kind == "acceptclose":
                self._faulted()
                orderly_close(client)
                return
            if kind == "garbage":
                self._garbage(client)
                return
            upstream = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT_S)
            self._pump(client, upstream, kind)
        except OSError as e:
            # The client went away (abort, its own timeout): not a proxy failure.
            if not isinstance(e, (ConnectionError, socket.timeout)):
                self.errors.append(repr(e))
        finally:
            for s in (client, upstream):
                if s is not None and s.fileno() >= 0:
                    s.close()

    def _garbage(self, client):
        """Waits (bounded) for the request, answers bytes that are not HTTP."""
        client.settimeout(CONNECT_TIMEOUT_S)
        try:
            client.recv(65536)
        except OSError:
            pass
        junk = (b"\x00\xff\x13GARBAGE \x7f" * (GARBAGE_LEN // 12 + 1))[:GARBAGE_LEN]
        client.sendall(junk)
        self._count(len(junk))
        self._faulted()
        orderly_close(client)

    def _pump(self, client, upstream, kind):
        limit = self.n if kind in WITH_BYTES else None
        head = b""            # trunchead: the response head collected so far
        sent = 0              # response bytes forwarded on this connection
        stalled = False
        client.setblocking(True)
        upstream.setblocking(True)
        client.settimeout(CONN_MAX_S)
        upstream.settimeout(CONN_MAX_S)
        ends = time.monotonic() + CONN_MAX_S
        stall_ends = None

        def apply_fault():
            nonlocal stalled, stall_ends
            self._faulted()
            if kind == "drop":
                orderly_close(client)
                return True
            if kind == "reset":
                reset_close(client)
                return True
            stalled = True  # stall: stop reading upstream, keep the client open
            stall_ends = time.monotonic() + STALL_MAX_S
            return False

        if limit == 0 and apply_fault():
            return
        while not self.stop_event.is_set() and time.monotonic() < ends:
            if stalled and time.monotonic() >= stall_ends:
                return
            watch = [client] if stalled else [client, upstream]
            readable, _, _ = select.select(watch, [], [], POLL_S)
            if client in readable:
                data = client.recv(65536)
                if not data:
                    return  # the client closed (done, gave up or aborted)
                if not stalled:
                    upstream.sendall(data)
            if upstream in readable and not stalled:
                data = upstream.recv(65536)
                if not data:
                    orderly_close(client)  # upstream finished (read-to-close bodies)
                    return
                if kind == "trunchead":
                    head += data
                    end = head.find(b"\r\n\r\n")
                    if end < 0 and len(head) < 65536:
                        continue
                    cut = max(1, (end if end >= 0 else len(head)) // 2)
                    client.sendall(head[:cut])
                    self._count(cut)
                    self._faulted()
                    orderly_close(client)
                    return
                if limit is not None:
                    data = data[:limit - sent]
                if data:
                    client.sendall(data)
                    sent += len(data)
                    self._count(len(data))
                if limit is not None and sent >= limit and apply_fault():
                    return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, metavar="HOST:PORT")
    ap.add_argument("--fault", default="none", help="none, drop:N, reset:N, stall:N, "
                    "trunchead, garbage, acceptclose")
    ap.add_argument("--scope", choices=["first", "all"], default="first")
    ap.add_argument("--port", type=int, default=0, help="listening port (default: any free)")
    ap.add_argument("--duration", type=float, default=3600.0,
                    help="stop after this many seconds (default: 3600)")
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    try:
        proxy = FaultProxy((host, int(port)), args.fault, args.scope, args.port)
    except ValueError as e:
        ap.error(str(e))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with proxy:
        print("listening on 127.0.0.1:%d -> %s, fault %s (%s)"
              % (proxy.port, args.upstream, args.fault, args.scope), flush=True)
        stop.wait(timeout=args.duration)
    print("connections %d, faults %d, response bytes forwarded %d"
          % (proxy.connections, proxy.faults_done, proxy.forwarded), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
