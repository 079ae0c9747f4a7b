"""HTTP/2 downstream (issue 5): h2 over TLS (ALPN) and cleartext h2c with prior knowledge,
through the real binary with real clients (curl, nghttp, h2load) and a raw-frame client
(tests/support/h2_client.py) for what real clients never send.

- negotiation: curl --http2 over TLS and --http2-prior-knowledge over h2c reach the
  upstream as HTTP/1.1 with the method, path, query, headers and body; HTTP/1.1 keeps
  working on both ports (plain on the h2c port, ALPN http/1.1 on the TLS port);
- the SETTINGS sluice sends (100 concurrent streams, a 64 KiB stream window) and the
  connection WINDOW_UPDATE to 1 MiB, as nghttp and the raw client see them;
- multiplexing: nghttp with several URIs and h2load -m 10 on as many connections as the
  clients opened (sluice_connections_accepted_total);
- a 64 MiB download and a 32 MiB upload intact, in bounded memory (RSS), with one side
  stalled in the middle;
- malformed requests (uppercase name, connection-specific headers, content-length not
  matching the DATA): a stream error, nothing forwarded, the connection still usable;
- rapid reset (CVE-2023-44487) → GOAWAY while another client is still served;
  CONTINUATION flood → the connection is closed, memory stays flat;
- SIGTERM: GOAWAY, the in-flight stream still completes, exit 0.

Certificates are made at test time by tests/support/tls_certs.py, once per module.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from admin_helpers import admin_request, fetch_metrics, metric, wait_reloads
from harness import (DEFAULT_TIMEOUT, RssSampler, SluiceTestCase, free_port, header_values,
                     pattern_pieces, pattern_sha256, run_sluice, wait_for_port)
import h2_client as h2   # tests/support, on sys.path via harness
import tls_certs

# Sanitizer builds (SLUICE_SANITIZED=1) start slower and run every callback slower. Under
# ASan RSS says nothing about buffering (the allocator keeps freed memory in quarantine):
# there the transfers still run and RSS is only printed, as in test_streaming.py.
SANITIZED = bool(os.environ.get("SLUICE_SANITIZED"))
SLOW = 3 if SANITIZED else 1
CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
H2LOAD = shutil.which("h2load")
MIB = 1024 * 1024
# sluice's RSS may grow by less than this during a large transfer (its flow-control windows
# are 64 KiB per stream and 1 MiB per connection; the transfers are far larger).
RSS_GROWTH_LIMIT_KIB = 24 * 1024

PKI_DIR = None
_pki_tmp = None


def setUpModule():
    global PKI_DIR, _pki_tmp
    if not tls_certs.openssl_available():
        raise RuntimeError("the `openssl` command is not installed (scripts/install-deps "
                           "installs it): cannot make test certificates")
    _pki_tmp = tempfile.TemporaryDirectory(prefix="sluice-h2-pki-")
    PKI_DIR = _pki_tmp.name
    ca = tls_certs.new_ca(PKI_DIR, "ca", "sluice h2 test CA")
    ca.issue("server", "localhost", dns=["localhost"], ips=["127.0.0.1"])


def tearDownModule():
    if _pki_tmp is not None:
        _pki_tmp.cleanup()


# @LISTEN@ (the address the harness waits for) is the h2c listener.
CONFIG = """
    workers: @WORKERS@
    drain_timeout: @DRAIN@
    listeners:
      - name: h2c
        address: @LISTEN@
        h2c: true
      - name: h2tls
        address: 127.0.0.1:@TLSPORT@
        tls: {certificate: server.pem, private_key: server-key.pem, alpn: [h2, http/1.1]}
    admin: {address: "127.0.0.1:@ADMIN@"}
    services:
      backend: {endpoints: [@UP@]}
    routes:
      - name: ping
        match: {path: /ping}
        response: {body: "pong"}
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
        max_body: 1GiB
"""


class H2TestCase(SluiceTestCase):
    """Starts the upstream and sluice with an h2c and an h2-over-TLS listener."""

    def setUp(self):
        super().setUp()
        for name in os.listdir(PKI_DIR):
            if name.endswith(".pem"):
                shutil.copy(os.path.join(PKI_DIR, name), self.tmp)
        self.ca = os.path.join(self.tmp, "ca.pem")
        self.s = None
        self.up = self.start_upstream()

    def start(self, workers=2, drain="15s"):
        self.tls_port = free_port()
        self.admin = free_port()
        self.s = self.start_sluice(CONFIG, start_timeout=DEFAULT_TIMEOUT * SLOW,
                                   WORKERS=workers, DRAIN=drain, TLSPORT=self.tls_port,
                                   ADMIN=self.admin, UP=self.up.address)
        self.h2c_port = self.s.port
        self.assertTrue(wait_for_port("127.0.0.1", self.tls_port, DEFAULT_TIMEOUT * SLOW,
                                      self.s.proc),
                        self.why("the TLS listener on port %d never listened" % self.tls_port))
        r = admin_request(self.admin, "GET", "/ready")
        self.assertEqual(r.status, 200, self.why(r))
        return self.s

    def why(self, *parts):
        """A failure message: the parts, then sluice's output."""
        text = "\n".join(str(p) for p in parts)
        if self.s is not None:
            text += "\n" + self.s.output()
        return text

    # clients

    def tls_url(self, path):
        return "https://localhost:%d%s" % (self.tls_port, path)

    def h2c_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.h2c_port, path)

    def curl(self, *args, timeout=30):
        """Runs curl ARGS (with --cacert and --resolve for the TLS listener); returns
        (returncode, "CODE VERSION", body bytes, stderr)."""
        self.assertIsNotNone(CURL, "curl is not installed (scripts/install-deps installs it)")
        fd, out = tempfile.mkstemp(dir=self.tmp, prefix="curl-body-")
        os.close(fd)
        cmd = [CURL, "-sS", "-v", "--max-time", str(timeout * SLOW), "--cacert", self.ca,
               "--resolve", "localhost:%d:127.0.0.1" % self.tls_port, "-o", out,
               "-w", "%{http_code} %{http_version}", *args]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=timeout * SLOW + 15)
        except subprocess.TimeoutExpired as e:
            self.fail(self.why("curl hung: %s" % " ".join(cmd), e.stderr))
        with open(out, "rb") as f:
            body = f.read()
        os.unlink(out)
        return p.returncode, p.stdout.decode(errors="replace"), body, \
            p.stderr.decode(errors="replace")

    def curl_ok(self, *args, version="2", timeout=30):
        """curl ARGS must succeed with 200 over HTTP `version`; returns the body."""
        rc, meta, body, err = self.curl(*args, timeout=timeout)
        self.assertEqual((rc, meta), (0, "200 " + version),
                         self.why("curl %s" % " ".join(args), meta, body[:500], err[-3000:]))
        return body

    def raw(self, tls=False, timeout=DEFAULT_TIMEOUT):
        """A raw HTTP/2 connection (h2_client) to the h2c listener, or over TLS with ALPN h2."""
        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.set_alpn_protocols(["h2"])
        port = self.tls_port if tls else self.h2c_port
        try:
            c = h2.H2Connection.connect("127.0.0.1", port, ctx, "localhost",
                                        timeout=timeout * SLOW)
        except (OSError, ssl.SSLError) as e:
            self.fail(self.why("connecting to port %d failed: %r" % (port, e)))
        self.addCleanup(c.close)
        return c

    def raw_get(self, c, path, timeout=DEFAULT_TIMEOUT, **kw):
        """A request on a new stream of raw connection c; the finished Stream (asserted)."""
        sid = c.send_request("GET", path, **kw)
        st = c.wait_stream(sid, timeout * SLOW)
        self.assertTrue(st.ended and st.reset is None,
                        self.why("GET %s on stream %d did not complete" % (path, sid), st,
                                 c.describe()))
        return st

    # metrics and the upstream

    def settled_accepted(self, listener):
        """sluice_connections_accepted_total{listener} once no connection is active there
        (probes and earlier clients have been accepted and are gone)."""
        deadline = time.monotonic() + 10 * SLOW
        while True:
            _, m = fetch_metrics(self.admin)
            accepted = metric(m, "sluice_connections_accepted_total", listener=listener)
            active = metric(m, "sluice_connections_active", listener=listener)
            if active == 0 or time.monotonic() > deadline:
                return accepted
            time.sleep(0.05)

    def records_for(self, prefix):
        return [r for r in self.up.records() if r.get("target", "").startswith(prefix)]

    def heads_for(self, prefix):
        """Raw request heads the upstream read (before any body) for targets under prefix."""
        return [e["head"] for e in self.up.events()
                if e.get("event") == "head" and (" %s" % prefix) in e["head"].split("\r\n")[0]]

    def check_rss(self, sampler, before, what, min_samples=5):
        msg = ("%s: sluice peak VmRSS %.1f MiB (before: %.1f MiB, growth %.1f MiB, %d samples)"
               % (what, sampler.peak / 1024, before / 1024, (sampler.peak - before) / 1024,
                  sampler.samples))
        self.assertGreaterEqual(sampler.samples, min_samples, msg)
        if SANITIZED:
            print("\n  %s (sanitizer build: RSS limit not checked)" % msg)
            return
        print("\n  " + msg)
        self.assertLess(sampler.peak - before, RSS_GROWTH_LIMIT_KIB, self.why(msg))


class Negotiation(H2TestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_curl_http2_over_tls_reaches_the_upstream_as_http11(self):
        body = os.urandom(100 * 1024 + 7)
        path = os.path.join(self.tmp, "post-body")
        with open(path, "wb") as f:
            f.write(body)
        rc, meta, resp, err = self.curl(
            "--http2", "-X", "POST", "--data-binary", "@" + path,
            "-H", "Content-Type: application/octet-stream", "-H", "X-Test: h2 value",
            "-H", "X-Multi: one", "-H", "X-Multi: two",
            self.tls_url("/api/h2/post?x=1&y=two%20words"))
        self.assertEqual((rc, meta), (0, "200 2"), self.why("curl --http2 over TLS", meta, err))
        self.assertRegex(err, r"ALPN[:,] server accepted (to use )?h2", self.why(err))
        self.assertEqual(json.loads(resp)["target"], "/api/h2/post?x=1&y=two%20words",
                         self.why(resp[:500]))
        recs = self.up.wait_records(1)
        self.assertEqual(len(recs), 1, self.why(recs))
        rec = recs[0]
        self.assertEqual((rec["method"], rec["target"], rec["version"]),
                         ("POST", "/api/h2/post?x=1&y=two%20words", "HTTP/1.1"), self.why(rec))
        self.assertEqual((rec["body_len"], rec["body_sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()), self.why(rec))
        self.assertEqual(header_values(rec, "X-Test"), ["h2 value"], self.why(rec))
        self.assertEqual(",".join(header_values(rec, "X-Multi")).replace(" ", ""), "one,two",
                         self.why(rec))
        self.assertEqual(header_values(rec, "Content-Type"), ["application/octet-stream"],
                         self.why(rec))
        # :authority becomes the Host header; no pseudo-header leaks through.
        self.assertEqual(header_values(rec, "Host"), ["localhost:%d" % self.tls_port],
                         self.why(rec))
        self.assertFalse([n for n, _ in rec["headers"] if n.startswith(":")], self.why(rec))
        self.assertEqual(header_values(rec, "X-Forwarded-Proto"), ["https"], self.why(rec))
        # A GET and a route answered by sluice itself, over h2 too.
        self.curl_ok("--http2", self.tls_url("/api/h2/get?z=9"))
        self.assertEqual(self.up.wait_records(2)[-1]["target"], "/api/h2/get?z=9")
        self.assertEqual(self.curl_ok("--http2", self.tls_url("/ping")), b"pong")

    def test_curl_h2c_prior_knowledge(self):
        body = self.curl_ok("--http2-prior-knowledge", "-H", "X-Test: h2c",
                            self.h2c_url("/api/h2c/get?a=b"))
        self.assertEqual(json.loads(body)["target"], "/api/h2c/get?a=b", self.why(body[:500]))
        rec = self.up.wait_records(1)[0]
        self.assertEqual((rec["method"], rec["target"], rec["version"]),
                         ("GET", "/api/h2c/get?a=b", "HTTP/1.1"), self.why(rec))
        self.assertEqual(header_values(rec, "X-Test"), ["h2c"], self.why(rec))
        self.assertEqual(header_values(rec, "Host"), ["127.0.0.1:%d" % self.h2c_port],
                         self.why(rec))
        self.assertEqual(header_values(rec, "X-Forwarded-Proto"), ["http"], self.why(rec))
        self.assertEqual(self.curl_ok("--http2-prior-knowledge", self.h2c_url("/ping")),
                         b"pong")

    def test_http11_still_works_on_the_h2c_port(self):
        c = self.client(self.s)
        r = c.request("GET", "/api/plain/1?q=1", headers=[("X-Test", "h1")])
        self.assertEqual(r.status, 200, self.why(r))
        r = c.request("POST", "/api/plain/2", body=b"hello")   # keep-alive: same connection
        self.assertEqual(r.status, 200, self.why(r))
        recs = self.up.wait_records(2)
        self.assertEqual([(x["method"], x["target"], x["body_len"]) for x in recs],
                         [("GET", "/api/plain/1?q=1", 0), ("POST", "/api/plain/2", 5)],
                         self.why(recs))
        self.assertEqual(header_values(recs[0], "X-Test"), ["h1"], self.why(recs[0]))
        self.curl_ok("--http1.1", self.h2c_url("/api/plain/3"), version="1.1")
        # curl without --http2-prior-knowledge speaks HTTP/1.1 to an http:// URL.
        self.assertEqual(self.curl_ok(self.h2c_url("/ping"), version="1.1"), b"pong")

    def test_http11_via_alpn_on_the_tls_port(self):
        for offer, expected in ((["http/1.1"], "http/1.1"), (["h2", "http/1.1"], "h2")):
            with self.subTest(offer=offer):
                ctx = ssl.create_default_context(cafile=self.ca)
                ctx.set_alpn_protocols(offer)
                with socket.create_connection(("127.0.0.1", self.tls_port), 5 * SLOW) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        self.assertEqual(s.selected_alpn_protocol(), expected,
                                         self.why("ALPN offered %s" % offer))
        body = self.curl_ok("--http1.1", self.tls_url("/api/alpn/h1"), version="1.1")
        self.assertEqual(json.loads(body)["target"], "/api/alpn/h1")
        rec = self.up.wait_records(1)[0]
        self.assertEqual((rec["target"], rec["version"]), ("/api/alpn/h1", "HTTP/1.1"))

    def test_connections_that_end_before_or_inside_the_preface(self):
        # Clients that negotiate h2 (or connect to the h2c port) and go away before their
        # preface is complete: sluice drops them and keeps serving.
        for i in range(20):
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.set_alpn_protocols(["h2"])
            try:
                with socket.create_connection(("127.0.0.1", self.tls_port), 5 * SLOW) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        self.assertEqual(s.selected_alpn_protocol(), "h2", self.why())
                        s.sendall(h2.PREFACE[:i])
                with socket.create_connection(("127.0.0.1", self.h2c_port), 5 * SLOW) as s:
                    s.sendall(h2.PREFACE[:i + 4])
            except (OSError, ssl.SSLError) as e:
                self.fail(self.why("connection %d (after %d that ended early): %r"
                                   % (i + 1, i, e)))
        time.sleep(0.2 * SLOW)
        self.assertIsNone(self.s.proc.poll(), self.why("sluice died"))
        self.assertEqual(self.curl_ok("--http2", self.tls_url("/ping")), b"pong")
        self.assertEqual(self.curl_ok("--http2-prior-knowledge", self.h2c_url("/ping")),
                         b"pong")

    def test_raw_client_over_tls_and_h2c(self):
        # The raw-frame client used by the protection tests, through both listeners.
        for tls in (True, False):
            with self.subTest(tls=tls):
                c = self.raw(tls=tls)
                if tls:
                    self.assertEqual(c.sock.selected_alpn_protocol(), "h2", self.why())
                self.assertTrue(c.handshake(), self.why("no SETTINGS from sluice", c.describe()))
                path = "/api/raw/%s" % ("tls" if tls else "h2c")
                st = self.raw_get(c, path, headers=[("x-raw", "1")],
                                  scheme="https" if tls else "http")
                self.assertEqual(st.status, 200, self.why(st, c.describe()))
                self.assertEqual(json.loads(bytes(st.data))["target"], path, self.why(st))
                st = self.raw_get(c, "/ping")
                self.assertEqual((st.status, bytes(st.data)), (200, b"pong"), self.why(st))
        recs = self.up.wait_records(2)
        self.assertEqual(sorted(r["target"] for r in recs), ["/api/raw/h2c", "/api/raw/tls"],
                         self.why(recs))


class Settings(H2TestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def check_settings(self, settings, increments, shown):
        """settings: [(id, value)] of sluice's first SETTINGS frame; increments: the
        WINDOW_UPDATE increments it sent on stream 0."""
        d = dict(settings)
        self.assertEqual(d.get(h2.SETTINGS_MAX_CONCURRENT_STREAMS), 100,
                         self.why("SETTINGS_MAX_CONCURRENT_STREAMS must be sent as 100", shown))
        # 65535 is also the protocol default: absent means 65535 too.
        self.assertEqual(d.get(h2.SETTINGS_INITIAL_WINDOW_SIZE, 65535), 65535,
                         self.why("the stream window (SETTINGS_INITIAL_WINDOW_SIZE)", shown))
        self.assertEqual(sum(increments), 1048576 - 65535,
                         self.why("the connection window must be raised to 1 MiB with "
                                  "WINDOW_UPDATE(s) on stream 0 (increment 983041); got "
                                  "increments %r" % (increments,), shown))

    def test_nghttp_shows_the_settings_and_the_connection_window(self):
        self.assertIsNotNone(NGHTTP, "nghttp is not installed (Debian nghttp2-client; "
                                     "scripts/install-deps installs it)")
        cmd = [NGHTTP, "-nv", "-t", str(15 * SLOW),
               "https://127.0.0.1:%d/api/settings" % self.tls_port]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30 * SLOW)
        shown = "$ %s\n(exit %d)\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr)
        self.assertEqual(p.returncode, 0, self.why(shown))
        self.assertRegex(p.stdout, r"recv \(stream_id=\d+\) :status: 200", self.why(shown))
        # The first SETTINGS frame sluice sent (not the ACK): its [NAME(0xID):VALUE] lines.
        m = re.search(r"recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>\n"
                      r"\s*\(niv=\d+\)\n((?:\s*\[\w+\(0x[0-9a-f]+\):\d+\]\n)*)",
                      p.stdout)
        self.assertIsNotNone(m, self.why("no SETTINGS from sluice", shown))
        settings = [(int(i, 16), int(v)) for i, v in
                    re.findall(r"\[\w+\(0x([0-9a-f]+)\):(\d+)\]", m.group(1))]
        increments = [int(v) for v in re.findall(
            r"recv WINDOW_UPDATE frame <length=4, flags=0x00, stream_id=0>\n"
            r"\s*\(window_size_increment=(\d+)\)", p.stdout)]
        self.check_settings(settings, increments, shown)

    def test_raw_client_sees_the_same_on_h2c(self):
        c = self.raw()
        self.assertTrue(c.handshake(), self.why(c.describe()))
        st = self.raw_get(c, "/api/settings-raw")   # by then the WINDOW_UPDATE has come
        self.assertEqual(st.status, 200, self.why(st))
        increments = [int(f.note.split("=")[1]) for f in c.frames
                      if f.type == h2.WINDOW_UPDATE and f.stream_id == 0]
        self.check_settings(c.server_settings[0], increments, c.describe())


class ConfiguredLimits(H2TestCase):
    """A listener's `http2:` settings are what sluice announces and enforces."""

    def test_http2_settings_are_announced(self):
        self.s = self.start_sluice("""
            listeners:
              - name: h2c
                address: @LISTEN@
                h2c: true
                http2: {max_concurrent_streams: 7, initial_stream_window: 128KiB,
                        connection_window: 4MiB, max_header_list_size: 8KiB}
            routes:
              - name: ping
                match: {path: /ping}
                response: {status: 200, body: pong}
            """)
        self.h2c_port = self.s.port
        c = self.raw()
        self.assertTrue(c.handshake(), self.why(c.describe()))
        st = self.raw_get(c, "/ping")
        self.assertEqual(st.status, 200, self.why(st))
        d = dict(c.server_settings[0])
        self.assertEqual(d.get(h2.SETTINGS_MAX_CONCURRENT_STREAMS), 7, self.why(c.describe()))
        self.assertEqual(d.get(h2.SETTINGS_INITIAL_WINDOW_SIZE), 128 * 1024,
                         self.why(c.describe()))
        increments = [int(f.note.split("=")[1]) for f in c.frames
                      if f.type == h2.WINDOW_UPDATE and f.stream_id == 0]
        self.assertEqual(sum(increments), 4 * 1024 * 1024 - 65535, self.why(c.describe()))
        path = self.write_config("""
            listeners:
              - name: h2c
                address: 127.0.0.1:1
                http2: {max_concurrent_streams: 0, initial_stream_window: 1KiB, colour: red}
            routes: []
            """, name="bad.yaml")
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("expected a window from 65535 bytes to 2GiB-1", err)
        self.assertIn("unknown key 'colour'", err)


class Multiplexing(H2TestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_nghttp_several_uris_on_one_connection(self):
        self.assertIsNotNone(NGHTTP, "nghttp is not installed (Debian nghttp2-client)")
        before = self.settled_accepted("h2c")
        uris = [self.h2c_url("/api/mux/%d?i=%d" % (i, i)) for i in range(10)]
        cmd = [NGHTTP, "-nv", "-t", str(15 * SLOW), *uris]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30 * SLOW)
        shown = "$ %s\n(exit %d)\n%s%s" % (" ".join(cmd), p.returncode, p.stdout[-6000:],
                                          p.stderr)
        self.assertEqual(p.returncode, 0, self.why(shown))
        statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", p.stdout)
        self.assertEqual(len(statuses), 10, self.why(shown))
        self.assertEqual({s for _, s in statuses}, {"200"}, self.why(shown))
        self.assertEqual(len({sid for sid, _ in statuses}), 10, self.why(shown))
        recs = self.up.wait_records(10)
        self.assertEqual(sorted(r["target"] for r in recs),
                         sorted("/api/mux/%d?i=%d" % (i, i) for i in range(10)), self.why(recs))
        after = self.settled_accepted("h2c")
        self.assertEqual(after - before, 1, self.why("all 10 requests on one connection: "
                                                     "accepted %s → %s" % (before, after)))

    def test_h2load_many_streams_on_two_connections(self):
        self.assertIsNotNone(H2LOAD, "h2load is not installed (Debian nghttp2-client)")
        before = self.settled_accepted("h2tls")
        cmd = [H2LOAD, "-n", "200", "-c", "2", "-m", "10",
               "https://127.0.0.1:%d/api/load" % self.tls_port]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * SLOW)
        shown = "$ %s\n(exit %d)\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr)
        self.assertEqual(p.returncode, 0, self.why(shown))
        self.assertIn("Application protocol: h2", p.stdout, self.why(shown))
        self.assertRegex(p.stdout, r"requests: 200 total, 200 started, 200 done, 200 succeeded, "
                                   r"0 failed, 0 errored", self.why(shown))
        self.assertRegex(p.stdout, r"status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx", self.why(shown))
        recs = self.up.wait_records(200)
        self.assertEqual(len([r for r in recs if r["target"] == "/api/load"]), 200,
                         self.why("the upstream got %d requests" % len(recs)))
        after = self.settled_accepted("h2tls")
        self.assertEqual(after - before, 2, self.why("h2load -c 2 opens two connections: "
                                                     "accepted %s → %s" % (before, after),
                                                     shown))
        # The same over h2c (h2load speaks h2c with prior knowledge to http:// URLs).
        before = self.settled_accepted("h2c")
        cmd[-1] = self.h2c_url("/api/load-h2c")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * SLOW)
        shown = "$ %s\n(exit %d)\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr)
        self.assertEqual(p.returncode, 0, self.why(shown))
        self.assertIn("Application protocol: h2c", p.stdout, self.why(shown))
        self.assertRegex(p.stdout, r"200 succeeded, 0 failed, 0 errored", self.why(shown))
        self.assertEqual(self.settled_accepted("h2c") - before, 2, self.why(shown))


class LargeBodies(H2TestCase):
    """One side stalls for a while in the middle of each transfer: sluice must then stop
    reading from the other (HTTP/2 flow control tied to the backend's pace), not buffer."""

    def setUp(self):
        super().setUp()
        self.start(workers=1)
        self.curl_ok("--http2", self.tls_url("/api/warm-up"))   # baseline after first use
        self.rss_before = self.s.rss_kib()

    def test_64mib_download(self):
        size, stall_at = 64 * MIB, 16 * MIB
        cmd = [CURL, "-sS", "--http2", "--max-time", str(120 * SLOW), "--cacert", self.ca,
               "--resolve", "localhost:%d:127.0.0.1" % self.tls_port,
               "-w", "%{stderr}\nRESULT %{http_code} %{http_version} %{size_download}\n",
               "-o", "-", self.tls_url("/api/bytes/%d" % size)]
        digest, got, stalled = hashlib.sha256(), 0, False
        with RssSampler(self.s) as sampler:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                while True:
                    chunk = p.stdout.read(256 * 1024)
                    if not chunk:
                        break
                    digest.update(chunk)
                    got += len(chunk)
                    if not stalled and got >= stall_at:
                        stalled = True
                        time.sleep(1.5 * SLOW)   # the client stops reading for a while
                err = p.stderr.read().decode(errors="replace")
                rc = p.wait(30 * SLOW)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
                p.stderr.close()
        self.assertEqual(rc, 0, self.why("curl failed", err))
        self.assertIn("RESULT 200 2 %d" % size, err, self.why(err))
        self.assertEqual((got, digest.hexdigest()), (size, pattern_sha256(size)),
                         self.why("the body arrived damaged"))
        self.check_rss(sampler, self.rss_before, "h2 download of %d MiB" % (size // MIB))

    def test_32mib_upload(self):
        size = 32 * MIB
        path = os.path.join(self.tmp, "upload.bin")
        with open(path, "wb") as f:
            for piece in pattern_pieces(size, MIB):
                f.write(piece)
        # The upstream stops reading the body after 4 MiB for a while.
        target = "/api/upload?pause_after=%d&pause_ms=%d" % (4 * MIB, 1500 * SLOW)
        with RssSampler(self.s) as sampler:
            body = self.curl_ok("--http2", "--data-binary", "@" + path, "-H", "Expect:",
                                "-H", "Content-Type: application/octet-stream",
                                self.tls_url(target), timeout=120)
        rec = self.up.wait_records(2)[-1]
        self.assertEqual((rec["method"], rec["target"]), ("POST", target), self.why(rec))
        self.assertEqual((rec["body_len"], rec["body_sha256"]), (size, pattern_sha256(size)),
                         self.why("the body arrived damaged at the upstream", rec))
        self.assertEqual(json.loads(body)["body_len"], size, self.why(body[:500]))
        self.check_rss(sampler, self.rss_before, "h2 upload of %d MiB" % (size // MIB))


class Malformed(H2TestCase):
    """RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR (an
    intermediary must not forward it). The connection itself stays usable."""

    CASES = [
        # (name, extra request headers, body or None)
        ("uppercase-name", [("X-Upper", "1")], None),
        ("connection-keep-alive", [("connection", "keep-alive")], None),
        ("transfer-encoding", [("transfer-encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n"),
        ("content-length-larger", [("content-length", "10")], b"12345"),
        ("content-length-smaller", [("content-length", "3")], b"12345"),
    ]

    def setUp(self):
        super().setUp()
        self.start()

    def test_malformed_requests_get_a_stream_error_and_are_not_forwarded(self):
        for name, extra, body in self.CASES:
            with self.subTest(name):
                c = self.raw()
                self.assertTrue(c.handshake(), self.why(c.describe()))
                bad_path = "/api/bad-%s" % name
                sid = c.new_stream_id()
                out = h2.headers_frame(sid, h2.encode_headers(c.request_headers(
                    "POST" if body else "GET", bad_path, headers=extra)),
                    end_stream=body is None)
                if body is not None:   # in the same write: HEADERS and DATA arrive together
                    out += h2.data_frame(sid, body, end_stream=True)
                c.send(out)
                st = c.wait_stream(sid, 10 * SLOW)
                self.assertFalse(c.goaways, self.why("a connection error instead of a stream "
                                                     "error", c.describe()))
                self.assertTrue(st.reset == h2.PROTOCOL_ERROR or (st.ended and st.status == 400),
                                self.why("%s: expected RST_STREAM(PROTOCOL_ERROR) or a 400 on "
                                         "stream %d, got %r" % (name, sid, st), c.describe()))
                # The connection is still usable: a good request on the next stream.
                good = self.raw_get(c, "/api/good-%s" % name)
                self.assertEqual(good.status, 200, self.why(good, c.describe()))
                self.assertEqual(json.loads(bytes(good.data))["target"], "/api/good-%s" % name)
                time.sleep(0.2 * SLOW)
                self.assertEqual(self.records_for(bad_path), [],
                                 self.why("%s was forwarded to the upstream" % name,
                                          self.up.events()))
                if body is None or name == "transfer-encoding":
                    # Known from the header block alone: not even the head may go out.
                    self.assertEqual(self.heads_for(bad_path), [],
                                     self.why("%s: its head reached the upstream" % name))


class RapidReset(H2TestCase):
    STREAMS = 20000   # at most; the burst stops at the GOAWAY
    BATCH = 100

    def setUp(self):
        super().setUp()
        self.start(workers=1)   # one worker: the attacker and the other client share it

    def test_rapid_reset_gets_goaway_and_others_are_still_served(self):
        self.curl_ok("--http2-prior-knowledge", self.h2c_url("/api/other/warm-up"))
        results = []
        stop = threading.Event()

        def other_client():   # another client, on the same listener, all along
            i = 0
            while not stop.is_set() or i < 3:
                try:
                    results.append(self.curl("--http2-prior-knowledge",
                                             self.h2c_url("/api/other/%d" % i), timeout=15))
                except BaseException as e:   # a failure here must not vanish with the thread
                    results.append((None, repr(e), b"", ""))
                i += 1

        c = self.raw()
        self.assertTrue(c.handshake(), self.why(c.describe()))
        # And one more: an HTTP/2 connection of its own, with a request sent mid-burst.
        other = self.raw()
        self.assertTrue(other.handshake(), self.why(other.describe()))
        other_sid = None
        t = threading.Thread(target=other_client, daemon=True)
        t.start()
        opened = 0
        t0 = time.monotonic()
        try:
            while opened < self.STREAMS and not c.goaways and not c.closed:
                # HEADERS (a complete GET) then RST_STREAM(CANCEL), BATCH streams per write.
                batch = bytearray()
                for _ in range(self.BATCH):
                    sid = c.new_stream_id()
                    batch += h2.headers_frame(sid, h2.encode_headers(c.request_headers(
                        "GET", "/api/rapid/%d" % sid)), end_stream=True)
                    batch += h2.rst_stream_frame(sid, h2.CANCEL)
                if not c.send(bytes(batch)):
                    break
                opened += self.BATCH
                if other_sid is None:
                    other_sid = other.send_request("GET", "/api/other/mid-burst")
                c.poll()
            burst = time.monotonic() - t0
            closed = c.wait_closed(10 * SLOW)
        except socket.timeout:
            closed = False
            burst = time.monotonic() - t0
        finally:
            stop.set()
            t.join(120 * SLOW)
        shown = ("%d streams opened and reset in %.2fs\n%s"
                 % (opened, burst, c.describe()))
        self.assertTrue(c.goaways, self.why("no GOAWAY for the rapid-reset client", shown))
        self.assertTrue(closed, self.why("the connection must be closed after the GOAWAY",
                                         shown))
        time.sleep(0.5 * SLOW)
        forwarded = len(self.records_for("/api/rapid/"))
        print("\n  rapid reset: GOAWAY %s after %d streams (%.2fs); %d reached the upstream"
              % ([(last, h2.error_name(code)) for last, code, _ in c.goaways], opened, burst,
                 forwarded))
        self.assertIsNotNone(other_sid, self.why(shown))
        st = other.wait_stream(other_sid, 15 * SLOW)
        self.assertEqual((st.status, st.ended), (200, True),
                         self.why("a request sent during the burst on another connection",
                                  st, other.describe(), shown))
        # The other client was served all along, and still is.
        self.assertGreaterEqual(len(results), 3, self.why(results))
        bad = [(rc, meta, err[-800:]) for rc, meta, _, err in results
               if (rc, meta) != (0, "200 2")]
        self.assertEqual(bad, [], self.why("the other client was not served during the "
                                           "rapid-reset burst (%d requests)" % len(results),
                                           shown))
        self.curl_ok("--http2-prior-knowledge", self.h2c_url("/api/other/after"))
        self.assertIsNone(self.s.proc.poll(), self.why("sluice died"))
        # Reset streams do not become backend work.
        self.assertLess(forwarded, opened // 10,
                        self.why("%d of %d reset streams reached the upstream"
                                 % (forwarded, opened), shown))


class ContinuationFlood(H2TestCase):
    MAX_BYTES = 64 * MIB   # give up (fail) after sending this much

    def setUp(self):
        super().setUp()
        self.start(workers=1)

    def test_continuation_flood_closes_the_connection(self):
        self.curl_ok("--http2-prior-knowledge", self.h2c_url("/api/warm-up"))
        rss_before = self.s.rss_kib()
        c = self.raw()
        self.assertTrue(c.handshake(), self.why(c.describe()))
        c.defer_replies = True   # nothing may come between HEADERS and its CONTINUATIONs
        sid = c.new_stream_id()
        sent, frames, stalled = 0, 0, False
        t0 = time.monotonic()
        with RssSampler(self.s) as sampler:
            # HEADERS without END_HEADERS, then CONTINUATION frames that never end the
            # block, each ~16 KB of small, distinct header fields.
            c.send(h2.headers_frame(sid, h2.encode_headers(c.request_headers(
                "GET", "/api/flood")), end_stream=True, end_headers=False))
            try:
                while sent < self.MAX_BYTES and not c.closed and not c.goaways:
                    block = h2.encode_headers([("x-flood-%d-%d" % (frames, i), "v" * 16)
                                               for i in range(400)])
                    if not c.send(h2.continuation_frame(sid, block)):
                        break
                    sent += len(block) + 9
                    frames += 1
                    c.poll()
                elapsed = time.monotonic() - t0
                closed = c.wait_closed(10 * SLOW)
            except socket.timeout:   # sluice stopped reading but kept the connection
                stalled, closed, elapsed = True, c.closed, time.monotonic() - t0
        shown = ("%d CONTINUATION frames (%.1f MiB) in %.2fs; stalled=%s\n%s"
                 % (frames, sent / MIB, elapsed, stalled, c.describe()))
        print("\n  CONTINUATION flood: " + shown.split("\n")[0])
        self.assertTrue(closed, self.why("the connection must be closed (GOAWAY or EOF)",
                                         shown))
        self.assertLess(sent, self.MAX_BYTES, self.why(shown))
        self.assertLess(elapsed, 10 * SLOW, self.why(shown))
        self.assertEqual(self.records_for("/api/flood"), [], self.why(shown))
        # (A prompt close leaves little time for samples: one is enough.)
        self.check_rss(sampler, rss_before, "CONTINUATION flood", min_samples=1)
        self.assertEqual(self.curl_ok("--http2-prior-knowledge", self.h2c_url("/ping")),
                         b"pong")


class Drain(H2TestCase):
    def test_sigterm_sends_goaway_and_finishes_the_in_flight_stream(self):
        s = self.start(drain="30s")
        c = self.raw()
        self.assertTrue(c.handshake(), self.why(c.describe()))
        delay_ms = 2000 * SLOW
        path = "/api/delay/%d" % delay_ms
        sid = c.send_request("GET", path)
        recs = self.up.wait_records(1, timeout=10 * SLOW)   # logged before the delay
        self.assertEqual([r["target"] for r in recs], [path], self.why(recs))
        t0 = time.monotonic()
        s.send_signal(signal.SIGTERM)
        c.run_until(lambda: c.goaways or c.streams[sid].done, 10 * SLOW)
        self.assertTrue(c.goaways, self.why("no GOAWAY after SIGTERM", c.describe()))
        self.assertFalse(c.streams[sid].done,
                         self.why("the GOAWAY must come at once, not after the in-flight "
                                  "stream", c.describe()))
        st = c.wait_stream(sid, delay_ms / 1000 + 10 * SLOW)
        done_at = time.monotonic()
        self.assertTrue(st.ended and st.reset is None and st.status == 200,
                        self.why("the in-flight stream must complete", st, c.describe()))
        self.assertEqual(json.loads(bytes(st.data))["target"], path, self.why(st))
        self.assertGreaterEqual(done_at - t0, delay_ms / 1000 - 0.5, self.why(st))
        for last, code, debug in c.goaways:
            self.assertGreaterEqual(last, sid, self.why("a GOAWAY must not drop the in-flight "
                                                        "stream", c.describe()))
            self.assertEqual(code, h2.NO_ERROR, self.why("a drain is not an error",
                                                         c.describe()))
        self.assertTrue(c.wait_closed(10 * SLOW),
                        self.why("sluice must close the drained connection", c.describe()))
        try:
            rc = s.proc.wait(10 * SLOW)   # the connection is done: no need for drain_timeout
        except subprocess.TimeoutExpired:
            rc = None
        self.assertEqual(rc, 0, self.why("sluice must exit 0 soon after the last stream "
                                         "(exit code %s after %.1fs)"
                                         % (rc, time.monotonic() - done_at)))
        self.stop_sluice(s)


class ListenerRemoved(H2TestCase):
    def test_reload_that_removes_the_listener_sends_goaway(self):
        s = self.start()
        c = self.raw(tls=True)
        self.assertTrue(c.handshake(), self.why(c.describe()))
        delay_ms = 1500 * SLOW
        path = "/api/delay/%d" % delay_ms
        sid = c.send_request("GET", path)
        self.up.wait_records(1, timeout=10 * SLOW)
        # The same config without the TLS listener.
        with open(s.config_path) as f:
            text = f.read()
        start = text.index("  - name: h2tls")
        end = text.index("admin:")
        with open(s.config_path, "w") as f:
            f.write(text[:start] + text[end:])
        s.send_signal(signal.SIGHUP)
        s.signalled = False
        self.assertEqual(wait_reloads(self.admin, 1, timeout=DEFAULT_TIMEOUT * SLOW), (1, 0),
                         self.why("reload"))
        c.run_until(lambda: c.goaways or c.streams[sid].done, 10 * SLOW)
        self.assertTrue(c.goaways, self.why("no GOAWAY when the listener went away",
                                            c.describe()))
        st = c.wait_stream(sid, delay_ms / 1000 + 10 * SLOW)
        self.assertTrue(st.ended and st.reset is None and st.status == 200,
                        self.why("the in-flight stream must complete", st, c.describe()))
        self.assertTrue(c.wait_closed(10 * SLOW),
                        self.why("sluice must close the connection of the removed listener",
                                 c.describe()))
        # The h2c listener still serves.
        self.assertEqual(self.curl_ok("--http2-prior-knowledge", self.h2c_url("/ping")), b"pong")


class RawClientSelfCheck(unittest.TestCase):
    """The raw client's HPACK against RFC 7541 Appendix C (no sluice needed)."""

    def test_rfc7541_c4_requests_with_huffman(self):
        d = h2.HpackDecoder()
        self.assertEqual(d.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")),
                         [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", "www.example.com")])
        self.assertEqual(d.decode(bytes.fromhex("828684be5886a8eb10649cbf")),
                         [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", "www.example.com"), ("cache-control", "no-cache")])
        self.assertEqual(d.decode(bytes.fromhex(
            "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")),
            [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
             (":authority", "www.example.com"), ("custom-key", "custom-value")])
        self.assertEqual(d.size, 164)

    def test_encoding_is_literal_without_indexing(self):
        self.assertEqual(h2.encode_headers([("X-Up", "v")]), b"\x00\x04X-Up\x01v")
        self.assertEqual(h2.hpack_int(1337, 5), bytes([31, 154, 10]))   # RFC 7541 C.1.2
        self.assertEqual(h2.frame(h2.RST_STREAM, 0, 3, b"\0\0\0\x08"),
                         b"\x00\x00\x04\x03\x00\x00\x00\x00\x03\x00\x00\x00\x08")


if __name__ == "__main__":
    unittest.main()
