"""Client keep-alive, pipelining, idle timeout, and reuse of upstream connections."""

import time
import unittest

from harness import SluiceTestCase, build_request

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
        idle_timeout: 500ms
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: api
        match: {path: "/{proxy+}"}
        service: backend
      - name: ping
        match: {path: /ping}
        response: {status: 200, body: "pong"}
"""


class KeepAlive(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def test_client_keep_alive(self):
        c = self.client(self.sluice)
        for i in range(5):
            r = c.request("GET", "/k%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/k%d" % i)
        self.assertFalse(c.is_closed(0.1))

    def test_pipelining_in_order(self):
        c = self.client(self.sluice)
        c.send(build_request("GET", "/p1") + build_request("GET", "/p2")
               + build_request("GET", "/p3"))
        targets = [c.read_response().json()["target"] for _ in range(3)]
        self.assertEqual(targets, ["/p1", "/p2", "/p3"])

    def test_pipelining_slow_first_keeps_order(self):
        c = self.client(self.sluice)
        c.send(build_request("GET", "/delay/300") + build_request("POST", "/p2", body=b"xyz")
               + build_request("GET", "/ping") + build_request("HEAD", "/p4")
               + build_request("GET", "/chunked/3"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response("HEAD")
        r5 = c.read_response()
        self.assertEqual(r1.json()["target"], "/delay/300")
        self.assertEqual((r2.json()["target"], r2.json()["body_len"]), ("/p2", 3))
        self.assertEqual(r3.body, b"pong")
        self.assertEqual((r4.status, r4.body), (200, b""))
        self.assertEqual(r5.body, b"chunk 0\nchunk 1\nchunk 2\n")

    def test_pipelined_requests_split_across_packets(self):
        c = self.client(self.sluice)
        data = build_request("GET", "/s1") + build_request("PUT", "/s2", body=b"0123456789")
        c.send(data[:10])
        c.send(data[10:50])
        c.send(data[50:])
        self.assertEqual(c.read_response().json()["target"], "/s1")
        self.assertEqual(c.read_response().json()["body_len"], 10)

    def test_upstream_connection_reused_within_client_connection(self):
        c = self.client(self.sluice)
        for i in range(5):
            self.assertEqual(c.request("GET", "/r%d" % i).status, 200)
        ids = {r["conn_id"] for r in self.up.wait_records(5)}
        self.assertEqual(len(ids), 1, "upstream connections used: %s" % ids)

    def test_upstream_connection_reused_across_client_connections(self):
        for i in range(5):
            c = self.client(self.sluice)
            self.assertEqual(c.request("GET", "/x%d" % i).status, 200)
            c.close()
        ids = [r["conn_id"] for r in self.up.wait_records(5)]
        self.assertEqual(len(set(ids)), 1, "upstream conn_ids: %s" % ids)

    def test_upstream_close_then_new_connection(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/close")
        self.assertEqual(r.status, 200, r)
        # The client connection may stay or be closed; a new request must work either way.
        c2 = self.client(self.sluice)
        self.assertEqual(c2.request("GET", "/after-close").status, 200)
        recs = self.up.wait_records(2)
        self.assertNotEqual(recs[0]["conn_id"], recs[1]["conn_id"])

    def test_upstream_connection_close_header(self):
        c = self.client(self.sluice)
        self.assertEqual(c.request("GET", "/first?close=1").status, 200)
        self.assertEqual(c.request("GET", "/second").status, 200)
        recs = self.up.wait_records(2)
        self.assertNotEqual(recs[0]["conn_id"], recs[1]["conn_id"])

    def test_stale_pooled_connection_not_a_client_error(self):
        # The upstream closes an idle pooled connection on its own (its keep-alive
        # timeout); the next request must not fail because of it.
        c = self.client(self.sluice)
        self.assertEqual(c.request("GET", "/first?close_after_ms=50").status, 200)
        time.sleep(0.3)
        c2 = self.client(self.sluice)
        for i in range(3):
            r = c2.request("GET", "/again%d" % i)
            self.assertEqual(r.status, 200, r)
        recs = self.up.wait_records(4)
        self.assertNotEqual(recs[0]["conn_id"], recs[1]["conn_id"])

    def test_idle_timeout_closes_connection(self):
        c = self.client(self.sluice)
        self.assertEqual(c.request("GET", "/ping").status, 200)
        self.assertTrue(c.is_closed(5.0), "idle keep-alive connection not closed")



class Connections(SluiceTestCase):
    CONFIG = """
        workers: 1
        listeners:
          - name: public
            address: @LISTEN@
            max_connections: 5
        services:
          backend:
            endpoints: [@UP@]
        routes:
          - name: api
            match: {path: "/{proxy+}"}
            service: backend
    """

    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()

    def test_max_connections_caps_and_recovers(self):
        s = self.start_sluice(self.CONFIG, UP=self.up.address)
        held = [self.client(s) for _ in range(5)]
        for i, c in enumerate(held):
            self.assertEqual(c.request("GET", "/held%d" % i).status, 200)
        extra = self.client(s, timeout=10)
        extra.send(build_request("GET", "/sixth"))
        # The sixth connection is not served while five are open...
        self.assertFalse(extra.is_closed(0.5) or extra.buf,
                         "a sixth connection was answered with max_connections: 5")
        self.assertNotIn("/sixth", [r["target"] for r in self.up.records()])
        # ...and is once one of them closes.
        held[0].close()
        r = extra.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/sixth")

    def test_many_concurrent_clients(self):
        import threading
        text = self.CONFIG.replace("max_connections: 5", "max_connections: 1000").replace(
            "workers: 1", "workers: 2")
        s = self.start_sluice(text, UP=self.up.address)
        errors = []

        def worker(n):
            try:
                c = self.client(s)
                for i in range(5):
                    r = c.request("POST", "/c%d/%d" % (n, i), body=b"x" * (n + i))
                    if r.status != 200 or r.json()["body_len"] != n + i:
                        errors.append((n, i, r))
            except Exception as e:
                errors.append((n, repr(e)))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.up.wait_records(500)), 500)


if __name__ == "__main__":
    unittest.main()
