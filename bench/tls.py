"""`bench/run --only tls`: sluice and nginx side by side as TLS-terminating and HTTP/2
gateways (issue 5's performance targets), one worker each, both proxying GET / over
HTTP/1.1 keep-alive to the bench's upstream nginx.

Three variants, each against the same two proxy processes:
  h2c    h2load -t1 -c16 -m32, cleartext HTTP/2 with prior knowledge
         (sluice listener `h2c: true`; nginx `listen ... http2;` without ssl)  >= 1.5x nginx
  h2     h2load -t1 -c16 -m32 over TLS, ALPN h2
         (sluice `tls: {..., alpn: [h2, http/1.1]}`; nginx `listen ... ssl http2;`)  >= 1.5x
  https  wrk -t1 -c64 over TLS, HTTP/1.1 keep-alive (wrk offers no ALPN)  >= 1.0x nginx
One EC P-256 self-signed certificate, made with openssl in the work directory, serves
both; both are TLS 1.3 only (`min_version: "1.3"`, `ssl_protocols TLSv1.3`) with the
server's preference among OpenSSL's default TLS 1.3 suites, so both negotiate the same
suite and group (checked, and shown in the report). Each proxy keeps up to 512 idle
upstream connections (16 x 32 streams in flight; --tls-upstream-idle). Runs alternate
between the proxies, the order flipping every round; next to requests/s, the CPU time
per request of the proxy, the upstream and the client, and the proxy's write calls per
request, from /proc. Then each proxy's instructions per request under callgrind for each
variant: a fixed `h2load -n N` (the HTTP/1.1 variant with --h1), N1 and N2 requests in
two processes, (Ir(N2) - Ir(N1)) / (N2 - N1).
"""

import os
import re
import resource
import signal
import statistics
import subprocess

import functions  # _pin_binary (the copy of the binary), _proc_table, _descendants

NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
master_process {master};
pid {dir}/tls-nginx-{tag}.pid;
error_log {dir}/tls-nginx-{tag}.error.log warn;
events {{ worker_connections {nofile}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive {idle};
        keepalive_requests 1000000;
    }}
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    server {{
        listen 127.0.0.1:{h2c} http2 backlog=4096;
        listen 127.0.0.1:{tls} ssl http2 backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""

SLUICE_CONF = """
workers: 1
listeners:
  - name: h2c
    address: 127.0.0.1:{h2c}
    max_connections: {nofile}
    idle_timeout: 300s
    h2c: true
  - name: tls
    address: 127.0.0.1:{tls}
    max_connections: {nofile}
    idle_timeout: 300s
    tls:
      certificate: {cert}
      private_key: {key}
      min_version: "1.3"
      alpn: [h2, http/1.1]
services:
  upstream:
    endpoints: [127.0.0.1:{upstream}]
    max_idle_connections: {idle}
routes:
  - name: root
    match: {{path: /}}
    service: upstream
"""

PROXIES = ["sluice", "nginx"]
# (key, label, client, listener, target sluice/nginx)
VARIANTS = [
    ("h2c", "h2load -c16 -m32, h2c (prior knowledge)", "h2load", "h2c", 1.5),
    ("h2", "h2load -c16 -m32, TLS 1.3 + ALPN h2", "h2load", "tls", 1.5),
    ("https", "wrk -c64, TLS 1.3, HTTP/1.1 keep-alive", "wrk", "tls", 1.0),
]
H2_CONNS, H2_STREAMS = 16, 32


def _url(listener, ports):
    return ("http" if listener == "h2c" else "https") + "://127.0.0.1:%d/" % ports[listener]


def make_cert(bench):
    cert = os.path.join(bench.dir, "tls-cert.pem")
    key = os.path.join(bench.dir, "tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _argv(bench, which, ports, cert, key, tag, master=True):
    args = bench.args
    if which == "nginx":
        conf = os.path.join(bench.dir, "tls-nginx-%s.conf" % tag)
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=bench.dir, tag=tag, nofile=args.nofile,
                                      master="on" if master else "off",
                                      upstream=bench.upstream_port, idle=args.tls_upstream_idle,
                                      cert=cert, key=key, **ports))
        return [args.nginx, "-p", bench.dir, "-c", conf, "-e",
                os.path.join(bench.dir, "tls-nginx-%s.error.log" % tag)], signal.SIGQUIT
    conf = os.path.join(bench.dir, "tls-sluice-%s.yaml" % tag)
    with open(conf, "w") as f:
        f.write(SLUICE_CONF.format(nofile=args.nofile, upstream=bench.upstream_port,
                                   idle=args.tls_upstream_idle, cert=cert, key=key, **ports))
    return [args.sluice, "run", conf], signal.SIGTERM


def _start(bench, Server, free_port, which, cert, key, tag, master=True, wrapper=(),
           timeout=20):
    ports = {"h2c": free_port(), "tls": free_port()}
    argv, sig = _argv(bench, which, ports, cert, key, tag, master)
    s = Server("tls-%s-%s" % (which, tag), list(wrapper) + argv, ports["tls"], bench.dir, sig,
               timeout)
    bench.servers.append(s)
    s.ports = ports
    return s


# ---- clients ---------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def _h2load(bench, url, extra, timeout):
    cmd = [bench.args.h2load, "-t1"] + extra + [url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = out.stdout + out.stderr
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (fin and req and codes):
        raise RuntimeError("h2load output not understood:\n%s\n%s" % (" ".join(cmd), text))
    total, started, done, ok, failed, errored, tmo = (int(x) for x in req.groups())
    problems = []
    for n, what in ((failed, "failed"), (errored, "errored"), (tmo, "timeout")):
        if n:
            problems.append("%d %s" % (n, what))
    non2xx = sum(int(x) for x in codes.groups()[1:])
    if non2xx:
        problems.append("%d non-2xx" % non2xx)
    tls = re.search(r"TLS Protocol: (\S+)\s+Cipher: (\S+)(?:\s+Server Temp Key: ([^\n]+))?", text)
    alpn = re.search(r"Application protocol: (\S+)", text)
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    return {"rps": float(fin.group(3)), "requests": ok, "problems": problems,
            "mean": _ms(lat.group(3)) if lat else float("nan"),
            "max": _ms(lat.group(2)) if lat else float("nan"),
            "tls": tls.groups() if tls else None, "alpn": alpn.group(1) if alpn else None,
            "text": text}


def _wrk(bench, url, duration):
    args = bench.args
    cmd = [args.wrk, "-t1", "-c%d" % args.connections, "-d%ds" % duration, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout + out.stderr
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    lat = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", text, re.M)
    if not (m and total and lat):
        raise RuntimeError("wrk output not understood:\n" + text)
    bench.wrk_requests += int(total.group(1))
    problems = []
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad:
        problems.append("%s non-2xx" % bad.group(1))
    errs = re.search(r"Socket errors: (.*)", text)
    if errs:
        problems.append("socket errors: " + errs.group(1))
    return {"rps": float(m.group(1)), "requests": int(total.group(1)), "problems": problems,
            "mean": _ms(lat.group(1)), "max": _ms(lat.group(2))}


def _measure(bench, server, variant, duration):
    key, _, client, listener, _ = variant
    url = _url(listener, server.ports)
    if client == "wrk":
        return _wrk(bench, url, duration)
    return _h2load(bench, url, ["-c%d" % H2_CONNS, "-m%d" % H2_STREAMS, "-D", str(duration)],
                   duration + 60)


def _check(bench, server):
    """Each variant answers 100 requests with 200, with the expected protocol; returns
    {variant: (TLS protocol, cipher, key exchange, ALPN)}."""
    seen = {}
    for key, _, client, listener, _ in VARIANTS:
        extra = ["-n100", "-c4"] + (["--h1"] if client == "wrk" else ["-m4"])
        r = _h2load(bench, _url(listener, server.ports), extra, 60)
        want_alpn = "http/1.1" if client == "wrk" else "h2"
        if r["problems"] or r["requests"] != 100 or (listener == "tls" and r["alpn"] != want_alpn):
            raise RuntimeError("%s %s: %d of 100 succeeded, %s, ALPN %s\n%s\n%s"
                               % (server.name, key, r["requests"], r["problems"], r["alpn"],
                                  r["text"], server.output()))
        seen[key] = (r["tls"] or (None, None, None)) + (r["alpn"] or "h2c",)
    return seen


# ---- CPU time and system calls from /proc -----------------------------------------------

def _usage(pid):
    """CPU seconds and read/write system calls so far of `pid` and its descendants (nginx's
    worker is a child of its master). The kernel counts read/readv and write/writev (and
    sendfile) there, not recv/send: nginx reads plain sockets with recv(), so only the
    writes compare (both write with writev(), and write() through OpenSSL)."""
    table = functions._proc_table()
    cpu, syscr, syscw = 0.0, 0, 0
    for p in [pid] + functions._descendants(table, pid):
        if p not in table:
            continue
        cpu += table[p][1] / functions.CLK_TCK
        try:
            with open("/proc/%d/io" % p) as f:
                io = dict(line.split(": ") for line in f.read().splitlines())
            syscr += int(io["syscr"])
            syscw += int(io["syscw"])
        except (OSError, KeyError, ValueError):
            pass
    return cpu, syscr, syscw


# ---- callgrind ---------------------------------------------------------------------------

def _callgrind_total(bench, Server, free_port, which, variant, n, cert, key, general):
    args = bench.args
    vkey, _, client, listener, _ = variant
    tag = "cg-%s-%d" % (vkey, n)
    out = os.path.join(bench.dir, "callgrind.tls-%s-%s.%d.out" % (which, vkey, n))
    wrapper = [args.valgrind, "--tool=callgrind", "--callgrind-out-file=" + out]
    s = _start(bench, Server, free_port, which, cert, key, tag, master=False, wrapper=wrapper,
               timeout=120)
    extra = ["-n%d" % n, "-c%d" % args.cg_concurrency]
    extra += ["--h1"] if client == "wrk" else ["-m%d" % H2_STREAMS]
    r = _h2load(bench, _url(listener, s.ports), extra, 600)
    rc = bench.stop(s)
    if r["problems"] or r["requests"] != n:
        raise RuntimeError("%s %s under callgrind: %d of %d succeeded, %s"
                           % (which, vkey, r["requests"], n, r["problems"]))
    if which == "sluice" and rc != 0:
        general.append("sluice exited %s under callgrind (%s, N=%d)" % (rc, vkey, n))
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % out)


# ---- the part ------------------------------------------------------------------------------

def run(bench, log, free_port, Server, cpu_busy):
    args = bench.args
    binary, binary_text = functions._pin_binary(bench)
    sluice_arg, args.sluice = args.sluice, binary
    try:
        return _run(bench, log, free_port, Server, cpu_busy, binary_text)
    finally:
        args.sluice = sluice_arg


def _sluice_log_problems(server):
    with open(server.log_path, errors="replace") as f:
        lines = [ln for ln in f.read().splitlines() if re.search(r"Z (warn|error) ", ln)]
    return lines


def _children_cpu():
    """CPU seconds of the waited-for children: the clients (the servers are waited for only
    when they stop)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(bench, log, free_port, Server, cpu_busy, binary_text):
    args = bench.args
    upstream = next(s for s in bench.servers if s.name == "upstream-nginx")
    runs = args.runs if args.runs_given else 3
    duration = args.duration
    cert, key = make_cert(bench)
    procs = {p: _start(bench, Server, free_port, p, cert, key, "runs") for p in PROXIES}
    negotiated = {p: _check(bench, s) for p, s in procs.items()}
    general = []
    for vkey in ("h2", "https"):
        if negotiated["sluice"][vkey][:3] != negotiated["nginx"][vkey][:3]:
            general.append("%s: sluice negotiated %s, nginx %s"
                           % (vkey, negotiated["sluice"][vkey], negotiated["nginx"][vkey]))
            log("  warning: " + general[-1])
    for p, s in procs.items():  # warm-up, 1 s of each variant
        for v in VARIANTS:
            _measure(bench, s, v, 1)

    results = {(v[0], p): [] for v in VARIANTS for p in PROXIES}
    problems = {(v[0], p): [] for v in VARIANTS for p in PROXIES}
    busy = []
    for i in range(runs):
        busy.append(cpu_busy(0.5))  # all of ours idle: the load of everything else
        order = PROXIES if i % 2 == 0 else list(reversed(PROXIES))
        for v in VARIANTS:
            for p in order:
                before = _usage(procs[p].proc.pid)
                up_before = _usage(upstream.proc.pid)[0]
                cl_before = _children_cpu()
                r = _measure(bench, procs[p], v, duration)
                after = _usage(procs[p].proc.pid)
                up_after = _usage(upstream.proc.pid)[0]
                cl_after = _children_cpu()
                if procs[p].proc.poll() is not None:
                    r["problems"].append("%s exited (code %s)" % (p, procs[p].proc.returncode))
                n = max(1, r["requests"])
                r["cpu_us"] = 1e6 * (after[0] - before[0]) / n
                r["writes"] = (after[2] - before[2]) / n
                r["upstream_us"] = 1e6 * (up_after - up_before) / n
                r["client_us"] = 1e6 * (cl_after - cl_before) / n
                results[(v[0], p)].append(r)
                problems[(v[0], p)].extend(r["problems"])
                log("  run %d %-5s %-6s %8.0f req/s  latency mean %5.2f max %6.2f ms  CPU us/req: "
                    "proxy %4.1f upstream %4.1f client %4.1f  writes/req %.2f %s"
                    % (i + 1, v[0], p, r["rps"], r["mean"], r["max"], r["cpu_us"],
                       r["upstream_us"], r["client_us"], r["writes"], " ".join(r["problems"])))
    busy.append(cpu_busy(0.5))

    for p, s in procs.items():
        if s.proc.poll() is not None:
            general.append("%s exited (code %s) during the runs" % (p, s.proc.returncode))
    for p, s in procs.items():
        rc = bench.stop(s)
        if rc != 0:
            general.append("%s exit code %s on stop" % (p, rc))
    lines = _sluice_log_problems(procs["sluice"])  # the whole log, the drain included
    if lines:
        general.append("%d warn/error lines in sluice's log, first: %s" % (len(lines), lines[0]))
    err_log = os.path.join(bench.dir, "tls-nginx-runs.error.log")
    if os.path.exists(err_log):
        with open(err_log, errors="replace") as f:
            nl = [ln for ln in f.read().splitlines() if ln.strip()]
        if nl:
            general.append("%d lines in nginx's error log, first: %s" % (len(nl), nl[0]))

    ins = None
    if not args.tls_no_callgrind:
        n1 = args.cg_n1 if args.cg_n1_given else (1000 if args.quick else 2000)
        n2 = args.cg_n2 if args.cg_n2_given else (4000 if args.quick else 12000)
        ins = {}
        for v in VARIANTS:
            for p in PROXIES:
                ir1 = _callgrind_total(bench, Server, free_port, p, v, n1, cert, key, general)
                ir2 = _callgrind_total(bench, Server, free_port, p, v, n2, cert, key, general)
                ins[(v[0], p)] = (ir2 - ir1) / (n2 - n1)
                log("  %-5s %-6s Ir(%d)=%d Ir(%d)=%d -> %.0f instructions/request"
                    % (v[0], p, n1, ir1, n2, ir2, ins[(v[0], p)]))
        ins["cg"] = (n1, n2)
    return {"runs": runs, "duration": duration, "results": results, "problems": problems,
            "general": general, "busy": busy, "negotiated": negotiated, "ins": ins,
            "binary": binary_text}


def report(args, r):
    res = r["results"]
    med = {k: {f: statistics.median(x[f] for x in v)
               for f in ("rps", "cpu_us", "writes", "upstream_us", "client_us")}
           for k, v in res.items() if v}
    ins = r["ins"]
    lines = ["", "| TLS and HTTP/2 (median of %d runs of %ds; HTTP/1.1 keep-alive upstream) | "
             "sluice req/s | nginx req/s | sluice/nginx | target | met |"
             % (r["runs"], r["duration"]),
             "| --- | ---: | ---: | ---: | --- | --- |"]
    for key, label, _, _, target in VARIANTS:
        s, n = med[(key, "sluice")]["rps"], med[(key, "nginx")]["rps"]
        ratio = s / n if n else 0.0
        flagged = problems_of(r, key)
        lines.append("| %s | %.0f | %.0f | %.2f | >= %.1f | %s |"
                     % (label, s, n, ratio, target,
                        ("yes" if ratio >= target else "no (%.0f%% short)"
                         % (100 * (1 - ratio / target))) + (", FLAGGED" if flagged else "")))
    lines.append("")
    lines.append("| same runs, medians per request (/proc) | proxy CPU us, sluice | nginx | "
                 "upstream + client CPU us, with sluice | with nginx | proxy write+writev "
                 "calls, sluice | nginx |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, label, _, _, _ in VARIANTS:
        s, n = med[(key, "sluice")], med[(key, "nginx")]
        lines.append("| %s | %.1f | %.1f | %.1f + %.1f | %.1f + %.1f | %.2f | %.2f |"
                     % (key, s["cpu_us"], n["cpu_us"], s["upstream_us"], s["client_us"],
                        n["upstream_us"], n["client_us"], s["writes"], n["writes"]))
    if ins is not None:
        n1, n2 = ins["cg"]
        lines.append("")
        lines.append("| instructions per request (callgrind, h2load -n %d vs %d, %d conns) | "
                     "sluice | nginx | sluice/nginx |" % (n1, n2, args.cg_concurrency))
        lines.append("| --- | ---: | ---: | ---: |")
        for key, label, client, _, _ in VARIANTS:
            s, n = ins[(key, "sluice")], ins[(key, "nginx")]
            how = "--h1" if client == "wrk" else "-m%d" % H2_STREAMS
            lines.append("| %s (%s) | %.0f | %.0f | %.2f |" % (key, how, s, n, s / n))
    lines.append("")
    lines.append("- sluice binary: %s (copied at the start; every process of this part ran "
                 "that copy)" % r["binary"])
    neg = r["negotiated"]
    for key in ("h2", "https"):
        lines.append("- %s negotiated: sluice %s; nginx %s" % (key, _neg(neg["sluice"][key]),
                                                               _neg(neg["nginx"][key])))
    lines.append("- CPUs busy with other work between rounds (all of ours idle): %s "
                 "(0.5 s samples)" % ", ".join("%.0f%%" % (100 * x) for x in r["busy"]))
    for key, _, _, _, _ in VARIANTS:
        for p in PROXIES:
            v = res[(key, p)]
            lines.append("- %s %s runs (req/s): %s%s" % (
                key, p, ", ".join("%.0f (max latency %.0f ms)" % (x["rps"], x["max"]) for x in v),
                ("  PROBLEMS: " + "; ".join(r["problems"][(key, p)]))
                if r["problems"][(key, p)] else ""))
    if r["general"]:
        lines.append("- PROBLEMS: " + "; ".join(r["general"]))
    return "\n".join(lines)


def problems_of(r, key):
    return any(r["problems"][(key, p)] for p in PROXIES)


def _neg(t):
    proto, cipher, kex, alpn = t
    return "%s %s, %s, ALPN %s" % (proto, cipher, kex or "?", alpn)

