"""Services over TLS (`services.NAME.tls`): sluice connects to an HTTPS upstream
(tests/support/upstream.py with --tls-cert), verifies its certificate against `ca`
for the endpoint's name or `sni`, reuses the connections, and refuses an upstream
whose certificate does not verify (502, a log line naming the reason)."""

import os
import shutil
import tempfile
import unittest

from admin_helpers import fetch_metrics, metric
from harness import (ROOT, SluiceTestCase, build_request, free_port, pattern_sha256,
                     run_sluice)
import sys

sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tls_certs  # noqa: E402

PKI = None
_tmp = None


def setUpModule():
    global PKI, _tmp
    _tmp = tempfile.mkdtemp(prefix="sluice-upstream-tls-")
    PKI = tls_certs.make_test_pki(_tmp)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


class TestUpstreamTls(SluiceTestCase):
    def start(self, server, tls_yaml, endpoint_host="127.0.0.1"):
        up = self.start_upstream(tls_cert=server.cert, tls_key=server.key)
        self.admin_port = free_port()
        s = self.start_sluice("""
            listeners:
              - name: public
                address: @LISTEN@
            admin: {address: 127.0.0.1:@ADMIN@}
            services:
              secure:
                endpoints: ["@HOST@:@PORT@"]
                tls: @TLS@
            routes:
              - name: all
                match: {path: "/{proxy+}"}
                service: secure
            """, ADMIN=self.admin_port, HOST=endpoint_host, PORT=up.port, TLS=tls_yaml)
        return s, up

    def test_https_upstream_verified_by_ip_and_connections_reused(self):
        s, up = self.start(PKI.server, "{ca: %s}" % PKI.ca.cert)
        with self.client(s) as c:
            for i in range(5):
                r = c.request("GET", "/echo/%d" % i)
                self.assertEqual(r.status, 200, r)
            r = c.request("POST", "/echo", body=b"x" * 300000)
            self.assertEqual(r.status, 200, r)
            c.send(build_request("GET", "/bytes/2000000"))
            r = c.read_response(keep_body=False)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body_sha256, pattern_sha256(2000000))
        recs = up.wait_records(7)
        self.assertEqual(len(recs), 7, recs)
        # The client spoke plain HTTP to sluice; sluice spoke TLS to the upstream.
        self.assertIn(["X-Forwarded-Proto", "http"], recs[0]["headers"])
        conns = {r["conn_id"] for r in recs}
        self.assertLessEqual(len(conns), 2, "keep-alive TLS connections are reused")

    def test_sni_names_the_certificate_to_check(self):
        # The endpoint is an IP; the certificate is for *.example.test: `sni` both sends
        # the name and is what the certificate is checked against.
        s, up = self.start(PKI.wildcard, "{ca: %s, sni: api.example.test}" % PKI.ca.cert)
        with self.client(s) as c:
            r = c.request("GET", "/echo")
        self.assertEqual(r.status, 200, r)

    def test_endpoint_host_name_is_checked(self):
        s, up = self.start(PKI.server, "{ca: %s}" % PKI.ca.cert, endpoint_host="localhost")
        with self.client(s) as c:
            self.assertEqual(c.request("GET", "/echo").status, 200)

    def test_untrusted_certificate_is_refused(self):
        s, up = self.start(PKI.other_server, "{ca: %s}" % PKI.ca.cert)
        with self.client(s) as c:
            r = c.request("GET", "/echo")
        self.assertJsonError(r, 502)
        self.assertEqual(up.records(), [], "nothing may reach an unverified upstream")
        self.assertIn("upstream TLS handshake with 127.0.0.1 failed", s.output())
        self.assertIn("certificate", s.output())
        samples = fetch_metrics(self.admin_port)[1]
        errors = sum(v for (name, labels), v in samples.items()
                     if name == "sluice_upstream_errors_total" and ("kind", "connect") in labels)
        self.assertGreaterEqual(errors, 1)

    def test_wrong_name_is_refused(self):
        s, up = self.start(PKI.wildcard, "{ca: %s}" % PKI.ca.cert)  # cert has no IP entry
        with self.client(s) as c:
            self.assertJsonError(c.request("GET", "/echo"), 502)
        self.assertEqual(up.records(), [])

    def test_verify_false_accepts_any_certificate(self):
        s, up = self.start(PKI.other_server, "{verify: false}")
        with self.client(s) as c:
            self.assertEqual(c.request("GET", "/echo").status, 200)

    def test_plain_upstream_behind_tls_setting_fails_cleanly(self):
        up = self.start_upstream()  # plain HTTP
        s = self.start_sluice("""
            listeners:
              - name: public
                address: @LISTEN@
            services:
              secure:
                endpoints: ["127.0.0.1:@PORT@"]
                connect_timeout: 1s
                tls: {ca: @CA@}
            routes:
              - name: all
                match: {path: "/{proxy+}"}
                service: secure
            """, PORT=up.port, CA=PKI.ca.cert)
        with self.client(s) as c:
            r = c.request("GET", "/echo")
        # The plain server never completes a handshake: refused (502) or, if it waits
        # for more bytes, the connect timeout (504). Never a hang, never a 200.
        self.assertIn(r.status, (502, 504), r)
        self.assertJsonError(r, r.status)

    def test_config_errors(self):
        path = self.write_config("""
            listeners:
              - name: public
                address: 127.0.0.1:1
            services:
              a:
                endpoints: [127.0.0.1:2]
                tls: {ca: /nonexistent/ca.pem, sni: "bad name", verify: maybe}
                protocol: http2
            routes: []
            """)
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("cannot read CA file '/nonexistent/ca.pem'", err)
        self.assertIn("invalid server name 'bad name'", err)
        self.assertIn("expected true or false", err)
        self.assertIn("protocol 'http2' to services is not in this version yet", err)


if __name__ == "__main__":
    unittest.main()
