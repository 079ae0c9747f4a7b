#!/usr/bin/env python3
"""A minimal Lambda custom runtime for Python handlers (standard library only).

It speaks the AWS Lambda Runtime API (version 2018-06-01) the way AWS documents it
for custom runtimes, so the same handler code runs on AWS Lambda and behind sluice:

    GET  /runtime/invocation/next           long poll for the next event
    POST /runtime/invocation/{id}/response  the handler's JSON result
    POST /runtime/invocation/{id}/error     {"errorMessage", "errorType", "stackTrace"}
    POST /runtime/init/error                the handler could not be loaded

Environment (set by sluice, as by Lambda): AWS_LAMBDA_RUNTIME_API (host:port),
_HANDLER ("module.function", module file in LAMBDA_TASK_ROOT), LAMBDA_TASK_ROOT,
AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE.

The runtime itself writes nothing to stdout; stdout belongs to the handler. Runtime
diagnostics and error reports go to stderr. Both are captured as the function's log.
"""

import http.client
import importlib
import json
import os
import sys
import time
import traceback
import uuid

API_PREFIX = "/2018-06-01/runtime"
THIS_FILE = os.path.abspath(__file__)
# Like Lambda's "YYYY/MM/DD/[version]<id>": one log stream per runtime process.
LOG_STREAM_NAME = "%s/[%s]%s" % (time.strftime("%Y/%m/%d", time.gmtime()),
                                 os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                                 uuid.uuid4().hex)


def log(message):
    print(message, file=sys.stderr, flush=True)


class RuntimeApiClient:
    """One persistent (keep-alive) HTTP connection to the Runtime API."""

    def __init__(self, address):
        self.address = address  # "127.0.0.1:9001" or "[::1]:9001"
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes). Reconnects once if the server closed
        a kept-alive connection while it sat idle (that is not an error)."""
        for attempt in (1, 2):
            if self.conn is None:
                # timeout=None: blocking socket. The /next long poll must never time out
                # (AWS: "Do not set a timeout on the GET request"), and this also ignores
                # any socket.setdefaulttimeout() the handler may have called.
                self.conn = http.client.HTTPConnection(self.address, timeout=None)
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, API_PREFIX + path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                return response.status, response.headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if not reused or attempt == 2:
                    raise
            except Exception:
                self.conn.close()
                self.conn = None
                raise

    def post_json(self, path, payload, extra_headers=None):
        headers = {"Content-Type": "application/json"}
        headers.update(extra_headers or {})
        return self.request("POST", path, body=payload, headers=headers)


def error_payload(exc, error_type=None, message=None, stack=None):
    """The error document Lambda expects: errorMessage, errorType, stackTrace.
    Like AWS's Python runtime, frames inside this bootstrap are left out."""
    if stack is None:
        frames = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in frames if os.path.abspath(f.filename) != THIS_FILE]
        stack = traceback.format_list(frames)
    return {
        "errorMessage": str(exc) if message is None else message,
        "errorType": error_type or type(exc).__name__,
        "stackTrace": stack,
    }


def log_error(err):
    # AWS logs "[ERROR] Type: message" plus the traceback; we log it to stderr.
    lines = ["[ERROR] %s: %s" % (err["errorType"], err["errorMessage"])]
    if err["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in err["stackTrace"])
    log("\n".join(lines))


def post_error(client, path, err):
    # The Lambda-Runtime-Function-Error-Type header carries the error type, as AWS's
    # runtime interface clients send it.
    body = json.dumps(err).encode()
    return client.post_json(path, body, {"Lambda-Runtime-Function-Error-Type": err["errorType"]})


def load_handler(spec):
    """Resolves _HANDLER the way AWS's Python runtime does; raises a LoadError whose
    error type matches the one Lambda reports (Runtime.ImportModuleError, ...)."""
    try:
        module_name, func_name = spec.rsplit(".", 1)
    except ValueError as e:
        raise LoadError("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (spec, e))
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        raise LoadError("Runtime.ImportModuleError",
                        "Unable to import module '%s': %s" % (module_name, e))
    except SyntaxError as e:
        raise LoadError("Runtime.UserCodeSyntaxError",
                        "Syntax error in module '%s': %s" % (module_name, e),
                        ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)])
    # Any other exception raised by the module's top-level code propagates as itself
    # (errorType = its class name), as on AWS.
    handler = getattr(module, func_name, None)
    if handler is None:
        raise LoadError("Runtime.HandlerNotFound",
                        "Handler '%s' missing on module '%s'" % (func_name, module_name))
    return handler


class LoadError(Exception):
    def __init__(self, error_type, message, stack=None):
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack or []


class Identity:
    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class ClientContext:
    def __init__(self, data):
        self.client = data.get("client")
        self.custom = data.get("custom")
        self.env = data.get("env")


class LambdaContext:
    """The `context` argument, with the attributes of AWS's Python LambdaContext."""

    def __init__(self, headers):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128)
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/" + self.function_name)
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", LOG_STREAM_NAME)
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        cognito = headers.get("Lambda-Runtime-Cognito-Identity")
        client_ctx = headers.get("Lambda-Runtime-Client-Context")
        self.identity = Identity(json.loads(cognito)) if cognito else None
        self.client_context = ClientContext(json.loads(client_ctx)) if client_ctx else None

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self):
        return "LambdaContext(%s)" % ", ".join(
            "%s=%r" % (k, v) for k, v in vars(self).items() if not k.startswith("_"))


def handle(client, handler, status, headers, body):
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
    if status != 200 or not request_id:
        # 500 here means "container error, non-recoverable": exit promptly.
        log("runtime: /invocation/next answered %d: %r" % (status, body[:200]))
        sys.exit(1)

    # Propagate the X-Ray trace header for SDKs, as AWS's runtimes do.
    trace_id = headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    try:
        context = LambdaContext(headers)
        event = json.loads(body) if body else None
    except ValueError as e:
        err = error_payload(e, "Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e, [])
    else:
        try:
            result = handler(event, context)
        except Exception as e:
            err = error_payload(e)
        else:
            try:
                payload = json.dumps(result).encode()
            except (TypeError, ValueError) as e:
                err = error_payload(e, "Runtime.MarshalError", "Unable to marshal response: %s" % e, [])
            else:
                status, _, reply = client.post_json("/invocation/%s/response" % request_id, payload)
                if status >= 500:
                    log("runtime: /response answered %d: %r; exiting" % (status, reply[:200]))
                    sys.exit(1)
                if status != 202:  # e.g. 413: payload too large
                    log("runtime: /response answered %d: %r" % (status, reply[:200]))
                return

    log_error(err)
    status, _, reply = post_error(client, "/invocation/%s/error" % request_id, err)
    if status >= 500:
        log("runtime: /error answered %d: %r; exiting" % (status, reply[:200]))
        sys.exit(1)


def main():
    # stdout is a pipe, so Python would block-buffer it: make the handler's prints
    # reach the log line by line, as they do on Lambda.
    sys.stdout.reconfigure(line_buffering=True)
    client = RuntimeApiClient(os.environ["AWS_LAMBDA_RUNTIME_API"])

    # Init: import the handler module once; its top-level code runs here, once per process.
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    sys.path.insert(0, task_root)
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, LoadError):
            err = error_payload(e, e.error_type, str(e), e.stack)
        else:
            err = error_payload(e)
        log_error(err)
        try:
            post_error(client, "/init/error", err)
        except OSError as post_failure:
            log("runtime: could not report the init error: %s" % post_failure)
        sys.exit(1)  # AWS: report the init error, then exit

    # Invoke loop: one event at a time, for the life of the process.
    while True:
        try:
            status, headers, body = client.request("GET", "/invocation/next")
            handle(client, handler, status, headers, body)
        except (OSError, http.client.HTTPException) as e:
            log("runtime: lost the Runtime API (%s); exiting" % e)
            sys.exit(1)


if __name__ == "__main__":
    main()
