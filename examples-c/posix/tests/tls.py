#!/usr/bin/env python3
"""End-to-end HTTPS tests of fota-posix against nginx and openssl s_server.

Every certificate is made at test time with the openssl command line in a
fresh temporary directory (EC P-256 keys, the only kind fota verifies):

  ca.pem          "fota test CA", signs the certificates below
  server.pem      DNS:localhost (the good one)
  other-name.pem  DNS:other.example
  expired.pem     DNS:localhost, valid 2020-01-01 .. 2021-01-01
  future.pem      DNS:localhost, valid from 2099-01-01
  dated.pem       DNS:localhost, made like the two above but valid now
  other-ca.pem    an unrelated CA ("fota other CA"): not the issuer
  impostor-ca.pem a CA with the same name as ca.pem and another key: it is
                  picked by name, so only the signature check can refuse it
  clientca.pem    CA of the client certificates; client.pem/client.key
                  (SEC1 `EC PRIVATE KEY`), rogue-client.pem (another CA)

    tls.py --fota PATH --case CASE [--nginx PATH] [--openssl PATH]

Cases:
  nginx       nginx (ssl_protocols TLSv1.3, ssl_ecdh_curve X25519:prime256v1):
              1 B .. 8 MiB byte-identical with --ca, a CA bundle,
              --max-fragment 512/4096, --insecure (warns); no --ca -> 11;
              an IP literal against a localhost certificate -> 11
  openssl     openssl s_server -tls1_3 -WWW: 1 MiB byte-identical; then one
              s_server per bad peer: wrong CA, impostor CA, other name,
              expired, not yet valid, TLS 1.2 only -> 11, no file left
  resume      faultproxy.py between fota-posix and nginx over TLS: drops and
              resets (first connection) before, during and after the
              handshake and in the body; --retries 3 --retry-delay 5 must
              end byte-identical, with a new handshake per connection
  client-cert nginx with ssl_verify_client on: --client-cert/--client-key
              succeed; without them, or with a certificate of another CA,
              the server refuses (the exit code is checked and printed)
  verifier    one s_server per certificate a verifier gets wrong, each made
              here by openssl; fota-posix connects to 127.0.0.1 whatever the
              name (FOTA_POSIX_CONNECT_ADDR) and sends/verifies the URL's
              host. Accepted: a wildcard for one label, the 5th of five SANs,
              a CN without any SAN, a 242-byte host name (SNI and SAN),
              chains through an intermediate within pathlen. Refused (11): a
              wildcard for two labels, a CN matching beside non-matching
              SANs, an unknown critical extension, keyUsage without
              digitalSignature, extendedKeyUsage clientAuth only, a CA
              certificate as the server's, an intermediate without CA:TRUE,
              one below a root with pathlen:0, an intermediate not sent

Exit status: 0 passed, 1 failed, 77 skipped (no nginx / no openssl).
Python 3 standard library only (plus the openssl and nginx programs).
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e import FOTA_TIMEOUT_MS, IMAGES, SKIP, run_case
from faultproxy import FaultProxy
from servers import Failed, Tls, http_server, nginx_server, openssl_server

OPENSSL_TIMEOUT_S = 30
IMAGE = "img-1m.bin"
TLS_ERR = (11, "FOTA_ERR_TLS")


# ---- certificates -------------------------------------------------------------

class Pki:
    """Makes keys and certificates with the openssl command line in `d`."""

    def __init__(self, openssl, d):
        self.openssl, self.d = openssl, d
        os.makedirs(d)

    def path(self, name):
        return os.path.join(self.d, name)

    def run(self, *args):
        p = subprocess.run([self.openssl] + list(args), cwd=self.d, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=OPENSSL_TIMEOUT_S)
        if p.returncode != 0:
            raise Failed("openssl %s failed:\n%s" % (" ".join(args),
                                                    p.stdout.decode("utf-8", "replace")))

    def key(self, name):
        """An EC P-256 key in SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`)."""
        self.run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.path(name))
        return self.path(name)

    def ca(self, name, subject):
        key = self.key(name + ".key")
        self.run("req", "-x509", "-new", "-key", key, "-sha256", "-days", "3650",
                 "-subj", subject, "-out", self.path(name + ".pem"),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(name + ".pem")

    def issue(self, name, ca, subject, ext_lines, chain=None):
        """A certificate for a new key, signed by CA `ca` (`ca`.pem/.key),
        with exactly the extension lines `ext_lines` (openssl x509v3_config).
        `chain`: also a PEM of the intermediates after it (`name`-chain.pem)."""
        key = self.key(name + ".key")
        csr = self.path(name + ".csr")
        self.run("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("".join(line + "\n" for line in ext_lines))
        pem = self.path(name + ".pem")
        self.run("x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"),
                 "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-days", "30",
                 "-sha256", "-extfile", ext, "-out", pem)
        return pem

    def leaf(self, name, ca, subject, san=None, client=False, start=None, end=None):
        """A certificate signed by CA `ca` (ca.pem/ca.key). `start`/`end`
        (YYYYMMDDHHMMSSZ) set the validity period through `openssl ca`,
        which, unlike `openssl x509 -req` before OpenSSL 3.4, takes dates
        in the past."""
        key = self.key(name + ".key")
        csr = self.path(name + ".csr")
        self.run("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
            if san:
                f.write("subjectAltName=%s\n" % san)
        pem = self.path(name + ".pem")
        if start is None:
            self.run("x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"),
                     "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-days", "30",
                     "-sha256", "-extfile", ext, "-out", pem)
        else:
            self.run("ca", "-batch", "-config", self.ca_config(ca), "-notext",
                     "-startdate", start, "-enddate", end, "-extfile", ext,
                     "-in", csr, "-out", pem)
        return pem, key

    def ca_config(self, ca):
        """A minimal `openssl ca` configuration for CA `ca`."""
        db = self.path(ca + "-db")
        if not os.path.isdir(db):
            os.makedirs(db)
            open(os.path.join(db, "index.txt"), "w").close()
            with open(os.path.join(db, "serial"), "w") as f:
                f.write("1000\n")
        conf = self.path(ca + "-ca.cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca = this\n[this]\n"
                    "dir = %s\ndatabase = $dir/index.txt\nserial = $dir/serial\n"
                    "new_certs_dir = $dir\ncertificate = %s\nprivate_key = %s\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\n"
                    "[any]\ncommonName = supplied\n"
                    % (db, self.path(ca + ".pem"), self.path(ca + ".key")))
        return conf

    def bundle(self, name, *pems):
        with open(self.path(name), "w") as out:
            for pem in pems:
                with open(pem) as f:
                    out.write(f.read())
        return self.path(name)


def make_pki(openssl, d):
    pki = Pki(openssl, d)
    pki.ca("ca", "/CN=fota test CA")
    pki.leaf("server", "ca", "/CN=localhost", "DNS:localhost")
    pki.leaf("other-name", "ca", "/CN=other.example", "DNS:other.example")
    pki.leaf("expired", "ca", "/CN=localhost", "DNS:localhost",
             start="20200101000000Z", end="20210101000000Z")
    pki.leaf("future", "ca", "/CN=localhost", "DNS:localhost",
             start="20990101000000Z", end="20991231000000Z")
    # Control: made like the two above, but valid now (from yesterday).
    now = time.time()
    pki.leaf("dated", "ca", "/CN=localhost", "DNS:localhost",
             start=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now - 86400)),
             end=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now + 30 * 86400)))
    pki.ca("other-ca", "/CN=fota other CA")
    pki.ca("impostor-ca", "/CN=fota test CA")
    pki.ca("clientca", "/CN=fota client CA")
    pki.leaf("client", "clientca", "/CN=device-0001", client=True)
    pki.ca("rogue-clientca", "/CN=fota client CA")
    pki.leaf("rogue-client", "rogue-clientca", "/CN=device-0001", client=True)
    pki.bundle("bundle.pem", pki.path("other-ca.pem"), pki.path("clientca.pem"),
               pki.path("ca.pem"))
    # The same CA as DER (fota takes PEM or DER).
    pki.run("x509", "-in", pki.path("ca.pem"), "-outform", "DER", "-out", pki.path("ca.der"))
    return pki


# ---- helpers ------------------------------------------------------------------

def refused(c, what, url, extra, want=TLS_ERR):
    """fota-posix fails with `want` and leaves neither OUT nor OUT.part;
    prints fota's error log line (--verbose) to show why."""
    out = c.out_path()
    rc, _, err, _ = c.expect_result(what, ["--verbose", "--timeout", FOTA_TIMEOUT_MS,
                                           "--retries", "0"]
                                    + list(extra) + ["--out", out, url], *want)
    errors = [l for l in err.splitlines() if l.startswith("fota error")]
    if errors:
        print("     (%s)" % errors[0])
    c.no_output(out)
    return rc, err


def need(args, nginx=True, openssl=True):
    if openssl and not (args.openssl and os.access(args.openssl, os.X_OK)):
        print("SKIP: openssl not found")
        return False
    if nginx and not (args.nginx and os.access(args.nginx, os.X_OK)):
        print("SKIP: nginx not found")
        return False
    return True


def subdir(workdir, name):
    d = os.path.join(workdir, name)
    os.makedirs(d)
    return d


# ---- cases --------------------------------------------------------------------

def case_nginx(c, args, workdir, www, pki):
    if not need(args):
        return SKIP
    p = pki.path
    tls = Tls(p("server.pem"), p("server.key"))
    with nginx_server(args.nginx, subdir(workdir, "nginx"), www, tls=tls) as s:
        base = "https://localhost:%d/" % s.port
        ca = ["--ca", p("ca.pem")]
        for name in IMAGES:
            c.download(base, name, ca, "(--ca ca.pem)")
        c.download(base, IMAGE, ["--ca", p("ca.der")], "(--ca ca.der: DER)")
        c.download(base, IMAGE, ["--ca", p("bundle.pem")],
                   "(--ca bundle.pem: 3 CAs, the issuer is the last)")
        for frag in ("4096", "512"):
            c.download(base, IMAGE, ca + ["--max-fragment", frag], "(--max-fragment %s)" % frag)
        refused(c, "--max-fragment 1000 (not 512/1024/2048/4096)", base + IMAGE,
                ca + ["--max-fragment", "1000"], (14, "FOTA_ERR_INVALID_ARG"))
        # The status of a TLS request is checked like any other.
        out = c.out_path()
        c.expect_result("missing image over https", ["--timeout", FOTA_TIMEOUT_MS] + ca +
                        ["--out", out, base + "no-such-image.bin"], 6, "FOTA_NO_UPDATE")
        c.no_output(out)

        # Without a CA: refused before any traffic, unless --insecure.
        refused(c, "https without --ca", base + IMAGE, [])
        out = c.out_path()
        rc, _, err, _ = c.expect_result("https with --insecure (no verification)",
                                        ["--verbose", "--timeout", FOTA_TIMEOUT_MS,
                                         "--insecure", "--out", out, base + IMAGE],
                                        0, "FOTA_OK")
        c.expect("  --insecure: identical image",
                 os.path.isfile(out) and filecmp.cmp(out, os.path.join(www, IMAGE), False))
        warned = [l for l in err.splitlines() if l.startswith("fota warn")]
        c.expect("  --insecure: fota logs a warning (%s)" % (warned[:1] or "none"),
                 bool(warned), err[-1500:])
        # The certificate names localhost, not 127.0.0.1.
        refused(c, "https://127.0.0.1 against a DNS:localhost certificate",
                "https://127.0.0.1:%d/%s" % (s.port, IMAGE), ca)
        refused(c, "wrong CA (other-ca.pem, not the issuer)", base + IMAGE,
                ["--ca", p("other-ca.pem")])
        refused(c, "impostor CA (same name as the issuer, other key)", base + IMAGE,
                ["--ca", p("impostor-ca.pem")])
    return None


def case_openssl(c, args, workdir, www, pki):
    if not need(args, nginx=False):
        return SKIP
    p = pki.path
    ca = ["--ca", p("ca.pem")]

    def server(cert, version="-tls1_3", name="s_server"):
        return openssl_server(args.openssl, workdir, www, p(cert + ".pem"), p(cert + ".key"),
                              version, name)

    with server("server") as s:
        base = "https://localhost:%d/" % s.port
        c.download(base, IMAGE, ca, "(s_server -tls1_3 -WWW: the body ends with the close)")
        c.download(base, "img-1b.bin", ca, "(s_server)")
        refused(c, "s_server, wrong CA", base + IMAGE, ["--ca", p("other-ca.pem")])
        refused(c, "s_server, impostor CA", base + IMAGE, ["--ca", p("impostor-ca.pem")])
        refused(c, "s_server, no --ca", base + IMAGE, [])
    with server("dated", name="s_server-dated") as s:
        c.download("https://localhost:%d/" % s.port, IMAGE, ca,
                   "(control: made by `openssl ca` like the expired one, valid now)")
    for cert, what in (("other-name", "certificate for DNS:other.example"),
                       ("expired", "certificate expired 2021-01-01"),
                       ("future", "certificate valid from 2099-01-01")):
        with server(cert, name="s_server-" + cert) as s:
            refused(c, "s_server, %s" % what, "https://localhost:%d/%s" % (s.port, IMAGE), ca)
    with server("server", "-tls1_2", "s_server-tls12") as s:
        refused(c, "s_server -tls1_2 (TLS 1.2 only)",
                "https://localhost:%d/%s" % (s.port, IMAGE), ca)
    return None


def case_resume(c, args, workdir, www, pki):
    if not need(args):
        return SKIP
    p = pki.path
    tls = Tls(p("server.pem"), p("server.key"))
    with open(os.path.join(www, IMAGE), "rb") as f:
        image = f.read()
    with nginx_server(args.nginx, subdir(workdir, "nginx"), www, tls=tls) as s:
        # The server's first flight (ServerHello .. Finished) is about 1 kB;
        # the points cover the handshake, the response head and the body.
        faults = ["drop:0", "drop:50", "drop:700", "reset:700", "drop:1500", "drop:20000",
                  "reset:300000", "drop:524288", "drop:1000000", "drop:%d" % (len(image) + 200)]
        for fault in faults:
            out = c.out_path()
            with FaultProxy(("127.0.0.1", s.port), fault, "first") as proxy:
                rc, _, err, secs = c.expect_result(
                    "https through the proxy, %s on the first connection" % fault,
                    ["--timeout", FOTA_TIMEOUT_MS, "--retries", "3", "--retry-delay", "5",
                     "--ca", p("ca.pem"), "--out", out,
                     "https://localhost:%d/%s" % (proxy.port, IMAGE)], 0, "FOTA_OK")
            same = os.path.isfile(out) and open(out, "rb").read() == image
            c.expect("  byte-identical", same, err[-1500:])
            # A second connection (a new handshake: nginx has session
            # tickets off), and Range instead of a restart from byte 0
            # (which would forward 1.5-2 x the image after a late drop).
            ratio = proxy.forwarded / len(image)
            c.expect("  %d connections, %d bytes forwarded (%.3f x the image, < 1.1: resumed)"
                     % (proxy.connections, proxy.forwarded, ratio),
                     proxy.connections == 2 and ratio < 1.1)
            c.expect("  no .part left", not os.path.exists(out + ".part"))
            if os.path.exists(out):
                os.unlink(out)
        # Every connection dropped during the handshake: retries run out,
        # nothing is written.
        with FaultProxy(("127.0.0.1", s.port), "drop:700", "all") as proxy:
            rc, err = refused(c, "https, drop:700 on every connection (in the handshake)",
                              "https://localhost:%d/%s" % (proxy.port, IMAGE),
                              ["--ca", p("ca.pem")], (3, "FOTA_ERR_DISCONNECTED"))
    return None


def case_client_cert(c, args, workdir, www, pki):
    if not need(args):
        return SKIP
    p = pki.path
    tls = Tls(p("server.pem"), p("server.key"), client_ca=p("clientca.pem"))
    with nginx_server(args.nginx, subdir(workdir, "nginx"), www, tls=tls) as s:
        base = "https://localhost:%d/" % s.port
        ca = ["--ca", p("ca.pem")]
        c.download(base, IMAGE, ca + ["--client-cert", p("client.pem"),
                                      "--client-key", p("client.key")],
                   "(client certificate, SEC1 key)")
        # nginx finishes the TLS 1.3 handshake without a (valid) client
        # certificate and answers 400 ("No required SSL certificate was
        # sent" / "The SSL certificate error"): fota sees a status >= 300,
        # which the server contract calls "no update" (6). Accepted: 4, 6,
        # 11; the code is printed.
        for what, extra in (("no client certificate", []),
                            ("client certificate of another CA",
                             ["--client-cert", p("rogue-client.pem"),
                              "--client-key", p("rogue-client.key")])):
            out = c.out_path()
            rc, _, err, _ = c.run(["--timeout", FOTA_TIMEOUT_MS, "--retries", "0"] + ca + extra
                                  + ["--out", out, base + IMAGE])
            c.expect("ssl_verify_client on, %s -> exit %s (refused: 4, 6 or 11)" % (what, rc),
                     rc in (4, 6, 11), err[-1500:])
            c.no_output(out)
        # A key that is not the certificate's would fail only in the
        # server's check, after the request was sent, where its alert races
        # the reset: fota compares the key with the certificate first.
        refused(c, "--client-cert with a key that does not match it", base + IMAGE,
                ca + ["--client-cert", p("client.pem"), "--client-key", p("server.key")],
                (14, "FOTA_ERR_INVALID_ARG"))
    return None


SERVER_EXT = ["keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth"]
INTERMEDIATE_EXT = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]
LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 40, "fota", "test"])


def verifier_pki(pki):
    """The certificates of case `verifier`: (name, chain or None, host, accepted)."""
    def leaf(name, subject, *ext):
        pki.issue(name, "ca", subject, list(ext))

    leaf("wildcard", "/CN=wildcard", "subjectAltName=DNS:*.fota.test", *SERVER_EXT)
    leaf("five-sans", "/CN=five", "subjectAltName=DNS:one.test,DNS:two.test,DNS:three.test,"
         "DNS:four.test,DNS:localhost", *SERVER_EXT)
    leaf("cn-only", "/CN=localhost", *SERVER_EXT)
    leaf("cn-beside-san", "/CN=localhost", "subjectAltName=DNS:other.test", *SERVER_EXT)
    leaf("long-name", "/CN=long", "subjectAltName=DNS:" + LONG_HOST, *SERVER_EXT)
    leaf("critical", "/CN=localhost", "subjectAltName=DNS:localhost",
         "1.2.3.4=critical,ASN1:UTF8String:unknown", *SERVER_EXT)
    leaf("noncritical", "/CN=localhost", "subjectAltName=DNS:localhost",
         "1.2.3.4=ASN1:UTF8String:unknown", *SERVER_EXT)
    leaf("key-encipherment", "/CN=localhost", "subjectAltName=DNS:localhost",
         "keyUsage=critical,keyEncipherment")
    leaf("client-only", "/CN=localhost", "subjectAltName=DNS:localhost",
         "extendedKeyUsage=clientAuth")
    leaf("ca-as-server", "/CN=localhost", "subjectAltName=DNS:localhost",
         "basicConstraints=critical,CA:TRUE")
    # Chains: root -> intermediate -> server, the server sends both.
    for root, constraints in (("root-pathlen0", "CA:TRUE,pathlen:0"),
                              ("root-pathlen1", "CA:TRUE,pathlen:1")):
        key = pki.key(root + ".key")
        pki.run("req", "-x509", "-new", "-key", key, "-sha256", "-days", "30",
                "-subj", "/CN=" + root, "-out", pki.path(root + ".pem"),
                "-addext", "basicConstraints=critical," + constraints,
                "-addext", "keyUsage=critical,keyCertSign")
    for inter, root, ext in (("inter-ok", "root-pathlen1", INTERMEDIATE_EXT),
                             ("inter-deep", "root-pathlen0", INTERMEDIATE_EXT),
                             ("inter-not-ca", "root-pathlen1",
                              ["basicConstraints=critical,CA:FALSE"])):
        pki.issue(inter, root, "/CN=" + inter, ext)
        pki.issue(inter + "-server", inter, "/CN=localhost",
                  ["subjectAltName=DNS:localhost"] + SERVER_EXT)
    return [
        ("wildcard", None, "a.fota.test", "", True),
        ("wildcard", None, "a.b.fota.test", "", False),
        ("five-sans", None, "localhost", "", True),
        ("cn-only", None, "localhost", "", True),
        ("cn-beside-san", None, "localhost", "", False),
        ("long-name", None, LONG_HOST, "", True),
        ("critical", None, "localhost", "", False),
        ("noncritical", None, "localhost", "", True),
        ("key-encipherment", None, "localhost", "", False),
        ("client-only", None, "localhost", "", False),
        ("ca-as-server", None, "localhost", "", False),
        ("inter-ok-server", "inter-ok", "localhost", "root-pathlen1", True),
        ("inter-ok-server", None, "localhost", "root-pathlen1", False),
        ("inter-deep-server", "inter-deep", "localhost", "root-pathlen0", False),
        ("inter-not-ca-server", "inter-not-ca", "localhost", "root-pathlen1", False),
    ]


def case_verifier(c, args, workdir, www, pki):
    if not need(args, nginx=False):
        return SKIP
    os.environ["FOTA_POSIX_CONNECT_ADDR"] = "127.0.0.1"
    p = pki.path
    for cert, chain, host, root, accepted in verifier_pki(pki):
        ca = ["--ca", p((root if root.startswith("root-") else "ca") + ".pem")]
        what = "%s%s for %s" % (cert, " + " + chain if chain else "",
                                host if len(host) < 40 else "a %d-byte name" % len(host))
        with openssl_server(args.openssl, workdir, www, p(cert + ".pem"), p(cert + ".key"),
                            name="s_server-" + cert,
                            chain=p(chain + ".pem") if chain else None) as s:
            url = "https://%s:%d/%s" % (host, s.port, IMAGE)
            if accepted:
                c.download("https://%s:%d/" % (host, s.port), IMAGE, ca, "(%s)" % what)
            else:
                refused(c, what, url, ca)
    return None


def case_downgrade(c, args, workdir, www, pki):
    """An https server that redirects to plain http: refused (the image would
    arrive unauthenticated) unless --allow-insecure-redirect."""
    if not need(args, openssl=False):
        return SKIP
    p = pki.path
    with http_server(subdir(workdir, "plain"), www) as plain:
        to_http = "location = /to-http {{ return 302 http://127.0.0.1:{}/{}; }}".format(
            plain.port, IMAGE)
        tls = Tls(p("server.pem"), p("server.key"))
        with nginx_server(args.nginx, subdir(workdir, "nginx"), www, tls=tls,
                          extra=to_http) as s:
            url = "https://localhost:%d/to-http" % s.port
            ca = ["--ca", p("ca.pem"), "--max-redirects", "2"]
            refused(c, "https redirect to http", url, ca)
            out = c.out_path()
            c.expect_result("the same with --allow-insecure-redirect",
                            ["--timeout", FOTA_TIMEOUT_MS] + ca +
                            ["--allow-insecure-redirect", "--out", out, url], 0, "FOTA_OK")
            c.expect("  identical image", os.path.isfile(out) and
                     filecmp.cmp(out, os.path.join(www, IMAGE), False))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fota", help="path of the fota-posix program")
    ap.add_argument("--case", choices=["nginx", "openssl", "resume", "client-cert", "downgrade",
                                       "verifier"])
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--openssl", default=shutil.which("openssl"))
    args = ap.parse_args()
    if not args.fota or not args.case:
        ap.error("--fota and --case are required")

    if not need(args, nginx=False):
        return SKIP
    case = {"nginx": case_nginx, "openssl": case_openssl, "resume": case_resume,
            "client-cert": case_client_cert, "downgrade": case_downgrade,
            "verifier": case_verifier}[args.case]

    def with_pki(c, workdir, www):
        return case(c, args, workdir, www, make_pki(args.openssl, os.path.join(workdir, "pki")))
    return run_case(args.fota, args.case, "fota-tls-", with_pki)


if __name__ == "__main__":
    sys.exit(main())
