"""body_limit through the real binary: 413 before the backend for a Content-Length over
the limit, 413 for a chunked body that grows over it, bodies at the limit pass; global
limit overridden and disabled per route; never above the route's max_body."""

import time
import unittest

from harness import SluiceTestCase, build_request, chunk_encode, run_sluice

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    filters:
      - body_limit: {max: 1KiB}
    routes:
      - name: small
        match: {path: "/small/{proxy+}"}
        service: backend
      - name: big
        match: {path: "/big/{proxy+}"}
        service: backend
        filters:
          - body_limit: {max: 64KiB}
      - name: free
        match: {path: "/free/{proxy+}"}
        service: backend
        filters:
          - body_limit: {disabled: true}
      - name: capped
        match: {path: "/capped/{proxy+}"}
        service: backend
        max_body: 2KiB
        filters:
          - body_limit: {max: 1MiB}
"""


class BodyLimit(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def post(self, target, size, chunked=False, extra=()):
        c = self.client(self.sluice)
        body = bytes(i % 251 for i in range(size))
        if chunked:
            c.send(build_request("POST", target, headers=[("Transfer-Encoding", "chunked"),
                                                          *extra]) + chunk_encode(body))
        else:
            c.send(build_request("POST", target, headers=list(extra), body=body))
        return c.read_response()

    def heads_seen(self):
        return [e for e in self.up.events() if e["event"] == "head"]

    def test_content_length_over_the_limit_never_reaches_the_backend(self):
        r = self.post("/small/x", 1025)
        self.assertJsonError(r, 413, "Request Entity Too Large")
        time.sleep(0.2)
        self.assertEqual(self.heads_seen(), [])

    def test_content_length_at_the_limit_passes(self):
        r = self.post("/small/x", 1024)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.wait_records(1)[0]["body_len"], 1024)

    def test_expect_continue_over_the_limit_gets_no_100(self):
        c = self.client(self.sluice)
        c.send(build_request("POST", "/small/x", headers=[("Content-Length", "5000"),
                                                          ("Expect", "100-continue")]))
        r = c.read_response()
        self.assertJsonError(r, 413, "Request Entity Too Large")
        self.assertEqual(r.interim, [])
        self.assertEqual(self.heads_seen(), [])

    def test_chunked_over_the_limit(self):
        r = self.post("/small/x", 5000, chunked=True)
        self.assertJsonError(r, 413)
        # Whatever part reached the upstream, it never got a complete request.
        self.assertEqual([rec for rec in self.up.records() if "error" not in rec], [])

    def test_chunked_under_the_limit_passes(self):
        r = self.post("/small/x", 1000, chunked=True)
        self.assertEqual(r.status, 200, r)
        rec = self.up.wait_records(1)[0]
        self.assertEqual(rec["body_len"], 1000)

    def test_route_overrides_the_global_limit(self):
        r = self.post("/big/x", 60_000)
        self.assertEqual(r.status, 200, r)
        r = self.post("/big/x", 60_000, chunked=True)
        self.assertEqual(r.status, 200, r)
        r = self.post("/big/x", 70_000)
        self.assertJsonError(r, 413, "Request Entity Too Large")
        r = self.post("/big/x", 70_000, chunked=True)
        self.assertJsonError(r, 413)

    def test_route_disables_the_global_limit(self):
        r = self.post("/free/x", 100_000)
        self.assertEqual(r.status, 200, r)
        r = self.post("/free/x", 100_000, chunked=True)
        self.assertEqual(r.status, 200, r)

    def test_never_above_the_routes_max_body(self):
        r = self.post("/capped/x", 3000)
        self.assertJsonError(r, 413)
        r = self.post("/capped/x", 3000, chunked=True)
        self.assertJsonError(r, 413)
        r = self.post("/capped/x", 2000, chunked=True)
        self.assertEqual(r.status, 200, r)

    def test_requests_without_a_body_pass(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/small/x")
        self.assertEqual(r.status, 200, r)


class BodyLimitConfig(SluiceTestCase):
    def validate(self, settings):
        path = self.write_config("""
            listeners:
              - name: public
                address: 127.0.0.1:1
            filters:
              - body_limit: %s
            routes:
              - name: ping
                match: {path: /ping}
                response: {status: 200}
            """ % settings)
        return run_sluice("validate", path)

    def test_errors(self):
        rc, out, err = self.validate("{}")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"sluice\.yaml:5:\d+: missing required key 'max'")
        rc, out, err = self.validate("{max: lots}")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"sluice\.yaml:5:\d+: expected a size")
        rc, out, err = self.validate("{max: 1MiB, per: route}")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"sluice\.yaml:5:\d+: .*per")

    def test_valid(self):
        rc, out, err = self.validate("{max: 512KiB}")
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
