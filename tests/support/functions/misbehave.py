#!/usr/bin/env python3
"""A Lambda runtime that misbehaves on purpose, for sluice's process-runtime tests.
Standard library only. MODE (environment variable) chooses how:

  stall      answers the first invocation, then never asks for another one
  reconnect  gives up on its first long poll after 0.3 s without closing that
             connection, then polls (and serves) on a new connection
  drop       like reconnect, but closes the abandoned connection first
  silent     never asks for an invocation (init_timeout must end it)

Every invocation is answered {"statusCode": 200, "body": "<mode> <pid>"}.
"""

import http.client
import json
import os
import socket
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
MODE = os.environ.get("MODE", "stall")
PREFIX = "/2018-06-01/runtime/invocation/"


def serve_one(conn):
    conn.request("GET", PREFIX + "next")
    resp = conn.getresponse()
    request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    resp.read()
    body = json.dumps({"statusCode": 200, "body": "%s %d" % (MODE, os.getpid())})
    conn.request("POST", PREFIX + request_id + "/response", body,
                 {"Content-Type": "application/json"})
    conn.getresponse().read()


def main():
    host, port = API.rsplit(":", 1)
    if MODE == "silent":
        while True:
            time.sleep(3600)
    if MODE == "stall":
        serve_one(http.client.HTTPConnection(host, int(port)))
        while True:
            time.sleep(3600)
    first = http.client.HTTPConnection(host, int(port), timeout=0.3)
    first.request("GET", PREFIX + "next")
    try:
        first.getresponse()
        raise SystemExit("expected the first long poll to time out")
    except socket.timeout:
        pass
    abandoned = first.sock
    if MODE == "drop":
        first.close()
    conn = http.client.HTTPConnection(host, int(port))
    while True:
        serve_one(conn)


if __name__ == "__main__":
    main()
