"""The `redis:` section in the running gateway: every worker connects (`pool` each),
/metrics counts the connections, /config and `sluice validate` never show the password,
a reload with the same `redis:` keeps the connections, and a Redis outage never stops
the gateway: it reconnects when Redis is back."""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest

from admin_helpers import admin_request, fetch_metrics, metric, wait_reloads
from harness import SluiceTestCase, free_port, run_sluice
from redis_server import RedisServer, redis_server_available

SECRET = "pw-Very-SECRET-42"

CONFIG = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin: {address: "127.0.0.1:@ADMIN@"}
    redis:
      url: "redis://127.0.0.1:@REDIS@/2"
      password: "@SECRET@"
      pool: 2
      connect_timeout: 500ms
    routes:
      - name: ping
        match: {path: /ping}
        response: {body: "@BODY@"}
"""


def client_ids(redis, name_filter=None):
    """Ids of the clients connected to `redis` (the helper's own connection excluded)."""
    text = redis.cli("CLIENT", "LIST")
    ids = set()
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("cmd") == "client|list":
            continue
        ids.add(fields["id"])
    return ids


@unittest.skipUnless(redis_server_available(), "redis-server is not installed "
                     "(scripts/install-deps installs it)")
class RedisGatewayTest(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(password=SECRET).start()
        self.addCleanup(self.redis.close)
        self.admin = free_port()

    def start(self, body="pong"):
        self.s = self.start_sluice(CONFIG, ADMIN=self.admin, REDIS=self.redis.port, SECRET=SECRET,
                                   BODY=body)
        return self.s

    def wait_metric(self, name, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            _, m = fetch_metrics(self.admin)
            value = metric(m, name)
            if predicate(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.02)

    def test_workers_connect_and_metrics_pass_promtool(self):
        self.start()
        self.assertEqual(self.wait_metric("sluice_redis_connected", lambda v: v == 4), 4)
        self.assertEqual(len(client_ids(self.redis)), 4)  # 2 workers x pool 2
        text, m = fetch_metrics(self.admin)
        for outcome in ("reply", "error", "timeout", "unavailable"):
            self.assertIn(("sluice_redis_commands_total", frozenset({("outcome", outcome)})), m)
        self.assertEqual(metric(m, "sluice_redis_reconnects_total"), 0)
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode() + text)

    def test_password_is_never_shown(self):
        s = self.start()
        r = admin_request(self.admin, "GET", "/config")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(SECRET.encode(), r.body)
        redis = r.json()["config"]["redis"]
        self.assertEqual(redis["password"], "[redacted]")
        self.assertEqual(redis["url"], "redis://127.0.0.1:%d/2" % self.redis.port)
        self.assertEqual(redis["pool"], 2)
        self.assertEqual(redis["command_timeout"], "50ms")
        # validate, with the password inside the URL this time
        path = self.write_config("""
            listeners: [{name: public, address: "127.0.0.1:1"}]
            redis: {url: "redis://app:%s@127.0.0.1:%d/0"}
            routes: []
            """ % (SECRET, self.redis.port), "validate.yaml")
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("redis redis://app:***@127.0.0.1:%d/0" % self.redis.port, out)
        self.assertNotIn(SECRET, out + err)
        bad = self.write_config("""
            listeners: [{name: public, address: "127.0.0.1:1"}]
            redis: {url: "redis://app:%s@127.0.0.1:0/0"}
            routes: []
            """ % SECRET, "bad.yaml")
        rc, out, err = run_sluice("validate", bad)
        self.assertEqual(rc, 1)
        self.assertIn("bad.yaml:2:14: invalid port in the Redis URL", err)
        self.assertNotIn(SECRET, out + err)
        self.assertNotIn(SECRET, s.output())

    def test_reload_with_the_same_redis_keeps_the_connections(self):
        s = self.start(body="one")
        self.assertEqual(self.wait_metric("sluice_redis_connected", lambda v: v == 4), 4)
        before = client_ids(self.redis)
        self.write_config(CONFIG.replace("@BODY@", "two").replace("@ADMIN@", str(self.admin))
                          .replace("@REDIS@", str(self.redis.port)).replace("@SECRET@", SECRET)
                          .replace("@LISTEN@", "%s:%d" % (s.host, s.port)),
                          os.path.basename(s.config_path))
        s.proc.send_signal(signal.SIGHUP)
        self.assertEqual(wait_reloads(self.admin, 1), (1, 0))
        self.assertEqual(self.client(s).request("GET", "/ping").body, b"two")
        self.assertEqual(client_ids(self.redis), before)
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_redis_connected"), 4)
        self.assertEqual(metric(m, "sluice_redis_reconnects_total"), 0)

    def test_outage_and_recovery(self):
        s = self.start()
        self.assertEqual(self.wait_metric("sluice_redis_connected", lambda v: v == 4), 4)
        self.redis.kill()
        self.assertEqual(self.wait_metric("sluice_redis_connected", lambda v: v == 0), 0)
        c = self.client(s)
        for _ in range(20):  # the gateway serves on
            self.assertEqual(c.request("GET", "/ping").status, 200)
        self.redis.restart()
        self.assertEqual(self.wait_metric("sluice_redis_connected", lambda v: v == 4, 20), 4,
                         s.output())
        _, m = fetch_metrics(self.admin)
        self.assertGreaterEqual(metric(m, "sluice_redis_reconnects_total"), 4)
        self.assertEqual(len(client_ids(self.redis)), 4)
        self.assertNotIn(SECRET, s.output())


if __name__ == "__main__":
    unittest.main()
