"""request_id through the real binary: a new UUID when the client sends none (or an
unsafe one), a valid incoming id kept; the same id reaches the upstream and comes back to
the client, on proxied and on local replies; a configurable header name."""

import re
import unittest

from harness import SluiceTestCase

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    filters:
      - request_id: {}
    routes:
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
      - name: ping
        match: {path: /ping}
        response: {status: 200, body: pong}
      - name: traced
        match: {path: "/traced/{proxy+}"}
        service: backend
        filters:
          - request_id: {header: x-trace-id}
"""

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class RequestId(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def upstream_header(self, name):
        """Values of `name` in the request heads the upstream received, in order."""
        values = []
        for e in self.up.events():
            if e["event"] != "head":
                continue
            for line in e["head"].split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    if k.strip().lower() == name:
                        values.append(v.strip())
        return values

    def test_new_id_is_a_uuid_sent_upstream_and_back(self):
        r = self.client(self.sluice).request("GET", "/api/a")
        self.assertEqual(r.status, 200, r)
        rid = r.header("x-request-id")
        self.assertRegex(rid or "", UUID4)
        self.assertEqual(self.upstream_header("x-request-id"), [rid])

    def test_valid_incoming_id_is_kept(self):
        r = self.client(self.sluice).request("GET", "/api/a",
                                             headers=[("X-Request-Id", "abc-123_x.y:z")])
        self.assertEqual(r.header("x-request-id"), "abc-123_x.y:z")
        self.assertEqual(self.upstream_header("x-request-id"), ["abc-123_x.y:z"])

    def test_unsafe_or_oversized_incoming_id_is_replaced(self):
        for bad in ['a"b', "a b", "x" * 201, "a<script>"]:
            r = self.client(self.sluice).request("GET", "/api/a", headers=[("X-Request-Id", bad)])
            self.assertEqual(r.status, 200, r)
            self.assertRegex(r.header("x-request-id") or "", UUID4, bad)
        # The upstream never saw a bad id, and saw exactly one id per request.
        seen = self.upstream_header("x-request-id")
        self.assertEqual(len(seen), 4)
        for v in seen:
            self.assertRegex(v, UUID4)

    def test_local_replies_carry_the_id(self):
        c = self.client(self.sluice)
        self.assertRegex(c.request("GET", "/ping").header("x-request-id") or "", UUID4)
        r = c.request("GET", "/nowhere")
        self.assertEqual(r.status, 404, r)
        self.assertRegex(r.header("x-request-id") or "", UUID4)

    def test_ids_are_unique(self):
        c = self.client(self.sluice)
        ids = {c.request("GET", "/api/%d" % i).header("x-request-id") for i in range(300)}
        self.assertEqual(len(ids), 300)

    def test_route_override_uses_another_header(self):
        r = self.client(self.sluice).request("GET", "/traced/a",
                                             headers=[("X-Trace-Id", "t-1")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-trace-id"), "t-1")
        self.assertIsNone(r.header("x-request-id"))
        self.assertEqual(self.upstream_header("x-trace-id"), ["t-1"])
        self.assertEqual(self.upstream_header("x-request-id"), [])


if __name__ == "__main__":
    unittest.main()
