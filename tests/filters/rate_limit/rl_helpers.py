"""Shared by the rate_limit tests: a Redis server per test, requests from chosen source
addresses, the filter's metrics, and a bounded load loop over several sluice instances."""

import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from admin_helpers import fetch_metrics  # noqa: E402
from harness import Client, ConnectionClosed  # noqa: E402
from redis_server import RedisServer, redis_server_available  # noqa: E402

SANITIZED = bool(os.environ.get("SLUICE_SANITIZED"))
SOURCES = ["requests_total", "redis_calls_total"]


def start_redis(test):
    """A fresh redis-server, stopped (and its directory removed) at cleanup."""
    if not redis_server_available():
        test.skipTest("redis-server is not installed (scripts/install-deps installs it)")
    r = RedisServer().start()
    test.addCleanup(r.close)
    return r


def client_from(host, port, source_ip="127.0.0.1", timeout=10):
    """A harness Client whose connection comes from `source_ip` (any 127.0.0.0/8)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection((host, port), timeout=timeout,
                                      source_address=(source_ip, 0))
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.timeout = timeout
    c.buf = bytearray()
    c.eof = False
    return c


def rl_count(admin_port, filter_name, result, source):
    _, m = fetch_metrics(admin_port)
    return m.get(("sluice_rate_limit_requests_total",
                  frozenset({"filter": filter_name, "result": result, "source": source}.items())),
                 0.0)


def rl_metrics(admin_port, filter_name):
    """{(result, source): n} and the number of Redis calls of one filter."""
    _, m = fetch_metrics(admin_port)
    out = {}
    calls = 0.0
    for (name, labels), v in m.items():
        d = dict(labels)
        if d.get("filter") != filter_name:
            continue
        if name == "sluice_rate_limit_requests_total":
            out[(d["result"], d["source"])] = v
        elif name == "sluice_rate_limit_redis_calls_total":
            calls = v
    return out, calls


def hammer(targets, path, seconds, threads=6, timeout=10):
    """Sends GET `path` as fast as `threads` keep-alive clients can, each going round the
    `targets` [(host, port)], for `seconds`. Returns (statuses {code: n}, elapsed seconds
    from the first request sent to the last answer read, failures [str])."""
    lock = threading.Lock()
    statuses = {}
    failures = []
    stop_at = [None]
    start = time.monotonic()
    stop_at[0] = start + seconds

    def run(k):
        clients = [None] * len(targets)
        i = k
        local = {}
        try:
            while time.monotonic() < stop_at[0]:
                t = i % len(targets)
                i += 1
                try:
                    if clients[t] is None:
                        clients[t] = Client(targets[t][0], targets[t][1], timeout)
                    r = clients[t].request("GET", path)
                except (OSError, ConnectionClosed, ValueError) as e:
                    with lock:
                        failures.append("%s: %r" % (targets[t], e))
                    if clients[t] is not None:
                        clients[t].close()
                    clients[t] = None
                    continue
                local[r.status] = local.get(r.status, 0) + 1
                if (r.header("Connection") or "").lower() == "close":
                    clients[t].close()
                    clients[t] = None
        finally:
            for c in clients:
                if c is not None:
                    c.close()
            with lock:
                for code, n in local.items():
                    statuses[code] = statuses.get(code, 0) + n

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return statuses, time.monotonic() - start, failures
