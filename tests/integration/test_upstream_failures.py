"""Upstream failures become 502/504 with a JSON body, never a hang; connect failures of
idempotent requests are retried once on another endpoint; load balancing spreads
requests over endpoints."""

import time
import unittest

from harness import SluiceTestCase, dead_port

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      slow:
        endpoints: [@UP@]
        timeout: 300ms
      dead:
        endpoints: [127.0.0.1:@DEAD@]
        connect_timeout: 1s
      flaky:
        endpoints: [127.0.0.1:@DEAD@, @UP@]
        load_balancer: round_robin
      pair:
        endpoints: [@UP@, @UP2@]
        load_balancer: round_robin
      pair_lr:
        endpoints: [@UP@, @UP2@]
        load_balancer: least_request
    routes:
      - name: slow
        match: {path: "/slow/{proxy+}"}
        service: slow
      - name: dead
        match: {path: "/dead/{proxy+}"}
        service: dead
      - name: flaky
        match: {path: "/flaky/{proxy+}"}
        service: flaky
      - name: pair
        match: {path: "/pair/{proxy+}"}
        service: pair
      - name: pair-lr
        match: {path: "/lr/{proxy+}"}
        service: pair_lr
"""


class UpstreamFailures(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.up2 = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address, UP2=self.up2.address,
                                        DEAD=dead_port())

    def test_timeout_gives_504(self):
        c = self.client(self.sluice)
        t0 = time.monotonic()
        r = c.request("GET", "/slow/delay/2000")
        elapsed = time.monotonic() - t0
        self.assertJsonError(r, 504, "Endpoint request timed out")
        # Loose bound: it must be the 300ms timeout that fired, not the upstream's reply.
        self.assertLess(elapsed, 1.9, "504 came after %.2fs" % elapsed)
        # The gateway still serves afterwards.
        c2 = self.client(self.sluice)
        self.assertEqual(c2.request("GET", "/slow/fast").status, 200)

    def test_hanging_upstream_gives_504(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/slow/hang")
        self.assertJsonError(r, 504, "Endpoint request timed out")

    def test_dead_endpoint_gives_502(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/dead/x")
        self.assertJsonError(r, 502, "Bad Gateway")
        c2 = self.client(self.sluice)
        r = c2.request("POST", "/dead/x", body=b"payload")
        self.assertJsonError(r, 502, "Bad Gateway")

    def test_upstream_reset_gives_502(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/pair/reset")
        self.assertJsonError(r, 502, "Bad Gateway")

    def test_connect_failure_retried_on_live_endpoint(self):
        # Round robin over [dead, live]: whichever comes first, every GET must land on
        # the live one, the dead one costing at most one retry.
        for i in range(4):
            c = self.client(self.sluice)
            r = c.request("GET", "/flaky/retry%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["port"], self.up.port)
        self.assertEqual(len(self.up.wait_records(4)), 4)

    def test_round_robin_spreads_requests(self):
        for i in range(10):
            c = self.client(self.sluice)
            self.assertEqual(c.request("GET", "/pair/rr%d" % i).status, 200)
        n1, n2 = len(self.up.records()), len(self.up2.records())
        self.assertEqual((n1, n2), (5, 5), "round robin over 2 endpoints, one worker")

    def test_least_request_uses_idle_endpoint(self):
        # One slow request occupies an endpoint; the next ones must go to the other.
        slow = self.client(self.sluice)
        slow.send(b"GET /lr/delay/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while not (self.up.records() or self.up2.records()) and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = self.up if self.up.records() else self.up2
        idle = self.up2 if busy is self.up else self.up
        for i in range(3):
            c = self.client(self.sluice)
            r = c.request("GET", "/lr/quick%d" % i)
            self.assertEqual(r.json()["port"], idle.port, "least_request chose the busy one")
        self.assertEqual(slow.read_response().status, 200)

    def test_invalid_upstream_response_gives_502(self):
        for path in ("/pair/garbage", "/pair/badframing"):
            c = self.client(self.sluice)
            r = c.request("GET", path)
            self.assertJsonError(r, 502, "Bad Gateway")

    def test_truncated_upstream_body_not_passed_off_as_complete(self):
        # The head (200, Content-Length: 1000) may already be on its way when the
        # upstream dies after 10 bytes: the client must then see the connection
        # closed, never a complete response or a next response in its place.
        c = self.client(self.sluice)
        c.send(b"GET /pair/truncated HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
        except Exception:
            r = None  # connection closed mid-body: correct
        if r is not None:
            self.assertJsonError(r, 502, "Bad Gateway")
        c2 = self.client(self.sluice)
        self.assertEqual(c2.request("GET", "/pair/fine").status, 200)

    def test_upstream_error_status_is_not_a_gateway_error(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/pair/status/503")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json(), {"status": 503})


if __name__ == "__main__":
    unittest.main()
