"""Routing through the real binary: static responses, 404/405, hosts, path templates
and path normalisation."""

import unittest

from harness import SluiceTestCase

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: ping
        match: {path: /ping}
        response: {status: 200, body: "pong"}
      - name: teapot
        match: {methods: [GET], path: /teapot}
        response:
          status: 418
          headers: {Content-Type: text/plain, X-Tea: earl-grey}
          body: "short and stout"
      - name: created
        match: {methods: [POST, PUT], path: /things}
        response: {status: 201, body: "{\\"ok\\":true}", headers: {Content-Type: application/json}}
      - name: empty
        match: {path: /nothing}
        response: {status: 204}
      - name: b
        match: {path: /b}
        response: {status: 200, body: "route-b"}
      - name: a-param
        match: {path: "/a/{x}"}
        response: {status: 200, body: "route-a"}
      - name: hosted
        match: {path: /host-only, host: api.example.com}
        response: {status: 200, body: "exact-host"}
      - name: wildcard-hosted
        match: {path: /host-only, host: "*.wild.example"}
        response: {status: 200, body: "wildcard-host"}
      - name: api
        match: {path: "/api/{proxy+}"}
        service: backend
"""


class Routing(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def get(self, target, method="GET", **kw):
        c = self.client(self.sluice)
        return c.request(method, target, **kw)

    def assert_upstream_untouched(self):
        self.assertEqual(self.up.events(), [], "the upstream was contacted")

    def test_static_response(self):
        r = self.get("/ping")
        self.assertEqual((r.status, r.body), (200, b"pong"), r)

    def test_static_response_with_headers(self):
        r = self.get("/teapot")
        self.assertEqual(r.status, 418, r)
        self.assertEqual(r.body, b"short and stout")
        self.assertEqual(r.header("X-Tea"), "earl-grey")
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.assertEqual(r.header("Content-Length"), str(len(b"short and stout")))

    def test_static_response_post_with_body(self):
        r = self.get("/things", method="POST", body=b"ignored body")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json(), {"ok": True})
        self.assert_upstream_untouched()

    def test_static_204_has_no_body(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/nothing")
        self.assertEqual((r.status, r.body), (204, b""), r)
        self.assertEqual(c.request("GET", "/ping").body, b"pong")

    def test_static_head(self):
        c = self.client(self.sluice)
        r = c.request("HEAD", "/ping")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertEqual(c.request("GET", "/ping").body, b"pong")

    def test_not_found(self):
        for target in ("/", "/nope", "/pingx", "/ping/more", "/apix/y"):
            r = self.get(target)
            self.assertJsonError(r, 404, "Not Found")
        self.assert_upstream_untouched()

    def test_method_not_allowed(self):
        r = self.get("/teapot", method="DELETE")
        self.assertJsonError(r, 405)
        allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
        self.assertIn("GET", allow, r)
        self.assertNotIn("DELETE", allow, r)
        r = self.get("/things", method="GET")
        self.assertEqual(r.status, 405, r)
        allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
        self.assertTrue({"POST", "PUT"} <= allow, r)
        self.assert_upstream_untouched()

    def test_path_parameter_route(self):
        self.assertEqual(self.get("/a/anything").body, b"route-a")

    def test_greedy_route_forwards_full_path(self):
        r = self.get("/api/x/y/z?q=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.wait_records(1)[0]["target"], "/api/x/y/z?q=1")

    def test_host_matching(self):
        self.assertEqual(self.get("/host-only", host="api.example.com").body, b"exact-host")
        self.assertEqual(self.get("/host-only", host="api.example.com:8080").body, b"exact-host")
        self.assertEqual(self.get("/host-only", host="x.wild.example").body, b"wildcard-host")
        self.assertEqual(self.get("/host-only", host="other.example").status, 404)

    def test_dot_segments_normalised(self):
        for target in ("/a/../b", "/./b", "/a/x/../../b", "/a/./../b"):
            r = self.get(target)
            self.assertEqual((r.status, r.body), (200, b"route-b"), (target, r))

    def test_duplicate_slashes_normalised(self):
        for target in ("//b", "/a//x", "/a///x"):
            r = self.get(target)
            self.assertEqual(r.status, 200, (target, r))
        self.assertEqual(self.get("//b").body, b"route-b")
        self.assertEqual(self.get("/a//x").body, b"route-a")

    def test_percent_encoded_unreserved_decoded(self):
        self.assertEqual(self.get("/%62").body, b"route-b")     # %62 = b
        self.assertEqual(self.get("/%70ing").body, b"pong")     # %70 = p

    def test_normalised_path_forwarded_to_service(self):
        r = self.get("/api/x/../y?keep=%2F")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.wait_records(1)[0]["target"], "/api/y?keep=%2F")

    def test_path_escaping_root_refused(self):
        for target in ("/../x", "/a/../../x", "/..", "/%2e%2e/x", "/api/../../etc/passwd"):
            c = self.client(self.sluice)
            r = c.request("GET", target)
            self.assertJsonError(r, 400)
        self.assert_upstream_untouched()


if __name__ == "__main__":
    unittest.main()
