"""The ip_filter filter through the real binary: allow and deny lists (the test client
is 127.0.0.1, or ::1 on an IPv6 listener), deny winning over allow, X-Forwarded-For
honoured only from trusted proxies (right to left, malformed entries refused), and
config errors at the offending list item."""

import os
import re
import socket
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integration"))
from harness import (Client, Sluice, SluiceTestCase, free_port,  # noqa: E402
                     header_values, run_sluice)

LISTS = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: allow-loopback
        match: {path: /allow-loopback}
        service: backend
        filters:
          - ip_filter: {allow: [10.0.0.0/8, 127.0.0.0/8, "2001:db8::/32"]}
      - name: allow-other
        match: {path: /allow-other}
        service: backend
        filters:
          - ip_filter: {allow: [10.0.0.0/8, 127.0.0.2, "::1"]}
      - name: deny-client
        match: {path: /deny-client}
        service: backend
        filters:
          - ip_filter: {deny: [192.168.0.0/16, 127.0.0.1]}
      - name: deny-other
        match: {path: /deny-other}
        service: backend
        filters:
          - ip_filter: {deny: [192.168.0.0/16, 127.0.0.2, "::/0"]}
      - name: deny-wins
        match: {path: /deny-wins}
        service: backend
        filters:
          - ip_filter: {allow: [127.0.0.0/8], deny: [127.0.0.1/32]}
      - name: mapped-rule
        match: {path: /mapped-rule}
        service: backend
        filters:
          - ip_filter: {allow: ["::ffff:127.0.0.0/104"]}
      - name: xff-untrusted
        match: {path: /xff-untrusted}
        service: backend
        filters:
          - ip_filter: {allow: [203.0.113.0/24]}
      - name: proxied
        match: {path: /proxied}
        service: backend
        filters:
          - ip_filter:
              allow: [203.0.113.0/24, "2001:db8::/32"]
              deny: [203.0.113.66]
              trusted_proxies: [127.0.0.1, 10.0.0.0/8]
      - name: proxied-deny-only
        match: {path: /proxied-deny-only}
        service: backend
        filters:
          - ip_filter:
              deny: [198.51.100.0/24]
              trusted_proxies: [127.0.0.0/8]
"""


class IpFilterLists(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(LISTS, UP=self.up.address)

    def get(self, path, xff=()):
        headers = [("X-Forwarded-For", v) for v in ([xff] if isinstance(xff, str) else xff)]
        return self.client(self.sluice).request("GET", path, headers=headers)

    def assert_passes(self, path, xff=()):
        r = self.get(path, xff)
        self.assertEqual(r.status, 200, (path, xff, r))
        return r

    def assert_denied(self, path, xff=()):
        r = self.get(path, xff)
        self.assertJsonError(r, 403, "Forbidden")
        return r

    def test_allow_and_deny_lists(self):
        self.assert_passes("/allow-loopback")
        self.assert_denied("/allow-other")
        self.assert_denied("/deny-client")
        self.assert_passes("/deny-other")
        self.assert_denied("/deny-wins")
        self.assert_passes("/mapped-rule")
        # Denied requests never reach the backend.
        recs = self.up.wait_records(3)
        self.assertEqual(sorted(r["target"] for r in recs),
                         ["/allow-loopback", "/deny-other", "/mapped-rule"])

    def test_xff_ignored_without_trusted_proxies(self):
        self.assert_denied("/xff-untrusted", "203.0.113.5")
        self.assert_passes("/deny-other", "127.0.0.2")  # the peer decides, not the header

    def test_xff_from_trusted_proxy(self):
        self.assert_passes("/proxied", "203.0.113.5")
        self.assert_denied("/proxied", "203.0.113.66")  # deny wins
        self.assert_denied("/proxied", "198.51.100.1")  # not allowed
        # Trusted hops are skipped, right to left.
        self.assert_passes("/proxied", "203.0.113.5, 10.1.2.3, 127.0.0.1")
        self.assert_passes("/proxied", "203.0.113.5,10.1.2.3")
        # Only the first untrusted address from the right counts: what a client wrote to
        # its left can neither get it in nor keep it out.
        self.assert_passes("/proxied", "198.51.100.1, 203.0.113.66, 203.0.113.5")
        self.assert_denied("/proxied", "203.0.113.5, 198.51.100.1")
        # Several header lines are one list, in order.
        self.assert_passes("/proxied", ["203.0.113.5", "10.0.0.1"])
        self.assert_denied("/proxied", ["198.51.100.1", "10.0.0.1"])
        self.assert_passes("/proxied", ["198.51.100.1", "203.0.113.7, 10.0.0.1"])
        # Every hop trusted: the leftmost is the client (here a trusted address itself).
        self.assert_denied("/proxied", "10.0.0.1, 127.0.0.1")
        # No header: the peer (127.0.0.1) is the client.
        self.assert_denied("/proxied")
        # IPv6 and IPv4-mapped clients.
        self.assert_passes("/proxied", "2001:db8::5")
        self.assert_denied("/proxied", "2001:db9::5")
        self.assert_passes("/proxied", "::ffff:203.0.113.5")
        self.assert_denied("/proxied", "::ffff:203.0.113.66")

    def test_malformed_xff_is_refused(self):
        for xff in ("garbage", "203.0.113.5, nonsense", "203.0.113.5:4711", "[2001:db8::5]",
                    "203.0.113.5,", "203.0.113.5,,127.0.0.1", "unknown", "203.0.113.5 10.0.0.1"):
            with self.subTest(xff):
                self.assert_denied("/proxied-deny-only", xff)
        # Left of the client nothing is read, so junk there does not matter.
        self.assert_passes("/proxied-deny-only", "nonsense, 203.0.113.9")
        self.assert_denied("/proxied-deny-only", "nonsense, 198.51.100.9")
        self.assert_passes("/proxied-deny-only", "")  # an empty header: the peer is the client

    def test_backend_sees_the_forwarded_chain(self):
        self.assert_passes("/proxied", "203.0.113.5")
        recs = self.up.wait_records(1)
        self.assertEqual(header_values(recs[0], "X-Forwarded-For"), ["203.0.113.5, 127.0.0.1"])


GLOBAL_V6 = """
    workers: 1
    listeners:
      - name: v6
        address: "[::1]:@PORT@"
    filters:
      - ip_filter: {allow: ["::1", 127.0.0.1], deny: ["2001:db8::/32"]}
    routes:
      - name: open
        match: {path: /open}
        response: {status: 200, body: "open"}
      - name: no-loopback
        match: {path: /no-loopback}
        response: {status: 200, body: "closed"}
        filters:
          - ip_filter: {deny: ["::1/128"]}
      - name: v4-only
        match: {path: /v4-only}
        response: {status: 200, body: "closed"}
        filters:
          - ip_filter: {allow: [0.0.0.0/0]}
"""


class IpFilterIpv6(SluiceTestCase):
    def setUp(self):
        super().setUp()
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError as e:
            self.skipTest("no IPv6 loopback here: %s" % e)
        port = free_port()
        path = self.write_config(GLOBAL_V6, PORT=port)
        self.sluice = Sluice(path, "::1", port, self.tmp)
        self.addCleanup(self._cleanup_sluice, self.sluice)
        if not self.sluice.ready:
            self.sluice.start_failed = True
            self.fail("sluice did not start on [::1]:%d\n%s" % (port, self.sluice.output()))

    def get(self, path):
        c = Client("::1", self.sluice.port)
        self.addCleanup(c.close)
        return c.request("GET", path)

    def test_ipv6_client(self):
        r = self.get("/open")
        self.assertEqual((r.status, r.body), (200, b"open"), r)
        # The route's own ip_filter replaces the global one.
        self.assertJsonError(self.get("/no-loopback"), 403, "Forbidden")
        self.assertJsonError(self.get("/v4-only"), 403, "Forbidden")


ERROR_LINE = re.compile(r"^[^:\n]+:(\d+):(\d+): (.+)$", re.M)


class IpFilterConfig(SluiceTestCase):
    HEAD = ("listeners:\n  - name: public\n    address: 127.0.0.1:18080\n"
            "filters:\n  - ip_filter:\n")  # the settings start on line 6
    TAIL = "routes:\n  - name: ping\n    match: {path: /ping}\n    response: {status: 200}\n"

    def validate(self, settings_yaml):
        settings = textwrap.dedent(settings_yaml).strip("\n").split("\n")
        text = self.HEAD + "".join("      %s\n" % line for line in settings) + self.TAIL
        rc, out, err = run_sluice("validate", self.write_config(text))
        return rc, [(int(m.group(1)), int(m.group(2)), m.group(3))
                    for m in ERROR_LINE.finditer(err)], err

    def test_ipv4_and_ipv6_lists_load(self):
        rc, errors, err = self.validate("""
            allow:
              - 10.0.0.0/8
              - 127.0.0.1
              - "2001:db8::/32"
              - "::1"
              - fe80::/10
              - "::ffff:192.0.2.0/120"
              - 0.0.0.0/0
              - "::/0"
            deny: ["2001:db8:bad::/48", 10.66.0.0/16]
            trusted_proxies: [10.0.0.0/8, "fd00::/8"]
            """)
        self.assertEqual((rc, errors), (0, []), err)

    def test_errors_point_at_the_item(self):
        cases = [
            ("""
             allow:
               - 10.0.0.0/8
               - 10.1.2.3/8
             """, 8, 11, "did you mean 10.0.0.0/8?"),
            ('allow: [10.0.0.0/8, "2001:db8::/129"]', 6, 27, "from 0 to 128"),
            ("deny: [300.1.1.1]", 6, 14, "expected an IP address or CIDR"),
            ("deny: [10.0.0.0/33]", 6, 14, "from 0 to 32"),
            ("deny: [example.com]", 6, 14, "expected an IP address or CIDR"),
            ("""
             deny: [10.0.0.0/8]
             trusted_proxies: [10.0.0.0/8, "fe80::1/10"]
             """, 7, 37, "did you mean fe80::/10?"),
            ("allow: []", 6, 14, "would deny every client"),
            ("trusted_proxies: [10.0.0.0/8]", 6, 7, "needs an 'allow' or a 'deny'"),
            ("allow: 10.0.0.0/8", 6, 14, "expected a list"),
            ("""
             allow: [10.0.0.0/8]
             allowed: [10.0.0.0/8]
             """, 7, 7, "allowed"),
        ]
        for yaml_text, line, col, fragment in cases:
            with self.subTest(fragment):
                rc, errors, err = self.validate(yaml_text)
                self.assertEqual(rc, 1, err)
                self.assertTrue(
                    any((l, c) == (line, col) and fragment.lower() in m.lower()
                        for l, c, m in errors),
                    "expected %d:%d: %r in\n%s" % (line, col, fragment, err))

    def test_every_error_reported_at_once(self):
        rc, errors, err = self.validate("""
            allow: [bad-one, 10.0.0.0/8]
            deny: [bad-two]
            trusted_proxies: [bad-three]
            """)
        self.assertEqual(rc, 1, err)
        self.assertEqual([l for l, _, _ in errors], [6, 7, 8], err)


if __name__ == "__main__":
    unittest.main()
