"""The rate_limit filter with `store: local`, through the real binary: 429 body and
fields, Retry-After, RateLimit-* on allowed answers, keys by client IP (clients bind
127.0.0.x source addresses), by header, by route, several limits at once (all must
pass, a refused request uses up none), buckets shared by workers and kept across a
reload, metrics, and config errors at their line.

Rates are tiny (0.01/s: one token per 100 s) so that no token comes back while a test
runs: every count below is exact, whatever the machine's speed."""

import os
import re
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integration"))
from admin_helpers import fetch_metrics, metric, wait_reloads  # noqa: E402
from harness import Client, SluiceTestCase, free_port, run_sluice  # noqa: E402

CONFIG = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    filters:
      # Before rate_limit: it resolves client_ip behind a trusted proxy (127.0.0.1).
      - ip_filter: {deny: [192.0.2.66], trusted_proxies: [127.0.0.1]}
      - rate_limit: {rate: 0.01, burst: 3, key: [route], name: per-route}
    routes:
      - name: basic
        match: {path: /basic}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {rate: 0.01, burst: 3, key: [client_ip]}
      - name: behind-proxy
        match: {path: /behind-proxy}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {rate: 0.01, burst: 2, key: [client_ip]}
      - name: by-header
        match: {path: /by-header}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {rate: 0.01, burst: 2, key: ["header:X-User"]}
      - name: multi
        match: {path: /multi}
        response: {status: 200, body: ok}
        filters:
          - rate_limit:
              limits:
                - {rate: 0.01, burst: 5, key: [route]}
                - {rate: 0.01, burst: 2, key: ["header:x-user"]}
      - name: global-a
        match: {path: /global-a}
        response: {status: 200, body: ok}
      - name: global-b
        match: {path: /global-b}
        response: {status: 200, body: ok}
      - name: shared
        match: {path: /shared}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {rate: 0.01, burst: 10}
"""


def client_from(s, source_ip):
    """A harness Client whose connection comes from `source_ip` (any 127.0.0.0/8)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection((s.host, s.port), timeout=10, source_address=(source_ip, 0))
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.timeout = 10
    c.buf = bytearray()
    c.eof = False
    return c


class RateLimitLocal(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.admin = free_port()
        self.s = self.start_sluice(CONFIG, ADMIN=self.admin)

    def get(self, path, headers=(), source="127.0.0.1"):
        c = client_from(self.s, source)
        self.addCleanup(c.close)
        return c.request("GET", path, headers)

    def assertFields(self, r, limit, remaining):
        self.assertEqual(r.header("RateLimit-Limit"), str(limit), r)
        self.assertEqual(r.header("RateLimit-Remaining"), str(remaining), r)
        self.assertRegex(r.header("RateLimit-Reset") or "", r"^\d+$", r)

    def test_429_body_fields_and_retry_after(self):
        for left in (2, 1, 0):
            r = self.get("/basic")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"ok")
            self.assertFields(r, 3, left)
        # 0.01/s: the bucket is full again in 300 s, the next token due in 100 s.
        self.assertIn(int(r.header("RateLimit-Reset")), (299, 300), r)
        r = self.get("/basic")
        self.assertJsonError(r, 429, "Too Many Requests")
        self.assertEqual(r.json(), {"message": "Too Many Requests"})
        self.assertIn(r.header("Retry-After"), ("99", "100"), r)
        self.assertFields(r, 3, 0)
        self.assertEqual(len(r.header_all("Retry-After")), 1, r)

    def test_per_client_ip(self):
        for _ in range(3):
            self.assertEqual(self.get("/basic", source="127.0.0.1").status, 200)
        self.assertEqual(self.get("/basic", source="127.0.0.1").status, 429)
        # Another client has its own bucket.
        for left in (2, 1, 0):
            r = self.get("/basic", source="127.0.0.2")
            self.assertEqual(r.status, 200, r)
            self.assertFields(r, 3, left)
        self.assertEqual(self.get("/basic", source="127.0.0.2").status, 429)

    def test_client_ip_behind_a_trusted_proxy(self):
        # ip_filter resolved the client from X-Forwarded-For: one bucket per real client,
        # not one for the proxy they all come through.
        xff = lambda ip: [("X-Forwarded-For", ip)]
        for _ in range(2):
            self.assertEqual(self.get("/behind-proxy", xff("198.51.100.1")).status, 200)
        self.assertEqual(self.get("/behind-proxy", xff("198.51.100.1")).status, 429)
        self.assertEqual(self.get("/behind-proxy", xff("198.51.100.2")).status, 200)
        # From an untrusted peer the header is not read: the peer's own bucket.
        for _ in range(2):
            self.assertEqual(self.get("/behind-proxy", xff("198.51.100.3"),
                                      source="127.0.0.5").status, 200)
        self.assertEqual(self.get("/behind-proxy", xff("198.51.100.4"),
                                  source="127.0.0.5").status, 429)

    def test_per_header_and_missing_header(self):
        for _ in range(2):
            self.assertEqual(self.get("/by-header", [("X-User", "alice")]).status, 200)
        self.assertEqual(self.get("/by-header", [("X-User", "alice")]).status, 429)
        self.assertEqual(self.get("/by-header", [("x-user", "bob")]).status, 200)
        # Without the header the limit does not apply: no bucket, no fields.
        for _ in range(6):
            r = self.get("/by-header")
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(r.header("RateLimit-Limit"), r)
        # Values that would collide if joined naively stay apart.
        self.assertEqual(self.get("/by-header", [("X-User", "a:b")]).status, 200)
        self.assertEqual(self.get("/by-header", [("X-User", "a%3Ab")]).status, 200)
        self.assertEqual(self.get("/by-header", [("X-User", "a:b")]).status, 200)
        self.assertEqual(self.get("/by-header", [("X-User", "a:b")]).status, 429)

    def test_global_filter_keyed_by_route(self):
        # The global filter (name per-route, key route) gives each route 3 requests.
        for _ in range(3):
            self.assertEqual(self.get("/global-a").status, 200)
        r = self.get("/global-a")
        self.assertJsonError(r, 429, "Too Many Requests")
        for _ in range(3):
            self.assertEqual(self.get("/global-b").status, 200)
        self.assertEqual(self.get("/global-b").status, 429)

    def test_several_limits_all_must_pass(self):
        # Per user 2, per route 5. alice: 2 then refused (per-user limit reported).
        for left in (1, 0):
            r = self.get("/multi", [("X-User", "alice")])
            self.assertEqual(r.status, 200, r)
            self.assertFields(r, 2, left)  # the most restrictive limit
        for _ in range(5):
            r = self.get("/multi", [("X-User", "alice")])
            self.assertEqual(r.status, 429, r)
            self.assertFields(r, 2, 0)
        # alice's refused requests took nothing from the route's bucket: 3 are left.
        for _ in range(2):
            self.assertEqual(self.get("/multi", [("X-User", "bob")]).status, 200)
        r = self.get("/multi", [("X-User", "carol")])
        self.assertEqual(r.status, 200, r)
        self.assertFields(r, 5, 0)  # the route's bucket is now the tighter one
        r = self.get("/multi", [("X-User", "dave")])
        self.assertEqual(r.status, 429, r)
        self.assertFields(r, 5, 0)
        # No X-User: only the route limit applies, and it is empty.
        self.assertEqual(self.get("/multi").status, 429)

    def test_bucket_shared_by_workers_and_kept_across_reload(self):
        statuses = []
        for i in range(40):  # new connections land on both workers
            statuses.append(self.get("/shared", source="127.0.0.%d" % (1 + i % 7)).status)
        self.assertEqual(statuses.count(200), 10, statuses)
        self.assertEqual(statuses.count(429), 30, statuses)
        self.s.send_signal(signal.SIGHUP)
        self.s.signalled = False  # a reload, not a stop
        self.assertEqual(wait_reloads(self.admin, 1), (1, 0))
        self.assertEqual(self.get("/shared").status, 429)

    def test_metrics(self):
        for _ in range(5):
            self.get("/basic")
        self.get("/by-header")
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_rate_limit_requests_total", filter="basic",
                                result="allowed", source="local"), 3)
        self.assertEqual(metric(m, "sluice_rate_limit_requests_total", filter="basic",
                                result="denied", source="local"), 2)
        self.assertEqual(metric(m, "sluice_rate_limit_requests_total", filter="by-header",
                                result="unlimited", source="none"), 1)
        self.assertEqual(metric(m, "sluice_rate_limit_redis_calls_total", filter="basic"), 0)


ERROR_LINE = re.compile(r"^[^:\n]+:(\d+):(\d+): (.+)$", re.M)

BAD = [
    ("store redis without a redis section", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit: {rate: 1, store: redis}
     """, 7, "needs a top-level 'redis:'"),
    ("unknown descriptor", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit:
                  rate: 1
                  key: [client_ip, clientip]
     """, 9, "unknown key descriptor 'clientip'"),
    ("rate and limits together", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit:
                  rate: 1
                  limits: [{rate: 2}]
     """, 8, "goes inside each item of 'limits'"),
    ("rate zero", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit: {rate: 0}
     """, 7, "above 0"),
    ("burst below one", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit:
                  limits:
                    - {rate: 1, burst: 0.5}
     """, 9, "at least 1"),
    ("on_redis_failure with the local store", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit:
                  rate: 1
                  on_redis_failure: allow
     """, 9, "store: redis only"),
    ("missing rate", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 200}
            filters:
              - rate_limit: {burst: 3}
     """, 7, "needs 'rate'"),
]


class RateLimitConfigErrors(SluiceTestCase):
    def test_errors_point_at_the_line(self):
        head = "listeners:\n  - name: p\n    address: 127.0.0.1:1\n"
        for name, body, line, fragment in BAD:
            with self.subTest(name):
                import textwrap
                text = head + textwrap.dedent(body).lstrip("\n")
                path = self.write_config(text, "bad.yaml")
                rc, out, err = run_sluice("validate", path)
                self.assertEqual(rc, 1, out + err)
                errors = [(int(m.group(1)), m.group(3)) for m in ERROR_LINE.finditer(err)]
                self.assertTrue(any(l == line + 2 and fragment in msg for l, msg in errors),
                                "want line %d with %r, got:\n%s\n%s" % (line + 2, fragment, err,
                                                                        text))


if __name__ == "__main__":
    unittest.main()
