#!/usr/bin/env python3
"""Host bridge of the QEMU firmware's serial link (the "modem"), and a runner
for one firmware request.

QEMU connects the firmware's UART0 to a TCP socket (-serial
tcp:127.0.0.1:PORT) on which a Bridge listens. The firmware sends commands,
the bridge answers each with exactly one reply (README.md, "The serial
link"):

  h HELLO        -> H the test configuration (TLVs, see config())
  o OPEN         -> O status: opens a TCP connection (loopback hosts only)
  s SEND         -> S bytes sent, or < 0
  r RECV         -> R status (> 0 bytes, 0 closed, -11 nothing in time, < 0
                      error) and the bytes
  c CLOSE        -> C 0
  t TIME         -> T host time (seconds since 1970, u64)
  n RANDOM       -> N random bytes (os.urandom)

Frame: 0x7E, type (1 byte), payload length (2, little-endian), payload,
Fletcher-16 of type+length+payload (2: sum1, sum2).

Every wait is bounded: socket operations by the firmware's own timeouts (at
most CONNECT_MAX_S / RECV_MAX_S), the whole session by `deadline_s`.

Power loss (the resume test): QEMU loads the NOR chip (update area and
state sectors, NOR_CHIP_SIZE bytes at NOR_CHIP_ADDRESS) from a host file;
once the bridge has handed the firmware `cut_after` bytes, it leaves the
next RECV unanswered and, over QEMU's QMP socket, stops the CPU where it
is, saves the chip back into that file and quits QEMU: the next run starts
from what a power cut at that instant would have left in flash.

As a program (one request; prints the firmware's output and exits with its
exit code; used by scripts/firmware-figures.sh):

    bridge.py --fw fota-fw.elf --url URL [--ca PEM] [--expect-result N]
              [--expect-file FILE] [--icount] [--retries N]
              [--image-key PEM --version X.Y.Z] [--no-readback]

Python 3 standard library only.
"""

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

SYNC = 0x7E
ALLOWED_HOSTS = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1"}  # loopback only
ACCEPT_TIMEOUT_S = 10      # QEMU must connect within this
CONNECT_MAX_S = 10         # longest TCP connect
RECV_MAX_S = 10            # longest single wait for data
POLL_S = 0.05              # how fast stop() is noticed
QEMU_TIMEOUT_S = 60        # one firmware run, killed by timeout(1) after this
WOULD_BLOCK, ERROR, RESET = -11, -1, -104
NOR_SIZE, NOR_SECTOR = 256 * 1024, 4096           # fw.h
NOR_CHIP_ADDRESS = 0x00200000                     # fw.h, mps2-an386.ld
NOR_CHIP_SIZE = NOR_SIZE + 2 * NOR_SECTOR         # the update area, then two state slots


class LinkError(Exception):
    pass


class PowerCut(Exception):
    """The bridge cut the power: the run ends here, by design."""


def new_chip(path):
    """A new device's NOR chip in `path`, as nor_reset(false) leaves it: the
    old firmware's bytes (0x00) in the update area, erased state sectors."""
    with open(path, "wb") as f:
        f.write(bytes(NOR_SIZE) + b"\xff" * (NOR_CHIP_SIZE - NOR_SIZE))


def newest_record(path):
    """The newest record (fota's magic, the highest sequence number) in the
    state slots of the chip in `path`, as (slot, sequence number, live), or
    None (the record format: README.md of the project, "Resume across
    reboots"; the CRC is fota's to check)."""
    with open(path, "rb") as f:
        chip = f.read()
    heads = [chip[NOR_SIZE + slot * NOR_SECTOR:][:12] for slot in (0, 1)]
    found = [(struct.unpack_from("<I", h, 8)[0], slot, bool(h[5] & 1))
             for slot, h in enumerate(heads) if h[:4] == b"FOTA"]
    if not found:
        return None
    seq, slot, live = max(found)
    return slot, seq, live


def qmp(path, commands):
    """Runs QMP `commands` (dicts) on QEMU's monitor socket `path`, each
    awaited; an error reply raises LinkError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(RECV_MAX_S)
        s.connect(path)
        f = s.makefile("rwb")
        f.readline()  # the greeting
        for cmd in [{"execute": "qmp_capabilities"}] + commands:
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    if cmd["execute"] == "quit":
                        return  # gone before it answered
                    raise LinkError("QMP closed during %s" % cmd["execute"])
                msg = json.loads(line)
                if "error" in msg:
                    raise LinkError("QMP %s: %s" % (cmd["execute"], msg["error"]))
                if "return" in msg:
                    break  # (events are skipped)


def fletcher16(data):
    a = b = 0
    for x in data:
        a = (a + x) % 255
        b = (b + a) % 255
    return bytes([a, b])


def frame(kind, payload=b""):
    body = bytes([ord(kind)]) + struct.pack("<H", len(payload)) + payload
    return bytes([SYNC]) + body + fletcher16(body)


def i32(v):
    return struct.pack("<i", v)


def config(url, ca=None, expect_result=0, expect_len=0, dump=None, retries=0,
           retry_delay_ms=50, idle_timeout_ms=5000, timeout_ms=60000, image_key=None,
           image_sha256=None, version=None, allow_downgrade=False, security_counter=0,
           read_back=True, expect_reason=0, stuck_bit_at=None, state_interval=0,
           chip=None):
    """The HELLO answer: tag (1 byte), length (2, LE), value; strings end
    with a NUL, numbers are u32/i32 little-endian. `image_key` (PEM or DER
    bytes), `image_sha256` (32 bytes), `version`, `allow_downgrade` and
    `security_counter` are fota_opts_t's; `read_back`: the NOR model gives
    fota its read hook; `expect_reason`: fota_progress_t.verify_reason;
    `stuck_bit_at`: the image offset where the NOR model fails to program a
    bit (fault injection); `state_interval` != 0: fota gets the NOR model's
    resume hooks (and this fota_opts_t.state_interval), and the firmware
    takes the NOR chip as QEMU loaded it; `chip`: the host file the
    firmware writes the NOR chip to at the end of the run (a clean
    power-off)."""
    def tlv(tag, value):
        return tag.encode() + struct.pack("<H", len(value)) + value
    out = tlv("u", url.encode() + b"\0")
    if ca is not None:
        out += tlv("c", ca)
    if dump is not None:
        out += tlv("d", dump.encode() + b"\0")
    if image_key is not None:
        out += tlv("k", image_key)
    if image_sha256 is not None:
        out += tlv("h", image_sha256)
    if version is not None:
        out += tlv("v", version.encode() + b"\0")
    if chip is not None:
        out += tlv("g", os.path.abspath(chip).encode() + b"\0")
    for tag, v in (("r", expect_result), ("l", expect_len), ("m", retries),
                   ("w", retry_delay_ms), ("i", idle_timeout_ms), ("x", timeout_ms),
                   ("a", int(allow_downgrade)), ("s", security_counter),
                   ("b", int(read_back)), ("e", expect_reason),
                   ("f", 0 if stuck_bit_at is None else stuck_bit_at + 1),
                   ("p", state_interval)):
        out += tlv(tag, struct.pack("<i" if tag == "r" else "<I", v))
    return out


class Bridge:
    """Listens on 127.0.0.1 for QEMU's serial socket and serves one firmware
    run in a thread. `fill_s` > 0: a RECV waits that long for more bytes
    after the first ones until it has all it may take (steadier chunking
    for instruction counts; 0 = answer with what is there). `cut`: (bytes,
    QMP socket, chip file): cut the power after handing the firmware that
    many bytes (see the module's doc)."""

    def __init__(self, cfg, deadline_s=QEMU_TIMEOUT_S, fill_s=0.0, cut=None):
        self.cfg, self.deadline_s, self.fill_s, self.cut = cfg, deadline_s, fill_s, cut
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(POLL_S)
        self.port = self.listener.getsockname()[1]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.serial = None
        self.tcp = None
        self.eof = False            # the peer closed; the next RECV says 0
        self.rx = b""
        self.errors = []            # link or protocol failures (the test fails)
        self.commands = {}          # command letter -> count
        self.connections = []       # (host, port, status) of every OPEN
        self.relayed = 0            # bytes handed to the firmware (RECV)
        self.power_cut = False
        self.deadline = time.monotonic() + deadline_s

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)
        for s in (self.serial, self.tcp, self.listener):
            if s is not None:
                s.close()

    # ---- the serial side ----------------------------------------------------

    def _read(self, n):
        while len(self.rx) < n:
            if self.stop_event.is_set() or time.monotonic() > self.deadline:
                raise LinkError("stopped or past the deadline while reading a frame")
            r, _, _ = select.select([self.serial], [], [], POLL_S)
            if r:
                data = self.serial.recv(65536)
                if not data:
                    raise EOFError
                self.rx += data
        out, self.rx = self.rx[:n], self.rx[n:]
        return out

    def _read_frame(self):
        sync = self._read(1)
        if sync[0] != SYNC:
            raise LinkError("bad sync byte 0x%02x" % sync[0])
        head = self._read(3)
        payload = self._read(struct.unpack("<H", head[1:])[0])
        if self._read(2) != fletcher16(head + payload):
            raise LinkError("bad checksum on a %r frame" % chr(head[0]))
        return chr(head[0]), payload

    def _reply(self, kind, payload=b""):
        self.serial.sendall(frame(kind, payload))

    def _run(self):
        try:
            while self.serial is None:
                if self.stop_event.is_set() or time.monotonic() > self.deadline:
                    return
                try:
                    self.serial, _ = self.listener.accept()
                except socket.timeout:
                    continue
            self.serial.settimeout(RECV_MAX_S)
            # Replies are small and each one is awaited: no Nagle delay.
            self.serial.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    kind, payload = self._read_frame()
                except EOFError:
                    return  # QEMU exited
                self.commands[kind] = self.commands.get(kind, 0) + 1
                self._dispatch(kind, payload)
        except PowerCut:
            return
        except (LinkError, OSError, struct.error, ValueError) as e:
            if not self.stop_event.is_set():
                self.errors.append(repr(e))
        finally:
            if self.tcp is not None:
                self.tcp.close()
                self.tcp = None

    # ---- the commands -------------------------------------------------------

    def _dispatch(self, kind, p):
        if kind == "h":
            self._reply("H", self.cfg)
        elif kind == "o":
            timeout_ms, port = struct.unpack_from("<IH", p)
            self._reply("O", i32(self._open(p[6:].decode("utf-8", "replace"), port, timeout_ms)))
        elif kind == "s":
            timeout_ms, = struct.unpack_from("<I", p)
            self._reply("S", i32(self._send(p[4:], timeout_ms)))
        elif kind == "r":
            if self.cut is not None and self.relayed >= self.cut[0]:
                self._cut_power()
            timeout_ms, most = struct.unpack_from("<IH", p)
            st, data = self._recv(most, timeout_ms)
            self.relayed += len(data)
            self._reply("R", i32(st) + data)
        elif kind == "c":
            if self.tcp is not None:
                self.tcp.close()
                self.tcp = None
            self._reply("C", i32(0))
        elif kind == "t":
            self._reply("T", struct.pack("<Q", int(time.time())))
        elif kind == "n":
            n, = struct.unpack_from("<H", p)
            self._reply("N", os.urandom(n))
        else:
            raise LinkError("unknown command %r" % kind)

    def _cut_power(self):
        """Freezes the firmware where it is (waiting for this RECV's reply),
        saves the NOR chip into the chip file and ends QEMU."""
        _, sock, chip = self.cut
        qmp(sock, [{"execute": "stop"},
                   {"execute": "pmemsave", "arguments": {
                       "val": NOR_CHIP_ADDRESS, "size": NOR_CHIP_SIZE, "filename": chip}},
                   {"execute": "quit"}])
        self.power_cut = True
        raise PowerCut

    def _open(self, host, port, timeout_ms):
        if self.tcp is not None:
            self.errors.append("OPEN while a connection is open")
            return ERROR
        addr = ALLOWED_HOSTS.get(host)
        if addr is None:  # test tooling: never leaves the machine
            self.connections.append((host, port, ERROR))
            return ERROR
        try:
            self.tcp = socket.create_connection((addr, port),
                                                timeout=min(timeout_ms / 1000, CONNECT_MAX_S))
            self.tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self.connections.append((host, port, ERROR))
            return ERROR
        self.eof = False
        self.connections.append((host, port, 0))
        return 0

    def _send(self, data, timeout_ms):
        if self.tcp is None:
            return ERROR
        try:
            self.tcp.settimeout(max(0.001, min(timeout_ms / 1000, RECV_MAX_S)))
            self.tcp.sendall(data)
            return len(data)
        except socket.timeout:
            return WOULD_BLOCK
        except ConnectionResetError:
            return RESET
        except OSError:
            return ERROR

    def _recv(self, most, timeout_ms):
        if self.tcp is None:
            return ERROR, b""
        if self.eof:
            return 0, b""
        wait = min(timeout_ms / 1000, RECV_MAX_S)
        try:
            r, _, _ = select.select([self.tcp], [], [], wait)
            if not r:
                return WOULD_BLOCK, b""
            data = self.tcp.recv(most)
            if not data:
                return 0, b""
            while self.fill_s > 0 and len(data) < most:
                r, _, _ = select.select([self.tcp], [], [], self.fill_s)
                if not r:
                    break
                more = self.tcp.recv(most - len(data))
                if not more:
                    self.eof = True
                    break
                data += more
            return len(data), data
        except ConnectionResetError:
            return RESET, b""
        except OSError:
            return ERROR, b""


def parse_report(output):
    """The firmware's `REPORT k=v ... PASS|FAIL` line as a dict (with
    'verdict'), or None."""
    for line in output.splitlines():
        if line.startswith("REPORT "):
            words = line.split()
            rep = {k: int(v) for k, v in (w.split("=", 1) for w in words[1:-1])}
            rep["verdict"] = words[-1]
            return rep
    return None


def run_firmware(elf, cfg, icount=False, fill_s=0.0, timeout_s=QEMU_TIMEOUT_S, chip=None,
                 cut_after=None):
    """Runs the firmware once against a Bridge serving `cfg`. `chip`: a host
    file of NOR_CHIP_SIZE bytes that QEMU loads as the NOR chip (see
    new_chip()); `cut_after`: cut the power after that many bytes and save
    the chip back into `chip`. Returns (exit code, output, report dict or
    None, bridge)."""
    sock = chip + ".qmp" if cut_after is not None else None
    cut = (cut_after, sock, os.path.abspath(chip)) if sock else None
    with Bridge(cfg, deadline_s=timeout_s + 5, fill_s=fill_s, cut=cut) as bridge:
        argv = ["timeout", str(timeout_s), "qemu-system-arm", "-M", "mps2-an386", "-nographic",
                "-monitor", "none", "-serial", "tcp:127.0.0.1:%d,nodelay=on" % bridge.port,
                "-semihosting-config", "enable=on,target=native", "-kernel", elf]
        if icount:
            argv[5:5] = ["-icount", "shift=0"]
        if chip is not None:
            argv += ["-device", "loader,file=%s,addr=0x%x,force-raw=on"
                     % (os.path.abspath(chip), NOR_CHIP_ADDRESS)]
        if sock is not None:
            argv += ["-qmp", "unix:%s,server=on,wait=off" % sock]
        # QEMU 7.2 writes semihosting output to stderr.
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout_s + 10)
        output = p.stdout.decode("utf-8", "replace")
        bridge.thread.join(timeout=5)
    return p.returncode, output, parse_report(output), bridge


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fw", required=True, help="fota-fw.elf")
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", help="CA certificate(s), PEM or DER")
    ap.add_argument("--expect-result", type=int, default=0)
    ap.add_argument("--expect-file", help="the image the server serves (length and bytes checked)")
    ap.add_argument("--retries", type=int, default=0)
    ap.add_argument("--image-key", help="MCUboot signing key (imgtool getpub -e pem)")
    ap.add_argument("--version", help="the current version (downgrade check)")
    ap.add_argument("--no-readback", action="store_true", help="no flash read hook")
    ap.add_argument("--icount", action="store_true", help="-icount shift=0 (1 instruction = 1 ns)")
    ap.add_argument("--fill-ms", type=float, default=0.0, help="see Bridge.fill_s")
    args = ap.parse_args()
    ca = open(args.ca, "rb").read() if args.ca else None
    key = open(args.image_key, "rb").read() if args.image_key else None
    expect = open(args.expect_file, "rb").read() if args.expect_file else b""
    dump = None
    if args.expect_file:
        dump = os.path.abspath("fota-fw-image-%d.bin" % os.getpid())
    try:
        rc, out, rep, bridge = run_firmware(
            args.fw, config(args.url, ca, args.expect_result, len(expect), dump, args.retries,
                            image_key=key, version=args.version,
                            read_back=not args.no_readback),
            icount=args.icount, fill_s=args.fill_ms / 1000)
        sys.stdout.write(out)
        for e in bridge.errors:
            print("bridge: %s" % e)
        if dump is not None and rc == 0 and args.expect_result == 0:
            same = os.path.exists(dump) and open(dump, "rb").read() == expect
            print("image in NOR %s the served file" % ("identical to" if same else "DIFFERS from"))
            rc = rc if same else 1
        return rc if not bridge.errors else 1
    finally:
        if dump is not None and os.path.exists(dump):
            os.unlink(dump)


if __name__ == "__main__":
    sys.exit(main())
