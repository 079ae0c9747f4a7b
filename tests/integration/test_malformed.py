"""Malformed and ambiguous requests (request smuggling vectors), limits and the header
timeout: each gets the expected status, the connection is closed, and the upstream
proves that not one byte of it arrived."""

import time
import unittest

from harness import SluiceTestCase

CONFIG = """
    workers: 1
    listeners:
      - name: public
        address: @LISTEN@
        header_timeout: 300ms
    services:
      backend:
        endpoints: [@UP@]
    routes:
      - name: small
        match: {path: "/small/{proxy+}"}
        service: backend
        max_body: 1KiB
      - name: api
        match: {path: "/{proxy+}"}
        service: backend
"""

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def head(*lines, target=b"/x", method=b"POST", version=b"HTTP/1.1"):
    return b"%s %s %s\r\n" % (method, target, version) + b"".join(l + b"\r\n" for l in lines) \
        + b"\r\n"


# (name, exact bytes sent, expected status)
CASES = [
    ("content-length and transfer-encoding",
     head(b"Host: a", b"Content-Length: 5", b"Transfer-Encoding: chunked")
     + b"0\r\n\r\n" + SMUGGLED, 400),
    ("transfer-encoding then content-length",
     head(b"Host: a", b"Transfer-Encoding: chunked", b"Content-Length: 40")
     + b"0\r\n\r\n" + SMUGGLED, 400),
    ("two different content-lengths",
     head(b"Host: a", b"Content-Length: 5", b"Content-Length: 6") + b"hello!", 400),
    ("content-length list with different values",
     head(b"Host: a", b"Content-Length: 5, 6") + b"hello!", 400),
    ("content-length not a number", head(b"Host: a", b"Content-Length: abc"), 400),
    ("content-length negative", head(b"Host: a", b"Content-Length: -1"), 400),
    ("content-length with plus sign", head(b"Host: a", b"Content-Length: +5") + b"hello", 400),
    ("content-length in exponent form", head(b"Host: a", b"Content-Length: 1e3"), 400),
    ("content-length empty", head(b"Host: a", b"Content-Length:"), 400),
    ("content-length overflows 64 bits",
     head(b"Host: a", b"Content-Length: 99999999999999999999999"), 400),
    ("transfer-encoding gzip (last coding not chunked)",
     head(b"Host: a", b"Transfer-Encoding: gzip") + b"0\r\n\r\n", 400),
    ("transfer-encoding chunked then gzip",
     head(b"Host: a", b"Transfer-Encoding: chunked, gzip") + b"0\r\n\r\n", 400),
    ("transfer-encoding chunked twice",
     head(b"Host: a", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked")
     + b"0\r\n\r\n", 400),
    ("transfer-encoding with junk around chunked",
     head(b"Host: a", b"Transfer-Encoding: xchunked") + b"0\r\n\r\n", 400),
    ("obs-fold continuation line",
     head(b"Host: a", b"X-Folded: first", b" second", method=b"GET"), 400),
    ("whitespace before the first header",
     head(b" Host: a", b"X-A: b", method=b"GET"), 400),
    ("bare LF line endings", b"GET /x HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF inside the head", b"GET /x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
    ("bare CR inside a value", head(b"Host: a", b"X-A: b\rc", method=b"GET"), 400),
    ("space before colon", head(b"Host: a", b"X-A : b", method=b"GET"), 400),
    ("tab before colon", head(b"Host: a", b"X-A\t: b", method=b"GET"), 400),
    ("invalid character in header name", head(b"Host: a", b"X@A: b", method=b"GET"), 400),
    ("empty header name", head(b"Host: a", b": b", method=b"GET"), 400),
    ("header line without colon", head(b"Host: a", b"NoColonHere", method=b"GET"), 400),
    ("invalid chunk size",
     head(b"Host: a", b"Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow",
     head(b"Host: a", b"Transfer-Encoding: chunked")
     + b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size with leading space",
     head(b"Host: a", b"Transfer-Encoding: chunked") + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk data longer than its size",
     head(b"Host: a", b"Transfer-Encoding: chunked") + b"3\r\nhello\r\n0\r\n\r\n", 400),
    ("missing Host on HTTP/1.1", b"GET /x HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("two Host headers", head(b"Host: a", b"Host: b", method=b"GET"), 400),
    ("Host with a space", head(b"Host: a b", method=b"GET"), 400),
    ("bad version token", head(b"Host: a", method=b"GET", version=b"HTTX/1.1"), 400),
    ("malformed version", head(b"Host: a", method=b"GET", version=b"HTTP/1.1x"), 400),
    ("lower-case version", head(b"Host: a", method=b"GET", version=b"http/1.1"), 400),
    ("unsupported major version", head(b"Host: a", method=b"GET", version=b"HTTP/2.0"), 505),
    ("invalid character in method", head(b"Host: a", method=b"G(T"), 400),
    ("double space in request line", b"GET  /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("request line without version", b"GET /x\r\nHost: a\r\n\r\n", 400),
    ("target not in origin form", head(b"Host: a", method=b"GET", target=b"x/y"), 400),
    ("NUL in a header value", head(b"Host: a", b"X-A: b\x00c", method=b"GET"), 400),
    ("NUL in the target", head(b"Host: a", method=b"GET", target=b"/x\x00y"), 400),
    ("request line over 8 KiB",
     head(b"Host: a", method=b"GET", target=b"/" + b"a" * 9000), 414),
    ("more than 100 headers",
     head(b"Host: a", *[b"X-H-%d: v" % i for i in range(101)], method=b"GET"), 431),
    ("header block over 64 KiB",
     head(b"Host: a", *[b"X-Big-%d: %s" % (i, b"v" * 2000) for i in range(40)],
          method=b"GET"), 431),
    ("declared body over max_body",
     head(b"Host: a", b"Content-Length: 2048", target=b"/small/x") + b"x" * 2048, 413),
]


class Malformed(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.sluice = self.start_sluice(CONFIG, UP=self.up.address)

    def assert_refused(self, data, status, what):
        c = self.client(self.sluice)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # sluice may refuse before reading it all
        try:
            r = c.read_response()
        except Exception as e:
            self.fail("%s: no complete response (%s: %s)" % (what, type(e).__name__, e))
        self.assertEqual(r.status, status, "%s: %r" % (what, r))
        self.assertJsonError(r, status)
        self.assertTrue(c.is_closed(3.0), "%s: connection left open after %d" % (what, status))
        c.close()

    def assert_nothing_reached_upstream(self, what, seen=0):
        """Not one byte of the request reached the upstream: no head arrived and nothing
        was logged (a partial head would be logged as an error record). Events before
        the first `seen` ones are from earlier cases. A bare TCP connect with no bytes
        is tolerated: a streaming proxy may open the upstream connection as soon as the
        head is valid, and find the body's framing broken before the connect completes."""
        heads = [e for e in self.up.events()[seen:] if e["event"] != "accept"]
        self.assertEqual(heads, [], "%s: the upstream saw this: %r" % (what, heads))
        records = self.up.records()
        self.assertEqual(records, [], "%s: the upstream logged: %r" % (what, records))

    def test_refused_requests(self):
        self.assertGreaterEqual(len(CASES), 30)
        for name, data, status in CASES:
            with self.subTest(name):
                seen = len(self.up.events())  # so that one failure does not fail the rest
                self.assert_refused(data, status, name)
                time.sleep(0.05)  # let anything forwarded arrive
                self.assert_nothing_reached_upstream(name, seen)
        time.sleep(0.3)
        self.assert_nothing_reached_upstream("after all cases")
        # ...and the gateway is still fine.
        c = self.client(self.sluice)
        self.assertEqual(c.request("GET", "/ok").status, 200)

    def test_chunked_body_over_max_body(self):
        c = self.client(self.sluice)
        data = head(b"Host: a", b"Transfer-Encoding: chunked", target=b"/small/x")
        data += (b"200\r\n" + b"y" * 512 + b"\r\n") * 4 + b"0\r\n\r\n"
        c.send(data)
        r = c.read_response()
        self.assertJsonError(r, 413)
        self.assertTrue(c.is_closed(3.0))
        time.sleep(0.2)
        self.assertEqual(self.up.records(), [], "a complete over-limit request was forwarded")

    def test_body_at_max_body_accepted(self):
        c = self.client(self.sluice)
        r = c.request("POST", "/small/x", body=b"z" * 1024)
        self.assertEqual(r.status, 200, r)

    def test_header_timeout_408(self):
        c = self.client(self.sluice)
        c.send(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Partial: ")
        r = c.read_response()
        self.assertJsonError(r, 408)
        self.assertTrue(c.is_closed(3.0))
        self.assert_nothing_reached_upstream("partial head")

    def test_header_timeout_counts_whole_head(self):
        # A head trickling in (slowloris) must not reset the timer with every byte.
        c = self.client(self.sluice)
        data = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 100
        t0 = time.monotonic()
        status = None
        for b in data:
            try:
                c.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if c.is_closed(0.05) or c.buf:
                break
            if time.monotonic() - t0 > 5:
                break
        try:
            status = c.read_response().status
        except Exception as e:
            self.fail("no 408 for a trickling head (%s)" % e)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 408)
        self.assertLess(elapsed, 4.0, "408 only %.1fs after the head began (the client trickled "
                        "a byte every 50ms for up to 5s): header_timeout 300ms must bound the "
                        "whole head, not the gap between reads" % elapsed)

    def test_smuggled_request_after_refusal_never_runs(self):
        c = self.client(self.sluice)
        c.send(head(b"Host: a", b"Content-Length: 0", b"Content-Length: 45")
               + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.assertTrue(c.is_closed(3.0))
        time.sleep(0.2)
        self.assert_nothing_reached_upstream("smuggled")


if __name__ == "__main__":
    unittest.main()
