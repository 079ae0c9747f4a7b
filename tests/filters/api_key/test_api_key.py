"""The api_key filter and usage plans through the real binary and a real redis-server:
keys in a header or (when allowed) a query parameter, 403 for missing, unknown and
disabled keys, keys from the YAML (${ENV} and sha256:) and from Redis (with the local
cache, negative answers too), throttles (429 + Retry-After, a plan's per-route
override, a throttled request using no quota), quotas over short windows (locally and
shared by two instances through Redis), admin /usage, the access log's key name, and
that the key itself never shows in anything sluice prints."""

import hashlib
import json
import os
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from admin_helpers import admin_request, fetch_metrics, metric  # noqa: E402
from harness import SluiceTestCase, free_port, run_sluice  # noqa: E402
from redis_server import RedisServer, redis_server_available  # noqa: E402

ALICE = "alice-Secret-0123456789abcdef"     # from the environment
BOB = "bob-Secret-fedcba9876543210"         # as sha256: in the YAML
DORA = "dora-Secret-disabled-key-000000"     # disabled
CAROL = "carol-Secret-from-redis-1234567"    # in Redis
SECRETS = [ALICE, BOB, DORA, CAROL]
TOKEN = "admin-token-123"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def env_with(**values):
    env = dict(os.environ)
    env.update(values)
    return env


def start_redis(test):
    if not redis_server_available():
        test.skipTest("redis-server is not installed (scripts/install-deps installs it)")
    r = RedisServer().start()
    test.addCleanup(r.close)
    return r


BASE = """
    workers: @WORKERS@
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
      token: %s
    usage_plans:
      basic:
        quota: {limit: 1000, period: DAY}
      tight:
        throttle: {rate: 0.01, burst: 2}
        quota: {limit: 3, period: MONTH, offset: 0}
        routes:
          fast: {throttle: {rate: 0.01, burst: 50}}
      metered:
        quota: {limit: 3, period: 4s}
    api_keys:
      - {name: alice, key: "${SLUICE_TEST_ALICE_KEY}", usage_plan: basic}
      - {name: bob, key: "sha256:%s", usage_plan: tight}
      - {name: dora, key: "%s", enabled: false}
      - {name: mia, key: "${SLUICE_TEST_MIA_KEY}", usage_plan: metered}
    filters:
      - access_log: {path: @LOG@}
    routes:
      - name: header
        match: {path: /header}
        response: {status: 200, body: ok}
        filters:
          - api_key: {}
      - name: query
        match: {path: /query}
        response: {status: 200, body: ok}
        filters:
          - api_key: {header: x-custom-key, query: api_key}
      - name: fast
        match: {path: /fast}
        response: {status: 200, body: ok}
        filters:
          - api_key: {}
      - name: open
        match: {path: /open}
        response: {status: 200, body: ok}
""" % (TOKEN, sha(BOB), DORA)

MIA = "mia-Secret-metered-key-99999999"
SECRETS.append(MIA)


class ApiKeyTestCase(SluiceTestCase):
    def start(self, text=BASE, workers=2, **subst):
        self.admin = free_port()
        self.log = os.path.join(self.tmp, "access-%d.log" % self.admin)
        s = self.start_sluice(text, ADMIN=self.admin, LOG=self.log, WORKERS=workers,
                              env=env_with(SLUICE_TEST_ALICE_KEY=ALICE, SLUICE_TEST_MIA_KEY=MIA),
                              **subst)
        return s

    def get(self, s, path, key=None, header="x-api-key"):
        c = self.client(s)
        headers = [(header, key)] if key is not None else []
        return c.request("GET", path, headers)

    def usage(self, name, admin=None):
        return admin_request(admin or self.admin, "GET", "/usage?key=" + name, TOKEN)

    def assertNoSecrets(self, text, where):
        for secret in SECRETS:
            self.assertNotIn(secret, text, where)
        for secret in SECRETS:
            self.assertNotIn(sha(secret), text, where)

    def wait_window(self, name, at_least, admin=None):
        """Sleeps into a fresh quota window when the current one ends within
        `at_least` seconds, so that a short burst of requests stays in one window."""
        r = self.usage(name, admin)
        self.assertEqual(r.status, 200, r)
        left = r.json()["quota"]["resets_in_seconds"]
        if left < at_least:
            time.sleep(left + 0.3)


class Keys(ApiKeyTestCase):
    def test_header_query_missing_unknown_disabled(self):
        s = self.start()
        self.assertEqual(self.get(s, "/header", ALICE).status, 200)
        self.assertEqual(self.get(s, "/header", BOB).status, 200)  # sha256: in the YAML
        self.assertJsonError(self.get(s, "/header"), 403, "Forbidden")
        self.assertJsonError(self.get(s, "/header", "not-a-key"), 403, "Forbidden")
        self.assertJsonError(self.get(s, "/header", ""), 403, "Forbidden")
        self.assertJsonError(self.get(s, "/header", DORA), 403, "Forbidden")
        self.assertJsonError(self.get(s, "/header", ALICE[:-1]), 403, "Forbidden")
        # A query parameter counts only where it is allowed.
        self.assertJsonError(self.get(s, "/header?api_key=" + ALICE), 403, "Forbidden")
        self.assertEqual(self.get(s, "/query?x=1&api_key=%s&y=2" % ALICE).status, 200)
        self.assertEqual(self.get(s, "/query", ALICE, header="X-Custom-Key").status, 200)
        self.assertJsonError(self.get(s, "/query", ALICE), 403, "Forbidden")  # wrong header
        self.assertJsonError(self.get(s, "/query?api_key=nope"), 403, "Forbidden")
        # Routes without the filter are open.
        self.assertEqual(self.get(s, "/open").status, 200)
        _, m = fetch_metrics(self.admin, TOKEN)
        self.assertEqual(metric(m, "sluice_api_key_requests_total", result="allowed"), 4)
        self.assertEqual(metric(m, "sluice_api_key_requests_total", result="missing"), 4)
        self.assertEqual(metric(m, "sluice_api_key_requests_total", result="unknown"), 3)
        self.assertEqual(metric(m, "sluice_api_key_requests_total", result="disabled"), 1)

    def test_access_log_names_the_key_and_nothing_shows_a_key(self):
        s = self.start()
        self.assertEqual(self.get(s, "/header", ALICE).status, 200)
        self.assertEqual(self.get(s, "/header", "not-a-key").status, 403)
        self.assertEqual(self.get(s, "/header", DORA).status, 403)
        self.assertEqual(self.get(s, "/fast", BOB).status, 200)
        # A key in the query string is logged as ***.
        self.assertEqual(self.get(s, "/query?x=1&api_key=%s&y=2" % ALICE).status, 200)
        cfg = admin_request(self.admin, "GET", "/config", TOKEN)
        self.assertEqual(cfg.status, 200)
        config_text = cfg.body.decode()
        self.assertNoSecrets(config_text, "/config")
        doc = json.loads(config_text)["config"]
        self.assertEqual([k["name"] for k in doc["api_keys"]], ["alice", "bob", "dora", "mia"])
        self.assertEqual(doc["api_keys"][0]["usage_plan"], "basic")
        self.assertFalse(doc["api_keys"][2]["enabled"])
        self.assertIn("tight", doc["usage_plans"])
        deadline = time.monotonic() + 10
        lines = []
        while time.monotonic() < deadline and len(lines) < 5:
            try:
                with open(self.log) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        # Workers log through queues of their own: compare as a set, not in order.
        self.assertEqual(sorted((line["path"], str(line["api_key"])) for line in lines),
                         [("/fast", "bob"), ("/header", "None"), ("/header", "None"),
                          ("/header", "alice"), ("/query?x=1&api_key=***&y=2", "alice")])
        self.stop_sluice(s)
        with open(self.log) as f:
            self.assertNoSecrets(f.read(), "access log")
        self.assertNoSecrets(s.output(), "sluice output")

    def test_validate_errors_never_print_a_key(self):
        path = self.write_config("""
            listeners:
              - {name: public, address: 127.0.0.1:1}
            usage_plans:
              p: {quota: {limit: 3, period: WEEK, offset: 9}}
            api_keys:
              - {name: a, key: "%s", usage_plan: p}
              - {name: b, key: "%s"}
              - {name: c, key: "%s", usage_plan: nope}
            routes:
              - name: r
                match: {path: /r}
                response: {status: 200}
                filters:
                  - api_key: {store: redis}
              - name: s
                match: {path: /s}
                response: {status: 200}
                filters:
                  - api_key: {query: "a b", on_redis_failure: maybe, redis_keys: true,
                              cache_ttl: 0s, header: "x y"}
        """ % (ALICE, ALICE, BOB))
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("the offset of WEEK (0 = Sunday) must be between 0 and 6", err)
        self.assertIn("this key is the same as the key at line 6", err)
        self.assertIn("unknown usage plan 'nope'", err)
        self.assertIn("store: redis needs a top-level 'redis:' section", err)
        for message in ["expected a query parameter name", "expected allow, deny or local",
                        "redis_keys: true needs a top-level 'redis:' section",
                        "must be greater than 0", "expected a header name"]:
            self.assertIn(message, err)
        self.assertNoSecrets(out + err, "sluice validate")
        path = self.write_config(BASE.replace("@WORKERS@", "1").replace("@LOG@", "stdout")
                                 .replace("@LISTEN@", "127.0.0.1:1")
                                 .replace("@ADMIN@", "2"), "ok.yaml")
        rc, out, err = run_sluice("validate", path,
                                  env=env_with(SLUICE_TEST_ALICE_KEY=ALICE,
                                               SLUICE_TEST_MIA_KEY=MIA))
        self.assertEqual(rc, 0, out + err)
        self.assertNoSecrets(out + err, "sluice validate")


class Plans(ApiKeyTestCase):
    def test_throttle_route_override_and_no_quota_for_throttled(self):
        s = self.start()
        # tight: burst 2, then one token per 100 s; quota 3 per month.
        self.assertEqual(self.get(s, "/header", BOB).status, 200)
        self.assertEqual(self.get(s, "/header", BOB).status, 200)
        for _ in range(3):
            r = self.get(s, "/header", BOB)
            self.assertJsonError(r, 429, "Too Many Requests")
            self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
        u = self.usage("bob").json()
        self.assertEqual(u["quota"]["used"], 2, u)  # throttled requests used no quota
        self.assertEqual(u["quota"]["remaining"], 1, u)
        self.assertEqual(u["throttle"]["rate"], 0.01, u)
        self.assertLess(u["throttle"]["tokens"], 1, u)
        # The plan's override for route `fast` has its own bucket; the quota is shared.
        self.assertEqual(self.get(s, "/fast", BOB).status, 200)
        r = self.get(s, "/fast", BOB)
        self.assertJsonError(r, 429, "Limit Exceeded")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
        u = self.usage("bob").json()
        self.assertEqual(u["quota"]["used"], 3, u)
        self.assertEqual(u["quota"]["remaining"], 0, u)
        self.assertEqual(u["routes"]["fast"]["throttle"]["burst"], 50, u)
        self.assertAlmostEqual(u["routes"]["fast"]["throttle"]["tokens"], 48, delta=0.5, msg=u)

    def test_local_quota_window(self):
        s = self.start()
        self.wait_window("mia", 3)
        clients = [self.client(s) for _ in range(3)]  # spread over the workers
        for c in clients:
            self.assertEqual(c.request("GET", "/header", [("x-api-key", MIA)]).status, 200)
        r = clients[0].request("GET", "/header", [("x-api-key", MIA)])
        self.assertJsonError(r, 429, "Limit Exceeded")
        retry = int(r.header("Retry-After"))
        self.assertTrue(1 <= retry <= 4, r)
        # A reload does not hand out a fresh quota.
        r = admin_request(self.admin, "POST", "/reload", TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertJsonError(self.get(s, "/header", MIA), 429, "Limit Exceeded")
        u = self.usage("mia").json()
        self.assertEqual((u["quota"]["used"], u["quota"]["remaining"]), (3, 0), u)
        self.assertEqual(u["quota"]["period"], "4s")
        time.sleep(u["quota"]["resets_in_seconds"] + 0.3)
        self.assertEqual(self.get(s, "/header", MIA).status, 200)

    def test_usage_endpoint(self):
        s = self.start()
        self.assertEqual(self.get(s, "/header", ALICE).status, 200)
        u = self.usage("alice")
        self.assertEqual(u.status, 200, u)
        self.assertEqual(u.header("Content-Type"), "application/json")
        doc = u.json()
        self.assertEqual(doc["name"], "alice")
        self.assertEqual(doc["usage_plan"], "basic")
        self.assertTrue(doc["enabled"])
        self.assertEqual(doc["store"], "local")
        self.assertIsNone(doc["throttle"])
        q = doc["quota"]
        self.assertEqual((q["limit"], q["used"], q["remaining"], q["period"]),
                         (1000, 1, 999, "DAY"))
        self.assertTrue(q["resets_at"].endswith("T00:00:00Z"), q)
        self.assertNoSecrets(u.body.decode(), "/usage")
        d = self.usage("dora").json()
        self.assertFalse(d["enabled"])
        self.assertIsNone(d["usage_plan"])
        self.assertJsonError(self.usage("nobody"), 404, "Unknown API key")
        self.assertEqual(admin_request(self.admin, "GET", "/usage", TOKEN).status, 400)
        self.assertEqual(admin_request(self.admin, "GET", "/usage?key=alice").status, 401)


REDIS_CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
      token: %s
    redis:
      url: @URL@
      command_timeout: 1s
    usage_plans:
      gold:
        throttle: {rate: 1, burst: 1000}
        quota: {limit: 5, period: 6s}
      free: {}
    api_keys:
      - {name: alice, key: "${SLUICE_TEST_ALICE_KEY}", usage_plan: gold}
    filters:
      - access_log: {path: @LOG@}
    routes:
      - name: api
        match: {path: /api}
        response: {status: 200, body: ok}
        filters:
          - api_key: {store: redis, redis_keys: true, cache_ttl: @TTL@,
                      negative_cache_ttl: 1s, on_redis_failure: deny}
""" % TOKEN


FAILURE_CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
      token: %s
    redis:
      url: @URL@
      command_timeout: 200ms
    usage_plans:
      gold:
        quota: {limit: 3, period: 6s}
      free: {}
    api_keys:
      - {name: alice, key: "${SLUICE_TEST_ALICE_KEY}", usage_plan: gold}
    filters:
      - access_log: {path: @LOG@}
    routes:
      - name: allow
        match: {path: /allow}
        response: {status: 200, body: ok}
        filters:
          - api_key: {store: redis, redis_keys: true, cache_ttl: 1s, on_redis_failure: allow}
      - name: local
        match: {path: /local}
        response: {status: 200, body: ok}
        filters:
          - api_key: {store: redis, redis_keys: true, cache_ttl: 1s, on_redis_failure: local}
""" % TOKEN


class RedisStore(ApiKeyTestCase):
    def start_redis_sluice(self, redis, ttl="30s"):
        return self.start(REDIS_CONFIG, workers=1, URL=redis.url, TTL=ttl)

    def put_key(self, redis, secret, name, plan="free", enabled="true"):
        redis.cli("HSET", "sluice:apikey:" + sha(secret), "name", name, "usage_plan", plan,
                  "enabled", enabled)

    def wait_status(self, s, key, status, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(s, "/api", key)
            if r.status == status or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def test_keys_from_redis_and_the_cache(self):
        redis = start_redis(self)
        s = self.start_redis_sluice(redis, ttl="3s")
        self.assertJsonError(self.get(s, "/api", CAROL), 403, "Forbidden")  # not there yet
        self.put_key(redis, CAROL, "carol")
        # The "no such key" answer is cached for negative_cache_ttl (1 s), then asked again.
        self.assertEqual(self.wait_status(s, CAROL, 200).status, 200)
        _, m = fetch_metrics(self.admin, TOKEN)
        lookups = metric(m, "sluice_api_key_redis_lookups_total")
        for _ in range(5):
            self.assertEqual(self.get(s, "/api", CAROL).status, 200)
        _, m = fetch_metrics(self.admin, TOKEN)
        self.assertEqual(metric(m, "sluice_api_key_redis_lookups_total"), lookups)  # cached
        self.assertGreaterEqual(metric(m, "sluice_api_key_cache_hits_total"), 5)
        # Disabled in Redis: refused once the cached answer expires.
        self.put_key(redis, CAROL, "carol", enabled="false")
        self.assertJsonError(self.wait_status(s, CAROL, 403), 403, "Forbidden")
        u = self.usage("carol").json()
        self.assertEqual((u["source"], u["usage_plan"], u["enabled"]), ("redis", "free", False))
        # A key naming a plan the config lacks is refused.
        self.put_key(redis, DORA, "dora", plan="platinum")
        self.assertEqual(self.get(s, "/api", DORA).status, 403)
        # A hash sluice cannot use (a name that could not be written in YAML) is no key.
        self.put_key(redis, BOB, "bad name")
        self.assertEqual(self.get(s, "/api", BOB).status, 403)
        # YAML keys need no Redis lookup.
        self.assertEqual(self.get(s, "/api", ALICE).status, 200)
        self.stop_sluice(s)
        with open(self.log) as f:
            names = [json.loads(line)["api_key"] for line in f if line.strip()]
        self.assertIn("carol", names)
        self.assertNoSecrets(s.output(), "sluice output")

    def test_quota_shared_by_two_instances(self):
        redis = start_redis(self)
        a = self.start_redis_sluice(redis)
        admin_a = self.admin
        b = self.start_redis_sluice(redis)
        self.wait_window("alice", 3, admin_a)
        statuses = []
        for i in range(8):
            r = self.get(a if i % 2 == 0 else b, "/api", ALICE)
            statuses.append(r.status)
            if r.status == 429:
                self.assertJsonError(r, 429, "Limit Exceeded")
                self.assertTrue(1 <= int(r.header("Retry-After")) <= 6, r)
        self.assertEqual(statuses, [200] * 5 + [429] * 3)
        for admin in (admin_a, self.admin):
            u = self.usage("alice", admin).json()
            self.assertEqual(u["store"], "redis")
            self.assertEqual((u["quota"]["used"], u["quota"]["remaining"]), (5, 0), u)
            self.assertEqual(u["throttle"]["burst"], 1000, u)
            self.assertLessEqual(u["throttle"]["tokens"], 1000 - 5 + 1, u)
        time.sleep(u["quota"]["resets_in_seconds"] + 0.3)
        self.assertEqual(self.get(b, "/api", ALICE).status, 200)
        self.assertEqual(self.get(a, "/api", ALICE).status, 200)

    def test_client_gone_while_redis_is_slow_and_redis_down(self):
        redis = start_redis(self)
        s = self.start_redis_sluice(redis)
        redis.pause(600)
        # Lookup pending in Redis when the client leaves: nothing may break.
        with socket.create_connection((s.host, s.port), timeout=5) as raw:
            raw.sendall(("GET /api HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n\r\n"
                         % CAROL).encode())
            time.sleep(0.05)
        time.sleep(0.7)
        self.assertEqual(self.get(s, "/api", ALICE).status, 200)
        # Redis gone: an unknown key cannot be checked (503), quota per on_redis_failure
        # (deny: 503); nothing hangs beyond the command timeout.
        redis.kill()
        r = self.get(s, "/api", "never-seen-key")
        self.assertJsonError(r, 503, "Service Unavailable")
        self.assertJsonError(self.get(s, "/api", ALICE), 503, "Service Unavailable")
        self.assertEqual(self.usage("alice").status, 503)

    def test_redis_failure_modes(self):
        redis = start_redis(self)
        s = self.start(FAILURE_CONFIG, workers=1, URL=redis.url)
        self.put_key(redis, CAROL, "carol")
        self.assertEqual(self.get(s, "/allow", CAROL).status, 200)
        redis.kill()
        time.sleep(1.2)  # carol's cached answer expires; Redis cannot be asked again
        # An expired answer still serves while Redis is down; an unknown key cannot be
        # checked.
        self.assertEqual(self.get(s, "/allow", CAROL).status, 200)
        self.assertJsonError(self.get(s, "/allow", "never-seen-key"), 503, "Service Unavailable")
        # allow: the quota is not counted at all.
        for _ in range(5):
            self.assertEqual(self.get(s, "/allow", ALICE).status, 200)
        # local: counted per instance, same windows (the gateway's clock this time).
        left = 6 - time.time() % 6
        if left < 3:
            time.sleep(left + 0.3)
        statuses = [self.get(s, "/local", ALICE).status for _ in range(5)]
        self.assertEqual(statuses, [200, 200, 200, 429, 429])
        # Redis back: used again (the Redis counter of this window is fresh).
        redis.restart()
        deadline = time.monotonic() + 10
        while True:
            _, m = fetch_metrics(self.admin, TOKEN)
            if metric(m, "sluice_redis_connected") >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        left = 6 - time.time() % 6
        if left < 3:
            time.sleep(left + 0.3)
        self.assertEqual(self.get(s, "/local", ALICE).status, 200)
        self.assertEqual(self.usage("alice").json()["quota"]["used"], 1)


if __name__ == "__main__":
    unittest.main()
