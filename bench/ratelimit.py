"""`bench/run --only ratelimit`: what a rate limit costs, side by side in one sluice
process (same build, same upstream): a route without a limit, a route with a local
limit that is never exceeded, and one with a Redis limit that is never exceeded
(alternating wrk runs; median requests/s, and callgrind instructions per request, which
a busy machine does not move). Then clients far over a Redis limit: Redis
round trips per request and the share of refusals served from the empty-bucket cache,
read from sluice's /metrics. Needs redis-server (Debian package)."""

import os
import re
import shutil
import signal
import statistics
import subprocess
import time
import urllib.request

import clients

CONF = """
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    max_connections: {nofile}
    idle_timeout: 300s
admin:
  address: 127.0.0.1:{admin}
redis:
  url: redis://127.0.0.1:{redis}/0
  command_timeout: 1s
services:
  upstream:
    endpoints: [127.0.0.1:{upstream}]
    max_idle_connections: 64
routes:
  - name: plain
    match: {{path: /plain}}
    service: upstream
  - name: local
    match: {{path: /local}}
    service: upstream
    filters:
      - rate_limit: {{rate: 1000000000, burst: 1000000000, key: [client_ip]}}
  - name: redis
    match: {{path: /redis}}
    service: upstream
    filters:
      - rate_limit: {{store: redis, rate: 1000000000, burst: 1000000000, key: [client_ip]}}
  - name: exceeded
    match: {{path: /exceeded}}
    service: upstream
    filters:
      - rate_limit: {{store: redis, rate: 100, burst: 100, key: [client_ip]}}
"""

VARIANTS = ["plain", "local", "redis"]
TARGETS = {"local": 0.95, "redis": 0.75}


def _metrics(admin):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^sluice_rate_limit_(requests|redis_calls)_total\{([^}]*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = (m.group(1), labels.get("filter"), labels.get("result"), labels.get("source"))
        out[key] = float(m.group(3))
    return out


def _filter_counts(metrics, name):
    requests = sum(v for (kind, f, _, _), v in metrics.items() if kind == "requests" and f == name)
    calls = sum(v for (kind, f, _, _), v in metrics.items()
                if kind == "redis_calls" and f == name)
    by = {(r, s): v for (kind, f, r, s), v in metrics.items() if kind == "requests" and f == name}
    return requests, calls, by


def _instructions(bench, conf, port, path, n, Server):
    """Callgrind's instruction total of a sluice process that served `n` GET `path`."""
    args = bench.args
    out = os.path.join(bench.dir, "callgrind.rl%s.%d.out" % (path.replace("/", "-"), n))
    s = Server("sluice-callgrind", [args.valgrind, "--tool=callgrind",
                                    "--callgrind-out-file=" + out, args.sluice, "run", conf],
               port, bench.dir, timeout=120)
    bench.servers.append(s)
    statuses = clients.fixed_count(port, n, concurrency=args.cg_concurrency, path=path)
    bench.stop(s)
    if statuses != {200: n}:
        raise RuntimeError("%s under callgrind: statuses %s" % (path, statuses))
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % out)


def run(bench, log, free_port, Server):
    args = bench.args
    redis_bin = shutil.which("redis-server")
    if not redis_bin:
        raise RuntimeError("redis-server not found (scripts/install-deps installs it)")
    redis_port = free_port()
    redis = Server("redis", [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", bench.dir],
                   redis_port, bench.dir)
    bench.servers.append(redis)
    port, admin = free_port(), free_port()
    conf = os.path.join(bench.dir, "sluice-ratelimit.yaml")
    with open(conf, "w") as f:
        f.write(CONF.format(port=port, admin=admin, redis=redis_port, upstream=bench.upstream_port,
                            nofile=args.nofile))
    sluice = Server("sluice-ratelimit", [args.sluice, "run", conf], port, bench.dir)
    bench.servers.append(sluice)
    for v in VARIANTS:
        bench.wrk_warmup(port, "/" + v)
    results = {v: [] for v in VARIANTS}
    problems = {v: [] for v in VARIANTS}
    for i in range(args.runs):
        order = VARIANTS if i % 2 == 0 else list(reversed(VARIANTS))
        for v in order:
            rps, probs = bench.wrk(port, "/" + v)
            results[v].append(rps)
            problems[v].extend(probs)
            log("  run %d %-6s %10.0f req/s %s" % (i + 1, v, rps, " ".join(probs)))
    m = _metrics(admin)
    never_requests, never_calls, _ = _filter_counts(m, "redis")

    # Far over the limit: 100/s against everything wrk can send.
    before = _metrics(admin)
    rps, _ = bench.wrk(port, "/exceeded")
    after = _metrics(admin)
    req_b, calls_b, by_b = _filter_counts(before, "exceeded")
    req_a, calls_a, by_a = _filter_counts(after, "exceeded")
    requests = req_a - req_b
    calls = calls_a - calls_b
    cached = by_a.get(("denied", "empty_cache"), 0) - by_b.get(("denied", "empty_cache"), 0)
    allowed = sum(v - by_b.get(k, 0) for k, v in by_a.items() if k[0] == "allowed")
    log("  exceeded: %.0f req/s, %d requests, %d allowed, %d Redis calls, %d from the empty "
        "cache" % (rps, requests, allowed, calls, cached))
    if bench.stop(sluice) != 0:
        problems["plain"].append("sluice exit code %s on SIGTERM" % sluice.proc.returncode)
    # Instructions per request (sluice's own: Redis is another process), as in --only filters.
    n1, n2 = args.cg_n1, args.cg_n2
    ins = {}
    for v in VARIANTS:
        ins[v] = (_instructions(bench, conf, port, "/" + v, n2, Server)
                  - _instructions(bench, conf, port, "/" + v, n1, Server)) / (n2 - n1)
        log("  %-6s %.0f instructions/request" % (v, ins[v]))
    bench.stop(redis)
    return {
        "results": results, "problems": problems, "instructions": ins,
        "never": (never_requests, never_calls),
        "exceeded": {"rps": rps, "requests": requests, "calls": calls, "cached": cached,
                     "allowed": allowed},
    }


def report(args, r):
    med = {v: statistics.median(x) for v, x in r["results"].items() if x}
    lines = ["", "| measurement | no limit | local limit | Redis limit | target |",
             "| --- | ---: | ---: | ---: | --- |"]
    lines.append("| requests/s, median of %d (wrk -t1 -c%d -d%ds) | %.0f | %.0f | %.0f | - |"
                 % (args.runs, args.connections, args.duration, med["plain"], med["local"],
                    med["redis"]))
    lines.append("| ratio to no limit | 1.00 | %.2f | %.2f | local >= 0.95, Redis >= 0.75 |"
                 % (med["local"] / med["plain"], med["redis"] / med["plain"]))
    ins = r["instructions"]
    lines.append("| sluice instructions per request (callgrind, N=%d vs %d, %d conns) | %.0f | "
                 "%.0f | %.0f | - |" % (args.cg_n1, args.cg_n2, args.cg_concurrency, ins["plain"],
                                         ins["local"], ins["redis"]))
    lines.append("| ratio to no limit | 1.00 | %.2f | %.2f | - |"
                 % (ins["plain"] / ins["local"], ins["plain"] / ins["redis"]))
    nreq, ncalls = r["never"]
    e = r["exceeded"]
    lines.append("")
    lines.append("- Redis limit never exceeded: %.2f Redis round trips per request (%d calls, "
                 "%d requests)" % (ncalls / max(1, nreq), ncalls, nreq))
    lines.append("- Redis limit exceeded (rate 100/s, burst 100, one wrk run of %ds at %.0f "
                 "req/s): %d requests, %d allowed, %.4f Redis round trips per request, %.1f%% "
                 "served from the empty-bucket cache"
                 % (args.duration, e["rps"], e["requests"], e["allowed"],
                    e["calls"] / max(1, e["requests"]), 100.0 * e["cached"] / max(1, e["requests"])))
    for v, x in r["results"].items():
        lines.append("- %s runs (req/s): %s%s" % (v, ", ".join("%.0f" % y for y in x),
                     ("  PROBLEMS: " + "; ".join(r["problems"][v])) if r["problems"][v] else ""))
    return "\n".join(lines)
