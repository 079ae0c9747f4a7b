"""TLS termination on listeners (issue 5, first part), through the real binary with real
clients: Python's ssl module, `openssl s_client` and `curl`.

HTTPS through to the upstream (keep-alive, large bodies both ways, X-Forwarded-Proto),
curl, SNI (exact, wildcard, default), ALPN, protocol versions (1.0/1.1 refused, 1.2 and
1.3 accepted, min_version "1.3"), certificate chains, RSA and EC keys, session
resumption across workers, mTLS (require / optional; right CA, other CA, expired, none),
plain HTTP on the TLS port, the handshake timeout, handshake metrics
(sluice_tls_handshakes_total{listener,result}) without a log line per failure,
certificate reload on SIGHUP (connections kept, new certificate served; a bad one keeps
the old), and `sluice validate` naming a bad certificate or key file.

Certificates are made at test time by tests/support/tls_certs.py (`openssl`), once per
module, and copied into each test's directory so configs can name them relatively.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import time
import unittest

from admin_helpers import admin_request, fetch_metrics, metric, wait_reloads
from harness import (DEFAULT_TIMEOUT, SLUICE_BIN, Client, ConnectionClosed, SluiceTestCase,
                     build_request, free_port, pattern_sha256, run_sluice)
import tls_certs  # tests/support, on sys.path via harness

# Sanitizer builds (SLUICE_SANITIZED=1) start slower and run every callback slower.
SLOW = 3 if os.environ.get("SLUICE_SANITIZED") else 1
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
PROMTOOL = shutil.which("promtool")
METRIC = "sluice_tls_handshakes_total"
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}

PKI = None        # tls_certs.TestPki, made once in setUpModule
PKI_DIR = None    # where its files are (copied into every test's directory)
_pki_tmp = None


def setUpModule():
    global PKI, PKI_DIR, _pki_tmp
    if not tls_certs.openssl_available():
        raise RuntimeError("the `openssl` command is not installed (Debian package openssl; "
                           "scripts/install-deps installs it): cannot make test certificates")
    _pki_tmp = tempfile.TemporaryDirectory(prefix="sluice-tls-pki-")
    PKI_DIR = _pki_tmp.name
    PKI = tls_certs.make_test_pki(PKI_DIR)
    # A chain: leaf (localhost) <- intermediate <- ca; chain.pem holds leaf + intermediate.
    PKI.intermediate = PKI.ca.issue_ca("intermediate", "sluice test intermediate")
    PKI.chain = PKI.intermediate.issue("chain", "localhost chained", dns=["localhost"],
                                       ips=["127.0.0.1"], chain=True)


def tearDownModule():
    if _pki_tmp is not None:
        _pki_tmp.cleanup()


def der_of(path):
    """DER of the first certificate in a PEM file."""
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_context(cafile, cert=None, key=None, minimum=None, maximum=None, alpn=None):
    """A verifying TLS client context (hostname checked) trusting `cafile`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TlsClient(Client):
    """harness.Client over TLS: the handshake happens in the constructor."""

    def __init__(self, host, port, context, server_hostname="localhost",
                 timeout=DEFAULT_TIMEOUT, session=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=server_hostname,
                                            session=session)
        except BaseException:
            raw.close()
            raise
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)

    def is_closed(self, timeout=2.0):
        try:
            return super().is_closed(timeout)
        except (ssl.SSLError, OSError):
            self.eof = True
            return True


class SClient:
    """The output of one `openssl s_client` run, parsed."""

    def __init__(self, cmd, rc, out):
        self.cmd, self.rc, self.out = cmd, rc, out
        m = re.search(r"^(New|Reused), ([^,]+), Cipher is (\S+)\s*$", out, re.M)
        self.protocol = m.group(2) if m else None      # "TLSv1.3", "(NONE)", None
        self.cipher = m.group(3) if m else None        # "(NONE)" when no handshake
        m = re.search(r"^ALPN protocol: (\S+)\s*$", out, re.M)
        self.alpn = m.group(1) if m else None
        self.no_alpn = bool(re.search(r"^No ALPN negotiated\s*$", out, re.M))
        m = re.search(r"^subject=(.*)$", out, re.M)
        self.subject = m.group(1).strip() if m else None
        m = re.search(r"(-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----)", out, re.S)
        self.leaf_pem = m.group(1) if m else None
        self.chain_subjects = re.findall(r"^ (\d+) s:(.*)$", out, re.M)
        m = re.search(r"SSL handshake has read (\d+) bytes and written (\d+) bytes", out)
        self.read_bytes, self.written_bytes = (int(m.group(1)), int(m.group(2))) if m \
            else (None, None)
        self.verified = "Verification: OK" in out

    @property
    def handshake_ok(self):
        return (self.rc == 0 and self.protocol is not None and self.protocol.startswith("TLS")
                and self.cipher not in (None, "(NONE)", "0000"))

    def leaf_der(self):
        return ssl.PEM_cert_to_DER_cert(self.leaf_pem) if self.leaf_pem else None

    def __str__(self):
        return "$ %s\n(exit %s)\n%s" % (" ".join(self.cmd), self.rc, self.out)


def s_client(port, *args, input=b"", timeout=15 * SLOW):
    """Runs `openssl s_client -connect 127.0.0.1:PORT ARGS...` with `input` on stdin (at its
    end s_client closes, unless -ign_eof: then it waits for the server to close)."""
    cmd = [OPENSSL or "openssl", "s_client", "-connect", "127.0.0.1:%d" % port, *args]
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        return SClient(cmd, p.returncode, p.stdout.decode(errors="replace"))
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode(errors="replace")
        return SClient(cmd, "timeout after %ss" % timeout, out)


def wait_closed(sock, timeout):
    """Reads until the peer closes (EOF or RST): (seconds waited, bytes received), or
    (None, bytes) if it is still open after `timeout`."""
    t0 = time.monotonic()
    data = bytearray()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, bytes(data)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None, bytes(data)
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0, bytes(data)
        if not chunk:
            return time.monotonic() - t0, bytes(data)
        data += chunk


def handshake_counts(samples, listener="secure"):
    """{result: value} of sluice_tls_handshakes_total for a listener (samples with extra
    labels are summed into their result)."""
    out = {}
    for (name, labels), value in samples.items():
        if name != METRIC:
            continue
        d = dict(labels)
        if d.get("listener") == listener:
            out[d.get("result")] = out.get(d.get("result"), 0) + value
    return out


def yaml_block(text, indent):
    lines = textwrap.dedent(text).strip("\n").splitlines()
    return "\n".join(" " * indent + l if l.strip() else l for l in lines)


# The listener's `tls:` for most tests: relative paths (to the config file, which the
# harness writes into the test's directory, where the certificates are copied).
DEFAULT_TLS = """
    certificate: server.pem
    private_key: server-key.pem
    certificates:
      - {certificate: wildcard.pem, private_key: wildcard-key.pem}
      - {certificate: exact.pem, private_key: exact-key.pem}
    alpn: [http/1.1]
"""

MTLS_TLS = """
    certificate: server.pem
    private_key: server-key.pem
    min_version: "1.2"
    alpn: [http/1.1]
    client_ca: ca.pem
    client_auth: %s
    session_tickets: true
    handshake_timeout: 10s
"""


def config_text(tls, workers=2):
    return ("workers: %d\n" % workers
            + "listeners:\n"
            + "  - name: secure\n"
            + "    address: @LISTEN@\n"
            + "    tls:\n" + yaml_block(tls, 6) + "\n"
            + 'admin: {address: "127.0.0.1:@ADMIN@"}\n'
            + "services:\n"
            + "  backend: {endpoints: [@UP@]}\n"
            + "routes:\n"
            + "  - name: ping\n"
            + "    match: {path: /ping}\n"
            + '    response: {body: "pong"}\n'
            + "  - name: api\n"
            + '    match: {path: "/api/{proxy+}"}\n'
            + "    service: backend\n")


class TlsTestCase(SluiceTestCase):
    def setUp(self):
        super().setUp()
        for name in os.listdir(PKI_DIR):
            if name.endswith(".pem"):
                shutil.copy(os.path.join(PKI_DIR, name), self.tmp)
        self.ca = self.f("ca.pem")
        self.s = None

    def f(self, name):
        """A file in the test's directory (the certificates are copied there)."""
        return os.path.join(self.tmp, name)

    def start(self, tls=DEFAULT_TLS, workers=2):
        self.up = self.start_upstream()
        self.admin = free_port()
        self.s = self.start_sluice(config_text(tls, workers), start_timeout=DEFAULT_TIMEOUT * SLOW,
                                   UP=self.up.address, ADMIN=self.admin)
        # Answered by the main loop once everything is set up.
        r = admin_request(self.admin, "GET", "/ready")
        self.assertEqual(r.status, 200, self.why(r))
        return self.s

    def why(self, *parts):
        """A failure message: the parts, then sluice's output."""
        text = "\n".join(str(p) for p in parts)
        if self.s is not None:
            text += "\n" + self.s.output()
        return text

    def tls_client(self, ctx=None, server_hostname="localhost", session=None):
        """A TLS connection to the listener (fails the test, with sluice's output, if the
        handshake does)."""
        ctx = ctx or client_context(self.ca)
        try:
            c = TlsClient(self.s.host, self.s.port, ctx, server_hostname,
                          timeout=DEFAULT_TIMEOUT * SLOW, session=session)
        except (ssl.SSLError, OSError) as e:
            self.fail(self.why("TLS handshake with %s:%d (server_hostname=%r) failed: %r"
                               % (self.s.host, self.s.port, server_hostname, e)))
        self.addCleanup(c.close)
        return c

    def request(self, c, method, path, body=b"", host="localhost", headers=()):
        try:
            return c.request(method, path, headers=headers, body=body, host=host)
        except (ssl.SSLError, OSError, ConnectionClosed, ValueError) as e:
            self.fail(self.why("%s %s over TLS failed: %r" % (method, path, e)))

    def https(self, path, ctx=None, server_hostname="localhost", method="GET", body=b""):
        c = self.tls_client(ctx, server_hostname)
        r = self.request(c, method, path, body)
        c.close()
        return r

    def attempt(self, ctx, path="/api/attempt", server_hostname="localhost"):
        """One request on a new connection: ("response", Response), ("refused", detail)
        when the handshake fails or the connection is closed or reset (for TLS 1.3 a
        rejected client certificate shows on the first read), or ("timeout", detail)."""
        try:
            c = TlsClient(self.s.host, self.s.port, ctx, server_hostname,
                          timeout=DEFAULT_TIMEOUT * SLOW)
        except socket.timeout as e:
            return "timeout", "handshake: %r" % e
        except (ssl.SSLError, ConnectionError) as e:
            return "refused", "handshake: %r" % e
        self.addCleanup(c.close)
        try:
            c.send(build_request("GET", path, host=server_hostname))
            return "response", c.read_response()
        except socket.timeout as e:
            return "timeout", "after the handshake: %r" % e
        except (ssl.SSLError, ConnectionError, ConnectionClosed) as e:
            return "refused", "after the handshake: %r" % e

    def metrics(self):
        text, m = fetch_metrics(self.admin)
        return text, m

    def _log_files(self):
        out = []
        for path in (self.s.stdout_path, self.s.stderr_path):
            with open(path, errors="replace") as fh:
                out.append(fh.read().splitlines())
        return out

    def log_mark(self):
        """How many lines sluice has written so far to stdout and to stderr."""
        return [len(lines) for lines in self._log_files()]

    def log_since(self, mark):
        """The lines sluice wrote (stdout, then stderr) after log_mark() returned `mark`."""
        return [l for lines, n in zip(self._log_files(), mark) for l in lines[n:]]

    def sighup_and_wait(self, total):
        self.s.send_signal(signal.SIGHUP)
        self.s.signalled = False  # SIGHUP is not a stop
        return wait_reloads(self.admin, total, timeout=DEFAULT_TIMEOUT * SLOW)


class Https(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_request_reaches_the_upstream_over_tls(self):
        c = self.tls_client()
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(c.peer_der(), der_of(self.f("server.pem")),
                         self.why("no SNI-specific name: the default certificate"))
        r = self.request(c, "GET", "/api/hello?x=1")
        self.assertEqual(r.status, 200, self.why(r))
        recs = self.up.wait_records(1)
        self.assertEqual(len(recs), 1, self.why(recs))
        self.assertEqual(recs[0]["target"], "/api/hello?x=1", self.why(recs))
        proto = [v for n, v in recs[0]["headers"] if n.lower() == "x-forwarded-proto"]
        self.assertEqual(proto, ["https"], self.why("the upstream must see that the client "
                                                    "spoke https", recs[0]))
        # A body each way, larger than a TLS record and than socket buffers.
        body = os.urandom(300 * 1024)
        r = self.request(c, "POST", "/api/upload", body=body)
        self.assertEqual(r.status, 200, self.why(r))
        recs = self.up.wait_records(2)
        self.assertEqual((recs[1]["body_len"], recs[1]["body_sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()), self.why(recs[1]))
        n = 3 * 1024 * 1024 + 17
        r = self.request(c, "GET", "/api/bytes/%d" % n)
        self.assertEqual((r.status, r.body_len, r.body_sha256), (200, n, pattern_sha256(n)),
                         self.why("download over TLS"))

    def test_keep_alive_several_requests_on_one_connection(self):
        # The harness's readiness probe was a connection too: wait until it is accepted
        # and gone (a busy machine may accept it late).
        deadline = time.monotonic() + 5 * SLOW
        while True:
            _, m = self.metrics()
            accepted = metric(m, "sluice_connections_accepted_total", listener="secure")
            active = metric(m, "sluice_connections_active", listener="secure")
            if (accepted >= 1 and active == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        c = self.tls_client()
        for i in range(5):
            r = self.request(c, "GET", "/ping")
            self.assertEqual((r.status, r.body), (200, b"pong"), self.why(r))
            r = self.request(c, "GET", "/api/ka/%d" % i)
            self.assertEqual(r.status, 200, self.why(r))
        # Pipelined, in one write.
        c.send(build_request("GET", "/api/pipe/1", host="localhost")
               + build_request("GET", "/api/pipe/2", host="localhost"))
        self.assertEqual(c.read_response().json()["target"], "/api/pipe/1")
        self.assertEqual(c.read_response().json()["target"], "/api/pipe/2")
        self.assertFalse(c.is_closed(0.2), self.why("the connection stays open"))
        recs = self.up.wait_records(7)
        self.assertEqual([r["target"] for r in recs],
                         ["/api/ka/%d" % i for i in range(5)] + ["/api/pipe/1", "/api/pipe/2"])
        _, m = self.metrics()
        self.assertEqual(metric(m, "sluice_connections_accepted_total", listener="secure"),
                         accepted + 1, self.why("all of that on one connection"))

    def test_curl(self):
        self.assertIsNotNone(CURL, "curl is not installed (scripts/install-deps installs it)")
        port = self.s.port
        base = [CURL, "-sS", "-v", "--max-time", str(15 * SLOW), "--cacert", self.ca,
                "--resolve", "localhost:%d:127.0.0.1" % port, "-o", "-",
                "-w", "\n%{http_code} %{http_version} %{ssl_verify_result}"]
        url = "https://localhost:%d/api/curl" % port
        p = subprocess.run(base + ["-H", "X-Test: curl", url], capture_output=True, text=True,
                           timeout=30 * SLOW)
        self.assertEqual(p.returncode, 0, self.why("curl failed", p.stdout, p.stderr))
        body, _, status = p.stdout.rpartition("\n")
        self.assertEqual(status, "200 1.1 0", self.why(p.stdout, p.stderr))
        self.assertRegex(p.stderr, r"ALPN[:,] server accepted (to use )?http/1\.1",
                         self.why(p.stderr))
        rec = self.up.wait_records(1)[0]
        self.assertEqual(rec["target"], "/api/curl", self.why(rec))
        self.assertIn(["X-Test", "curl"], [list(h) for h in rec["headers"]], self.why(rec))
        # curl --http2 offers h2 first; the listener only has http/1.1 and must pick that.
        p = subprocess.run(base + ["--http2", url], capture_output=True, text=True,
                           timeout=30 * SLOW)
        self.assertEqual(p.returncode, 0, self.why("curl --http2 failed", p.stdout, p.stderr))
        self.assertEqual(p.stdout.rpartition("\n")[2], "200 1.1 0",
                         self.why(p.stdout, p.stderr))

    def sni(self, name, *extra):
        args = ["-servername", name] if name is not None else ["-noservername"]
        r = s_client(self.s.port, *args, "-CAfile", self.ca, *extra)
        self.assertTrue(r.handshake_ok, self.why(r))
        self.assertIsNotNone(r.leaf_pem, self.why(r))
        return r

    def test_sni_wildcard(self):
        for name in ("a.example.test", "www.example.test"):
            with self.subTest(name):
                r = self.sni(name, "-verify_hostname", name)
                self.assertEqual(r.subject, "CN = *.example.test", self.why(r))
                self.assertEqual(r.leaf_der(), der_of(self.f("wildcard.pem")), self.why(r))
                self.assertTrue(r.verified, self.why("the wildcard certificate verifies for %s"
                                                     % name, r))
                san = tls_certs.openssl("x509", "-noout", "-ext", "subjectAltName",
                                        input=r.leaf_pem.encode()).decode()
                self.assertIn("DNS:*.example.test", san, self.why(r))

    def test_sni_exact_name_beats_the_wildcard(self):
        for name in ("api.example.test", "API.Example.TEST"):
            with self.subTest(name):
                r = self.sni(name)
                self.assertEqual(r.subject, "CN = api.example.test", self.why(r))
                self.assertEqual(r.leaf_der(), der_of(self.f("exact.pem")), self.why(r))

    def test_sni_none_or_unknown_gets_the_default(self):
        # "example.test" itself is not covered by *.example.test.
        for name in (None, "unknown.test", "example.test", "localhost"):
            with self.subTest(name or "(no SNI)"):
                r = self.sni(name)
                self.assertEqual(r.subject, "CN = localhost", self.why(r))
                self.assertEqual(r.leaf_der(), der_of(self.f("server.pem")), self.why(r))

    def test_sni_names_verify_end_to_end(self):
        # A verifying client (hostname checked) gets through for every configured name;
        # an IP literal sends no SNI and gets the default certificate (IP SAN 127.0.0.1).
        for name in ("localhost", "secure.example.test", "a.example.test", "api.example.test",
                     "127.0.0.1"):
            with self.subTest(name):
                r = self.https("/ping", server_hostname=name)
                self.assertEqual((r.status, r.body), (200, b"pong"), self.why(name, r))

    def test_alpn_http11(self):
        for offer in ("http/1.1", "h2,http/1.1"):
            with self.subTest(offer):
                r = s_client(self.s.port, "-alpn", offer, "-CAfile", self.ca, "-ign_eof",
                             input=b"GET /ping HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Connection: close\r\n\r\n")
                self.assertTrue(r.handshake_ok, self.why(r))
                self.assertEqual(r.alpn, "http/1.1", self.why(r))
                self.assertIn("HTTP/1.1 200", r.out, self.why("the request after the handshake", r))
                self.assertRegex(r.out, r"\r?\n\r?\npong", self.why(r))

    def test_alpn_h2_only_is_not_selected(self):
        # The listener offers only http/1.1: a client offering only h2 gets no ALPN
        # protocol (the server selects nothing, the handshake still completes).
        r = s_client(self.s.port, "-alpn", "h2", "-CAfile", self.ca)
        self.assertTrue(r.handshake_ok, self.why("with no common ALPN protocol the handshake "
                                                 "must still complete", r))
        self.assertIsNone(r.alpn, self.why(r))
        self.assertTrue(r.no_alpn, self.why("expected 'No ALPN negotiated'", r))
        # Without ALPN at all: no protocol either, and HTTP/1.1 works.
        r = s_client(self.s.port, "-CAfile", self.ca, "-ign_eof",
                     input=b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.handshake_ok, self.why(r))
        self.assertTrue(r.no_alpn, self.why(r))
        self.assertIn("HTTP/1.1 200", r.out, self.why(r))

    def test_tls_1_2_and_1_3_accepted(self):
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version):
                r = s_client(self.s.port, flag, "-CAfile", self.ca)
                self.assertTrue(r.handshake_ok, self.why(r))
                self.assertEqual(r.protocol, version, self.why(r))
                v = VERSIONS[version]
                ctx = client_context(self.ca, minimum=v, maximum=v)
                c = self.tls_client(ctx)
                self.assertEqual(c.sock.version(), version)
                r = self.request(c, "GET", "/api/v/" + version)
                self.assertEqual(r.status, 200, self.why(r))
                self.assertEqual(r.json()["target"], "/api/v/" + version)

    def test_tls_1_1_and_1_0_refused(self):
        for flag in ("-tls1_1", "-tls1"):
            with self.subTest(flag):
                r = s_client(self.s.port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
                self.assertNotEqual(r.rc, 0, self.why(r))
                self.assertFalse(r.handshake_ok, self.why(r))
                # The client did send its hello: the refusal came from sluice.
                self.assertTrue(r.written_bytes, self.why("s_client sent nothing; this "
                                                          "OpenSSL cannot test %s" % flag, r))
        self.assertEqual(self.https("/ping").status, 200)

    def test_plain_http_on_the_tls_port(self):
        with socket.create_connection((self.s.host, self.s.port), timeout=5) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
            waited, data = wait_closed(sock, 10 * SLOW)
        self.assertIsNotNone(waited, self.why("a plain HTTP request on the TLS port must be "
                                              "closed; got %r and the connection stays open"
                                              % data))
        self.assertNotIn(b"HTTP/", data, self.why("no HTTP response on a TLS port: %r" % data))
        self.assertNotIn(b"pong", data)
        # And sluice keeps serving.
        for _ in range(3):
            r = self.https("/ping")
            self.assertEqual((r.status, r.body), (200, b"pong"), self.why(r))
        self.assertIsNone(self.s.proc.poll(), self.why("sluice died"))


class MinVersion13(TlsTestCase):
    def test_min_version_1_3_refuses_1_2(self):
        self.start(DEFAULT_TLS + '    min_version: "1.3"\n')
        r = s_client(self.s.port, "-tls1_2")
        self.assertFalse(r.handshake_ok, self.why("TLS 1.2 must be refused with min_version "
                                                  "1.3", r))
        self.assertNotEqual(r.rc, 0, self.why(r))
        self.assertTrue(r.written_bytes, self.why(r))
        ctx = client_context(self.ca, maximum=ssl.TLSVersion.TLSv1_2)
        outcome, detail = self.attempt(ctx)
        self.assertEqual(outcome, "refused", self.why(detail))
        r = s_client(self.s.port, "-tls1_3", "-CAfile", self.ca)
        self.assertTrue(r.handshake_ok, self.why(r))
        self.assertEqual(r.protocol, "TLSv1.3", self.why(r))
        self.assertEqual(self.https("/ping").status, 200)


class Certificates(TlsTestCase):
    def test_chain_file_sends_the_intermediate_absolute_paths(self):
        # Absolute paths, outside the config's directory; the client trusts only the root,
        # so the handshake verifies only if sluice sends the intermediate from the file.
        self.start("""
            certificate: %s
            private_key: %s
        """ % (PKI.chain.cert, PKI.chain.key))
        r = s_client(self.s.port, "-CAfile", self.ca, "-showcerts")
        self.assertTrue(r.handshake_ok, self.why(r))
        self.assertEqual([s for _, s in r.chain_subjects],
                         ["CN = localhost chained", "CN = sluice test intermediate"],
                         self.why(r))
        self.assertTrue(r.verified, self.why(r))
        resp = self.https("/api/chain")
        self.assertEqual(resp.status, 200, self.why(resp))

    def test_rsa_certificate(self):
        self.start("""
            certificate: server_rsa.pem
            private_key: server_rsa-key.pem
        """)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version.name):
                ctx = client_context(self.ca, minimum=version, maximum=version)
                c = self.tls_client(ctx)
                self.assertEqual(c.peer_der(), der_of(self.f("server_rsa.pem")))
                self.assertEqual(self.request(c, "GET", "/ping").status, 200)

    def test_session_resumption_across_workers(self):
        # session_tickets: true — a resumed session works on any worker (the ticket keys
        # are shared), with TLS 1.2 and 1.3. Several connections so both workers get some.
        self.start(DEFAULT_TLS + "    session_tickets: true\n")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version.name):
                ctx = client_context(self.ca, minimum=version, maximum=version)
                first = self.tls_client(ctx)
                self.assertEqual(self.request(first, "GET", "/ping").status, 200)  # 1.3 tickets
                session = first.sock.session
                first.close()
                self.assertIsNotNone(session)
                reused = []
                for _ in range(8):
                    c = self.tls_client(ctx, session=session)
                    self.assertEqual(self.request(c, "GET", "/ping").status, 200)
                    reused.append(c.sock.session_reused)
                    c.close()
                self.assertEqual(reused, [True] * 8, self.why("sessions resumed: %r" % reused))


class MutualTls(TlsTestCase):
    def ctx(self, cert=None, version=None):
        """A client context presenting tls_certs' NAME.pem / NAME-key.pem (None: no
        certificate), limited to one TLS version."""
        return client_context(self.ca, cert=self.f(cert + ".pem") if cert else None,
                              key=self.f(cert + "-key.pem") if cert else None,
                              minimum=version, maximum=version)

    def expect_refused(self, cert, version, path):
        outcome, detail = self.attempt(self.ctx(cert, version), path)
        self.assertEqual(outcome, "refused",
                         self.why("client certificate %s over %s must be refused; got %s %r"
                                  % (cert, version.name, outcome, detail)))

    def expect_ok(self, cert, version, path):
        outcome, detail = self.attempt(self.ctx(cert, version), path)
        self.assertEqual(outcome, "response", self.why("client certificate %s over %s: %s %r"
                                                       % (cert, version.name, outcome, detail)))
        self.assertEqual(detail.status, 200, self.why(detail))
        self.assertEqual(detail.json()["target"], path, self.why(detail))

    def test_require(self):
        self.start(MTLS_TLS % "require")
        paths_ok = []
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version.name):
                self.expect_refused(None, version, "/api/none")
                self.expect_refused("other_client", version, "/api/other")
                self.expect_refused("expired", version, "/api/expired")
                path = "/api/good/" + version.name
                self.expect_ok("client", version, path)
                paths_ok.append(path)
        self.up.wait_records(len(paths_ok))
        time.sleep(0.2)
        self.assertEqual([r["target"] for r in self.up.records()], paths_ok,
                         self.why("only the requests with a good certificate reach the upstream"))
        self.assertFalse([e for e in self.up.events() if e["event"] == "head"
                          and "/api/good/" not in e["head"]], self.why(self.up.events()))

    def test_optional(self):
        self.start(MTLS_TLS % "optional")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version.name):
                self.expect_ok(None, version, "/api/anonymous/" + version.name)
                self.expect_ok("client", version, "/api/good/" + version.name)
                # A certificate that is presented is verified: one from another CA is refused.
                self.expect_refused("other_client", version, "/api/other")
        self.assertEqual(len(self.up.wait_records(4)), 4)


    def test_resumed_session_cannot_skip_a_required_certificate(self):
        # A session made while client certificates were optional (no certificate given)
        # must not resume once they are required: resumption skips the certificate
        # check, so the session's scope (session id context, ticket keys) has to differ.
        self.start(MTLS_TLS % "optional")
        sessions, contexts = {}, {}
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            contexts[version] = self.ctx(None, version)  # a session needs its own context
            first = self.tls_client(contexts[version])
            self.assertEqual(self.request(first, "GET", "/ping").status, 200)
            sessions[version] = first.sock.session
            first.close()
            self.assertIsNotNone(sessions[version])
        with open(self.s.config_path, "w") as f:
            f.write(config_text(MTLS_TLS % "require").replace("@UP@", self.up.address)
                    .replace("@ADMIN@", str(self.admin))
                    .replace("@LISTEN@", "%s:%d" % (self.s.host, self.s.port)))
        self.assertEqual(self.sighup_and_wait(1), (1, 0), self.why("reload"))
        for version, session in sessions.items():
            with self.subTest(version.name):
                try:
                    c = TlsClient(self.s.host, self.s.port, contexts[version], "localhost",
                                  timeout=DEFAULT_TIMEOUT * SLOW, session=session)
                except (ssl.SSLError, ConnectionError):
                    continue  # refused at the handshake: right
                self.addCleanup(c.close)
                try:
                    c.send(build_request("GET", "/ping", host="localhost"))
                    r = c.read_response()
                except (ssl.SSLError, ConnectionError, ConnectionClosed):
                    continue  # TLS 1.3 shows the refusal on the first read: right
                self.fail(self.why("a %s session without a certificate was served after "
                                   "client_auth became require (reused=%s): %r"
                                   % (version.name, c.sock.session_reused, r)))

class HandshakeTimeout(TlsTestCase):
    TIMEOUT_MS = 500 * SLOW

    def setUp(self):
        super().setUp()
        self.start(DEFAULT_TLS + "    handshake_timeout: %dms\n" % self.TIMEOUT_MS)

    def test_silent_client_is_disconnected(self):
        lower, upper = 0.6 * self.TIMEOUT_MS / 1000, 5.0 * SLOW
        with socket.create_connection((self.s.host, self.s.port), timeout=5) as sock:
            waited, data = wait_closed(sock, 10 * SLOW)
        self.assertIsNotNone(waited, self.why("a client that sends nothing is still connected "
                                              "after %ds (handshake_timeout %dms)"
                                              % (10 * SLOW, self.TIMEOUT_MS)))
        self.assertGreaterEqual(waited, lower, self.why("closed after %.3fs: before the "
                                                        "handshake timeout" % waited))
        self.assertLessEqual(waited, upper, self.why("closed only after %.3fs" % waited))

    def test_partial_client_hello_is_disconnected(self):
        with socket.create_connection((self.s.host, self.s.port), timeout=5) as sock:
            # A TLS record header announcing a 512-byte handshake message, and 4 bytes of it.
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
            waited, data = wait_closed(sock, 10 * SLOW)
        self.assertIsNotNone(waited, self.why("a stalled ClientHello is still connected"))
        self.assertLessEqual(waited, 5.0 * SLOW, self.why("closed only after %.3fs" % waited))

    def test_timeout_ends_with_the_handshake(self):
        # After a completed handshake the handshake timer no longer applies.
        c = self.tls_client()
        time.sleep(3 * self.TIMEOUT_MS / 1000)
        r = self.request(c, "GET", "/ping")
        self.assertEqual((r.status, r.body), (200, b"pong"), self.why(r))
        self.assertIsNone(self.s.proc.poll())


class HandshakeMetrics(TlsTestCase):
    FAILURES = 50

    def test_failures_counted_not_logged(self):
        self.start()
        text, m = self.metrics()
        before = handshake_counts(m)
        self.assertIn(METRIC, text, self.why("no %s in /metrics:\n%s" % (METRIC, text)))
        for _ in range(3):
            self.assertEqual(self.https("/ping").status, 200)
        # Let the successes (and the readiness probe's bare connect) settle in the logs.
        time.sleep(0.3)
        log_before = self.log_mark()

        # 50 failed handshakes of three kinds.
        wrong_trust = client_context(self.f("other_ca.pem"))   # rejects sluice's certificate
        for _ in range(20):
            outcome, detail = self.attempt(wrong_trust)
            self.assertEqual(outcome, "refused", detail)
        for _ in range(20):
            with socket.create_connection((self.s.host, self.s.port), timeout=5) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
                waited, _ = wait_closed(sock, 10 * SLOW)
                self.assertIsNotNone(waited, self.why("plain HTTP on the TLS port not closed"))
        for _ in range(10):
            r = s_client(self.s.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertFalse(r.handshake_ok, self.why(r))

        deadline = time.monotonic() + 10 * SLOW
        while True:
            text, m = self.metrics()
            after = handshake_counts(m)
            failed = after.get("failure", 0) - before.get("failure", 0)
            if failed >= self.FAILURES or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ok = after.get("success", 0) - before.get("success", 0)
        samples = "\n".join(l for l in text.splitlines() if "tls" in l)
        self.assertGreaterEqual(failed, self.FAILURES,
                                self.why('%s{listener="secure",result="failure"} grew by %s '
                                         'after %d failed handshakes:\n%s'
                                         % (METRIC, failed, self.FAILURES, samples)))
        self.assertEqual(ok, 3, self.why('%s{listener="secure",result="success"} grew by %s '
                                         'after 3 good handshakes:\n%s' % (METRIC, ok, samples)))
        time.sleep(0.3)
        new = self.log_since(log_before)
        self.assertLessEqual(len(new), 5, self.why("%d failed handshakes logged %d lines:\n%s"
                                                   % (self.FAILURES, len(new), "\n".join(new))))
        self.assertEqual(self.https("/ping").status, 200)

    def test_metrics_pass_promtool(self):
        self.assertIsNotNone(PROMTOOL, "promtool not installed (Debian package prometheus; "
                                       "scripts/install-deps installs it)")
        self.start()
        self.https("/ping")
        s_client(self.s.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        text, _ = self.metrics()
        self.assertIn("# TYPE %s counter" % METRIC, text, self.why(text))
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics failed:\n%s%s\n--- metrics "
                         "---\n%s" % (p.stdout.decode(), p.stderr.decode(), text))


class Reload(TlsTestCase):
    def replace(self, name, source):
        tmp = self.f(name + ".new")
        shutil.copy(source, tmp)
        os.replace(tmp, self.f(name))

    def test_new_certificates_on_sighup_connections_kept(self):
        self.start()
        old = self.tls_client()
        self.assertEqual(old.peer_der(), der_of(self.f("server.pem")))
        self.assertEqual(self.request(old, "GET", "/api/before").status, 200)

        staging = os.path.join(self.tmp, "staging")
        new_server = PKI.ca.issue("server", "localhost reloaded",
                                  dns=["localhost", "secure.example.test"], ips=["127.0.0.1"],
                                  directory=staging)
        new_wild = PKI.ca.issue("wildcard", "*.example.test reloaded", dns=["*.example.test"],
                                directory=staging)
        self.assertNotEqual(new_server.serial, PKI.server.serial)
        for name in ("server-key.pem", "server.pem", "wildcard-key.pem", "wildcard.pem"):
            self.replace(name, os.path.join(staging, name))

        ok, failed = self.sighup_and_wait(1)
        self.assertEqual((ok, failed), (1, 0), self.why("reload after replacing the "
                                                        "certificate files"))
        # The connection opened before the reload still works.
        r = self.request(old, "GET", "/api/after")
        self.assertEqual(r.status, 200, self.why(r))
        self.assertEqual([x["target"] for x in self.up.wait_records(2)],
                         ["/api/before", "/api/after"])
        # A new connection gets the new certificate (default and SNI).
        c = self.tls_client()
        self.assertEqual(c.peer_der(), der_of(new_server.cert),
                         self.why("new connections must get the reloaded certificate",
                                  tls_certs.describe(new_server.cert)))
        self.assertEqual(self.request(c, "GET", "/ping").status, 200)
        r = s_client(self.s.port, "-servername", "a.example.test", "-CAfile", self.ca)
        self.assertTrue(r.handshake_ok, self.why(r))
        self.assertEqual(r.subject, "CN = *.example.test reloaded", self.why(r))
        self.assertEqual(r.leaf_der(), der_of(new_wild.cert), self.why(r))

    def test_bad_certificate_on_reload_keeps_the_old_one(self):
        self.start()
        with open(self.f("server.pem.new"), "w") as fh:
            fh.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
                     "-----END CERTIFICATE-----\n")
        os.replace(self.f("server.pem.new"), self.f("server.pem"))
        log_before = self.log_mark()
        ok, failed = self.sighup_and_wait(1)
        self.assertEqual((ok, failed), (0, 1), self.why("a reload with a broken certificate "
                                                        "must fail"))
        time.sleep(0.2)
        self.assertIn("server.pem", "\n".join(self.log_since(log_before)),
                      self.why("the failed reload's log names the file"))
        c = self.tls_client()
        self.assertEqual(c.peer_der(), der_of(PKI.server.cert),
                         self.why("the old certificate keeps serving"))
        self.assertEqual(self.request(c, "GET", "/ping").status, 200)


ERROR_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.M)

BROKEN_CERT = ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
               "-----END CERTIFICATE-----\n")
BROKEN_KEY = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


class Validate(TlsTestCase):
    FULL = """
        certificate: server.pem
        private_key: server-key.pem
        certificates:
          - {certificate: wildcard.pem, private_key: wildcard-key.pem}
        min_version: "1.2"
        alpn: [http/1.1]
        client_ca: ca.pem
        client_auth: require
        session_tickets: true
        handshake_timeout: 10s
    """

    def setUp(self):
        super().setUp()
        for name, text in (("broken-cert.pem", BROKEN_CERT), ("broken-key.pem", BROKEN_KEY),
                           ("empty.pem", ""), ("not-pem.pem", "hello\n")):
            with open(self.f(name), "w") as fh:
                fh.write(text)

    def write(self, tls):
        text = config_text(tls).replace("@LISTEN@", "127.0.0.1:%d" % free_port())
        return self.write_config(text, "tls.yaml", ADMIN=free_port(), UP="127.0.0.1:9")

    def tls_lines(self, path):
        """Line numbers (1-based) of the listener, from `- name: secure` to the end of tls:."""
        with open(path) as fh:
            lines = fh.read().splitlines()
        first = next(i for i, l in enumerate(lines) if "name: secure" in l) + 1
        last = next(i for i, l in enumerate(lines) if l.startswith("admin:"))
        return range(first, last + 1)

    def test_full_tls_config_validates(self):
        path = self.write(self.FULL)
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 0, "every documented tls key must be accepted:\nstdout:\n%s\n"
                         "stderr:\n%s" % (out, err))

    def test_bad_certificate_or_key_is_a_config_error_naming_the_file(self):
        cases = [
            ("broken certificate", "certificate: broken-cert.pem\nprivate_key: server-key.pem",
             ["broken-cert.pem"]),
            ("empty certificate file", "certificate: empty.pem\nprivate_key: server-key.pem",
             ["empty.pem"]),
            ("certificate not PEM", "certificate: not-pem.pem\nprivate_key: server-key.pem",
             ["not-pem.pem"]),
            ("missing certificate", "certificate: missing-cert.pem\nprivate_key: server-key.pem",
             ["missing-cert.pem"]),
            ("broken key", "certificate: server.pem\nprivate_key: broken-key.pem",
             ["broken-key.pem"]),
            ("missing key", "certificate: server.pem\nprivate_key: missing-key.pem",
             ["missing-key.pem"]),
            ("key of another certificate",
             "certificate: server.pem\nprivate_key: wildcard-key.pem",
             ["server.pem", "wildcard-key.pem"]),
            ("broken SNI certificate",
             "certificate: server.pem\nprivate_key: server-key.pem\ncertificates:\n"
             "  - {certificate: broken-cert.pem, private_key: wildcard-key.pem}",
             ["broken-cert.pem"]),
            ("broken client CA",
             "certificate: server.pem\nprivate_key: server-key.pem\n"
             "client_ca: broken-cert.pem\nclient_auth: require",
             ["broken-cert.pem"]),
        ]
        for name, tls, files in cases:
            with self.subTest(name):
                path = self.write(tls)
                rc, out, err = run_sluice("validate", path)
                with open(path) as fh:
                    shown = "%s:\n--- config ---\n%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
                        name, fh.read(), out, err)
                self.assertEqual(rc, 1, shown)
                errors = [m for m in ERROR_LINE.finditer(out + err)
                          if m.group("file") == path and int(m.group("line")) in
                          self.tls_lines(path)]
                self.assertTrue(errors, "no FILE:LINE:COL: error within the listener's tls: "
                                        "block\n" + shown)
                self.assertTrue(any(f in m.group("msg") for m in errors for f in files),
                                "the error must name %s\n%s" % (" or ".join(files), shown))

    def test_run_with_a_bad_certificate_fails_at_startup(self):
        path = self.write("certificate: broken-cert.pem\nprivate_key: server-key.pem")
        try:
            p = subprocess.run([SLUICE_BIN, "run", path], capture_output=True, text=True,
                               timeout=15 * SLOW)
        except subprocess.TimeoutExpired as e:
            self.fail("sluice run kept running with a broken certificate:\n%s%s"
                      % (e.stdout, e.stderr))
        self.assertEqual(p.returncode, 1, p)
        self.assertTrue([m for m in ERROR_LINE.finditer(p.stdout + p.stderr)
                         if m.group("file") == path and "broken-cert.pem" in m.group("msg")],
                        "%s%s" % (p.stdout, p.stderr))


if __name__ == "__main__":
    unittest.main()
