"""A module whose import fails: exercises the Runtime API's /init/error.
The bootstrap reports errorType "RuntimeError" and exits; `handler` is never reached."""

raise RuntimeError("initfail: failing at import on purpose")


def handler(event, context):  # pragma: no cover
    return {"statusCode": 200, "body": "unreachable"}
