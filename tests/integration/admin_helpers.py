"""Helpers for tests that use sluice's admin listener: requests with an optional bearer
token, the Prometheus text parsed into {(name, frozenset(labels)): value}, and waiting
for a reload (started by SIGHUP or a file change) to be applied."""

import re
import time

from harness import Client, DEFAULT_TIMEOUT

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def admin_request(port, method, path, token=None, headers=(), body=b"", timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection to the admin listener on 127.0.0.1:port."""
    hdrs = list(headers)
    if token is not None:
        hdrs.append(("Authorization", "Bearer %s" % token))
    with Client("127.0.0.1", port, timeout) as c:
        return c.request(method, path, hdrs, body)


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("bad sample line %r" % line)
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name, **labels):
    """The value of one sample (0.0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def fetch_metrics(port, token=None):
    r = admin_request(port, "GET", "/metrics", token)
    if r.status != 200:
        raise AssertionError("GET /metrics: %r" % r)
    return r.body.decode(), parse_metrics(r.body.decode())


def reload_count(port, token=None):
    """(successful, failed) reloads so far."""
    _, m = fetch_metrics(port, token)
    return (int(metric(m, "sluice_config_reloads_total", result="success")),
            int(metric(m, "sluice_config_reloads_total", result="failure")))


def wait_reloads(port, total, token=None, timeout=DEFAULT_TIMEOUT):
    """Waits until successful + failed reloads reach `total`; returns (ok, failed)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, failed = reload_count(port, token)
        if ok + failed >= total or time.monotonic() >= deadline:
            return ok, failed
        time.sleep(0.01)
