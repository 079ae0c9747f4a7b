"""access_log through the real binary: one valid JSON line per request with the right
facts (success, 404, 502, client gone), stdout or a file, SIGUSR1 reopen, nothing lost
on SIGTERM, per-route disable and override, config errors, metrics."""

import datetime
import json
import os
import re
import signal
import socket
import struct
import time
import unittest
import urllib.request

from harness import SluiceTestCase, build_request, dead_port, free_port, run_sluice

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = ["time", "request_id", "route", "method", "path", "status", "bytes_in", "bytes_out",
          "duration_ms", "upstream_ms", "client", "user_agent", "api_key"]

CONFIG = """
    workers: 2
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
      dead:
        endpoints: [@DEAD@]
        connect_timeout: 2s
    filters:
      - request_id: {}
      - access_log: {path: @LOG@}
    routes:
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
      - name: down
        match: {path: /down}
        service: dead
      - name: quiet
        match: {path: /quiet}
        response: {status: 200, body: "shh"}
        filters:
          - access_log: {disabled: true}
      - name: proxied
        match: {path: /proxied}
        response: {status: 200, body: "ok"}
        filters:
          - ip_filter: {deny: [192.0.2.66], trusted_proxies: [127.0.0.1]}
      - name: other
        match: {path: /other}
        response: {status: 201, body: "elsewhere"}
        filters:
          - access_log: {path: other.log}
"""


def read_lines(path):
    """The complete lines of a JSON-lines file, each parsed strictly."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.split(b"\n")[:-1]:  # a last piece without "\n" is not a line yet
        out.append(json.loads(raw.decode("utf-8")))
    return out


def wait_lines(path, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = read_lines(path)
        if len(lines) >= n or time.monotonic() >= deadline:
            return lines
        time.sleep(0.01)


class AccessLogTestCase(SluiceTestCase):
    def start(self, text=CONFIG, log="access.log", **subst):
        self.up = self.start_upstream()
        os.makedirs(os.path.join(self.tmp, "logs"), exist_ok=True)
        # Relative paths are relative to the config file's directory (self.tmp).
        self.log = os.path.join(self.tmp, log)
        self.sluice = self.start_sluice(text, UP=self.up.address, DEAD="127.0.0.1:%d" % dead_port(),
                                        LOG=log, **subst)
        return self.sluice

    def one_line(self, path=None):
        lines = wait_lines(path or self.log, 1)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(list(lines[0].keys()), FIELDS, lines[0])
        return lines[0]


class AccessLogLines(AccessLogTestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_success_line(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        c = self.client(self.sluice)
        # The raw target ("." segment, escapes) is logged as received, with its query.
        body = b"0123456789"
        raw = build_request("POST", "/api/./items/%7euser?x=1&y=two%20words",
                            headers=[("User-Agent", 'probe "quoted" \\ caf\u00e9'.encode()
                                      .decode("latin-1")),
                                     ("X-Request-Id", "trace-123")], body=body)
        c.send(raw)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        line = self.one_line()
        self.assertRegex(line["time"], TIME_RE)
        t = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        self.assertLess(abs((t - before).total_seconds()), 5, line)
        self.assertEqual(line["request_id"], "trace-123")
        self.assertEqual(line["route"], "api")
        self.assertEqual(line["method"], "POST")
        self.assertEqual(line["path"], "/api/./items/%7euser?x=1&y=two%20words")
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["bytes_in"], len(raw))
        self.assertEqual(line["bytes_out"], len(r.body))
        self.assertIsInstance(line["duration_ms"], float)
        self.assertIsInstance(line["upstream_ms"], float)
        self.assertGreaterEqual(line["duration_ms"], line["upstream_ms"])
        self.assertGreater(line["upstream_ms"], 0)
        self.assertEqual(line["client"], "127.0.0.1")
        self.assertEqual(line["user_agent"], 'probe "quoted" \\ caf\u00e9')
        self.assertIsNone(line["api_key"])

    def test_client_behind_a_trusted_proxy(self):
        # ip_filter read the client from X-Forwarded-For; the log names that client.
        r = self.client(self.sluice).request(
            "GET", "/proxied", headers=[("X-Forwarded-For", "203.0.113.9, 127.0.0.1")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.one_line()["client"], "203.0.113.9")

    def test_generated_request_id_matches_the_response(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/api/x")
        self.assertEqual(r.status, 200, r)
        line = self.one_line()
        self.assertEqual(line["request_id"], r.header("x-request-id"))
        self.assertIsNone(line["user_agent"])  # none sent

    def test_not_found(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/nowhere?q=1")
        self.assertJsonError(r, 404)
        line = self.one_line()
        self.assertIsNone(line["route"])
        self.assertEqual(line["path"], "/nowhere?q=1")
        self.assertEqual(line["status"], 404)
        self.assertEqual(line["bytes_out"], len(r.body))
        self.assertIsNone(line["upstream_ms"])
        self.assertEqual(line["request_id"], r.header("x-request-id"))

    def test_bad_gateway(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/down")
        self.assertJsonError(r, 502)
        line = self.one_line()
        self.assertEqual(line["route"], "down")
        self.assertEqual(line["status"], 502)
        self.assertIsNone(line["upstream_ms"])
        self.assertEqual(line["bytes_out"], len(r.body))

    def test_client_gone(self):
        c = self.client(self.sluice)
        c.send(build_request("GET", "/api/delay/3000"))
        self.up.wait_records(1)  # the request is at the upstream
        # RST: a FIN after a complete request is a half-close that still gets its reply.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        line = self.one_line()
        self.assertEqual(line["route"], "api")
        self.assertEqual(line["status"], 499, line)
        self.assertEqual(line["bytes_out"], 0)
        self.assertIsNone(line["upstream_ms"])
        self.assertLess(line["duration_ms"], 3000)

    def test_control_and_invalid_utf8_bytes_stay_valid_json(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/api/x", headers=[("User-Agent", "a\tb\xff\xfe end")])
        self.assertEqual(r.status, 200, r)
        line = self.one_line()  # read_lines decodes UTF-8 strictly and parses strictly
        self.assertEqual(line["user_agent"], "a\tb\xff\xfe end")  # bytes as Latin-1

    def test_disabled_and_overridden_per_route(self):
        c = self.client(self.sluice)
        self.assertEqual(c.request("GET", "/quiet").status, 200)
        self.assertEqual(c.request("GET", "/other").status, 201)
        self.assertEqual(c.request("GET", "/api/last").status, 200)
        other = self.one_line(os.path.join(self.tmp, "other.log"))
        self.assertEqual(other["route"], "other")
        self.assertEqual(other["status"], 201)
        # The global log has only the last request: /quiet is off, /other went elsewhere.
        main = self.one_line()
        self.assertEqual(main["path"], "/api/last")

    def test_every_request_of_many_connections(self):
        conns = [self.client(self.sluice) for _ in range(8)]
        n = 0
        for i in range(25):
            for k, c in enumerate(conns):
                r = c.request("GET", "/api/n/%d/%d" % (k, i))
                self.assertEqual(r.status, 200, r)
                n += 1
        lines = wait_lines(self.log, n)
        self.assertEqual(len(lines), n)
        self.assertEqual(sorted(l["path"] for l in lines),
                         sorted("/api/n/%d/%d" % (k, i) for i in range(25) for k in range(8)))
        self.assertEqual(len({l["request_id"] for l in lines}), n)


class AccessLogFiles(AccessLogTestCase):
    def test_stdout(self):
        s = self.start(CONFIG.replace("{path: @LOG@}", "{}"))
        c = self.client(s)
        self.assertEqual(c.request("GET", "/api/out").status, 200)
        lines = wait_lines(s.stdout_path, 1)
        self.assertEqual(len(lines), 1, s.output())
        self.assertEqual(lines[0]["path"], "/api/out")
        self.assertFalse(os.path.exists(self.log))

    def test_reopen_on_sigusr1(self):
        s = self.start(log="logs/access.log")
        c = self.client(s)
        for i in range(3):
            self.assertEqual(c.request("GET", "/api/before/%d" % i).status, 200)
        self.assertEqual(len(wait_lines(self.log, 3)), 3)
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        s.send_signal(signal.SIGUSR1)
        s.signalled = False  # SIGUSR1 does not stop it: cleanup still sends SIGTERM
        deadline = time.monotonic() + 10
        while not os.path.exists(self.log) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(os.path.exists(self.log), "no new file after SIGUSR1\n" + s.output())
        for i in range(2):
            self.assertEqual(c.request("GET", "/api/after/%d" % i).status, 200)
        after = wait_lines(self.log, 2)
        self.assertEqual([l["path"] for l in after], ["/api/after/0", "/api/after/1"])
        self.assertEqual([l["path"] for l in read_lines(rotated)],
                         ["/api/before/%d" % i for i in range(3)])

    def test_nothing_lost_on_sigterm(self):
        s = self.start()
        conns = [self.client(s) for _ in range(4)]
        n = 0
        for i in range(100):
            for c in conns:
                c.send(build_request("GET", "/api/%d" % n))
                n += 1
        for c in conns:
            for _ in range(100):
                self.assertEqual(c.read_response().status, 200)
        self.stop_sluice(s)  # right away: the lines may still be queued
        lines = read_lines(self.log)
        self.assertEqual(len(lines), n)
        self.assertEqual(sorted(l["path"] for l in lines), sorted("/api/%d" % i for i in range(n)))

    def test_stalled_output_never_blocks_requests(self):
        # The log is a FIFO nobody reads for now: the pipe fills, the writer waits, and
        # workers drop lines beyond `buffer` instead of waiting.
        fifo = os.path.join(self.tmp, "stalled.fifo")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        admin = free_port()
        s = self.start(CONFIG.replace("    filters:\n", "    admin:\n      address: 127.0.0.1:%d\n"
                                      "    filters:\n" % admin, 1)
                       .replace("{path: @LOG@}", "{path: stalled.fifo, buffer: 4KiB}"))
        conns = [self.client(s) for _ in range(4)]
        n = 0
        for i in range(150):
            for c in conns:
                r = c.request("GET", "/api/%d" % n)
                self.assertEqual(r.status, 200, r)
                n += 1
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as resp:
            text = resp.read().decode()
        m = re.search(r'sluice_access_log_dropped_total\{output="%s"\} (\d+)' % re.escape(fifo),
                      text)
        self.assertIsNotNone(m, text)
        dropped = int(m.group(1))
        self.assertGreater(dropped, n // 4, text)
        # Now read: the lines that were accepted arrive, whole and valid.
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"\n") < n - dropped and time.monotonic() < deadline:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                chunk = b""
            if chunk:
                data += chunk
            else:
                time.sleep(0.01)
        self.stop_sluice(s)
        lines = [json.loads(l) for l in data.decode().split("\n")[:-1]]
        self.assertEqual(len(lines), n - dropped)
        self.assertIn("lines dropped", s.output())

    def test_metrics(self):
        admin = free_port()
        s = self.start(CONFIG.replace("    filters:\n", "    admin:\n      address: 127.0.0.1:%d\n"
                                      "    filters:\n" % admin, 1))
        c = self.client(s)
        for _ in range(3):
            self.assertEqual(c.request("GET", "/api/m").status, 200)
        self.assertEqual(c.request("GET", "/other").status, 201)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as resp:
            text = resp.read().decode()
        self.assertEqual(text.count("# TYPE sluice_access_log_dropped_total counter"), 1, text)
        self.assertEqual(text.count("# TYPE sluice_access_log_lines_total counter"), 1, text)
        self.assertIn('sluice_access_log_lines_total{output="%s"} 3\n' % self.log, text)
        self.assertIn('sluice_access_log_lines_total{output="%s"} 1\n'
                      % os.path.join(self.tmp, "other.log"), text)
        self.assertIn('sluice_access_log_dropped_total{output="%s"} 0\n' % self.log, text)


class AccessLogConfig(SluiceTestCase):
    def validate(self, filters):
        path = self.write_config("""
            listeners:
              - name: public
                address: 127.0.0.1:1
            filters:
            %s
            routes:
              - name: ping
                match: {path: /ping}
                response: {status: 200}
            """ % filters)
        return run_sluice("validate", path)

    def test_errors_point_at_the_setting(self):
        rc, out, err = self.validate("  - access_log: {path: missing/dir/access.log}")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"sluice\.yaml:5:\d+: directory '.*/missing/dir' does not exist")
        rc, out, err = self.validate("  - access_log: {path: /}")
        self.assertEqual(rc, 1)
        self.assertIn("is a directory", err)
        rc, out, err = self.validate("  - access_log: {format: json}")
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"sluice\.yaml:5:\d+: .*format")
        rc, out, err = self.validate("  - access_log: {buffer: 100}")
        self.assertEqual(rc, 1)
        self.assertIn("buffer must be at least 4KiB", err)

    def test_validate_creates_no_file(self):
        rc, out, err = self.validate("  - access_log: {path: a.log, buffer: 1MiB}")
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "a.log")))


if __name__ == "__main__":
    unittest.main()
