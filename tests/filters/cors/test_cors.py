"""The cors filter through the real binary: preflights answered by sluice (never by
the backend), allowed and refused origins, methods and headers, subdomain wildcards,
credentials, expose headers, requests without Origin left alone, config errors."""

import os
import re
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integration"))
from harness import SluiceTestCase, run_sluice  # noqa: E402

GLOBAL = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    filters:
      - cors:
          allow_origins: [https://app.example.com, "*.example.org", "http://localhost:3000"]
          allow_methods: [GET, POST, PUT]
          allow_headers: [Content-Type, authorization]
          expose_headers: [x-request-id, X-Total-Count]
          allow_credentials: true
          max_age: 10m
    routes:
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
      - name: getonly
        match: {methods: [GET], path: /getonly}
        service: backend
      - name: static
        match: {path: /static}
        response:
          status: 200
          headers: {Vary: Accept-Encoding, Access-Control-Allow-Origin: "https://backend.test"}
          body: "static"
"""

ACAO = "Access-Control-Allow-Origin"


def preflight_headers(origin, method, req_headers=None):
    h = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if req_headers is not None:
        h.append(("Access-Control-Request-Headers", req_headers))
    return h


def vary_tokens(resp):
    return [t.strip().lower() for v in resp.header_all("Vary") for t in v.split(",")]


def cors_headers(resp):
    return [n for n, _ in resp.headers if n.lower().startswith("access-control-")]


class CorsGlobal(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(GLOBAL, UP=self.up.address)

    def request(self, method, target, headers=()):
        return self.client(self.sluice).request(method, target, headers=headers)

    def assert_upstream_untouched(self):
        self.assertEqual(self.up.events(), [], "a preflight reached the backend")

    def assert_forbidden(self, resp):
        self.assertJsonError(resp, 403, "Forbidden")
        self.assertEqual(cors_headers(resp), [], resp)

    def test_preflight_allowed(self):
        r = self.request("OPTIONS", "/api/things",
                         preflight_headers("https://app.example.com", "PUT",
                                           "Content-Type, Authorization"))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header(ACAO), "https://app.example.com")
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "GET, POST, PUT")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "content-type, authorization")
        self.assertEqual(r.header("Access-Control-Max-Age"), "600")
        self.assertIn("origin", vary_tokens(r))
        self.assertIsNone(r.header("Access-Control-Expose-Headers"), r)
        self.assert_upstream_untouched()

    def test_preflight_without_requested_headers(self):
        r = self.request("OPTIONS", "/api/x", preflight_headers("http://localhost:3000", "GET"))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header(ACAO), "http://localhost:3000")
        self.assert_upstream_untouched()

    def test_preflight_answered_for_any_path(self):
        # The router's 405 (route without OPTIONS) and 404 (no route) come after the
        # global chain, so a global cors filter answers the preflight first.
        for target in ("/getonly", "/nowhere/at/all"):
            r = self.request("OPTIONS", target,
                             preflight_headers("https://app.example.com", "GET"))
            self.assertEqual(r.status, 204, (target, r))
            self.assertEqual(r.header(ACAO), "https://app.example.com")
        self.assert_upstream_untouched()

    def test_preflight_refused(self):
        cases = [
            ("origin not listed", preflight_headers("https://evil.test", "GET")),
            ("origin with other scheme", preflight_headers("http://app.example.com", "GET")),
            ("origin with a path", preflight_headers("https://app.example.com/", "GET")),
            ("method not listed", preflight_headers("https://app.example.com", "DELETE")),
            ("method case", preflight_headers("https://app.example.com", "put")),
            ("header not listed", preflight_headers("https://app.example.com", "POST",
                                                    "content-type, x-secret")),
            ("malformed header list", preflight_headers("https://app.example.com", "POST",
                                                        "content-type authorization")),
        ]
        for name, headers in cases:
            with self.subTest(name):
                r = self.request("OPTIONS", "/api/x", headers)
                self.assert_forbidden(r)
                self.assertIn("origin", vary_tokens(r))
        self.assert_upstream_untouched()

    def test_wildcard_subdomains(self):
        allowed = ["https://a.example.org", "http://a.example.org", "https://a.b.example.org",
                   "https://A.Example.ORG"]
        refused = ["https://example.org", "https://evil-example.org", "https://evilexample.org",
                   "https://a.example.org.evil.test", "https://a.example.org:8443",
                   "ftp://a.example.org", "https://.example.org", "null"]
        for origin in allowed:
            with self.subTest(origin):
                r = self.request("OPTIONS", "/api/x", preflight_headers(origin, "GET"))
                self.assertEqual(r.status, 204, r)
                self.assertEqual(r.header(ACAO), origin)
                r = self.request("GET", "/api/x", [("Origin", origin)])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header(ACAO), origin)
        for origin in refused:
            with self.subTest(origin):
                r = self.request("OPTIONS", "/api/x", preflight_headers(origin, "GET"))
                self.assert_forbidden(r)
                r = self.request("GET", "/api/x", [("Origin", origin)])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(cors_headers(r), [], r)
        self.assertEqual([rec["method"] for rec in self.up.records()],
                         ["GET"] * (len(allowed) + len(refused)))

    def test_actual_request_allowed_origin(self):
        r = self.request("POST", "/api/items", [("Origin", "https://app.example.com")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header_all(ACAO), ["https://app.example.com"])
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        self.assertEqual(r.header("Access-Control-Expose-Headers"), "x-request-id, x-total-count")
        self.assertIn("origin", vary_tokens(r))
        self.assertIsNone(r.header("Access-Control-Allow-Methods"), r)
        recs = self.up.wait_records(1)
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["method"], "POST")
        self.assertIn(["Origin", "https://app.example.com"], recs[0]["headers"])

    def test_actual_request_refused_origin_passes_without_cors_headers(self):
        r = self.request("GET", "/api/items", [("Origin", "https://evil.test")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cors_headers(r), [], r)
        self.assertIn("origin", vary_tokens(r))  # the answer depends on the Origin
        self.assertEqual(len(self.up.wait_records(1)), 1)

    def test_requests_without_origin_untouched(self):
        r = self.request("GET", "/api/items")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cors_headers(r), [], r)
        self.assertEqual(r.header_all("Vary"), [], r)
        # OPTIONS without Access-Control-Request-Method is not a preflight: forwarded.
        r = self.request("OPTIONS", "/api/items", [("Origin", "https://app.example.com")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header(ACAO), "https://app.example.com")
        # Access-Control-Request-Method without Origin: not CORS at all.
        r = self.request("OPTIONS", "/api/items", [("Access-Control-Request-Method", "GET")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cors_headers(r), [], r)
        recs = self.up.wait_records(3)
        self.assertEqual([rec["method"] for rec in recs], ["GET", "OPTIONS", "OPTIONS"])

    def test_response_headers_merged(self):
        # The filter's Access-Control-Allow-Origin replaces the backend's; Vary is extended.
        r = self.request("GET", "/static", [("Origin", "https://x.example.org")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"static")
        self.assertEqual(r.header_all(ACAO), ["https://x.example.org"])
        self.assertEqual(sorted(vary_tokens(r)), ["accept-encoding", "origin"])

    def test_error_replies_carry_cors_headers(self):
        # A browser can read the error of an allowed origin (404 and 405 from the router).
        r = self.request("GET", "/nowhere", [("Origin", "https://app.example.com")])
        self.assertJsonError(r, 404)
        self.assertEqual(r.header(ACAO), "https://app.example.com")
        r = self.request("POST", "/getonly", [("Origin", "https://app.example.com")])
        self.assertJsonError(r, 405)
        self.assertEqual(r.header(ACAO), "https://app.example.com")

    def test_keep_alive_across_preflights(self):
        c = self.client(self.sluice)
        for i in range(3):
            r = c.request("OPTIONS", "/api/%d" % i,
                          preflight_headers("https://app.example.com", "POST", "content-type"))
            self.assertEqual(r.status, 204, r)
            r = c.request("POST", "/api/%d" % i, [("Origin", "https://app.example.com")],
                          body=b"{}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header(ACAO), "https://app.example.com")
        recs = self.up.wait_records(3)
        self.assertEqual([(rec["method"], rec["target"]) for rec in recs],
                         [("POST", "/api/0"), ("POST", "/api/1"), ("POST", "/api/2")])


ROUTES = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: no-options
        match: {methods: [GET], path: /no-options}
        service: backend
        filters:
          - cors: {allow_origins: [https://app.example.com]}
      - name: with-options
        match: {methods: [GET, OPTIONS], path: /with-options}
        service: backend
        filters:
          - cors: {allow_origins: [https://app.example.com]}
      - name: open
        match: {path: "/open/{proxy+}"}
        service: backend
        filters:
          - cors:
              allow_origins: "*"
              allow_methods: "*"
              allow_headers: "*"
              expose_headers: "*"
"""


class CorsRouteFilter(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(ROUTES, UP=self.up.address)

    def request(self, method, target, headers=()):
        return self.client(self.sluice).request(method, target, headers=headers)

    def test_route_filter_needs_options_in_methods(self):
        r = self.request("OPTIONS", "/no-options", preflight_headers("https://app.example.com",
                                                                     "GET"))
        self.assertJsonError(r, 405)
        r = self.request("OPTIONS", "/with-options",
                         preflight_headers("https://app.example.com", "GET"))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header(ACAO), "https://app.example.com")
        # Defaults: the common methods, no extra headers, no credentials, no max age.
        self.assertEqual(r.header("Access-Control-Allow-Methods"),
                         "GET, HEAD, PUT, PATCH, POST, DELETE")
        for name in ("Access-Control-Allow-Headers", "Access-Control-Allow-Credentials",
                     "Access-Control-Max-Age"):
            self.assertIsNone(r.header(name), r)
        r = self.request("OPTIONS", "/with-options",
                         preflight_headers("https://app.example.com", "GET", "x-custom"))
        self.assertJsonError(r, 403, "Forbidden")
        self.assertEqual(self.up.events(), [])

    def test_star_answers_star_and_echoes_requests(self):
        r = self.request("OPTIONS", "/open/x",
                         preflight_headers("https://anyone.test", "PURGE", "X-One, x-two"))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header(ACAO), "*")
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "PURGE")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "X-One, x-two")
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        self.assertNotIn("origin", vary_tokens(r))
        r = self.request("GET", "/open/x", [("Origin", "https://anyone.test")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header(ACAO), "*")
        self.assertEqual(r.header("Access-Control-Expose-Headers"), "*")
        self.assertEqual(r.header_all("Vary"), [], r)
        self.assertEqual(len(self.up.wait_records(1)), 1)


ERROR_LINE = re.compile(r"^[^:\n]+:(\d+):(\d+): (.+)$", re.M)


class CorsConfigErrors(SluiceTestCase):
    HEAD = ("listeners:\n  - name: public\n    address: 127.0.0.1:18080\n"
            "filters:\n  - cors:\n")  # the cors settings start on line 6
    TAIL = "routes:\n  - name: ping\n    match: {path: /ping}\n    response: {status: 200}\n"

    def validate(self, cors_yaml):
        settings = textwrap.dedent(cors_yaml).strip("\n").split("\n")
        text = self.HEAD + "".join("      %s\n" % line for line in settings) + self.TAIL
        path = self.write_config(text)
        rc, out, err = run_sluice("validate", path)
        return rc, [(int(m.group(1)), m.group(3)) for m in ERROR_LINE.finditer(err)], err

    def assert_error(self, cors_yaml, line, fragment):
        rc, errors, err = self.validate(cors_yaml)
        self.assertEqual(rc, 1, err)
        self.assertTrue(any(n == line and fragment.lower() in m.lower() for n, m in errors),
                        "expected line %d: %r in\n%s" % (line, fragment, err))

    def test_valid_config(self):
        rc, errors, err = self.validate("""
            allow_origins: [https://app.example.com, "*.example.com", "https://*.example.net:8443"]
            allow_methods: [GET, POST]
            allow_headers: [content-type, authorization]
            expose_headers: [x-request-id]
            allow_credentials: true
            max_age: 10m
            """)
        self.assertEqual((rc, errors), (0, []), err)

    def test_errors_point_at_the_value(self):
        cases = [
            ("""
             allow_origins: ["*"]
             allow_credentials: true
             """, 7, "allow_credentials cannot be combined"),
            ("""
             allow_origins:
               - https://ok.example.com
               - https://app.example.com/
             """, 8, "has no path"),
            ('allow_origins: [https://app.example.com, "*"]', 6, "list nothing else"),
            ('allow_origins: ["*example.com"]', 6, "expected an origin"),
            ('allow_origins: ["*.*.example.com"]', 6, "wildcard origin"),
            ("allow_origins: []", 6, "is empty"),
            ("allow_origins: https://a.example.com", 6, "expected a list"),
            ("allow_methods: [GET]", 6, "missing required key 'allow_origins'"),
            ("""
             allow_origins: [https://a.example.com]
             allow_methods: [get]
             """, 7, "upper-case"),
            ("""
             allow_origins: [https://a.example.com]
             allow_headers: ["bad header"]
             """, 7, "header name"),
            ("""
             allow_origins: [https://a.example.com]
             expose_headers: "*"
             allow_credentials: true
             """, 7, "not a wildcard"),
            ("""
             allow_origins: [https://a.example.com]
             allow_credentials: yes-please
             """, 7, "true or false"),
            ("""
             allow_origins: [https://a.example.com]
             max_age: 1500ms
             """, 7, "whole seconds"),
            ("""
             allow_origins: [https://a.example.com]
             max_age: 600
             """, 7, "expected a duration"),
            ("""
             allow_origins: [https://a.example.com]
             allow_origin: [https://b.example.com]
             """, 7, "allow_origin"),
        ]
        for yaml_text, line, fragment in cases:
            with self.subTest(fragment):
                self.assert_error(yaml_text, line, fragment)


if __name__ == "__main__":
    unittest.main()
