"""The admin listener: /healthz, /ready (503 while draining), /metrics (checked by
promtool and by value), /config (token redacted), /routes (precedence order), the
bearer token, and its HTTP behaviour (404, 405, 401, keep-alive, malformed requests)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from admin_helpers import admin_request, fetch_metrics, metric, parse_metrics
from harness import (SLUICE_BIN, Client, SluiceTestCase, build_request, dead_port, free_port,
                     run_sluice)

CONFIG = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    admin:
      address: 127.0.0.1:@ADMIN@
    services:
      backend:
        endpoints: [@UP@]
        timeout: 1s
      dead:
        endpoints: [127.0.0.1:@DEAD@]
    routes:
      - name: ping
        match: {path: /ping}
        response: {body: "pong"}
      - name: user
        match: {path: "/users/{id}"}
        response: {body: "user"}
      - name: users-me
        match: {methods: [GET], path: /users/me}
        response: {body: "me"}
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
      - name: down
        match: {path: /down}
        service: dead
"""

SECRET = "t0ken-Sh0uld-n3ver-Sh0w"


class AdminTestCase(SluiceTestCase):
    def start(self, text=CONFIG, env=None, **subst):
        self.up = self.start_upstream()
        self.admin = free_port()
        subst.setdefault("UP", self.up.address)
        self.dead = dead_port()
        subst.setdefault("DEAD", self.dead)
        return self.start_sluice(text, env=env, ADMIN=self.admin, **subst)

    def get(self, path, token=None, method="GET"):
        return admin_request(self.admin, method, path, token)


class Endpoints(AdminTestCase):
    def setUp(self):
        super().setUp()
        self.s = self.start()

    def test_healthz_and_ready(self):
        r = self.get("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertEqual(r.header("Content-Type"), "application/json")
        r = self.get("/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ready"})

    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool not installed (Debian package prometheus; "
                                       "scripts/install-deps installs it)")
        c = self.client(self.s)
        for path in ("/ping", "/users/me", "/users/7", "/nope", "/api/x", "/down",
                     "/api/delay/3000", "/api/garbage"):
            c.request("GET", path)
        c.request("POST", "/users/me")
        r = self.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        p = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics failed:\n%s%s\n--- metrics ---\n%s"
                         % (p.stdout.decode(), p.stderr.decode(), r.body.decode()))

    def test_requests_by_route_method_and_status_class(self):
        c = self.client(self.s)
        for _ in range(3):
            self.assertEqual(c.request("GET", "/ping").status, 200)
        self.assertEqual(c.request("HEAD", "/ping").status, 200)
        self.assertEqual(c.request("GET", "/users/me").body, b"me")
        self.assertEqual(c.request("DELETE", "/users/me").body, b"user")
        self.assertEqual(c.request("GET", "/nowhere").status, 404)
        self.assertEqual(c.request("BREW", "/ping").status, 200)
        self.assertEqual(c.request("GET", "/api/status/503").status, 503)
        self.assertEqual(c.request("GET", "/api/status/302").status, 302)
        _, m = fetch_metrics(self.admin)
        total = "sluice_requests_total"
        self.assertEqual(metric(m, total, route="ping", method="GET", status_class="2xx"), 3)
        self.assertEqual(metric(m, total, route="ping", method="HEAD", status_class="2xx"), 1)
        self.assertEqual(metric(m, total, route="ping", method="OTHER", status_class="2xx"), 1)
        self.assertEqual(metric(m, total, route="users-me", method="GET", status_class="2xx"), 1)
        self.assertEqual(metric(m, total, route="user", method="DELETE", status_class="2xx"), 1)
        self.assertEqual(metric(m, total, route="(none)", method="GET", status_class="4xx"), 1)
        self.assertEqual(metric(m, total, route="api", method="GET", status_class="5xx"), 1)
        self.assertEqual(metric(m, total, route="api", method="GET", status_class="3xx"), 1)
        # The histogram counts every request of the route, and its buckets are cumulative.
        hist = "sluice_request_duration_seconds"
        self.assertEqual(metric(m, hist + "_count", route="ping"), 5)
        self.assertEqual(metric(m, hist + "_bucket", route="ping", le="+Inf"), 5)
        les = sorted((float(dict(l)["le"]), v) for (n, l), v in m.items()
                     if n == hist + "_bucket" and dict(l)["route"] == "ping")
        self.assertEqual([v for _, v in les], sorted(v for _, v in les))
        self.assertGreater(metric(m, hist + "_sum", route="ping"), 0)

    def test_requests_refused_by_the_codec_are_counted(self):
        # No route ever sees these, but an operator must see them in /metrics.
        bad = [b"GET /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n",          # 400: ambiguous framing
               b"GET /ping HTTP/1.1\r\n\r\n",                    # 400: no Host
               b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"]  # 414
        for raw in bad:
            c = self.client(self.s)
            c.send(raw)
            self.assertIn(c.read_response().status, (400, 414))
            c.close()
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_requests_total", route="(none)", method="OTHER",
                                status_class="4xx"), 3)

    def test_latency_lands_in_the_right_bucket(self):
        c = self.client(self.s)
        self.assertEqual(c.request("GET", "/api/delay/150").status, 200)
        _, m = fetch_metrics(self.admin)
        hist = "sluice_request_duration_seconds_bucket"
        self.assertEqual(metric(m, hist, route="api", le="0.1"), 0)
        self.assertEqual(metric(m, hist, route="api", le="0.25"), 1)
        self.assertGreaterEqual(metric(m, "sluice_request_duration_seconds_sum", route="api"),
                                0.15)

    def test_upstream_errors_by_service_endpoint_and_kind(self):
        c = self.client(self.s)
        self.assertEqual(c.request("GET", "/down").status, 502)
        self.assertEqual(self.client(self.s).request("GET", "/api/delay/3000").status, 504)
        self.assertEqual(self.client(self.s).request("GET", "/api/reset").status, 502)
        self.assertEqual(self.client(self.s).request("GET", "/api/garbage").status, 502)
        _, m = fetch_metrics(self.admin)
        errors = "sluice_upstream_errors_total"
        dead = "127.0.0.1:%d" % self.dead
        self.assertEqual(metric(m, errors, service="dead", endpoint=dead, kind="connect"), 1)
        up = self.up.address
        self.assertEqual(metric(m, errors, service="backend", endpoint=up, kind="timeout"), 1)
        self.assertEqual(metric(m, errors, service="backend", endpoint=up, kind="reset"), 1)
        self.assertEqual(metric(m, errors, service="backend", endpoint=up, kind="invalid"), 1)
        self.assertEqual(metric(m, errors, service="backend", endpoint=up, kind="connect"), 0)

    def wait_metric(self, name, value, **labels):
        deadline = time.monotonic() + 5
        while True:
            _, m = fetch_metrics(self.admin)
            if metric(m, name, **labels) == value or time.monotonic() > deadline:
                return m
            time.sleep(0.02)

    def test_active_connections_and_streams(self):
        # The harness's readiness probe was a connection too: wait until it is gone.
        m = self.wait_metric("sluice_connections_accepted_total", 1, listener="public")
        m = self.wait_metric("sluice_connections_active", 0, listener="public")
        self.assertEqual(metric(m, "sluice_connections_accepted_total", listener="public"), 1)
        self.assertEqual(metric(m, "sluice_connections_active", listener="public"), 0)
        self.assertEqual(metric(m, "sluice_streams_active"), 0)
        accepted = 1
        clients = [self.client(self.s) for _ in range(3)]
        for c in clients:
            self.assertEqual(c.request("GET", "/ping").status, 200)
        slow = self.client(self.s)
        slow.send(build_request("GET", "/api/delay/700"))
        self.up.wait_records(1)
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_connections_active", listener="public"), 4)
        self.assertEqual(metric(m, "sluice_connections_accepted_total", listener="public"),
                         accepted + 4)
        self.assertEqual(metric(m, "sluice_streams_active"), 1)
        self.assertEqual(slow.read_response().status, 200)
        for c in clients:
            c.close()
        m = self.wait_metric("sluice_connections_active", 1, listener="public")
        self.assertEqual(metric(m, "sluice_connections_active", listener="public"), 1)
        self.assertEqual(metric(m, "sluice_streams_active"), 0)

    def test_reload_metrics_start_clean(self):
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_config_reloads_total", result="success"), 0)
        self.assertEqual(metric(m, "sluice_config_reloads_total", result="failure"), 0)
        self.assertEqual(metric(m, "sluice_config_last_reload_success"), 1)
        self.assertEqual(metric(m, "sluice_config_generation"), 1)
        self.assertEqual(metric(m, "sluice_workers"), 2)

    def test_routes_in_precedence_order(self):
        r = self.get("/routes")
        self.assertEqual(r.status, 200, r)
        routes = r.json()["routes"]
        names = [x["name"] for x in routes]
        self.assertEqual(sorted(names), ["api", "down", "ping", "user", "users-me"])
        # A literal segment beats {id}.
        self.assertLess(names.index("users-me"), names.index("user"))
        by = {x["name"]: x for x in routes}
        self.assertEqual(by["users-me"]["methods"], ["GET"])
        self.assertEqual(by["user"]["methods"], "*")
        self.assertEqual(by["api"]["backend"], {"type": "service", "service": "backend",
                                                "endpoints": [self.up.address]})
        self.assertEqual(by["ping"]["backend"], {"type": "response", "status": 200})
        self.assertEqual(by["api"]["path"], "/api/{proxy+}")

    def test_config(self):
        r = self.get("/config")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["generation"], 1)
        self.assertTrue(doc["file"].endswith(".yaml"), doc)
        cfg = doc["config"]
        self.assertEqual(cfg["workers"], 2)
        self.assertEqual(cfg["listeners"][0]["name"], "public")
        self.assertEqual(cfg["listeners"][0]["idle_timeout"], "1m")
        self.assertEqual(cfg["services"]["backend"]["timeout"], "1s")
        self.assertEqual(cfg["admin"], {"address": "127.0.0.1:%d" % self.admin})
        self.assertEqual([x["name"] for x in cfg["routes"]],
                         ["ping", "user", "users-me", "api", "down"])
        self.assertEqual(cfg["routes"][0]["response"]["body"], "pong")

    def test_unknown_path_and_wrong_method(self):
        r = self.get("/nope")
        self.assertJsonError(r, 404, "Not Found")
        r = self.get("/metrics", method="POST")
        self.assertJsonError(r, 405, "Method Not Allowed")
        self.assertEqual(r.header("Allow"), "GET, HEAD")
        r = self.get("/reload")
        self.assertJsonError(r, 405)
        self.assertEqual(r.header("Allow"), "POST")
        r = self.get("/healthz", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_keep_alive_and_malformed_requests(self):
        with Client("127.0.0.1", self.admin) as c:
            for path in ("/healthz", "/ready", "/metrics", "/routes", "/config", "/healthz"):
                self.assertEqual(c.request("GET", path).status, 200, path)
            # Pipelined.
            c.send(build_request("GET", "/healthz") + build_request("GET", "/ready"))
            self.assertEqual(c.read_response().json(), {"status": "ok"})
            self.assertEqual(c.read_response().json(), {"status": "ready"})
            # A small body is read and ignored.
            self.assertEqual(c.request("GET", "/healthz", body=b"xyz").status, 200)
        with Client("127.0.0.1", self.admin) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            self.assertJsonError(c.read_response(), 400)
            self.assertTrue(c.is_closed())
        with Client("127.0.0.1", self.admin) as c:
            c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertTrue(c.is_closed())

    def test_ready_is_503_while_draining(self):
        slow = self.client(self.s)
        slow.send(build_request("GET", "/api/delay/700"))
        self.up.wait_records(1)
        self.s.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        r = None
        while time.monotonic() < deadline:
            r = self.get("/ready")
            if r.status == 503:
                break
            time.sleep(0.02)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json(), {"status": "draining"})
        self.assertEqual(self.get("/healthz").status, 200)
        # A reload is refused while draining.
        r = self.get("/reload", method="POST")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["result"], "error")
        self.assertEqual(slow.read_response().status, 200)
        self.stop_sluice(self.s)


class Token(AdminTestCase):
    def setUp(self):
        super().setUp()
        env = dict(os.environ, ADMIN_TOKEN=SECRET)
        text = CONFIG.replace("address: 127.0.0.1:@ADMIN@",
                              'address: 127.0.0.1:@ADMIN@\n      token: "${ADMIN_TOKEN}"')
        self.s = self.start(text, env=env)

    def test_protected_endpoints_need_the_token(self):
        for method, path in (("GET", "/metrics"), ("GET", "/config"), ("GET", "/routes"),
                             ("POST", "/reload")):
            for token in (None, "wrong", SECRET[:-1], SECRET + "x", ""):
                r = self.get(path, token, method)
                self.assertJsonError(r, 401, "Unauthorized")
                self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="sluice-admin"')
            r = self.get(path, SECRET, method)
            self.assertEqual(r.status, 200, (path, r))
        r = admin_request(self.admin, "GET", "/metrics",
                          headers=[("Authorization", "Basic " + SECRET)])
        self.assertEqual(r.status, 401)

    def test_probes_need_no_token(self):
        self.assertEqual(self.get("/healthz").status, 200)
        self.assertEqual(self.get("/ready").status, 200)

    def test_token_never_shown(self):
        r = self.get("/config", SECRET)
        self.assertEqual(r.json()["config"]["admin"]["token"], "[redacted]")
        for path in ("/config", "/routes", "/metrics"):
            body = self.get(path, SECRET).body
            self.assertNotIn(SECRET.encode(), body, path)
        self.assertNotIn(SECRET, self.s.output())


class Defaults(SluiceTestCase):
    def test_admin_key_without_address_uses_127_0_0_1_9901(self):
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", 9901))
        except OSError:
            self.fail("port 9901 is in use on this machine; this test needs it free")
        finally:
            probe.close()
        self.start_sluice("""
            listeners: [{name: public, address: "@LISTEN@"}]
            admin: {}
            routes: [{name: r, match: {path: /}, response: {body: ok}}]
        """)
        r = admin_request(9901, "GET", "/healthz")
        self.assertEqual(r.status, 200)

    def test_validate_shows_the_admin_listener(self):
        path = self.write_config("""
            listeners: [{name: public, address: "127.0.0.1:8080"}]
            admin: {address: "127.0.0.1:9902", token: Tok3n-zz9}
            watch: true
            routes: [{name: r, match: {path: /}, response: {body: ok}}]
        """)
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("admin on 127.0.0.1:9902 (bearer token)\n", out)
        self.assertIn("watch: reloads when the file changes\n", out)
        self.assertNotIn("Tok3n-zz9", out)

    def test_no_admin_key_no_admin_listener(self):
        s = self.start_sluice("""
            listeners: [{name: public, address: "@LISTEN@"}]
            routes: [{name: r, match: {path: /}, response: {body: ok}}]
        """)
        # The start-up lines are logged just after the listeners are bound.
        deadline = time.monotonic() + 5
        while "listener public" not in s.output() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn("listener public", s.output())
        self.assertNotIn("admin listener", s.output())

    def test_admin_port_in_use_fails_the_start(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            path = self.write_config("""
                listeners: [{name: public, address: "127.0.0.1:%d"}]
                admin: {address: "127.0.0.1:%d"}
                routes: [{name: r, match: {path: /}, response: {body: ok}}]
            """ % (free_port(), port))
            p = subprocess.run([SLUICE_BIN, "run", path],
                               capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("admin: cannot listen on 127.0.0.1:%d" % port, p.stderr)


if __name__ == "__main__":
    unittest.main()
