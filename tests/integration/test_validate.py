"""`sluice validate`, `sluice version`, env substitution, and every shipped example."""

import glob
import os
import re
import unittest

from harness import ROOT, SluiceTestCase, free_port, run_sluice

GOOD = """
    workers: 2
    drain_timeout: 5s
    listeners:
      - name: public
        address: 127.0.0.1:18080
        header_timeout: 5s
        idle_timeout: 30s
        max_connections: 1000
    services:
      users:
        endpoints: [127.0.0.1:9001, 127.0.0.1:9002]
        load_balancer: least_request
        connect_timeout: 250ms
        timeout: 3s
        max_idle_connections: 16
    routes:
      - name: users
        match: {methods: [GET, POST], path: "/users/{proxy+}", host: api.example.com}
        service: users
        max_body: 1MiB
      - name: ping
        match: {path: /ping}
        response: {status: 200, headers: {Content-Type: text/plain}, body: pong}
"""

ERROR_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.M)

# (name, config, [(line, message fragment)] expected; a fragment is matched case-insensitively)
BAD = [
    ("unknown top-level key", """
        workers: 1
        listner:
          - name: x
        routes: []
        """, [(2, "listner")]),
    ("unknown listener key", """
        listeners:
          - name: public
            address: 127.0.0.1:18080
            timeout: 5s
        routes:
          - name: ping
            match: {path: /ping}
            response: {status: 200}
        """, [(4, "timeout")]),
    ("bad duration", """
        services:
          s:
            endpoints: [127.0.0.1:9001]
            timeout: fast
        routes:
          - name: r
            match: {path: /r}
            service: s
        """, [(4, "")]),
    ("undefined service", """
        routes:
          - name: r
            match: {path: /r}
            service: nope
        """, [(4, "nope")]),
    ("two backends on one route", """
        services:
          s:
            endpoints: [127.0.0.1:9001]
        routes:
          - name: r
            match: {path: /r}
            service: s
            response: {status: 200}
        """, [(None, "")]),
    ("bad load balancer", """
        services:
          s:
            endpoints: [127.0.0.1:9001]
            load_balancer: random-ish
        routes:
          - name: r
            match: {path: /r}
            service: s
        """, [(4, "random-ish")]),
    ("wrong type for workers", """
        workers: [1, 2]
        routes: []
        """, [(1, "")]),
    ("bad address", """
        listeners:
          - name: public
            address: not-an-address
        routes: []
        """, [(3, "")]),
    ("ambiguous routes", """
        routes:
          - name: one
            match: {path: "/u/{id}"}
            response: {status: 200}
          - name: two
            match: {path: "/u/{name}"}
            response: {status: 200}
        """, [(None, "")]),
    ("bad status", """
        routes:
          - name: r
            match: {path: /r}
            response: {status: 99}
        """, [(4, "")]),
    ("not yaml", """
        routes: [
          - name: r
        """, [(None, "")]),
]


class Validate(SluiceTestCase):
    def test_version(self):
        rc, out, err = run_sluice("version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out + err, r"\d+\.\d+")

    def test_good_config(self):
        path = self.write_config(GOOD)
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        summary = out + err
        self.assertIn("public", summary)
        self.assertIn("127.0.0.1:18080", summary)
        self.assertIn("users", summary)
        self.assertIn("ping", summary)

    def test_bad_configs(self):
        for name, text, expected in BAD:
            with self.subTest(name):
                path = self.write_config(text, "bad.yaml")
                rc, out, err = run_sluice("validate", path)
                self.assertEqual(rc, 1, "%s: exit %s\nstdout:\n%s\nstderr:\n%s"
                                 % (name, rc, out, err))
                errors = [m for m in ERROR_LINE.finditer(out + err)
                          if m.group("file") == path]
                self.assertTrue(errors, "%s: no FILE:LINE:COL: message line:\n%s%s"
                                % (name, out, err))
                for line, fragment in expected:
                    hits = [m for m in errors
                            if (line is None or int(m.group("line")) == line)
                            and fragment.lower() in m.group("msg").lower()]
                    self.assertTrue(hits, "%s: expected an error at line %s mentioning %r, "
                                    "got:\n%s%s" % (name, line, fragment, out, err))

    def test_every_error_reported(self):
        path = self.write_config("""
            workers: 1
            bogus_one: 1
            services:
              s:
                endpoints: [127.0.0.1:9001]
                bogus_two: 2
            routes:
              - name: r
                match: {path: /r}
                service: s
            """)
        rc, out, err = run_sluice("validate", path)
        self.assertEqual(rc, 1)
        lines = {int(m.group("line")) for m in ERROR_LINE.finditer(out + err)
                 if m.group("file") == path}
        self.assertTrue({2, 6} <= lines, "expected errors on lines 2 and 6:\n%s%s" % (out, err))

    def test_missing_file(self):
        rc, out, err = run_sluice("validate", os.path.join(self.tmp, "nope.yaml"))
        self.assertEqual(rc, 1)
        self.assertIn("nope.yaml", out + err)

    def test_env_substitution(self):
        port = free_port()
        env = dict(os.environ, SLUICE_IT_PORT=str(port))
        text = """
            workers: 1
            listeners:
              - name: public
                address: "127.0.0.1:${SLUICE_IT_PORT}"
            routes:
              - name: ping
                match: {path: /ping}
                response: {status: 200, body: "${SLUICE_IT_BODY:-default-body}"}
            """
        s = self.start_sluice(text, env=env, LISTEN="127.0.0.1:%d" % port)
        r = self.client(s).request("GET", "/ping")
        self.assertEqual((r.status, r.body), (200, b"default-body"), r)
        self.stop_sluice(s)

    def test_examples_validate(self):
        files = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
        self.assertIn(os.path.join(ROOT, "examples", "quickstart.yaml"), files)
        for path in files:
            with self.subTest(os.path.basename(path)):
                rc, out, err = run_sluice("validate", path)
                self.assertEqual(rc, 0, "%s:\n%s%s" % (path, out, err))


if __name__ == "__main__":
    unittest.main()
