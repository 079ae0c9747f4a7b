"""Test functions for sluice's integration tests, run by
examples/functions/python/bootstrap.py with _HANDLER = "testfn.<name>".

Handlers: echo, sleep (?ms=), crash, fail, raw, hog (?mb=), log, fast.
Query parameters are read from queryStringParameters, present in both payload formats.
"""

import json
import os
import sys
import time

ENV_KEYS = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_REGION",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "AWS_LAMBDA_RUNTIME_API",
    "GREETING",
]

_held = []  # memory allocated by `hog`, kept for the life of the process


def _query(event, name, default):
    return (event.get("queryStringParameters") or {}).get(name, default)


def echo(event, context):
    """The event, the process, its Lambda environment and context, as JSON."""
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "event": event,
            "pid": os.getpid(),
            "env": {k: os.environ.get(k) for k in ENV_KEYS},
            "remaining_ms": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn,
        }),
    }


def sleep(event, context):
    """Prints "sleep <ms>" (one log line per invocation), sleeps ?ms= milliseconds,
    then echoes."""
    print("sleep %s" % _query(event, "ms", "0"), flush=True)
    time.sleep(int(_query(event, "ms", "0")) / 1000.0)
    return echo(event, context)


def crash(event, context):
    """The process dies mid-invocation, without answering."""
    print("testfn.crash: exiting with status 3", file=sys.stderr, flush=True)
    os._exit(3)


def fail(event, context):
    """An unhandled exception: reported to /invocation/{id}/error as ValueError."""
    raise ValueError("boom")


def raw(event, context):
    """Returns the request body's JSON verbatim, to drive response mapping."""
    return json.loads(event["body"])


def hog(event, context):
    """Allocates and holds ?mb= MiB (every page touched, so it is resident), sleeps ?ms=
    milliseconds, then echoes."""
    block = bytearray(int(_query(event, "mb", "0")) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    _held.append(block)
    time.sleep(int(_query(event, "ms", "0")) / 1000.0)
    return echo(event, context)


def log(event, context):
    """Writes a line to stdout and one to stderr, then echoes."""
    print("hello from %s" % context.aws_request_id)
    print("warn", file=sys.stderr)
    return echo(event, context)


def fast(event, context):
    """The cheapest possible reply, for benchmarks."""
    return {"statusCode": 200, "body": "ok"}
