#!/usr/bin/env python3
"""A stand-in for the AWS Lambda Invoke API, for tests of sluice's `runtime: lambda`.

It checks the SigV4 signature of every request itself (its own implementation, with
hmac and hashlib, canonicalising the way botocore does: the wire path URI-encoded once
more, the query re-encoded and sorted), records what arrived (one JSON line per request
in --log) and answers like Lambda. Standard library only; one thread per connection, so
a slow invocation never holds up the others; HTTP/1.1 keep-alive.

    python3 lambda_stub.py --log FILE [--access-key AK --secret SK --region R]
                                      [--session-token T] [--tls-cert C --tls-key K]
    → prints "PORT <n>" once listening on 127.0.0.1 (--port 0 by default)

Only POST /2015-03-31/functions/<name>/invocations[?Qualifier=q] exists (else 404). A
wrong signature gets 403 {"message": "signature mismatch"}. X-Amz-Invocation-Type: Event
gets 202 and an empty body at once. Otherwise the payload (an API Gateway event) chooses,
by its rawPath (payload 2.0) or path (1.0), matched on how it ends:
    .../error      200, X-Amz-Function-Error: Unhandled, {"errorMessage":"boom",...}
    .../slow       sleep ?ms=<n> milliseconds, then as default
    .../throttle   429, x-amzn-ErrorType: TooManyRequestsException
    .../chunked    as default, but the reply is chunked (Transfer-Encoding)
    .../big        200, a body of ?bytes=<n> bytes ("x" repeated; not JSON)
    .../close      as default, then the connection is closed (Connection: close)
    (default)      200, {"statusCode":200,"headers":{"content-type":"application/json"},
                   "body": "<JSON text of {\"event\": <the event received>}>"}
A payload that is not JSON gets 400 InvalidRequestContentException, as on Lambda.

Each log record: {"path", "query", "headers" (names lower-cased), "body" (text),
"signature_ok", "signature_error", "invocation_type", "function", "qualifier",
"client_port"} — client_port tells connections apart (keep-alive checks).
"""

import argparse
import ctypes
import hashlib
import hmac
import http.server
import json
import os
import signal
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
MAX_BODY = 16 * 1024 * 1024

DEFAULT_ACCESS_KEY = "AKIDSTUB"
DEFAULT_SECRET = "stub-secret"


# -- SigV4 verification ------------------------------------------------------------------

def _quote(s, safe):
    return urllib.parse.quote(s, safe=safe)


def canonical_uri(raw_path, double_encode=True):
    """The wire path, URI-encoded once more (every service but S3), like botocore."""
    path = raw_path or "/"
    return _quote(path, safe="/~") if double_encode else path


def canonical_query(raw_query):
    """Names and values decoded, then encoded the SigV4 way and sorted."""
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        name = _quote(urllib.parse.unquote(name), safe="-_.~")
        value = _quote(urllib.parse.unquote(value), safe="-_.~")
        pairs.append((name, value))
    pairs.sort()
    return "&".join("%s=%s" % p for p in pairs)


def _canonical_value(values):
    # Several headers of one name are joined with ','; each value trimmed, runs of
    # blanks as one space.
    return ",".join(" ".join(v.split()) for v in values)


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...' → dict or None."""
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        name, _, v = part.strip().partition("=")
        fields[name] = v
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return None
    return {"access_key": scope[0], "date": scope[1], "region": scope[2],
            "service": scope[3], "signed_headers": fields["SignedHeaders"].split(";"),
            "signature": fields["Signature"]}


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def canonical_request(method, raw_path, raw_query, headers, signed_headers, body,
                      double_encode=True):
    """headers: {lower-case name: [values]}."""
    lines = [method, canonical_uri(raw_path, double_encode), canonical_query(raw_query)]
    lines += ["%s:%s" % (n, _canonical_value(headers.get(n, []))) for n in signed_headers]
    return "\n".join(lines + ["", ";".join(signed_headers),
                              hashlib.sha256(body).hexdigest()])


def verify(method, target, headers, body, access_key, secret, region, service="lambda",
           session_token=None, double_encode=True):
    """(ok, why): checks the request's Authorization header. `target` is the request
    target as on the request line; headers: list of (name, value) pairs as received."""
    hmap = {}
    for name, value in headers:
        hmap.setdefault(name.lower(), []).append(value)
    auth = parse_authorization(",".join(hmap.get("authorization", [])))
    if auth is None:
        return False, "no or malformed Authorization header"
    amz_date = ",".join(hmap.get("x-amz-date", []))
    if len(amz_date) != 16:
        return False, "no X-Amz-Date"
    if auth["access_key"] != access_key:
        return False, "unknown access key %r" % auth["access_key"]
    if (auth["date"], auth["region"], auth["service"]) != (amz_date[:8], region, service):
        return False, "wrong scope %s/%s/%s" % (auth["date"], auth["region"], auth["service"])
    signed = auth["signed_headers"]
    if signed != sorted(signed) or any(n != n.lower() for n in signed):
        return False, "SignedHeaders not lower-case and sorted"
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return False, "%s is not signed" % required
    for name in signed:
        if name not in hmap:
            return False, "signed header %s is missing" % name
    if session_token is not None:
        if hmap.get("x-amz-security-token") != [session_token]:
            return False, "wrong or missing X-Amz-Security-Token"
        if "x-amz-security-token" not in signed:
            return False, "x-amz-security-token is not signed"
    path, _, query = target.partition("?")
    creq = canonical_request(method, path, query, hmap, signed, body, double_encode)
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date,
        "%s/%s/%s/aws4_request" % (auth["date"], region, service),
        hashlib.sha256(creq.encode()).hexdigest()])
    expected = hmac.new(signing_key(secret, auth["date"], region, service),
                        string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth["signature"]):
        return False, "signature mismatch"
    return True, ""


# -- the server ----------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lambda-stub"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: the JSONL log is the record
        pass

    def do_GET(self):
        self.reply(404, {"message": "no such API"}, error_type="ResourceNotFoundException")

    do_PUT = do_DELETE = do_HEAD = do_GET

    def do_POST(self):
        st = self.server.stub
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self.reply(400, {"message": "Content-Length required"}, close=True)
            return
        body = self.rfile.read(int(length))
        path, _, query = self.path.partition("?")
        headers = list(self.headers.items())
        ok, why = verify("POST", self.path, headers, body, st.access_key, st.secret,
                         st.region, session_token=st.session_token)
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        function = None
        if path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
            function = urllib.parse.unquote(path[len(INVOKE_PREFIX):-len(INVOKE_SUFFIX)])
        qualifier = urllib.parse.parse_qs(query).get("Qualifier", [None])[0]
        st.record({"path": path, "query": query,
                   "headers": {n.lower(): v for n, v in headers},
                   "body": body.decode("utf-8", "replace"), "signature_ok": ok,
                   "signature_error": why, "invocation_type": invocation_type,
                   "function": function, "qualifier": qualifier,
                   "client_port": self.client_address[1]})
        if function is None:
            self.reply(404, {"Type": "User", "message": "Function not found: " + path},
                       error_type="ResourceNotFoundException")
            return
        if not ok:
            self.reply(403, {"message": "signature mismatch"},
                       error_type="InvalidSignatureException")
            return
        try:
            event = json.loads(body) if body else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.reply(400, {"Type": "User",
                             "message": "Could not parse request body into json"},
                       error_type="InvalidRequestContentException")
            return
        if invocation_type == "Event":
            self.send(202, b"")
            return
        self.invoke(event)

    def invoke(self, event):
        ev_path = event.get("rawPath") or event.get("path") or ""
        params = dict(event.get("queryStringParameters") or {})
        if not params and event.get("rawQueryString"):
            params = dict(urllib.parse.parse_qsl(event["rawQueryString"]))
        if ev_path.endswith("/error"):
            self.send(200, json.dumps({"errorMessage": "boom", "errorType": "Error"}).encode(),
                      extra=[("X-Amz-Function-Error", "Unhandled")])
            return
        if ev_path.endswith("/throttle"):
            self.reply(429, {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                             "Type": "User", "message": "Rate Exceeded."},
                       error_type="TooManyRequestsException")
            return
        if ev_path.endswith("/big"):
            self.send(200, b"x" * int(params.get("bytes", "0")))
            return
        if ev_path.endswith("/slow"):
            time.sleep(int(params.get("ms", "0")) / 1000.0)
        reply = json.dumps({"statusCode": 200,
                            "headers": {"content-type": "application/json"},
                            "body": json.dumps({"event": event})}).encode()
        self.send(200, reply, chunked=ev_path.endswith("/chunked"),
                  close=ev_path.endswith("/close"))

    def reply(self, status, doc, error_type=None, close=False):
        extra = [("x-amzn-ErrorType", error_type)] if error_type else []
        self.send(status, json.dumps(doc).encode(), extra=extra, close=close)

    def send(self, status, body, extra=(), chunked=False, close=False):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status == 200:
            self.send_header("X-Amz-Executed-Version", "$LATEST")
        for name, value in extra:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if chunked:
            step = max(1, len(body) // 3)
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, stub, tls_context):
        self.stub = stub
        self.tls_context = tls_context
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, on the connection's own thread, so that a
        # client that stalls in it holds up no one else.
        if self.tls_context is not None:
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.tls_context is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            print("lambda_stub: %s: %r" % (type(exc).__name__, exc), file=sys.stderr,
                  flush=True)


class Stub:
    def __init__(self, args):
        self.access_key = args.access_key
        self.secret = args.secret
        self.region = args.region
        self.session_token = args.session_token
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.lock = threading.Lock()

    def record(self, rec):
        if self.log is None:
            return
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            self.log.write(line)
            self.log.flush()


def die_with_parent():
    """SIGKILL when the parent process dies (Linux), even if it never closes our stdin."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def watch_stdin_and_exit():
    """With --exit-on-stdin-eof: the parent holds our stdin; when it dies, we go too."""
    def run():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)
    threading.Thread(target=run, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", default=None, help="append one JSON line per request here")
    ap.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    ap.add_argument("--secret", default=DEFAULT_SECRET)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--session-token", default=None,
                    help="require this X-Amz-Security-Token (signed)")
    ap.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate")
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin reaches EOF (the parent died or closed it)")
    args = ap.parse_args()
    die_with_parent()
    if args.exit_on_stdin_eof:
        watch_stdin_and_exit()
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
    server = Server((args.host, args.port), Stub(args), tls_context)
    print("PORT %d" % server.server_address[1], flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    server.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
