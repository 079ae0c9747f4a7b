"""Requests forwarded to a service: what the client sees and what the upstream got."""

import hashlib
import os
import time
import unittest

from harness import (EMPTY_SHA256, SluiceTestCase, build_request, chunk_encode, header_names,
                     header_values, pattern, pattern_sha256)

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: limited
        match: {path: "/limited/{proxy+}"}
        service: backend
        max_body: 1MiB
      - name: api
        match: {path: "/{proxy+}"}
        service: backend
"""

HOP_BY_HOP = {"connection", "keep-alive", "te", "transfer-encoding", "upgrade",
              "proxy-connection", "trailer", "proxy-authorization"}


class Forwarding(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def one_record(self):
        recs = self.up.wait_records(1)
        self.assertEqual(len(recs), 1, recs)
        return recs[0]

    def assert_forwarded_headers(self, rec, host="example.test"):
        self.assertEqual(len(header_values(rec, "Host")), 1, rec["headers"])
        xff = header_values(rec, "X-Forwarded-For")
        self.assertEqual(len(xff), 1, rec["headers"])
        self.assertEqual(xff[0].split(",")[-1].strip(), "127.0.0.1", rec["headers"])
        self.assertEqual(header_values(rec, "X-Forwarded-Proto"), ["http"], rec["headers"])
        self.assertEqual(header_values(rec, "X-Forwarded-Host"), [host], rec["headers"])

    def test_get_with_query_and_headers(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/api/items?x=1&y=two%20words",
                      headers=[("X-Custom", "abc"), ("Accept", "application/json"),
                               ("X-Multi", "one"), ("X-Multi", "two")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["port"], self.up.port)
        rec = self.one_record()
        self.assertEqual(rec["method"], "GET")
        self.assertEqual(rec["target"], "/api/items?x=1&y=two%20words")
        self.assertEqual(rec["version"], "HTTP/1.1")
        self.assertEqual(rec["body_len"], 0)
        self.assertEqual(header_values(rec, "X-Custom"), ["abc"])
        self.assertEqual(header_values(rec, "Accept"), ["application/json"])
        # Repeated fields keep their order (folding them into one is allowed).
        multi = ",".join(header_values(rec, "X-Multi")).replace(" ", "")
        self.assertEqual(multi, "one,two")
        self.assert_forwarded_headers(rec)

    def test_post_body(self):
        body = os.urandom(100_000)
        c = self.client(self.sluice)
        r = c.request("POST", "/api/upload", headers=[("Content-Type", "application/x-raw")],
                      body=body)
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["target"], "/api/upload")
        self.assertEqual(rec["body_len"], len(body))
        self.assertEqual(rec["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(header_values(rec, "Content-Type"), ["application/x-raw"])
        if not rec["chunked"]:
            self.assertEqual(header_values(rec, "Content-Length"), [str(len(body))])
        self.assert_forwarded_headers(rec)

    def test_put_body(self):
        body = b'{"name": "sluice", "n": 1}'
        c = self.client(self.sluice)
        r = c.request("PUT", "/api/things/7", headers=[("Content-Type", "application/json")],
                      body=body)
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual((rec["method"], rec["target"], rec["body_len"], rec["body_sha256"]),
                         ("PUT", "/api/things/7", len(body), hashlib.sha256(body).hexdigest()))

    def test_delete(self):
        c = self.client(self.sluice)
        r = c.request("DELETE", "/api/things/7", headers=[("Authorization", "Bearer t0k3n")])
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual((rec["method"], rec["target"], rec["body_len"]),
                         ("DELETE", "/api/things/7", 0))
        self.assertEqual(header_values(rec, "Authorization"), ["Bearer t0k3n"])

    def test_patch_and_options_methods(self):
        c = self.client(self.sluice)
        self.assertEqual(c.request("PATCH", "/api/p", body=b"x").status, 200)
        self.assertEqual(c.request("OPTIONS", "/api/p").status, 200)
        recs = self.up.wait_records(2)
        self.assertEqual([r["method"] for r in recs], ["PATCH", "OPTIONS"])

    def test_x_forwarded_for_appends_to_client_value(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/xff", headers=[("X-Forwarded-For", "203.0.113.9")])
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        xff = [p.strip() for p in ",".join(header_values(rec, "X-Forwarded-For")).split(",")]
        self.assertEqual(xff, ["203.0.113.9", "127.0.0.1"], rec["headers"])

    def test_hop_by_hop_headers_not_forwarded(self):
        c = self.client(self.sluice)
        c.send(b"POST /hop HTTP/1.1\r\n"
               b"Host: example.test\r\n"
               b"Connection: keep-alive, X-Drop-Me\r\n"
               b"Keep-Alive: timeout=5, max=100\r\n"
               b"X-Drop-Me: secret\r\n"
               b"TE: trailers\r\n"
               b"Upgrade: foo/2\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"X-Keep-Me: yes\r\n"
               b"Content-Length: 4\r\n\r\nbody")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        names = header_names(rec)
        for name in ("keep-alive", "te", "upgrade", "proxy-connection", "x-drop-me",
                     "transfer-encoding"):
            self.assertNotIn(name, names, rec["headers"])
        for value in header_values(rec, "Connection"):
            tokens = {t.strip().lower() for t in value.split(",")}
            self.assertTrue(tokens <= {"keep-alive", "close"}, rec["headers"])
        self.assertEqual(header_values(rec, "X-Keep-Me"), ["yes"])
        self.assertEqual(rec["body_len"], 4)
        # Nor hop-by-hop headers of the upstream's response reach the client as such.
        for value in r.header_all("Connection"):
            tokens = {t.strip().lower() for t in value.split(",")}
            self.assertTrue(tokens <= {"keep-alive", "close"}, r.headers)

    def test_chunked_request_body(self):
        body = pattern(300_000)
        c = self.client(self.sluice)
        c.send(build_request("POST", "/chunky", [("Transfer-Encoding", "chunked")])
               + chunk_encode(body))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual(rec["body_len"], len(body))
        self.assertEqual(rec["body_sha256"], pattern_sha256(len(body)))
        if not rec["chunked"]:
            self.assertEqual(header_values(rec, "Content-Length"), [str(len(body))])

    def test_chunked_request_with_extensions_and_trailers(self):
        c = self.client(self.sluice)
        c.send(build_request("POST", "/ext", [("Transfer-Encoding", "chunked")])
               + b"5;name=value\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual(rec["body_len"], 11)
        self.assertEqual(rec["body_sha256"], hashlib.sha256(b"hello world").hexdigest())

    def test_empty_chunked_request_body(self):
        c = self.client(self.sluice)
        c.send(build_request("POST", "/empty", [("Transfer-Encoding", "chunked")])
               + b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual((rec["body_len"], rec["body_sha256"]), (0, EMPTY_SHA256))

    def test_chunked_response(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/chunked/50")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"".join(b"chunk %d\n" % i for i in range(50)))
        # The connection is still usable: the response was framed exactly.
        self.assertEqual(c.request("GET", "/after").status, 200)

    def test_large_response_with_content_length(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/bytes/3000000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "3000000")
        self.assertEqual(r.body, pattern(3_000_000))

    def test_close_delimited_upstream_response(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/close")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body.startswith(b"closing body"), r)
        self.assertTrue(r.body.endswith(b"connection\n"), r)

    def test_upstream_status_passed_through(self):
        c = self.client(self.sluice)
        for code in (201, 400, 404, 418, 500, 503):
            r = c.request("GET", "/status/%d" % code)
            self.assertEqual(r.status, code, r)
            self.assertEqual(r.json(), {"status": code})

    def test_head_has_no_body(self):
        c = self.client(self.sluice)
        r = c.request("HEAD", "/bytes/1000")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), "1000")
        self.assertEqual(r.body, b"")
        # A body sent after the head would be read as the next response here.
        r = c.request("GET", "/status/201")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.up.wait_records(2)[0]["method"], "HEAD")

    def test_204_and_304_have_no_body(self):
        c = self.client(self.sluice)
        for code in (204, 304):
            r = c.request("GET", "/status/%d" % code)
            self.assertEqual(r.status, code, r)
            self.assertEqual(r.body, b"")
            self.assertNotIn("chunked", ",".join(r.header_all("Transfer-Encoding")))
            r = c.request("GET", "/status/202")
            self.assertEqual(r.status, 202, r)

    def test_expect_100_continue(self):
        body = pattern(5000)
        c = self.client(self.sluice)
        c.send(build_request("POST", "/expect", [("Expect", "100-continue"),
                                                 ("Content-Length", str(len(body)))]))
        status, _ = c.read_interim()
        self.assertEqual(status, 100, "expected an interim 100 Continue before the body")
        c.send(body)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        rec = self.one_record()
        self.assertEqual((rec["body_len"], rec["body_sha256"]),
                         (len(body), pattern_sha256(len(body))))

    def test_expect_100_continue_refused_request_gets_final_status(self):
        # Over max_body: the final 413 comes instead of 100, and nothing is forwarded.
        c = self.client(self.sluice)
        c.send(build_request("POST", "/limited/x", [("Expect", "100-continue"),
                                                    ("Content-Length", str(20 * 1024 * 1024))]))
        r = c.read_response()
        self.assertEqual(r.interim, [], "100 Continue sent for a request that is refused")
        self.assertJsonError(r, 413)
        time.sleep(0.1)
        self.assertEqual(self.up.records(), [])

    def test_client_aborts_upload(self):
        # The client goes away in the middle of a body: the upstream must not get a
        # complete request, and the gateway goes on serving (no reuse of a half-sent
        # upstream connection).
        c = self.client(self.sluice)
        c.send(build_request("POST", "/aborted", [("Content-Length", "1000000")]) + b"a" * 100000)
        time.sleep(0.2)
        c.close()
        time.sleep(0.2)
        c2 = self.client(self.sluice)
        for i in range(3):
            r = c2.request("GET", "/after-abort%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/after-abort%d" % i)
        self.assertNotIn("/aborted", [x.get("target") for x in self.up.records()])

    def test_client_leaves_while_upstream_is_slow(self):
        c = self.client(self.sluice)
        c.send(build_request("GET", "/delay/300"))
        self.up.wait_records(1)
        c.close()
        time.sleep(0.4)
        c2 = self.client(self.sluice)
        self.assertEqual(c2.request("GET", "/still-fine").status, 200)

    def test_http10_client(self):
        c = self.client(self.sluice)
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.version, ("HTTP/1.0", "HTTP/1.1"))
        self.assertEqual(r.json()["target"], "/old")
        self.assertFalse(r.chunked, "chunked sent to an HTTP/1.0 client")
        self.assertTrue(c.is_closed(), "HTTP/1.0 without keep-alive must be closed after reply")

    def test_http10_client_chunked_upstream(self):
        c = self.client(self.sluice)
        c.send(b"GET /chunked/5 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.chunked, "chunked sent to an HTTP/1.0 client")
        self.assertEqual(r.body, b"".join(b"chunk %d\n" % i for i in range(5)))

    def test_http10_keep_alive(self):
        c = self.client(self.sluice)
        for i in range(2):
            c.send(b"GET /ka%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/ka%d" % i)
        self.assertEqual(len(self.up.wait_records(2)), 2)

    def test_connection_close_from_client(self):
        c = self.client(self.sluice)
        r = c.request("GET", "/bye", headers=[("Connection", "close")])
        self.assertEqual(r.status, 200, r)
        self.assertTrue(c.is_closed(), "connection not closed after Connection: close")


if __name__ == "__main__":
    unittest.main()
