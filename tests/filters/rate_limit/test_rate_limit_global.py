"""Global accuracy of `store: redis`: three sluice instances share one redis-server;
clients spread requests over the three, well over the limit, for several seconds. The
requests allowed must be at most burst + rate × T (+1%) and at least 95% of it, T
being measured by this test around the run (from the first request sent to the last
answer read, so it can only be longer than the span Redis saw).

rate 200/s and burst 100 over 4 s make ~900 allowed: 1% is 9 requests, while the
clients send several thousand; the limit holds exactly (one bucket, Redis TIME), so
the bound is met on a noisy machine too. Under the sanitizers the load is smaller."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rl_helpers import SANITIZED, hammer, rl_metrics, start_redis  # noqa: E402
from harness import SluiceTestCase, free_port  # noqa: E402

RATE, BURST, SECONDS = (40, 20, 3.0) if SANITIZED else (200, 100, 4.0)

CONFIG = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    redis:
      url: @URL@
      command_timeout: 1s
    routes:
      - name: api
        match: {path: /api}
        response: {status: 200, body: ok}
        filters:
          - rate_limit: {store: redis, rate: @RATE@, burst: @BURST@, on_redis_failure: deny}
"""


class GlobalAccuracy(SluiceTestCase):
    def test_three_instances_share_one_bucket(self):
        redis = start_redis(self)
        instances = []
        for _ in range(3):
            admin = free_port()
            s = self.start_sluice(CONFIG, ADMIN=admin, URL=redis.url, RATE=RATE, BURST=BURST)
            instances.append((s, admin))
        targets = [(s.host, s.port) for s, _ in instances]
        statuses, elapsed, failures = hammer(targets, "/api", SECONDS,
                                             threads=4 if SANITIZED else 6)
        self.assertEqual(failures, [])
        self.assertEqual(set(statuses) - {200, 429}, set(), statuses)
        allowed = statuses.get(200, 0)
        total = sum(statuses.values())
        bound = BURST + RATE * elapsed
        report = "allowed %d of %d in %.3f s; burst + rate x T = %.1f" % (allowed, total,
                                                                         elapsed, bound)
        # Well over the limit, or the test proves nothing.
        self.assertGreater(total, 2 * bound, report)
        self.assertLessEqual(allowed, bound * 1.01, report)
        self.assertGreaterEqual(allowed, bound * 0.95, report)
        # Every decision came from Redis or its empty-bucket cache (never a fallback),
        # and the instances' metrics add up to what the clients saw.
        seen_allowed = seen_denied = 0
        for s, admin in instances:
            m, _ = rl_metrics(admin, "api")
            seen_allowed += m.get(("allowed", "redis"), 0)
            seen_denied += m.get(("denied", "redis"), 0) + m.get(("denied", "empty_cache"), 0)
            self.assertEqual(m.get(("denied", "fail_closed"), 0), 0, report)
        self.assertEqual(seen_allowed, allowed, report)
        self.assertEqual(seen_denied, statuses.get(429, 0), report)
        print(report, file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
