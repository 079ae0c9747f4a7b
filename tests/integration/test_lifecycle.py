"""Start-up and shutdown: SIGTERM/SIGINT drain in-flight requests and exit 0; draining
is bounded by drain_timeout; idle connections do not hold shutdown up."""

import signal
import socket
import time
import unittest

from harness import SluiceTestCase, build_request

CONFIG = """
    workers: 2
    drain_timeout: @DRAIN@
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: api
        match: {path: "/{proxy+}"}
        service: backend
"""


class Lifecycle(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()

    def start(self, drain="15s"):
        return self.start_sluice(CONFIG, UP=self.up.address, DRAIN=drain)

    def wait_in_flight(self, n=1):
        recs = self.up.wait_records(n)
        self.assertGreaterEqual(len(recs), n, "request never reached the upstream")

    def drain_with(self, sig):
        s = self.start()
        c = self.client(s)
        c.send(build_request("GET", "/delay/1000"))
        self.wait_in_flight()
        s.send_signal(sig)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/delay/1000")
        self.stop_sluice(s)  # already stopping: must end with 0

    def test_sigterm_finishes_in_flight_request(self):
        self.drain_with(signal.SIGTERM)

    def test_sigint_finishes_in_flight_request(self):
        self.drain_with(signal.SIGINT)

    def test_stops_accepting_after_sigterm(self):
        s = self.start()
        c = self.client(s)
        c.send(build_request("GET", "/delay/1500"))
        self.wait_in_flight()
        s.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            with socket.create_connection((s.host, s.port), timeout=2) as late:
                late.sendall(build_request("GET", "/late"))
                late.settimeout(2)
                refused = late.recv(1) == b""
        except (ConnectionRefusedError, ConnectionResetError):
            refused = True
        except socket.timeout:
            refused = False
        self.assertTrue(refused, "a new connection was still being served while draining")
        self.assertEqual(c.read_response().status, 200)
        self.stop_sluice(s)
        self.assertNotIn("/late", [r["target"] for r in self.up.records()])

    def test_idle_connections_do_not_delay_exit(self):
        s = self.start(drain="20s")
        idle = [self.client(s) for _ in range(3)]
        for c in idle:
            self.assertEqual(c.request("GET", "/once").status, 200)
        t0 = time.monotonic()
        self.stop_sluice(s)
        self.assertLess(time.monotonic() - t0, 5.0, "idle keep-alive connections held up exit")
        for c in idle:
            self.assertTrue(c.is_closed(1.0))

    def test_drain_timeout_bounds_shutdown(self):
        s = self.start(drain="500ms")
        c = self.client(s)
        c.send(build_request("GET", "/delay/10000"))
        self.wait_in_flight()
        t0 = time.monotonic()
        self.stop_sluice(s)
        self.assertLess(time.monotonic() - t0, 5.0, "drain_timeout 500ms not applied")


if __name__ == "__main__":
    unittest.main()
