"""runtime: lambda — sluice calls the Lambda Invoke API, here tests/support/lambda_stub.py,
which checks every request's SigV4 signature on its own (its verifier is itself checked
against AWS's documented signing examples in test_support_lambda_stub.py). Through the
real binary: the payload, the signature, the qualifier, keep-alive, function errors,
throttling, timeouts, asynchronous invocation, and credentials from the environment."""

import json
import os
import subprocess
import sys
import time
import unittest

from admin_helpers import fetch_metrics, metric
from harness import ROOT, SluiceTestCase, _die_with_parent, free_port

STUB_PY = os.path.join(ROOT, "tests", "support", "lambda_stub.py")
ACCESS_KEY = "AKIDSLUICETEST"
SECRET = "sluice/test+secret/key"
REGION = "eu-west-3"
SLOW = 3 if os.environ.get("SLUICE_SANITIZED") else 1


class LambdaStub:
    def __init__(self, directory, secret=SECRET, session_token=None):
        self.log_path = os.path.join(directory, "lambda-%d.jsonl" % id(self))
        args = [sys.executable, STUB_PY, "--log", self.log_path, "--access-key", ACCESS_KEY,
                "--secret", secret, "--region", REGION, "--exit-on-stdin-eof"]
        if session_token:
            args += ["--session-token", session_token]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        if not line.startswith(b"PORT "):
            raise RuntimeError("lambda stub did not start: %r" % line)
        self.port = int(line.split()[1])
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def records(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class LambdaCase(SluiceTestCase):
    def stub(self, **kw):
        s = LambdaStub(self.tmp, **kw)
        self.addCleanup(s.stop)
        return s

    def start(self, stub, settings="", credentials=True, env=None, payload_format="2.0",
              routes=None):
        self.admin_port = free_port()
        creds = ("    credentials: {access_key_id: %s, secret_access_key: \"%s\"}\n"
                 % (ACCESS_KEY, SECRET)) if credentials else ""
        text = ("listeners:\n  - name: public\n    address: @LISTEN@\n"
                "admin: {address: 127.0.0.1:%d}\n" % self.admin_port
                + "filters:\n  - request_id: {}\n"
                + "functions:\n  orders:\n    runtime: lambda\n"
                + "    endpoint: %s\n" % stub.endpoint
                + "    function_name: arn:aws:lambda:%s:123456789012:function:orders\n" % REGION
                + "    region: %s\n" % REGION
                + "    payload_format: \"%s\"\n" % payload_format
                + creds + settings
                + "routes:\n" + (routes or
                                 '  - name: orders\n    match: {path: "/orders/{id+}"}\n'
                                 '    function: orders\n'))
        self.s = self.start_sluice(text, env=env)
        return self.s

    def get(self, path, method="GET", headers=(), body=b""):
        with self.client(self.s, timeout=30 * SLOW) as c:
            return c.request(method, path, headers, body)


class TestLambdaRuntime(LambdaCase):
    def test_signed_invoke_carries_the_event_and_maps_the_reply(self):
        stub = self.stub()
        self.start(stub, settings="    qualifier: live\n")
        r = self.get("/orders/42/items?x=1&x=2", method="POST", body=b"hello",
                     headers=[("Content-Type", "text/plain"), ("X-Request-Id", "req-l-1")])
        self.assertEqual(r.status, 200, r)
        event = r.json()["event"]
        self.assertEqual(event["version"], "2.0")
        self.assertEqual(event["rawPath"], "/orders/42/items")
        self.assertEqual(event["pathParameters"], {"id": "42/items"})
        self.assertEqual(event["queryStringParameters"], {"x": "1,2"})
        self.assertEqual(event["body"], "hello")
        self.assertEqual(event["requestContext"]["requestId"], "req-l-1")
        self.assertEqual(event["requestContext"]["http"]["method"], "POST")
        rec = stub.records()[-1]
        self.assertTrue(rec["signature_ok"], rec)
        self.assertEqual(rec["path"], "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-3"
                                      "%3A123456789012%3Afunction%3Aorders/invocations")
        self.assertEqual(rec["qualifier"], "live")
        self.assertEqual(rec["invocation_type"], "RequestResponse")
        self.assertEqual(json.loads(rec["body"]), event)
        self.assertIn("AWS4-HMAC-SHA256 Credential=%s/" % ACCESS_KEY,
                      dict(rec["headers"])["authorization"]
                      if isinstance(rec["headers"], list) else rec["headers"]["authorization"])

    def test_keep_alive_connections_are_reused(self):
        stub = self.stub()
        self.start(stub, routes='  - name: orders\n    match: {path: "/orders/{id+}"}\n'
                                '    function: orders\n', settings="")
        for i in range(6):
            self.assertEqual(self.get("/orders/%d" % i).status, 200)
        ports = {rec["client_port"] for rec in stub.records()}
        self.assertLessEqual(len(ports), 2, "one connection per worker at most: %s" % ports)
        self.assertTrue(all(rec["signature_ok"] for rec in stub.records()))

    def test_function_error_is_502(self):
        stub = self.stub()
        self.start(stub)
        r = self.get("/orders/1/error", headers=[("X-Request-Id", "req-l-err")])
        self.assertJsonError(r, 502, "Internal server error")
        self.assertNotIn(b"boom", r.body)
        deadline = time.monotonic() + 5
        while "boom" not in self.s.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = [l for l in self.s.output().splitlines() if "function error" in l][0]
        self.assertIn("req-l-err", line)
        self.assertIn("boom", line)
        _, m = fetch_metrics(self.admin_port)
        self.assertEqual(metric(m, "sluice_function_errors_total", function="orders"), 1)

    def test_throttle_is_429(self):
        stub = self.stub()
        self.start(stub)
        self.assertJsonError(self.get("/orders/1/throttle"), 429, "Too Many Requests")

    def test_timeout_is_504(self):
        stub = self.stub()
        self.start(stub, settings="    timeout: %dms\n" % (500 * SLOW))
        r = self.get("/orders/1/slow?ms=%d" % (5000 * SLOW))
        self.assertJsonError(r, 504, "Endpoint request timed out")
        # The next request is served normally (a fresh connection).
        self.assertEqual(self.get("/orders/2").status, 200)

    def test_async_invocation_is_202_with_request_id(self):
        stub = self.stub()
        self.start(stub, settings="    invocation: event\n")
        r = self.get("/orders/9", method="POST", body=b"{}",
                     headers=[("X-Request-Id", "req-async-1")])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["requestId"], "req-async-1")
        rec = stub.records()[-1]
        self.assertEqual(rec["invocation_type"], "Event")
        self.assertTrue(rec["signature_ok"], rec)

    def test_wrong_secret_is_refused_by_lambda_and_502(self):
        stub = self.stub(secret="another-secret")
        self.start(stub)
        r = self.get("/orders/1")
        self.assertJsonError(r, 502, "Internal server error")
        self.assertFalse(stub.records()[-1]["signature_ok"])
        self.assertNotIn(SECRET, self.s.output())

    def test_credentials_from_environment_with_session_token(self):
        stub = self.stub(session_token="tok/en+1")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_SESSION_TOKEN="tok/en+1")
        self.start(stub, credentials=False, env=env)
        r = self.get("/orders/7")
        self.assertEqual(r.status, 200, r)
        rec = stub.records()[-1]
        self.assertTrue(rec["signature_ok"], rec)
        self.assertNotIn("tok/en+1", self.s.output())
        self.assertNotIn(SECRET, self.s.output())

    def test_payload_format_1_0(self):
        stub = self.stub()
        self.start(stub, payload_format="1.0")
        r = self.get("/orders/5?a=1&a=2")
        self.assertEqual(r.status, 200, r)
        event = r.json()["event"]
        self.assertEqual(event["httpMethod"], "GET")
        self.assertEqual(event["resource"], "/orders/{id+}")
        self.assertEqual(event["multiValueQueryStringParameters"], {"a": ["1", "2"]})

    def test_unreachable_endpoint_is_502(self):
        dead = "http://127.0.0.1:%d" % free_port()

        class Dead:
            endpoint = dead

        self.start(Dead, settings="    connect_timeout: 500ms\n")
        self.assertJsonError(self.get("/orders/1"), 502, "Internal server error")


if __name__ == "__main__":
    unittest.main()
