"""`bench/run --only functions`: warm invocations through sluice's `runtime: process`
function backend (the bundled Python bootstrap, examples/functions/python/bootstrap.py,
talking to sluice's Lambda Runtime API), next to a plain proxied request in the same
sluice process.

One sluice (`workers: 1`, --log-level debug for the instance start/ready lines) with:
  /fn1           testfn.fast (returns {"statusCode":200,"body":"ok"}), max_concurrency 1
  /fn4           the same handler, max_concurrency 4
  /hello/{name}  the Python example, hello.handler, max_concurrency 4
  /proxy         the bench upstream (nginx returning "ok"), as in the other parts
  /static        a static `response:` route
each function with min_instances = max_concurrency, so every instance is warm before
the first request. wrk runs (--latency, -t1, as many connections as the function's
max_concurrency) alternate between the variants; the report gives the median
requests/s, p50 and p99, the ratio to the proxy route at the same connection count,
and the CPU time per request of sluice and of the backend (the function instances, or
the upstream nginx) from /proc. Then sluice's own instructions per request under
callgrind (the Python instances are other processes: valgrind does not follow exec),
for the static route, the proxy route and both functions.
"""

import os
import datetime
import hashlib
import re
import shutil
import signal
import statistics
import subprocess
import time
import urllib.request

import clients

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BOOTSTRAP = os.path.join(ROOT, "examples", "functions", "python", "bootstrap.py")
TESTFN_DIR = os.path.join(ROOT, "tests", "support", "functions")
HELLO_DIR = os.path.join(ROOT, "examples", "functions", "python")

# name: (working_dir, handler, max_concurrency = min_instances)
FUNCTIONS = {
    "fast1": (TESTFN_DIR, "testfn.fast", 1),
    "fast4": (TESTFN_DIR, "testfn.fast", 4),
    "hello4": (HELLO_DIR, "hello.handler", 4),
}
ROUTES = {
    "fast1": ("/fn1", "/fn1"),
    "fast4": ("/fn4", "/fn4"),
    "hello4": ("/hello/{name}", "/hello/bench"),
}

# (key, label, path, wrk connections, backend: a function name or "upstream")
WRK_VARIANTS = [
    ("fast1", "testfn.fast, max_concurrency 1, wrk -c1", "/fn1", 1, "fast1"),
    ("proxy1", "proxy to the upstream, wrk -c1", "/proxy", 1, "upstream"),
    ("fast4", "testfn.fast, max_concurrency 4, wrk -c4", "/fn4", 4, "fast4"),
    ("proxy4", "proxy to the upstream, wrk -c4", "/proxy", 4, "upstream"),
    ("hello4", "hello.handler, max_concurrency 4, wrk -c4", "/hello/bench", 4, "hello4"),
]
RATIO_TO = {"fast1": "proxy1", "fast4": "proxy4", "hello4": "proxy4"}

# (key, label, functions in the config, path, client connections)
CG_VARIANTS = [
    ("static", "static response", [], "/static", 4),
    ("proxy", "proxy", [], "/proxy", 4),
    ("fast4", "testfn.fast (N=4)", ["fast4"], "/fn4", 4),
    ("hello4", "hello.handler (N=4)", ["hello4"], "/hello/bench", 4),
]

CONF_HEAD = """
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    max_connections: {nofile}
    idle_timeout: 300s
services:
  upstream:
    endpoints: [127.0.0.1:{upstream}]
    max_idle_connections: 64
"""

CONF_FUNCTION = """  {name}:
    runtime: process
    command: [python3, {bootstrap}]
    working_dir: {workdir}
    handler: {handler}
    max_concurrency: {n}
    min_instances: {n}
"""

CONF_ROUTES = """routes:
  - name: proxy
    match: {path: /proxy}
    service: upstream
  - name: static
    match: {path: /static}
    response: {status: 200, headers: {content-type: text/plain}, body: ok}
"""

CONF_FN_ROUTE = """  - name: {name}
    match: {{methods: [GET], path: "{template}"}}
    function: {name}
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _write_conf(bench, name, port, functions, admin=None):
    args = bench.args
    text = CONF_HEAD.format(port=port, nofile=args.nofile, upstream=bench.upstream_port)
    if admin:
        text += "admin:\n  address: 127.0.0.1:%d\n" % admin
    if functions:
        text += "functions:\n"
        for f in functions:
            workdir, handler, n = FUNCTIONS[f]
            text += CONF_FUNCTION.format(name=f, bootstrap=BOOTSTRAP, workdir=workdir,
                                         handler=handler, n=n)
    text += CONF_ROUTES
    for f in functions:
        text += CONF_FN_ROUTE.format(name=f, template=ROUTES[f][0])
    path = os.path.join(bench.dir, "sluice-functions-%s.yaml" % name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _log_text(server):
    with open(server.log_path, errors="replace") as f:
        return f.read()


def _instance_lines(server, what):
    """{function: count} of the debug lines "function F: instance PID <what>"."""
    out = {}
    for m in re.finditer(r"function (\S+): instance \d+ %s" % what, _log_text(server)):
        out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def _wait_ready(server, functions, timeout):
    """Waits until every instance of `functions` asked for its first invocation."""
    want = {f: FUNCTIONS[f][2] for f in functions}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = _instance_lines(server, "ready after")
        if all(ready.get(f, 0) >= n for f, n in want.items()):
            return
        if server.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("function instances not ready after %ds (want %s, ready %s):\n%s"
                       % (timeout, want, _instance_lines(server, "ready after"), server.output()))


# ---- CPU time from /proc ---------------------------------------------------------------

def _proc_table():
    """{pid: (ppid, utime + stime ticks)} of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _descendants(table, pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, (pp, _) in table.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def _cpu_sample(sluice_pid, upstream_pid):
    """CPU seconds so far of sluice itself, of sluice's children (the function instances)
    and of the upstream nginx (master and worker)."""
    t = _proc_table()

    def ticks(pids):
        return sum(t[p][1] for p in pids if p in t) / CLK_TCK
    return {"sluice": ticks([sluice_pid]),
            "instances": ticks(_descendants(t, sluice_pid)),
            "upstream": ticks([upstream_pid] + _descendants(t, upstream_pid))}


# ---- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def _wrk(bench, port, path, conns, duration):
    args = bench.args
    cmd = [args.wrk, "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency",
           "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout + out.stderr
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    lat = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M)
    if not (rps and total and p50 and p99 and lat):
        raise RuntimeError("wrk output not understood:\n" + text)
    bench.wrk_requests += int(total.group(1))
    problems = []
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad:
        problems.append("%s non-2xx" % bad.group(1))
    errs = re.search(r"Socket errors: (.*)", text)
    if errs:
        problems.append("socket errors: " + errs.group(1))
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "p50": _ms(p50.group(1)), "p99": _ms(p99.group(1)), "max": _ms(lat.group(1)),
            "problems": problems}


# ---- /metrics ------------------------------------------------------------------------------

def _metrics(admin):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(sluice_function_\w+|sluice_request_duration_seconds_(?:sum|count)|'
                     r'sluice_requests_total)\{([^}]*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = labels.get("function") or labels.get("route")
        if m.group(1) == "sluice_requests_total":
            name = "requests_total_" + labels.get("status_class", "?")
        else:
            name = m.group(1)
        out.setdefault(key, {})
        out[key][name] = out[key].get(name, 0.0) + float(m.group(3))
    return out


def _check_metrics(m, logged_starts):
    """Problems found in sluice's function metrics after the wrk runs."""
    problems = []
    for f, (_, _, n) in FUNCTIONS.items():
        fm = m.get(f, {})
        cold = fm.get("sluice_function_cold_starts_total", 0)
        alive = fm.get("sluice_function_instances", 0)
        if cold != n:
            problems.append("%s: %d cold starts, expected min_instances = %d" % (f, cold, n))
        if alive != n:
            problems.append("%s: %d instances alive, expected %d" % (f, alive, n))
        if logged_starts.get(f, 0) != n:
            problems.append("%s: %d instance starts logged, expected %d"
                            % (f, logged_starts.get(f, 0), n))
        for what in ("errors", "throttles", "timeouts", "instance_crashes", "instances_killed"):
            v = fm.get("sluice_function_%s_total" % what, 0)
            if v:
                problems.append("%s: sluice_function_%s_total = %d" % (f, what, v))
    for route, rm in m.items():
        for cls in ("1xx", "3xx", "4xx", "5xx"):
            v = rm.get("requests_total_" + cls, 0)
            if v:
                problems.append("route %s: %d %s responses" % (route, v, cls))
    return problems


# ---- callgrind -----------------------------------------------------------------------------

def _instructions(bench, Server, free_port, key, functions, path, conns, n):
    """Callgrind's instruction total of a sluice process that served `n` GET `path`
    (instances warm before the first request; start-up cancels out in the difference)."""
    args = bench.args
    port = free_port()
    conf = _write_conf(bench, "cg-%s-%d" % (key, n), port, functions)
    out = os.path.join(bench.dir, "callgrind.fn-%s.%d.%%p" % (key, n))
    argv = [args.valgrind, "--tool=callgrind", "--trace-children=no",
            "--callgrind-out-file=" + out, args.sluice, "run", conf]
    if functions:
        argv += ["--log-level", "debug"]
    s = Server("sluice-fn-callgrind", argv, port, bench.dir, timeout=120)
    bench.servers.append(s)
    _wait_ready(s, functions, 120)
    statuses = clients.fixed_count(port, n, concurrency=conns, path=path)
    pid = s.proc.pid
    bench.stop(s)
    if statuses != {200: n}:
        raise RuntimeError("%s under callgrind: statuses %s" % (path, statuses))
    with open(out.replace("%p", str(pid))) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % out)


# ---- the part ------------------------------------------------------------------------------

def _pin_binary(bench):
    """Copies the sluice binary into the work directory, so that a rebuild of build/sluice
    during the run (the part starts nine sluice processes over minutes) cannot mix two
    binaries. Returns (copy, description)."""
    src = bench.args.sluice
    for _ in range(50):
        before = os.stat(src)
        if time.time() - before.st_mtime > 2:  # not being written right now
            break
        time.sleep(0.2)
    dst = os.path.join(bench.dir, "sluice")
    shutil.copy2(src, dst)
    after = os.stat(src)
    if (after.st_mtime, after.st_size) != (before.st_mtime, before.st_size):
        raise RuntimeError("%s changed while it was being copied (a rebuild?); run again" % src)
    with open(dst, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    when = datetime.datetime.fromtimestamp(before.st_mtime, datetime.timezone.utc)
    return dst, "%s built %s, sha256 %s" % (os.path.relpath(src, ROOT) if src.startswith(ROOT)
                                            else src, when.strftime("%Y-%m-%d %H:%M:%S UTC"),
                                            digest)


def run(bench, log, free_port, Server, cpu_busy):
    args = bench.args
    binary, binary_text = _pin_binary(bench)
    sluice_arg, args.sluice = args.sluice, binary
    try:
        return _run(bench, log, free_port, Server, cpu_busy, binary_text)
    finally:
        args.sluice = sluice_arg


def _run(bench, log, free_port, Server, cpu_busy, binary_text):
    args = bench.args
    runs = args.runs if args.runs_given else 3
    duration = args.duration
    upstream = next(s for s in bench.servers if s.name == "upstream-nginx")
    port, admin = free_port(), free_port()
    conf = _write_conf(bench, "wrk", port, list(FUNCTIONS), admin)
    sluice = Server("sluice-functions", [args.sluice, "run", conf, "--log-level", "debug"],
                    port, bench.dir)
    bench.servers.append(sluice)
    _wait_ready(sluice, list(FUNCTIONS), 60)
    problems = {v[0]: [] for v in WRK_VARIANTS}

    # Every route answers 200, and the functions what their handlers return.
    for key, _, path, conns, _ in WRK_VARIANTS:
        statuses = clients.fixed_count(port, 100, concurrency=conns, path=path)
        if statuses != {200: 100}:
            raise RuntimeError("GET %s: statuses %s\n%s" % (path, statuses, sluice.output()))
    for path, want in (("/fn4", b"ok"), ("/hello/bench", b'"message": "Hello, bench!"')):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            body = r.read()
        if want not in body:
            raise RuntimeError("GET %s answered %r" % (path, body[:200]))
    for key, _, path, conns, _ in WRK_VARIANTS:
        subprocess.run([args.wrk, "-t1", "-c%d" % conns, "-d2s", "http://127.0.0.1:%d%s"
                        % (port, path)], capture_output=True, timeout=60)

    results = {v[0]: [] for v in WRK_VARIANTS}
    busy = []
    for i in range(runs):
        busy.append(cpu_busy(0.5))  # everything of ours is idle here: this is the others
        order = WRK_VARIANTS if i % 2 == 0 else list(reversed(WRK_VARIANTS))
        for key, label, path, conns, backend in order:
            m_before = _metrics(admin)
            before = _cpu_sample(sluice.proc.pid, upstream.proc.pid)
            r = _wrk(bench, port, path, conns, duration)
            after = _cpu_sample(sluice.proc.pid, upstream.proc.pid)
            m_after = _metrics(admin)
            for f in FUNCTIONS:  # instance events during this run, any function
                for what in ("cold_starts", "instance_crashes", "instances_killed", "errors",
                             "throttles", "timeouts"):
                    name = "sluice_function_%s_total" % what
                    d = m_after.get(f, {}).get(name, 0) - m_before.get(f, {}).get(name, 0)
                    if d:
                        r["problems"].append("%s: %d %s during this run" % (f, d, what))
            which = "upstream" if backend == "upstream" else "instances"
            r["sluice_us"] = 1e6 * (after["sluice"] - before["sluice"]) / max(1, r["requests"])
            r["backend_us"] = 1e6 * (after[which] - before[which]) / max(1, r["requests"])
            results[key].append(r)
            problems[key].extend(r["problems"])
            log("  run %d %-7s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
                "CPU/req: sluice %4.0f us, %s %4.0f us %s"
                % (i + 1, key, r["rps"], r["p50"], r["p99"], r["max"], r["sluice_us"], which,
                   r["backend_us"], " ".join(r["problems"])))
    busy.append(cpu_busy(0.5))

    m = _metrics(admin)
    general = _check_metrics(m, _instance_lines(sluice, "starting"))
    lines = [ln for ln in _log_text(sluice).splitlines() if re.search(r"Z (warn|error) ", ln)]
    if lines:
        general.append("%d warn/error lines in sluice's log, first: %s"
                       % (len(lines), lines[0]))
    durations = {}
    for f in FUNCTIONS:
        fm = m.get(f, {})
        c = fm.get("sluice_function_duration_seconds_count", 0)
        rc = fm.get("sluice_request_duration_seconds_count", 0)
        durations[f] = (1e3 * fm.get("sluice_function_duration_seconds_sum", 0) / max(1, c),
                        1e3 * fm.get("sluice_request_duration_seconds_sum", 0) / max(1, rc), c)
    cold = {f: m.get(f, {}).get("sluice_function_cold_starts_total", 0) for f in FUNCTIONS}
    instances = _descendants(_proc_table(), sluice.proc.pid)
    rc = bench.stop(sluice)
    if rc != 0:
        general.append("sluice exit code %s on SIGTERM" % rc)
    time.sleep(0.5)
    left = [p for p in instances if os.path.exists("/proc/%d" % p)]
    if left:
        general.append("function instances still running after sluice stopped: %s" % left)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    # Instructions per request: sluice's own, the function instances not counted.
    n1 = args.cg_n1 if args.cg_n1_given else (300 if args.quick else 1000)
    n2 = args.cg_n2 if args.cg_n2_given else (1500 if args.quick else 6000)
    ins = {}
    for key, label, functions, path, conns in CG_VARIANTS:
        ir1 = _instructions(bench, Server, free_port, key, functions, path, conns, n1)
        ir2 = _instructions(bench, Server, free_port, key, functions, path, conns, n2)
        ins[key] = (ir2 - ir1) / (n2 - n1)
        log("  %-7s Ir(%d)=%d Ir(%d)=%d -> %.0f instructions/request"
            % (key, n1, ir1, n2, ir2, ins[key]))
    return {"runs": runs, "duration": duration, "results": results, "problems": problems,
            "general": general, "busy": busy, "durations": durations, "cold": cold,
            "ins": ins, "cg": (n1, n2), "binary": binary_text}


def report(args, r):
    res = r["results"]
    med = {k: {f: statistics.median(x[f] for x in v) for f in
               ("rps", "p50", "p99", "sluice_us", "backend_us")} for k, v in res.items() if v}
    lines = ["", "| functions (`runtime: process`, Python bootstrap), median of %d wrk -t1 -d%ds "
             "--latency | req/s | ratio to proxy, same conns | p50 ms | p99 ms | sluice CPU "
             "us/req | backend CPU us/req |" % (r["runs"], r["duration"]),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, label, _, _, backend in WRK_VARIANTS:
        v = med[key]
        ratio = "%.2f" % (v["rps"] / med[RATIO_TO[key]]["rps"]) if key in RATIO_TO else "1.00"
        lines.append("| %s | %.0f | %s | %.2f | %.2f | %.0f | %.0f (%s) |"
                     % (label, v["rps"], ratio, v["p50"], v["p99"], v["sluice_us"],
                        v["backend_us"], "nginx" if backend == "upstream" else "python"))
    n1, n2 = r["cg"]
    ins = r["ins"]
    lines.append("")
    lines.append("| sluice instructions per request (callgrind, N=%d vs %d, 4 conns) | %s |"
                 % (n1, n2, " | ".join(v[1] for v in CG_VARIANTS)))
    lines.append("| --- |%s" % (" ---: |" * len(CG_VARIANTS)))
    lines.append("| instructions | %s |" % " | ".join("%.0f" % ins[v[0]] for v in CG_VARIANTS))
    lines.append("| beyond a proxy hop | %s |" % " | ".join(
        "%+.0f" % (ins[v[0]] - ins["proxy"]) for v in CG_VARIANTS))
    lines.append("")
    lines.append("- sluice binary: %s (copied at the start; every process of this part ran "
                 "that copy)" % r["binary"])
    b = r["busy"]
    lines.append("- CPUs busy with other work between rounds (all of ours idle): %s "
                 "(0.5 s samples)" % ", ".join("%.0f%%" % (100 * x) for x in b))
    for f, (fn_ms, req_ms, count) in r["durations"].items():
        lines.append("- %s: %d cold starts (min_instances %d); sluice's mean function duration "
                     "%.3f ms, mean request duration %.3f ms (%d invocations, from /metrics)"
                     % (f, r["cold"][f], FUNCTIONS[f][2], fn_ms, req_ms, count))
    for key, _, _, _, _ in WRK_VARIANTS:
        v = res[key]
        lines.append("- %s runs: %s%s" % (key, ", ".join(
            "%.0f req/s (p50 %.2f, p99 %.2f, max %.1f ms)" % (x["rps"], x["p50"], x["p99"],
                                                              x["max"]) for x in v),
            ("  PROBLEMS: " + "; ".join(r["problems"][key])) if r["problems"][key] else ""))
    if r["general"]:
        lines.append("- PROBLEMS: " + "; ".join(r["general"]))
    return "\n".join(lines)
