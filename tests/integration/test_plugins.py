"""Plugins: filters in shared objects behind the C ABI of plugins/sluice_plugin.h.

Runs the real binary with the in-tree example plugin (header_stamp) and the test-only
plugins of tests/plugins/ (probe, bad_abi, no_init), all built into build/plugins/ next
to the sluice binary ($SLUICE_PLUGIN_DIR overrides where they are looked for).
"""

import os
import re
import socket
import struct
import textwrap
import threading
import time

from harness import SLUICE_BIN, Client, SluiceTestCase, header_values, run_sluice

ERROR_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.M)

PLUGIN_DIR = os.environ.get("SLUICE_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(SLUICE_BIN)), "plugins")


def plugin_path(name):
    return os.path.join(PLUGIN_DIR, name + ".so")


HEAD = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      up:
        endpoints: [@UP@]
    plugins:
      - name: header_stamp
        path: @STAMP@
      - name: probe
        path: @PROBE@
      - name: probe2
        path: @PROBE@
"""


class PluginTestCase(SluiceTestCase):
    def setUp(self):
        super().setUp()
        for name in ("header_stamp", "test_probe", "test_bad_abi", "test_no_init"):
            self.assertTrue(os.path.isfile(plugin_path(name)),
                            "plugin %s not built (looked in %s)" % (name, PLUGIN_DIR))

    def start(self, body, up=None):
        up = up or self.start_upstream()
        s = self.start_sluice(textwrap.dedent(HEAD) + textwrap.dedent(body), UP=up.address, STAMP=plugin_path("header_stamp"),
                              PROBE=plugin_path("test_probe"))
        return s, up

    def validate(self, text, **subst):
        subst.setdefault("LISTEN", "127.0.0.1:1")
        subst.setdefault("UP", "127.0.0.1:1")
        subst.setdefault("STAMP", plugin_path("header_stamp"))
        subst.setdefault("PROBE", plugin_path("test_probe"))
        path = self.write_config(text, "check.yaml", **subst)
        rc, out, err = run_sluice("validate", path)
        errors = [(int(m.group("line")), int(m.group("col")), m.group("msg"))
                  for m in ERROR_LINE.finditer(out + err) if m.group("file") == path]
        return rc, errors, out + err

    def assertOneError(self, text, line, col, *fragments, **subst):
        rc, errors, output = self.validate(text, **subst)
        self.assertEqual(rc, 1, output)
        self.assertEqual(len(errors), 1, output)
        self.assertEqual(errors[0][:2], (line, col), output)
        for fragment in fragments:
            self.assertIn(fragment, errors[0][2], output)
        return errors[0][2]


class HeaderStamp(PluginTestCase):
    def test_adds_the_configured_response_header(self):
        s, up = self.start("""
            filters:
              - header_stamp: {header: x-stamp, value: hello}
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
              - name: ping
                match: {path: /ping}
                response: {status: 200, body: pong}
            """)
        c = self.client(s)
        r = c.request("GET", "/api/one")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-stamp"), "hello", r)
        r = c.request("GET", "/ping")
        self.assertEqual((r.status, r.body, r.header("x-stamp")), (200, b"pong", "hello"), r)
        self.assertJsonError(c.request("GET", "/nowhere"), 404)  # global filters run too
        self.assertEqual(len(up.wait_records(1)), 1)

    def test_route_filters_and_overrides(self):
        s, _ = self.start("""
            filters:
              - header_stamp: {header: x-stamp}
            routes:
              - name: plain
                match: {path: /plain}
                response: {status: 200}
              - name: other
                match: {path: /other}
                response: {status: 200}
                filters:
                  - header_stamp: {header: x-stamp, value: overridden}
              - name: off
                match: {path: /off}
                response: {status: 200}
                filters:
                  - header_stamp: {disabled: true}
            """)
        c = self.client(s)
        self.assertEqual(c.request("GET", "/plain").header("x-stamp"), "sluice")
        self.assertEqual(c.request("GET", "/other").header("x-stamp"), "overridden")
        self.assertIsNone(c.request("GET", "/off").header("x-stamp"))

    def test_stop_and_resume_after_a_delay(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp, value: late, delay_ms: 300}
            """)
        c = self.client(s)
        for i in range(2):  # twice on one connection: the pooled call is reused
            started = time.monotonic()
            r = c.request("GET", "/api/x%d" % i)
            elapsed = time.monotonic() - started
            self.assertEqual((r.status, r.header("x-stamp")), (200, "late"), r)
            self.assertGreaterEqual(elapsed, 0.29, "the request was not held")
        recs = up.wait_records(2)
        self.assertEqual([rec["target"] for rec in recs], ["/api/x0", "/api/x1"])

    def test_many_stopped_requests_at_once(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp, delay_ms: 200}
            """)
        results = {}

        def one(i):
            with Client(s.host, s.port) as c:
                results[i] = c.request("GET", "/api/%d" % i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.assertEqual(sorted(results), list(range(20)))
        for i, r in results.items():
            self.assertEqual((r.status, r.header("x-stamp")), (200, "sluice"), r)
        self.assertEqual(len(up.wait_records(20)), 20)

    def test_client_gone_while_stopped(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp, delay_ms: 400}
            """)
        # Abrupt close (RST): the stream ends while the plugin holds it.
        reset = socket.create_connection((s.host, s.port))
        reset.sendall(b"GET /api/reset HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        reset.close()
        # Half close (FIN) after a complete request: it is still answered, to nobody.
        fin = socket.create_connection((s.host, s.port))
        fin.sendall(b"GET /api/fin HTTP/1.1\r\nHost: t\r\n\r\n")
        fin.shutdown(socket.SHUT_WR)
        fin.close()
        time.sleep(0.7)  # the deferred resumes are due by now
        r = self.client(s).request("GET", "/api/after")
        self.assertEqual((r.status, r.header("x-stamp")), (200, "sluice"), r)
        targets = [rec["target"] for rec in up.records()]
        self.assertNotIn("/api/reset", targets)
        self.assertIn("/api/after", targets)


class Probe(PluginTestCase):
    def test_host_calls(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - probe: {check_late: true}
                  - probe2: {request_delay_ms: 50}
            """)
        c = self.client(s)
        first = c.request("GET", "/api/1")
        second = c.request("GET", "/api/2")
        for r in (first, second):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("x-probe-status"), "200", r)
            self.assertEqual(r.header("x-probe-crlf"), "-3", r)   # SLUICE_ERR_INVALID
            self.assertEqual(r.header("x-probe-early"), "-2", r)  # SLUICE_ERR_PHASE
            self.assertEqual(r.header("x-probe-context"), "seen", r)
            # After it continued, the first probe no longer holds the request: its
            # resume() from a timer that fires while probe2 has stopped is refused.
            self.assertEqual(r.header("x-probe-late-resume"), "-2", r)
            self.assertEqual(r.header("x-probe-late-header"), "-2", r)
        self.assertEqual(first.header("x-probe-stale"), "1", first)
        self.assertEqual(second.header("x-probe-stale"), "-1", second)  # SLUICE_ERR_STALE
        self.assertEqual(second.header("x-probe-done"), "1", second)
        recs = up.wait_records(2)
        for rec in recs:
            self.assertEqual(header_values(rec, "x-probe-route"), ["api"], rec)
            self.assertEqual(header_values(rec, "x-probe-method"), ["GET"], rec)
            self.assertEqual(header_values(rec, "x-bad"), [], rec)
            # Set by probe2 just before its resume(): the stray resume released nothing.
            self.assertEqual(header_values(rec, "x-probe-delayed"), ["yes"], rec)

    def test_reply_from_the_request_phase(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp}
                  - probe: {deny_header: x-deny}
            """)
        c = self.client(s)
        r = c.request("GET", "/api/no", headers=[("X-Deny", "1")])
        self.assertJsonError(r, 403, "denied by probe")
        self.assertEqual(r.header("x-stamp"), "sluice", r)  # an earlier filter saw the reply
        r = c.request("GET", "/api/yes")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([rec["target"] for rec in up.wait_records(1)], ["/api/yes"])

    def test_reply_from_the_response_phase(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp}
                  - probe: {reply_in_response: 418}
            """)
        r = self.client(s).request("GET", "/api/x")
        self.assertJsonError(r, 418, "replaced by probe")
        self.assertEqual(r.header("x-stamp"), "sluice", r)
        self.assertEqual(len(up.wait_records(1)), 1)

    def test_stop_in_the_response_phase(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - header_stamp: {header: x-stamp}
                  - probe: {response_delay_ms: 200}
              - name: big
                match: {path: "/big/{proxy+}"}
                service: up
                filters:
                  - probe: {response_delay_ms: 200}
            """)
        c = self.client(s)
        r = c.request("GET", "/api/x")
        self.assertEqual((r.status, r.header("x-probe-late"), r.header("x-stamp")),
                         (200, "yes", "sluice"), r)
        # A body larger than what is buffered in one read waits for the response head.
        r = c.request("GET", "/big/bytes/1000000")
        self.assertEqual((r.status, r.body_len, r.header("x-probe-late")),
                         (200, 1000000, "yes"), r)

    def test_stop_in_the_request_phase_sets_headers_later(self):
        s, up = self.start("""
            routes:
              - name: api
                match: {path: "/api/{proxy+}"}
                service: up
                filters:
                  - probe: {request_delay_ms: 100}
            """)
        r = self.client(s).request("GET", "/api/x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(header_values(up.wait_records(1)[0], "x-probe-delayed"), ["yes"])

    def test_deferred_call_cancelled_when_the_client_goes(self):
        s, up = self.start("""
            routes:
              - name: slow
                match: {path: "/slow/{proxy+}"}
                service: up
                filters:
                  - probe: {request_delay_ms: 400}
            """)
        gone = socket.create_connection((s.host, s.port))
        gone.sendall(b"GET /slow/gone HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()
        time.sleep(0.6)
        r = self.client(s).request("GET", "/slow/next")
        self.assertEqual(r.status, 200, r)
        # The abandoned request: its deferred call learnt it was cancelled, on_done ran.
        self.assertEqual((r.header("x-probe-cancelled"), r.header("x-probe-done")), ("1", "1"), r)
        self.assertEqual([rec["target"] for rec in up.records()], ["/slow/next"])


class Loading(PluginTestCase):
    BASE = """
            listeners:
              - name: public
                address: 127.0.0.1:1
            plugins:
              - name: x
                path: @PATH@
            routes: []
    """

    def test_abi_mismatch_is_refused_without_calling_the_plugin(self):
        path = plugin_path("test_bad_abi")
        msg = self.assertOneError(self.BASE, 6, 11, path, "ABI version 99", "ABI version 1",
                                  PATH=path)
        self.assertNotIn("Aborted", msg)

    def test_missing_file(self):
        path = os.path.join(self.tmp, "nope.so")
        self.assertOneError(self.BASE, 6, 11, "cannot load plugin " + path,
                            "No such file or directory", PATH=path)

    def test_not_a_shared_object(self):
        path = os.path.join(self.tmp, "text.so")
        with open(path, "w") as f:
            f.write("not ELF\n")
        self.assertOneError(self.BASE, 6, 11, "cannot load plugin " + path, PATH=path)

    def test_missing_entry_point(self):
        path = plugin_path("test_no_init")
        self.assertOneError(self.BASE, 6, 11, path, "sluice_plugin_init", PATH=path)

    def test_a_library_that_is_not_a_plugin(self):
        # A real shared object without the entry points: the libm this python uses.
        with open("/proc/self/maps") as f:
            paths = [line.split()[-1] for line in f if "/libm.so" in line]
        self.assertTrue(paths, "no libm mapped in this process")
        path = paths[0]
        self.assertOneError(self.BASE, 6, 11, "not a sluice plugin",
                            "sluice_plugin_abi_version", PATH=path)

    def test_relative_path_is_relative_to_the_config_file(self):
        rel = os.path.relpath(plugin_path("header_stamp"), self.tmp)
        self.assertNotEqual(os.getcwd(), self.tmp)
        rc, errors, output = self.validate(textwrap.dedent(self.BASE) + textwrap.dedent("""
            filters:
              - x: {header: x-stamp}
            """), PATH=rel)
        self.assertEqual((rc, errors), (0, []), output)

    def test_settings_errors_come_from_the_plugin(self):
        text = """
            listeners:
              - name: public
                address: 127.0.0.1:1
            plugins:
              - {name: header_stamp, path: @STAMP@}
            filters:
              - header_stamp: {value: v}
            routes:
              - name: r
                match: {path: /r}
                response: {status: 200}
                filters:
                  - header_stamp: {header: "bad header", delay_ms: -1}
            """
        rc, errors, output = self.validate(text)
        self.assertEqual(rc, 1, output)
        self.assertEqual([e[:2] for e in errors], [(7, 19), (13, 23)], output)
        self.assertIn("plugin 'header_stamp' refused its settings: missing setting 'header'",
                      errors[0][2])
        self.assertIn("plugin 'header_stamp' refused its settings: bad '", errors[1][2])

    def test_settings_reach_the_plugin_as_json(self):
        env = dict(os.environ, SLUICE_IT_PLUGIN_N="42")
        text = """
            listeners:
              - name: public
                address: 127.0.0.1:1
            plugins:
              - {name: probe, path: @PROBE@}
            filters:
              - probe:
                  fail: "stop here"
                  int: 5
                  quoted: "5"
                  neg: -7
                  float: 1.5
                  yes: true
                  none: ~
                  list: [a, 2, "3"]
                  map: {k: v}
                  env: ${SLUICE_IT_PLUGIN_N}
                  text: hello world
            routes: []
            """
        path = self.write_config(text, "json.yaml", PROBE=plugin_path("test_probe"))
        rc, out, err = run_sluice("validate", path, env=env)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('stop here (settings: {"env":42,"fail":"stop here","float":1.5,"int":5,'
                      '"list":["a",2,"3"],"map":{"k":"v"},"neg":-7,"none":null,"quoted":"5",'
                      '"text":"hello world","yes":true})', out + err)

    def test_list_errors(self):
        text = """
            listeners:
              - name: public
                address: 127.0.0.1:1
            plugins:
              - {name: request_id, path: @STAMP@}
              - {name: stamp, path: @STAMP@}
              - {name: stamp, path: @STAMP@}
              - {name: broken, path: @BAD@}
              - {name: "bad name!", path: @STAMP@}
              - {name: other, path: @STAMP@, colour: red}
            filters:
              - broken: {}
              - stamp: {header: x-s}
              - unknown_one: {}
            routes: []
            """
        rc, errors, output = self.validate(text, BAD=plugin_path("test_bad_abi"))
        self.assertEqual(rc, 1, output)
        lines = [e[0] for e in errors]
        # No error for line 12: the failed plugin is reported once, where it is declared.
        self.assertEqual(lines, [5, 7, 8, 9, 10, 14], output)
        self.assertIn("built-in filter", errors[0][2])
        self.assertIn("duplicate plugin name 'stamp' (first at line 6)", errors[1][2])
        self.assertIn("ABI version 99", errors[2][2])
        self.assertIn("invalid name", errors[3][2])
        self.assertIn("unknown key 'colour'", errors[4][2])
        self.assertIn("unknown filter 'unknown_one'", errors[5][2])
        self.assertIn("stamp (plugin)", errors[5][2])


if __name__ == "__main__":
    import unittest
    unittest.main()
