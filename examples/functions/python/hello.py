"""Example API Gateway proxy handler: `hello.handler`.

Works unchanged on AWS Lambda and behind sluice, with either payload format:
2.0 (HTTP API: requestContext.http.method, rawPath) or 1.0 (REST API: httpMethod, path).
"""

import json


def handler(event, context):
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method") or event.get("httpMethod")
    path = event.get("rawPath") or http.get("path") or event.get("path")

    # Both formats carry pathParameters and queryStringParameters (null when empty).
    name = ((event.get("pathParameters") or {}).get("name")
            or (event.get("queryStringParameters") or {}).get("name")
            or "world")

    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "message": "Hello, %s!" % name,
            "path": path,
            "method": method,
            "requestId": context.aws_request_id,
        }),
    }
