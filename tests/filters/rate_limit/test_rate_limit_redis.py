"""The rate_limit filter with `store: redis` against a real redis-server: 429 and
RateLimit-* fields, bucket keys that expire when full again, the empty-bucket cache
(refused requests that cost no round trip), each on_redis_failure mode while Redis is
dead, Redis used again once it is back, and clients leaving while their Redis call is
pending (Redis paused). Every request must get an answer: the clients' socket timeout
is generous, a hang shows up as a failure, never as a slow pass."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rl_helpers import (SANITIZED, client_from, rl_count, rl_metrics,  # noqa: E402
                        start_redis)
from harness import SluiceTestCase, free_port  # noqa: E402

BASIC = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    redis:
      url: @URL@
      command_timeout: 2s
    routes:
      - name: tight
        match: {path: /tight}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {store: redis, rate: 0.01, burst: 3, key: [client_ip]}
      - name: roomy
        match: {path: /roomy}
        response: {status: 200, body: ok}
        filters:
          - rate_limit:
              store: redis
              limits:
                - {rate: 1000, burst: 1000, key: [route]}
                - {rate: 0.01, burst: 50, key: ["header:x-user"]}
"""

FAILURE = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    redis:
      url: @URL@
      connect_timeout: 200ms
      command_timeout: 200ms
    routes:
      - name: open
        match: {path: /open}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {store: redis, on_redis_failure: allow, rate: 0.01, burst: 1000}
      - name: closed
        match: {path: /closed}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {store: redis, on_redis_failure: deny, rate: 0.01, burst: 1000}
      - name: fallback
        match: {path: /fallback}
        response: {status: 200, body: ok}
        filters:
          - rate_limit:
              store: redis
              rate: 0.01
              burst: 1000
              on_redis_failure: local
              instances_hint: 250
"""

PAUSE = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    redis:
      url: @URL@
      command_timeout: 5s
    routes:
      - name: slow
        match: {path: /slow}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {store: redis, rate: 100, burst: 100}
"""


class RateLimitRedis(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.redis = start_redis(self)
        self.admin = free_port()

    def start(self, text):
        self.s = self.start_sluice(text, ADMIN=self.admin, URL=self.redis.url)
        return self.s

    def get(self, path, headers=(), source="127.0.0.1", timeout=10):
        c = client_from(self.s.host, self.s.port, source, timeout)
        self.addCleanup(c.close)
        return c.request("GET", path, headers)

    def keys(self):
        return sorted(self.redis.cli("KEYS", "sluice:rl:*"))

    def test_limit_fields_keys_and_empty_cache(self):
        self.start(BASIC)
        for left in (2, 1, 0):
            r = self.get("/tight")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("RateLimit-Limit"), "3", r)
            self.assertEqual(r.header("RateLimit-Remaining"), str(left), r)
        self.assertIn(int(r.header("RateLimit-Reset")), (299, 300), r)
        # The bucket lives in Redis under its spec and key, expiring when full again.
        self.assertEqual(self.keys(), ["sluice:rl:0.01:3:tight:0:127.0.0.1"])
        ttl = self.redis.cli("PTTL", "sluice:rl:0.01:3:tight:0:127.0.0.1")
        self.assertTrue(290_000 <= ttl <= 300_001, ttl)
        denied = 0
        for _ in range(10):
            r = self.get("/tight")
            self.assertJsonError(r, 429, "Too Many Requests")
            self.assertIn(r.header("Retry-After"), ("99", "100"), r)
            self.assertEqual(r.header("RateLimit-Remaining"), "0", r)
            denied += 1
        m, calls = rl_metrics(self.admin, "tight")
        self.assertEqual(m[("allowed", "redis")], 3)
        # A worker that saw the bucket left empty (or refused) knows it stays so for
        # 100 s: at most one refusal per worker costs a round trip.
        self.assertLessEqual(m[("denied", "redis")], 2)
        self.assertGreaterEqual(m[("denied", "empty_cache")], 8)
        self.assertEqual(m[("denied", "redis")] + m[("denied", "empty_cache")], denied)
        self.assertEqual(calls, 3 + m[("denied", "redis")])
        # Another client is not affected (its key is not cached as empty).
        self.assertEqual(self.get("/tight", source="127.0.0.9").status, 200)

    def test_several_limits_one_round_trip(self):
        self.start(BASIC)
        for i in range(5):
            r = self.get("/roomy", [("X-User", "u1")])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("RateLimit-Limit"), "50", r)  # the tighter one
            self.assertEqual(r.header("RateLimit-Remaining"), str(49 - i), r)
        r = self.get("/roomy")  # no X-User: the route limit alone
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("RateLimit-Limit"), "1000", r)
        m, calls = rl_metrics(self.admin, "roomy")
        self.assertEqual(m[("allowed", "redis")], 6)
        self.assertEqual(calls, 6)  # one script call per request, whatever its limits
        self.assertIn("sluice:rl:0.01:50:roomy:1:u1", self.keys())

    def test_redis_dies_and_comes_back(self):
        self.start(FAILURE)
        for path in ("/open", "/closed", "/fallback"):
            self.assertEqual(self.get(path).status, 200)
        self.assertEqual(len(self.keys()), 3)
        self.redis.kill()
        # While Redis is dead every request is answered, as its mode says. The first
        # ones may wait for the command timeout (200 ms); the socket allows 10 s.
        n = 12 if not SANITIZED else 6
        results = {p: [self.get(p).status for _ in range(n)]
                   for p in ("/open", "/closed", "/fallback")}
        self.assertEqual(results["/open"], [200] * n, results)
        self.assertEqual(results["/closed"], [429] * n, results)
        # Fallback: this instance's share, burst 1000 / 250 instances = 4 requests.
        self.assertEqual(results["/fallback"], [200] * 4 + [429] * (n - 4), results)
        r = self.get("/closed")
        self.assertJsonError(r, 429, "Too Many Requests")
        self.assertEqual(r.header("Retry-After"), "1", r)
        self.assertEqual(rl_count(self.admin, "open", "allowed", "fail_open"), n)
        self.assertEqual(rl_count(self.admin, "closed", "denied", "fail_closed"), n + 1)
        self.assertEqual(rl_count(self.admin, "fallback", "allowed", "fallback"), 4)
        self.assertEqual(rl_count(self.admin, "fallback", "denied", "fallback"), n - 4)

        # Back: the client reconnects (backoff at most 5 s) and loads the script again
        # (the new server has none). Every route goes back to Redis.
        self.redis.restart()
        before = {f: rl_count(self.admin, f, "allowed", "redis") for f in
                  ("open", "closed", "fallback")}
        deadline = time.monotonic() + 30
        back = set()
        while len(back) < 3 and time.monotonic() < deadline:
            for f in ("open", "closed", "fallback"):
                r = self.get("/" + f)
                self.assertIn(r.status, (200, 429), r)
                if rl_count(self.admin, f, "allowed", "redis") > before[f]:
                    back.add(f)
            time.sleep(0.05)
        self.assertEqual(back, {"open", "closed", "fallback"})
        self.assertEqual(len(self.keys()), 3)
        self.assertEqual(self.get("/closed").status, 200)

    def test_client_leaves_while_redis_is_paused(self):
        self.start(PAUSE)
        self.assertEqual(self.get("/slow").status, 200)  # script loaded, connected
        self.redis.pause(1500)
        # One client leaves while its call is pending, another waits for its answer.
        leaving = client_from(self.s.host, self.s.port)
        leaving.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        waiting = client_from(self.s.host, self.s.port)
        self.addCleanup(waiting.close)
        waiting.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        leaving.close()
        r = waiting.read_response()
        self.assertEqual(r.status, 200, r)
        # Both went to Redis (3 calls in all); the gateway serves on.
        _, calls = rl_metrics(self.admin, "slow")
        self.assertEqual(calls, 3)
        for _ in range(3):
            self.assertEqual(self.get("/slow").status, 200)

    def test_pending_call_times_out_into_the_failure_mode(self):
        self.start(FAILURE)
        self.assertEqual(self.get("/closed").status, 200)
        self.redis.pause(1000)  # commands hang: 200 ms timeout, then on_redis_failure
        r = self.get("/closed")
        self.assertEqual(r.status, 429, r)
        r = self.get("/open")
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(rl_count(self.admin, "closed", "denied", "fail_closed"), 1)


if __name__ == "__main__":
    unittest.main()
