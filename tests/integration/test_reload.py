"""Hot reload: SIGHUP, POST /reload and `watch: true`. Under continuous load, 20 reloads
(two valid configs alternating, one invalid among them) fail no request and drop no
connection, and every request is answered by a config that was current when it started.
An invalid config keeps the old one serving; listeners come and go without touching
the others; a stream in flight finishes on its own snapshot."""

import os
import signal
import socket
import threading
import time
import unittest

from admin_helpers import admin_request, fetch_metrics, metric, wait_reloads
from harness import Client, SluiceTestCase, build_request, free_port

# Config A and config B differ in their routes (names, paths, bodies); both proxy
# /svc/... to the upstream so that pools are rebuilt per snapshot under load.
CONFIG_A = """
    workers: 4
    listeners:
      - name: public
        address: @LISTEN@
    admin: {address: "127.0.0.1:@ADMIN@"}
    services:
      backend: {endpoints: [@UP@]}
    routes:
      - name: version-a
        match: {path: /v}
        response: {body: "A"}
      - name: only-a
        match: {path: /only-a}
        response: {body: "a"}
      - name: svc-a
        match: {path: "/svc/{proxy+}"}
        service: backend
"""

CONFIG_B = """
    workers: 4
    listeners:
      - name: public
        address: @LISTEN@
    admin: {address: "127.0.0.1:@ADMIN@"}
    services:
      backend2: {endpoints: [@UP@], max_idle_connections: 8}
    routes:
      - name: version-b
        match: {methods: [GET], path: /v}
        response: {body: "B", headers: {x-config: b}}
      - name: svc-b
        match: {path: "/svc/{rest+}"}
        service: backend2
"""

INVALID = """
    workers: 4
    listeners:
      - name: public
        address: @LISTEN@
    admin: {address: "127.0.0.1:@ADMIN@"}
    routes:
      - name: broken
        match: {path: /v}
        service: nowhere
"""


class ReloadTestCase(SluiceTestCase):
    def start(self, text=CONFIG_A, **subst):
        self.up = self.start_upstream()
        self.admin = free_port()
        self.subst = dict(subst, UP=self.up.address, ADMIN=self.admin,
                          LISTEN="127.0.0.1:%d" % free_port())
        self.s = self.start_sluice(text, **self.subst)
        # Answered by the main loop, so only once everything (the watcher too) is set up.
        r = admin_request(self.admin, "GET", "/ready")
        self.assertEqual(r.status, 200, r)
        return self.s

    def rewrite(self, text, **extra):
        """Replaces the running config file atomically (as deploy tools do)."""
        subst = dict(self.subst, **extra)
        tmp = self.write_config(text, "next.yaml", **subst)
        os.replace(tmp, self.s.config_path)

    def post_reload(self):
        return admin_request(self.admin, "POST", "/reload", timeout=30)

    def body(self, path="/v", port=None):
        with Client(self.s.host, port or self.s.port) as c:
            return c.request("GET", path).body


class UnderLoad(ReloadTestCase):
    KEEPALIVE_THREADS = 4
    FRESH_THREADS = 2
    RELOADS = 20
    INVALID_AT = 11  # the 11th reload loads the invalid config

    def test_twenty_reloads_under_load_fail_nothing(self):
        self.start()
        configs = []  # per reload number: the text, and the /v body it serves
        for k in range(1, self.RELOADS + 1):
            if k == self.INVALID_AT:
                configs.append((INVALID, None))
            else:
                configs.append((CONFIG_B, b"B") if k % 2 else (CONFIG_A, b"A"))
        # serving[k]: the body config k serves (the previous one when k is invalid).
        serving = [b"A"]
        for _, body in configs:
            serving.append(body or serving[-1])

        state = {"started": 0, "applied": 0}
        lock = threading.Lock()
        stop = threading.Event()
        failures = []
        counts = {"requests": 0, "A": 0, "B": 0, "svc": 0}

        def check(r, lo, hi, path):
            if path == "/v":
                allowed = set(serving[lo:hi + 1])
                if r.status != 200 or r.body not in allowed:
                    return "GET /v -> %r; configs live in the window %d..%d serve %r" % (
                        r, lo, hi, allowed)
                with lock:
                    counts[r.body.decode()] += 1
            else:
                if r.status != 200 or r.json()["target"] != "/svc/x":
                    return "GET /svc/x -> %r" % r
                with lock:
                    counts["svc"] += 1
            with lock:
                counts["requests"] += 1
            return None

        def keepalive(n):
            c = None
            try:
                c = Client(self.s.host, self.s.port, timeout=10)
                i = 0
                while not stop.is_set():
                    path = "/v" if i % 3 else "/svc/x"
                    i += 1
                    lo = state["applied"]
                    r = c.request("GET", path)
                    hi = state["started"]
                    if r.header("Connection", "").lower() == "close":
                        failures.append("keep-alive connection %d closed by sluice: %r" % (n, r))
                        return
                    problem = check(r, lo, hi, path)
                    if problem:
                        failures.append(problem)
                        return
            except Exception as e:  # a reset, an EOF, a timeout: all failures here
                failures.append("keep-alive client %d: %s: %s" % (n, type(e).__name__, e))
            finally:
                if c:
                    c.close()

        def fresh(n):
            i = 0
            while not stop.is_set():
                path = "/v" if i % 2 else "/svc/x"
                i += 1
                try:
                    lo = state["applied"]
                    with Client(self.s.host, self.s.port, timeout=10) as c:
                        r = c.request("GET", path, [("Connection", "close")])
                    hi = state["started"]
                except Exception as e:
                    failures.append("new-connection client %d: %s: %s" % (n, type(e).__name__, e))
                    return
                problem = check(r, lo, hi, path)
                if problem:
                    failures.append(problem)
                    return

        threads = [threading.Thread(target=keepalive, args=(n,))
                   for n in range(self.KEEPALIVE_THREADS)]
        threads += [threading.Thread(target=fresh, args=(n,)) for n in range(self.FRESH_THREADS)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            for k, (text, body) in enumerate(configs, start=1):
                self.rewrite(text)
                state["started"] = k
                if k % 2:
                    r = self.post_reload()
                    if body is None:
                        self.assertEqual(r.status, 400, r)
                        self.assertEqual(r.json()["result"], "error")
                    else:
                        self.assertEqual(r.status, 200, r)
                        self.assertEqual(r.json()["result"], "ok")
                else:
                    self.s.send_signal(signal.SIGHUP)
                    self.s.signalled = False  # SIGHUP is not a stop
                    ok, failed = wait_reloads(self.admin, k)
                    self.assertEqual(ok + failed, k, "SIGHUP reload %d not applied" % k)
                state["applied"] = k
                time.sleep(0.15)
                self.assertEqual(failures, [])
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(failures, [])
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_config_reloads_total", result="success"), 19)
        self.assertEqual(metric(m, "sluice_config_reloads_total", result="failure"), 1)
        self.assertEqual(metric(m, "sluice_config_generation"), 20)
        self.assertEqual(metric(m, "sluice_config_last_reload_success"), 1)
        # There was real load on both configs, through every kind of client.
        self.assertGreater(counts["requests"], 300, counts)
        self.assertGreater(counts["A"], 20, counts)
        self.assertGreater(counts["B"], 20, counts)
        self.assertGreater(counts["svc"], 50, counts)
        self.assertEqual(self.body(), b"A")
        self.assertIn("reload done: generation 20", self.s.output())


class Semantics(ReloadTestCase):
    def test_invalid_config_keeps_the_old_one_serving(self):
        self.start()
        self.rewrite(INVALID)
        r = self.post_reload()
        self.assertEqual(r.status, 400, r)
        doc = r.json()
        self.assertEqual(doc["result"], "error")
        self.assertEqual(doc["generation"], 1)
        self.assertEqual(len(doc["errors"]), 1, doc)
        self.assertRegex(doc["errors"][0],
                         r"^.*sluice-\d+\.yaml:9:14: unknown service 'nowhere'; "
                         r"no services are defined$")
        self.assertEqual(self.body(), b"A")
        self.assertIn("unknown service 'nowhere'", self.s.output())
        # The same through SIGHUP: logged, counted, nothing changes.
        self.s.send_signal(signal.SIGHUP)
        self.s.signalled = False
        self.assertEqual(wait_reloads(self.admin, 2), (0, 2))
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_config_last_reload_success"), 0)
        self.assertEqual(metric(m, "sluice_config_generation"), 1)
        self.assertEqual(self.body(), b"A")
        # A syntax error too.
        self.rewrite("listeners: [\n")
        r = self.post_reload()
        self.assertEqual(r.status, 400, r)
        self.assertRegex(r.json()["errors"][0], r"\.yaml:\d+:\d+: ")
        self.rewrite(CONFIG_B)
        r = self.post_reload()
        self.assertEqual((r.status, r.json()), (200, {"result": "ok", "generation": 2}))
        self.assertEqual(self.body(), b"B")
        self.assertEqual(self.body("/only-a"), b'{"message":"Not Found"}')

    def test_stream_in_flight_finishes_on_its_snapshot(self):
        self.start()
        slow = self.client(self.s)
        slow.send(build_request("GET", "/svc/delay/800"))
        self.up.wait_records(1)
        # B has no service the slow request's pool belongs to, then A comes back.
        self.rewrite(CONFIG_B.replace("backend2", "other"))
        self.assertEqual(self.post_reload().status, 200)
        self.assertEqual(self.body(), b"B")
        r = slow.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["target"], "/svc/delay/800")
        # The same connection goes on, on the new config.
        self.assertEqual(slow.request("GET", "/v").body, b"B")

    def test_listener_added_and_removed(self):
        self.start()
        extra_port = free_port()
        with_extra = CONFIG_A.replace(
            "    admin:", "      - name: extra\n        address: 127.0.0.1:@EXTRA@\n    admin:")
        # An established connection on the kept listener stays through both reloads.
        kept = self.client(self.s)
        self.assertEqual(kept.request("GET", "/v").body, b"A")
        self.rewrite(with_extra, EXTRA=extra_port)
        self.assertEqual(self.post_reload().status, 200)
        self.assertEqual(self.body(port=extra_port), b"A")
        on_extra = Client("127.0.0.1", extra_port)
        self.addCleanup(on_extra.close)
        self.assertEqual(on_extra.request("GET", "/v").body, b"A")
        on_extra.send(build_request("GET", "/svc/delay/600"))
        self.up.wait_records(1)
        _, m = fetch_metrics(self.admin)
        self.assertGreaterEqual(metric(m, "sluice_connections_active", listener="extra"), 1)

        self.rewrite(CONFIG_A)
        self.assertEqual(self.post_reload().status, 200)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", extra_port), timeout=2).close()
        # The request in flight on the removed listener finishes, then that connection
        # closes: it belongs to a listener that no longer exists.
        r = on_extra.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(on_extra.is_closed())
        self.assertEqual(kept.request("GET", "/v").body, b"A")
        self.assertEqual(self.body(), b"A")

    def test_changed_listener_settings_apply_to_new_connections(self):
        # One worker: max_connections is per worker.
        one = CONFIG_A.replace("workers: 4", "workers: 1")
        self.start(one)
        self.rewrite(one.replace("address: @LISTEN@",
                                 "address: @LISTEN@\n        max_connections: 1"))
        self.assertEqual(self.post_reload().status, 200)
        held = self.client(self.s)
        self.assertEqual(held.request("GET", "/v").status, 200)
        # A second connection waits in the backlog until the first one closes.
        second = self.client(self.s, timeout=0.5)
        second.send(build_request("GET", "/v"))
        with self.assertRaises(socket.timeout):
            second.read_response()
        held.close()
        second.timeout = 5
        self.assertEqual(second.read_response().body, b"A")

    def test_port_in_use_fails_the_reload(self):
        self.start()
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            self.rewrite(CONFIG_B.replace(
                "    admin:", "      - name: taken\n        address: 127.0.0.1:%d\n    admin:"
                % port))
            r = self.post_reload()
        self.assertEqual(r.status, 500, r)
        self.assertIn("listener taken: cannot listen on 127.0.0.1:%d" % port, r.json()["errors"][0])
        self.assertEqual(self.body(), b"A")

    def test_workers_change_needs_a_restart(self):
        self.start()
        self.rewrite(CONFIG_B.replace("workers: 4", "workers: 2"))
        self.assertEqual(self.post_reload().status, 200)
        self.assertEqual(self.body(), b"B")
        self.assertIn("workers changed to 2; that needs a restart, keeping 4", self.s.output())
        _, m = fetch_metrics(self.admin)
        self.assertEqual(metric(m, "sluice_workers"), 4)

    def test_admin_address_and_token_change(self):
        self.start()
        new_admin = free_port()
        self.rewrite(CONFIG_B.replace('admin: {address: "127.0.0.1:@ADMIN@"}',
                                      'admin: {address: "127.0.0.1:%d", token: t0k}' % new_admin))
        # The caller on the old address still gets its answer.
        r = self.post_reload()
        self.assertEqual((r.status, r.json()["result"]), (200, "ok"))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.admin), timeout=2).close()
        self.assertEqual(admin_request(new_admin, "GET", "/config").status, 401)
        r = admin_request(new_admin, "GET", "/config", token="t0k")
        self.assertEqual(r.json()["generation"], 2)
        self.assertEqual(r.json()["config"]["admin"]["token"], "[redacted]")
        self.assertEqual(self.body(), b"B")

    def test_concurrent_reload_requests_all_get_an_answer(self):
        self.start()
        self.rewrite(CONFIG_B)
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.post_reload()))
                   for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual([r.status for r in results], [200] * 5)
        self.assertEqual(self.body(), b"B")


class Watch(ReloadTestCase):
    def wait_body(self, want, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.body() == want:
                return True
            time.sleep(0.05)
        return False

    def test_watch_picks_up_a_replaced_and_an_edited_file(self):
        self.start(CONFIG_A + "    watch: true\n")
        # Replaced by a rename, as editors and deploy tools do.
        self.rewrite(CONFIG_B + "    watch: true\n")
        self.assertTrue(self.wait_body(b"B"), self.s.output())
        self.assertEqual(wait_reloads(self.admin, 1), (1, 0))
        # Emptied in place: invalid, so the old config keeps serving.
        with open(self.s.config_path, "w"):
            pass
        self.assertEqual(wait_reloads(self.admin, 2), (1, 1))
        self.assertEqual(self.body(), b"B")
        # Written in place.
        text = self.write_config(CONFIG_A + "    watch: true\n", "a.yaml", **self.subst)
        with open(text) as src:
            content = src.read()
        with open(self.s.config_path, "w") as dst:
            dst.write(content)
        self.assertTrue(self.wait_body(b"A"), self.s.output())
        self.assertEqual(wait_reloads(self.admin, 3), (2, 1))

    def test_watch_off_ignores_changes(self):
        self.start()
        self.rewrite(CONFIG_B)
        time.sleep(0.6)
        self.assertEqual(self.body(), b"A")
        self.assertEqual(wait_reloads(self.admin, 0), (0, 0))


if __name__ == "__main__":
    unittest.main()
