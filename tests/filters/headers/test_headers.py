"""headers through the real binary: request headers as the upstream got them, response
headers as the client got them, strip_prefix and rewrite of the forwarded path (query
kept), global use disabled or overridden per route, and config errors."""

import unittest

from harness import SluiceTestCase, header_values, run_sluice

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    filters:
      - headers:
          response: {add: {x-global: "yes"}}
    routes:
      - name: edit
        match: {path: "/edit/{proxy+}"}
        service: backend
        filters:
          - headers:
              request:
                remove: [x-drop, X-Also-Drop, x-forwarded-for]
                set: {x-set: new value, host: backend.internal}
                add: {x-added: "1", x-multi: from-gateway}
              response:
                remove: [content-type]
                set: {x-set-resp: "a;b=c"}
                add: {x-added-resp: "2", cache-control: no-store}
      - name: retype
        match: {path: "/retype/{proxy+}"}
        service: backend
        filters:
          - headers:
              response: {set: {Content-Type: text/x-replaced}}
      - name: stripped
        match: {path: "/{proxy+}"}
        service: backend
        filters:
          - headers: {strip_prefix: /api/}
      - name: rewritten
        match: {path: "/v1/{id}/{rest+}"}
        service: backend
        filters:
          - headers: {rewrite: "/users/{id}/items/{rest+}"}
      - name: unknown_param
        match: {path: "/v2/{id}"}
        service: backend
        filters:
          - headers: {rewrite: "/x/{nope}/{id}"}
      - name: quiet
        match: {path: /quiet}
        response: {status: 200, body: "q"}
        filters:
          - headers: {disabled: true}
      - name: override
        match: {path: /override}
        response: {status: 200, body: "o"}
        filters:
          - headers:
              response: {add: {x-route: "only"}}
"""


class Headers(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def forwarded(self, target, headers=()):
        c = self.client(self.sluice)
        n = len(self.up.records())
        r = c.request("GET", target, headers=headers)
        self.assertEqual(r.status, 200, r)
        recs = self.up.wait_records(n + 1)
        self.assertEqual(len(recs), n + 1, recs)
        return r, recs[-1]

    def test_request_headers_as_the_upstream_got_them(self):
        r, rec = self.forwarded("/edit/thing", headers=[
            ("X-Drop", "secret"), ("x-also-drop", "1"), ("X-Set", "old"), ("x-set", "older"),
            ("X-Added", "0"), ("X-Keep", "kept"), ("X-Forwarded-For", "203.0.113.9")])
        self.assertEqual(header_values(rec, "x-drop"), [])
        self.assertEqual(header_values(rec, "x-also-drop"), [])
        self.assertEqual(header_values(rec, "x-set"), ["new value"])
        self.assertEqual(header_values(rec, "x-added"), ["0", "1"])  # add keeps the client's
        self.assertEqual(header_values(rec, "x-multi"), ["from-gateway"])
        self.assertEqual(header_values(rec, "x-keep"), ["kept"])
        self.assertEqual(header_values(rec, "host"), ["backend.internal"])
        # The client's X-Forwarded-For was removed: sluice sends only the peer address.
        self.assertEqual(header_values(rec, "x-forwarded-for"), ["127.0.0.1"])
        # The client's Host is still what X-Forwarded-Host reports.
        self.assertEqual(header_values(rec, "x-forwarded-host"), ["example.test"])

    def test_response_headers_as_the_client_got_them(self):
        r, rec = self.forwarded("/edit/thing")
        self.assertIsNone(r.header("content-type"))  # the upstream's, removed
        self.assertEqual(r.header_all("x-set-resp"), ["a;b=c"])
        self.assertEqual(r.header_all("x-added-resp"), ["2"])
        self.assertEqual(r.header_all("cache-control"), ["no-store"])
        # The route's own `headers` takes the place of the global one.
        self.assertIsNone(r.header("x-global"))
        self.assertEqual(r.json()["method"], "GET")  # the body is untouched

    def test_set_replaces_an_upstream_header(self):
        r, rec = self.forwarded("/retype/x")  # the upstream sends application/json
        self.assertEqual(r.header_all("content-type"), ["text/x-replaced"])
        r, rec = self.forwarded("/retype/chunked/2")  # and text/plain here, chunked
        self.assertEqual(r.header_all("content-type"), ["text/x-replaced"])
        self.assertTrue(r.chunked)
        self.assertEqual(r.body, b"chunk 0\nchunk 1\n")

    def test_strip_prefix(self):
        cases = [("/api/users/7?x=1&y=2", "/users/7?x=1&y=2"),
                 ("/api", "/"),
                 ("/api/", "/"),
                 ("/api?q", "/?q"),
                 ("/apiary/x", "/apiary/x"),  # whole segments only
                 ("/other/api/x", "/other/api/x")]
        for target, expected in cases:
            r, rec = self.forwarded(target)
            self.assertEqual(rec["target"], expected, target)

    def test_rewrite_with_params(self):
        r, rec = self.forwarded("/v1/42/a/b%2Fc/d?full=1")
        self.assertEqual(rec["target"], "/users/42/items/a/b%2Fc/d?full=1")
        r, rec = self.forwarded("/v1/x-y/z")
        self.assertEqual(rec["target"], "/users/x-y/items/z")

    def test_rewrite_unknown_param_is_empty(self):
        r, rec = self.forwarded("/v2/9")
        self.assertEqual(rec["target"], "/x//9")

    def test_global_filter_disabled_and_overridden(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/quiet")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("x-global"))
        r = c.request("GET", "/override")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("x-global"))
        self.assertEqual(r.header_all("x-route"), ["only"])

    def test_local_replies_get_response_headers_too(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/")  # no route: the global chain still runs
        self.assertJsonError(r, 404)
        self.assertEqual(r.header_all("x-global"), ["yes"])


class HeadersConfig(SluiceTestCase):
    def validate(self, settings):
        path = self.write_config("""
            listeners:
              - name: public
                address: 127.0.0.1:1
            routes:
              - name: ping
                match: {path: /ping}
                response: {status: 200}
                filters:
                  - headers: %s
            """ % settings)
        return run_sluice("validate", path)

    def assertError(self, settings, message):
        rc, out, err = self.validate(settings)
        self.assertEqual(rc, 1, (settings, out, err))
        self.assertRegex(err, r"sluice\.yaml:9:\d+: .*" + message, settings)

    def test_errors(self):
        self.assertError('{request: {add: {"bad name": x}}}', "'bad name' is not a valid header")
        self.assertError('{request: {set: {x-a: "one\\r\\nx-b: two"}}}', "control characters")
        self.assertError('{response: {add: {x-a: "nul\\0"}}}', "control characters")
        self.assertError('{request: {add: {Content-Length: "5"}}}', "managed by the proxy")
        self.assertError('{response: {set: {transfer-encoding: chunked}}}', "managed by the proxy")
        self.assertError('{request: {remove: [host]}}', "managed by the proxy")
        self.assertError('{request: {add: {host: a}}}', "managed by the proxy")
        self.assertError('{response: {set: {host: a}}}', "managed by the proxy")
        self.assertError('{request: {append: {x-a: b}}}', "append")
        self.assertError('{request: {remove: x-a}}', "expected a list")
        self.assertError('{strip_prefix: api}', "expected a path prefix like /api")
        self.assertError('{strip_prefix: /}', "expected a path prefix like /api")
        self.assertError('{rewrite: "users/{id}"}', "must start with '/'")
        self.assertError('{rewrite: "/users/{a-b}"}', "not a parameter name")
        self.assertError('{rewrite: "/users/{id"}', "unbalanced")
        self.assertError('{rewrite: "/users/}"}', "unbalanced")
        self.assertError('{rewrite: "/a b"}', "not valid in a path")
        self.assertError('{rewrite: "/a?b=1"}', "not valid in a path")
        self.assertError('{strip_prefix: /a, rewrite: /b}', "either strip_prefix or rewrite")
        self.assertError('{}', "at least one of")

    def test_valid(self):
        rc, out, err = self.validate(
            '{request: {set: {host: h, x-tab: "a\\tb"}, remove: []}, rewrite: "/a/{b}/{c+}"}')
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
