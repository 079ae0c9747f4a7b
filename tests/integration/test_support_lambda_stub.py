"""The test helper tests/support/lambda_stub.py does what its docstring says: its SigV4
verifier accepts what AWS published as correctly signed and refuses anything else, and
the server answers like the Lambda Invoke API.

The requests here are signed by a small SigV4 signer written in this file, apart from
the stub's verifier, so that one mistake shared by both cannot go unnoticed; the AWS
test-suite vectors pin both to what AWS itself computes."""

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness  # noqa: F401  (puts tests/support on sys.path)
from harness import DEFAULT_TIMEOUT, ROOT, _die_with_parent
import lambda_stub

STUB_PY = os.path.join(ROOT, "tests", "support", "lambda_stub.py")
SUITE_KEY = "AKIDEXAMPLE"
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"
ACCESS_KEY = "AKIDSELFTEST"
SECRET = "self/test+secret"
REGION = "eu-central-1"
ARN = "arn:aws:lambda:eu-central-1:123456789012:function:hello"


def suite_request(signature, signed="host;x-amz-date", extra=()):
    """A request of the AWS SigV4 test suite, as (method, target, headers)."""
    headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", SUITE_DATE)] + list(extra)
    headers.append(("Authorization",
                    "AWS4-HMAC-SHA256 Credential=%s/20150830/us-east-1/service/aws4_request, "
                    "SignedHeaders=%s, Signature=%s" % (SUITE_KEY, signed, signature)))
    return headers


class VerifierKnownAnswers(unittest.TestCase):
    """lambda_stub.verify() against the AWS Signature Version 4 test suite."""

    def check(self, method, target, headers, body=b"", **kw):
        return lambda_stub.verify(method, target, headers, body, SUITE_KEY,
                                  kw.pop("secret", SUITE_SECRET), "us-east-1",
                                  service="service", **kw)

    def test_get_vanilla(self):
        good = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        self.assertEqual(self.check("GET", "/", suite_request(good)), (True, ""))
        # Any change must be refused: one hex digit, the secret, the method, the path,
        # a signed header's value, the body.
        bad = good[:-1] + ("0" if good[-1] != "0" else "1")
        self.assertFalse(self.check("GET", "/", suite_request(bad))[0])
        self.assertFalse(self.check("GET", "/", suite_request(good), secret="wrong")[0])
        self.assertFalse(self.check("POST", "/", suite_request(good))[0])
        self.assertFalse(self.check("GET", "/x", suite_request(good))[0])
        self.assertFalse(self.check("GET", "/?a=b", suite_request(good))[0])
        self.assertFalse(self.check("GET", "/", suite_request(good), body=b"x")[0])
        tampered = [(n, "other.amazonaws.com" if n == "Host" else v)
                    for n, v in suite_request(good)]
        self.assertFalse(self.check("GET", "/", tampered)[0])
        # A signature that leaves out a required header is refused.
        ok, why = self.check("GET", "/", suite_request(good, signed="x-amz-date"))
        self.assertFalse(ok)
        self.assertIn("host", why)
        # As is another access key, region or service in the scope.
        self.assertFalse(lambda_stub.verify("GET", "/", suite_request(good), b"", "AKIDOTHER",
                                            SUITE_SECRET, "us-east-1", service="service")[0])
        self.assertFalse(lambda_stub.verify("GET", "/", suite_request(good), b"", SUITE_KEY,
                                            SUITE_SECRET, "us-west-2", service="service")[0])
        self.assertFalse(lambda_stub.verify("GET", "/", suite_request(good), b"", SUITE_KEY,
                                            SUITE_SECRET, "us-east-1")[0])  # lambda

    def test_query_order(self):
        # get-vanilla-query-order-key-case: the verifier sorts the query itself.
        sig = "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        self.assertTrue(self.check("GET", "/?Param2=value2&Param1=value1",
                                   suite_request(sig))[0])

    def test_post_with_body(self):
        # post-x-www-form-urlencoded.
        sig = "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        headers = suite_request(sig, "content-type;host;x-amz-date",
                                [("Content-Type", "application/x-www-form-urlencoded")])
        self.assertTrue(self.check("POST", "/", headers, b"Param1=value1")[0])
        self.assertFalse(self.check("POST", "/", headers, b"Param1=value2")[0])

    def test_header_value_trim(self):
        # get-header-value-trim: values are trimmed and runs of spaces collapsed.
        sig = "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        headers = suite_request(sig, "host;my-header1;my-header2;x-amz-date",
                                [("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')])
        self.assertTrue(self.check("GET", "/", headers)[0])

    def test_session_token(self):
        # get-vanilla-with-session-token.
        token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
        sig = "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        headers = suite_request(sig, "host;x-amz-date;x-amz-security-token",
                                [("X-Amz-Security-Token", token)])
        self.assertTrue(self.check("GET", "/", headers, session_token=token)[0])
        self.assertFalse(self.check("GET", "/", headers, session_token="other")[0])
        # The documented signing-key derivation example.
        self.assertEqual(lambda_stub.signing_key(SUITE_SECRET, "20120215", "us-east-1",
                                                 "iam").hex(),
                         "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")

    def test_double_encoded_path(self):
        # Every service but S3 signs the wire path URI-encoded once more.
        self.assertEqual(lambda_stub.canonical_uri("/functions/arn%3Aaws%3Alambda/x"),
                         "/functions/arn%253Aaws%253Alambda/x")
        self.assertEqual(lambda_stub.canonical_uri("/a%20b", double_encode=False), "/a%20b")


def sign(method, path, query, headers, body, access_key, secret, region, service="lambda",
         amz_date=None):
    """Independent SigV4 signer: returns the headers to send (Host must be in `headers`)."""
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = dict(headers)
    headers["X-Amz-Date"] = amz_date
    names = sorted(headers, key=str.lower)
    canonical_headers = "".join("%s:%s\n" % (n.lower(), " ".join(headers[n].split()))
                                for n in names)
    signed = ";".join(n.lower() for n in names)
    enc = lambda s, safe: urllib.parse.quote(s, safe=safe)  # noqa: E731
    pairs = sorted(tuple(p.split("=", 1)) for p in query.split("&")) if query else []
    creq = "\n".join([method, enc(path, "/~"), "&".join("=".join(p) for p in pairs),
                      canonical_headers, signed, hashlib.sha256(body).hexdigest()])
    scope = "/".join([amz_date[:8], region, service, "aws4_request"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s" % (access_key, scope, signed, signature))
    return headers


class OwnSignerAgreesWithAws(unittest.TestCase):
    def test_get_vanilla(self):
        h = sign("GET", "/", "", {"Host": "example.amazonaws.com"}, b"", SUITE_KEY,
                 SUITE_SECRET, "us-east-1", "service", SUITE_DATE)
        self.assertTrue(h["Authorization"].endswith(
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))


class StubServer(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lambda-stub-test-")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.proc = subprocess.Popen(
            [sys.executable, STUB_PY, "--log", self.log_path, "--access-key", ACCESS_KEY,
             "--secret", SECRET, "--region", REGION, "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.addCleanup(self.stop)
        line = self.proc.stdout.readline()
        self.assertTrue(line.startswith(b"PORT "), line)
        self.port = int(line.split()[1])

    def stop(self):
        self.proc.stdin.close()  # --exit-on-stdin-eof: it leaves by itself
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def records(self):
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def invoke(self, event, conn=None, secret=SECRET, function=ARN, qualifier="live",
               invocation_type="RequestResponse", tamper=False):
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        path = "/2015-03-31/functions/%s/invocations" % urllib.parse.quote(function, safe="")
        query = "Qualifier=" + qualifier if qualifier else ""
        headers = sign("POST", path, query,
                       {"Host": "127.0.0.1:%d" % self.port, "Content-Type": "application/json",
                        "X-Amz-Invocation-Type": invocation_type},
                       body, ACCESS_KEY, secret, REGION)
        if tamper:
            body = body.replace(b"/", b"!")
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port,
                                                  timeout=DEFAULT_TIMEOUT)
        conn.request("POST", path + ("?" + query if query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        return resp, data

    def test_signed_invoke_echoes_the_event(self):
        event = {"rawPath": "/hello", "version": "2.0"}
        resp, data = self.invoke(event)
        self.assertEqual(resp.status, 200, data)
        reply = json.loads(data)
        self.assertEqual(reply["statusCode"], 200)
        self.assertEqual(reply["headers"], {"content-type": "application/json"})
        self.assertEqual(json.loads(reply["body"]), {"event": event})
        rec = self.records()[-1]
        self.assertTrue(rec["signature_ok"], rec)
        self.assertEqual(rec["function"], ARN)
        self.assertEqual(rec["qualifier"], "live")
        self.assertEqual(rec["invocation_type"], "RequestResponse")
        self.assertEqual(json.loads(rec["body"]), event)
        self.assertEqual(rec["headers"]["content-type"], "application/json")

    def test_bad_signatures_are_refused(self):
        for kw in ({"secret": "wrong"}, {"tamper": True}):
            resp, data = self.invoke({"rawPath": "/hello"}, **kw)
            self.assertEqual(resp.status, 403, kw)
            self.assertEqual(json.loads(data), {"message": "signature mismatch"})
            self.assertFalse(self.records()[-1]["signature_ok"])
        # No Authorization at all.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEFAULT_TIMEOUT)
        conn.request("POST", "/2015-03-31/functions/f/invocations", body=b"{}")
        self.assertEqual(conn.getresponse().status, 403)
        conn.close()
        self.assertFalse(self.records()[-1]["signature_ok"])

    def test_behaviours(self):
        resp, data = self.invoke({"rawPath": "/x/error"})
        self.assertEqual((resp.status, resp.getheader("X-Amz-Function-Error")),
                         (200, "Unhandled"))
        self.assertEqual(json.loads(data), {"errorMessage": "boom", "errorType": "Error"})
        resp, data = self.invoke({"path": "/throttle"})  # payload 1.0
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.getheader("x-amzn-ErrorType"), "TooManyRequestsException")
        resp, data = self.invoke({"rawPath": "/slow"}, invocation_type="Event")
        self.assertEqual((resp.status, data), (202, b""))
        self.assertEqual(self.records()[-1]["invocation_type"], "Event")
        resp, data = self.invoke(b"not json")
        self.assertEqual(resp.status, 400)
        resp, data = self.invoke({"rawPath": "/chunked"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(json.loads(data)["statusCode"], 200)
        resp, data = self.invoke({"rawPath": "/big", "queryStringParameters": {"bytes": "1234"}})
        self.assertEqual(data, b"x" * 1234)
        resp, data = self.invoke({"rawPath": "/hello"}, function="plain", qualifier="")
        self.assertEqual(resp.status, 200)
        self.assertEqual((self.records()[-1]["function"], self.records()[-1]["qualifier"]),
                         ("plain", None))

    def test_slow_runs_in_parallel_and_keep_alive(self):
        start = time.monotonic()
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.invoke(
            {"rawPath": "/slow", "rawQueryString": "ms=400"})[0].status)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - start
        self.assertEqual(results, [200, 200, 200])
        self.assertGreaterEqual(took, 0.39)
        self.assertLess(took, 1.1)  # not one after the other
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEFAULT_TIMEOUT)
        for _ in range(2):
            self.assertEqual(self.invoke({"rawPath": "/a"}, conn=conn)[0].status, 200)
        conn.close()
        recs = self.records()
        self.assertEqual(recs[-1]["client_port"], recs[-2]["client_port"])


if __name__ == "__main__":
    unittest.main()
