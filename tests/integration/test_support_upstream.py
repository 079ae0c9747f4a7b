"""The test upstream and the raw client themselves, without sluice: if these fail,
every other integration result is suspect."""

import socket
import time
import unittest

from harness import (EMPTY_SHA256, Client, SluiceTestCase, build_request, chunk_encode,
                     pattern, pattern_sha256)


class UpstreamSelfTest(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()

    def conn(self):
        c = Client("127.0.0.1", self.up.port)
        self.addCleanup(c.close)
        return c

    def test_echo_records_exact_headers_and_body(self):
        c = self.conn()
        r = c.request("POST", "/a/b?x=1", headers=[("X-Odd-Case", " spaced ")], body=b"hello")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["method"], "POST")
        self.assertEqual(doc["target"], "/a/b?x=1")
        self.assertEqual(doc["port"], self.up.port)
        rec = self.up.records()[-1]
        self.assertIn(["X-Odd-Case", "spaced"], rec["headers"])
        self.assertEqual(rec["body_len"], 5)
        self.assertFalse(rec["chunked"])

    def test_keep_alive_and_conn_ids(self):
        c = self.conn()
        for _ in range(3):
            self.assertEqual(c.request("GET", "/").status, 200)
        c2 = self.conn()
        self.assertEqual(c2.request("GET", "/").status, 200)
        ids = [r["conn_id"] for r in self.up.records()]
        self.assertEqual(ids, [1, 1, 1, 2])
        accepts = [e for e in self.up.events() if e["event"] == "accept"]
        self.assertEqual(len(accepts), 2)

    def test_chunked_request_decoded(self):
        body = pattern(10000)
        c = self.conn()
        c.send(build_request("PUT", "/c", [("Transfer-Encoding", "chunked")], b"")
               + chunk_encode(body))
        self.assertEqual(c.read_response().status, 200)
        rec = self.up.records()[-1]
        self.assertTrue(rec["chunked"])
        self.assertEqual(rec["body_len"], 10000)
        self.assertEqual(rec["body_sha256"], pattern_sha256(10000))

    def test_paths(self):
        c = self.conn()
        r = c.request("GET", "/chunked/4")
        self.assertTrue(r.chunked)
        self.assertEqual(r.body, b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n")
        r = c.request("GET", "/bytes/200000")
        self.assertEqual(r.body, pattern(200000))
        r = c.request("HEAD", "/bytes/1000")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1000", b""))
        r = c.request("GET", "/status/204")
        self.assertEqual((r.status, r.body), (204, b""))
        r = c.request("GET", "/status/418")
        self.assertEqual(r.status, 418)
        t = time.monotonic()
        self.assertEqual(c.request("GET", "/delay/200").status, 200)
        self.assertGreaterEqual(time.monotonic() - t, 0.19)
        r = c.request("GET", "/close")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Length"))
        self.assertTrue(r.body.startswith(b"closing body"))
        self.assertTrue(c.is_closed(1))

    def test_expect_continue(self):
        c = self.conn()
        c.send(build_request("POST", "/", [("Expect", "100-continue"),
                                           ("Content-Length", "3")], b""))
        self.assertEqual(c.read_interim()[0], 100)
        c.send(b"abc")
        self.assertEqual(c.read_response().status, 200)

    def test_hang_and_reset(self):
        c = Client("127.0.0.1", self.up.port, timeout=0.5)
        self.addCleanup(c.close)
        c.send(build_request("GET", "/hang"))
        with self.assertRaises(socket.timeout):
            c.read_response()
        c2 = self.conn()
        c2.send(build_request("GET", "/reset"))
        self.assertTrue(c2.is_closed(2))
        self.assertEqual(len(self.up.records()), 2)

    def test_streamed_download_hash(self):
        c = self.conn()
        n = 20 * 1024 * 1024
        c.send(build_request("GET", "/bytes/%d" % n))
        r = c.read_response(keep_body=False)
        self.assertEqual((r.body_len, r.body_sha256), (n, pattern_sha256(n)))

    def test_empty_body_hash(self):
        c = self.conn()
        c.request("GET", "/")
        self.assertEqual(self.up.records()[-1]["body_sha256"], EMPTY_SHA256)


if __name__ == "__main__":
    unittest.main()
