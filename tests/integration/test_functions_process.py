"""runtime: process — sluice runs the function's own process behind the Lambda Runtime
API: the Python and Node example bootstraps with the test handlers of
tests/support/functions/, through the real binary. Cold start then warm reuse, the
concurrency limit and its queue, timeout kill, crash recovery, idle scale-to-zero,
memory limit, init errors, and no orphan after sluice is killed with SIGKILL."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from admin_helpers import fetch_metrics, metric
from harness import ROOT, Client, SluiceTestCase, build_request, free_port

PY_BOOTSTRAP = os.path.join(ROOT, "examples", "functions", "python", "bootstrap.py")
NODE_BOOTSTRAP = os.path.join(ROOT, "examples", "functions", "node", "bootstrap.js")
FUNCTIONS_DIR = os.path.join(ROOT, "tests", "support", "functions")
# Sanitizer builds start slower and run every callback slower.
SLOW = 3 if os.environ.get("SLUICE_SANITIZED") else 1


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout=10.0 * SLOW, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def function_yaml(name, handler, runtime_cmd=None, **settings):
    """One `functions:` entry running tests/support/functions/testfn.* with `handler`."""
    cmd = runtime_cmd or ["python3", PY_BOOTSTRAP]
    lines = ["  %s:" % name,
             "    runtime: process",
             "    command: %s" % json.dumps(cmd),
             "    working_dir: %s" % FUNCTIONS_DIR,
             "    handler: %s" % handler]
    for k, v in settings.items():
        lines.append("    %s: %s" % (k, v))
    return "\n".join(lines) + "\n"


class ProcessRuntimeCase(SluiceTestCase):
    def start(self, functions, routes, extra=""):
        """sluice with an admin listener, the given `functions:` body and routes."""
        self.admin_port = free_port()
        text = ("listeners:\n"
                "  - name: public\n"
                "    address: @LISTEN@\n"
                "admin: {address: 127.0.0.1:%d}\n" % self.admin_port
                + extra
                + "functions:\n" + functions
                + "routes:\n" + routes)
        self.s = self.start_sluice(text, start_timeout=15 * SLOW)
        return self.s

    def get(self, path, headers=(), method="GET", body=b""):
        with self.client(self.s, timeout=30 * SLOW) as c:
            return c.request(method, path, headers, body)

    def metrics(self):
        return fetch_metrics(self.admin_port)[1]

    def fmetric(self, name, function):
        return metric(self.metrics(), name, function=function)

    def log(self):
        return self.s.output()


class TestColdAndWarm(ProcessRuntimeCase):
    def test_cold_start_then_warm_reuse_with_lambda_environment(self):
        self.start(
            function_yaml("echo", "testfn.echo", memory_mb=256,
                          environment="{GREETING: hi, AWS_REGION: eu-west-1}"),
            '  - name: echo\n'
            '    match: {path: "/echo/{name}"}\n'
            '    function: echo\n'
            '    stage: {name: prod, variables: {color: blue}}\n')
        r1 = self.get("/echo/world%20x?a=1&a=2&b=", headers=[("Cookie", "c1=v1; c2=v2"),
                                                             ("X-Multi", "one"),
                                                             ("X-Multi", "two")])
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r1.header("Content-Type"), "application/json")
        doc1 = r1.json()
        event = doc1["event"]
        # Payload format 2.0 (the default), as API Gateway builds it.
        self.assertEqual(event["version"], "2.0")
        self.assertEqual(event["routeKey"], "ANY /echo/{name}")
        self.assertEqual(event["rawPath"], "/echo/world%20x")
        self.assertEqual(event["rawQueryString"], "a=1&a=2&b=")
        self.assertEqual(event["queryStringParameters"], {"a": "1,2", "b": ""})
        self.assertEqual(event["pathParameters"], {"name": "world x"})
        self.assertEqual(event["cookies"], ["c1=v1", "c2=v2"])
        self.assertEqual(event["headers"]["x-multi"], "one,two")
        self.assertEqual(event["stageVariables"], {"color": "blue"})
        self.assertEqual(event["requestContext"]["stage"], "prod")
        self.assertEqual(event["requestContext"]["http"]["method"], "GET")
        self.assertEqual(event["requestContext"]["http"]["sourceIp"], "127.0.0.1")
        self.assertFalse(event["isBase64Encoded"])
        env = doc1["env"]
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], "echo")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST")
        self.assertEqual(env["AWS_REGION"], "eu-west-1")
        self.assertEqual(env["GREETING"], "hi")
        self.assertEqual(env["_HANDLER"], "testfn.echo")
        self.assertEqual(env["LAMBDA_TASK_ROOT"], os.path.realpath(FUNCTIONS_DIR))
        self.assertRegex(env["AWS_LAMBDA_RUNTIME_API"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(doc1["arn"], "arn:aws:lambda:us-east-1:000000000000:function:echo")
        # The deadline header gives the function its remaining time (timeout 3s default).
        self.assertGreater(doc1["remaining_ms"], 0)
        self.assertLessEqual(doc1["remaining_ms"], 3000)

        r2 = self.get("/echo/again")
        self.assertEqual(r2.status, 200, r2)
        doc2 = r2.json()
        self.assertEqual(doc2["pid"], doc1["pid"], "the warm instance is reused")
        self.assertNotEqual(doc2["request_id"], doc1["request_id"])
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "echo"), 1,
                         fetch_metrics(self.admin_port)[0] + self.log())
        self.assertEqual(self.fmetric("sluice_function_invocations_total", "echo"), 2)
        self.assertEqual(self.fmetric("sluice_function_instances", "echo"), 1)
        self.assertEqual(self.fmetric("sluice_function_errors_total", "echo"), 0)
        self.assertGreater(self.fmetric("sluice_function_billed_gigabyte_seconds_total", "echo"), 0)
        cost = self.fmetric("sluice_function_estimated_cost_dollars_total", "echo")
        self.assertGreater(cost, 2 * 0.20 / 1e6 - 1e-12)
        self.assertEqual(metric(self.metrics(), "sluice_function_duration_seconds_count",
                                function="echo"), 2)
        self.assertGreater(self.fmetric("sluice_function_init_duration_seconds_total", "echo"),
                           0)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool not installed (scripts/install-deps does)")
        text = fetch_metrics(self.admin_port)[0]
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool: %s%s" % (p.stdout.decode(), p.stderr.decode()))

    def test_payload_format_1_0_and_post_body(self):
        self.start(function_yaml("echo", "testfn.echo", payload_format='"1.0"'),
                   '  - name: echo\n'
                   '    match: {path: "/items/{id}", methods: [POST]}\n'
                   '    function: echo\n')
        r = self.get("/items/42?x=1&x=2", method="POST", body=b'{"k": "v"}',
                     headers=[("Content-Type", "application/json")])
        self.assertEqual(r.status, 200, r)
        event = r.json()["event"]
        self.assertEqual(event["httpMethod"], "POST")
        self.assertEqual(event["resource"], "/items/{id}")
        self.assertEqual(event["path"], "/items/42")
        self.assertEqual(event["pathParameters"], {"id": "42"})
        self.assertEqual(event["queryStringParameters"], {"x": "2"})
        self.assertEqual(event["multiValueQueryStringParameters"], {"x": ["1", "2"]})
        self.assertEqual(event["body"], '{"k": "v"}')
        self.assertIs(event["isBase64Encoded"], False)
        self.assertIsNone(event["stageVariables"])
        self.assertEqual(event["requestContext"]["httpMethod"], "POST")

    def test_function_output_is_logged_with_request_id(self):
        self.start(function_yaml("log", "testfn.log"),
                   '  - name: log\n'
                   '    match: {path: /log}\n'
                   '    function: log\n',
                   extra="filters:\n  - request_id: {}\n")
        r = self.get("/log", headers=[("X-Request-Id", "req-log-1")])
        self.assertEqual(r.status, 200, r)
        aws_id = r.json()["request_id"]
        self.assertTrue(wait_until(lambda: "hello from %s" % aws_id in self.log()), self.log())
        lines = [l for l in self.log().splitlines() if "hello from %s" % aws_id in l]
        self.assertIn("req-log-1", lines[0])
        self.assertIn("log[", lines[0])
        self.assertTrue(wait_until(lambda: any("req-log-1 stderr: warn" in l
                                               for l in self.log().splitlines())), self.log())


class TestFailures(ProcessRuntimeCase):
    def routes(self, *names):
        return "".join('  - name: %s\n    match: {path: /%s}\n    function: %s\n' % (n, n, n)
                       for n in names)

    def test_function_error_is_502_and_logged(self):
        self.start(function_yaml("fail", "testfn.fail"), self.routes("fail"),
                   extra="filters:\n  - request_id: {}\n")
        r = self.get("/fail", headers=[("X-Request-Id", "req-fail-1")])
        self.assertJsonError(r, 502, "Internal server error")
        self.assertNotIn(b"boom", r.body)
        self.assertTrue(wait_until(lambda: "boom" in self.log()))
        line = [l for l in self.log().splitlines() if "function error" in l][0]
        self.assertIn("req-fail-1", line)
        self.assertIn("ValueError", line)
        self.assertEqual(self.fmetric("sluice_function_errors_total", "fail"), 1)

    def test_malformed_reply_is_502(self):
        self.start(function_yaml("raw", "testfn.raw", payload_format='"1.0"'),
                   self.routes("raw"))
        r = self.get("/raw", method="POST", body=b'{"statusCode": "abc"}')
        self.assertJsonError(r, 502, "Internal server error")
        r = self.get("/raw", method="POST",
                     body=b'{"statusCode": 201, "headers": {"x-a": "1"}, '
                          b'"multiValueHeaders": {"set-cookie": ["a=1", "b=2"]}, "body": "made"}')
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body, b"made")
        self.assertEqual(r.header("x-a"), "1")
        self.assertEqual(sorted(r.header_all("set-cookie")), ["a=1", "b=2"])
        self.assertTrue(wait_until(lambda: "malformed reply" in self.log()), self.log())

    def test_crash_gets_502_and_instance_is_replaced(self):
        self.start(function_yaml("crash", "testfn.crash") + function_yaml("echo", "testfn.echo"),
                   self.routes("crash", "echo"))
        r = self.get("/crash")
        self.assertJsonError(r, 502, "Internal server error")
        self.assertTrue(wait_until(lambda: "exiting with status 3" in self.log()), self.log())
        self.assertIn("exited with status 3", self.log())
        self.assertEqual(self.fmetric("sluice_function_instance_crashes_total", "crash"), 1)
        self.assertEqual(self.fmetric("sluice_function_instances", "crash"), 0)
        # The next request starts a new instance and is answered (again a crash here).
        r = self.get("/crash")
        self.assertJsonError(r, 502)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "crash"), 2)
        # Other functions are unaffected.
        self.assertEqual(self.get("/echo").status, 200)

    def test_timeout_is_504_and_instance_killed_and_replaced(self):
        self.start(function_yaml("sleep", "testfn.sleep", timeout="%dms" % (700 * SLOW)),
                   self.routes("sleep"))
        first = self.get("/sleep?ms=0")
        self.assertEqual(first.status, 200, first)
        pid = first.json()["pid"]
        started = time.monotonic()
        r = self.get("/sleep?ms=20000")
        self.assertJsonError(r, 504, "Endpoint request timed out")
        self.assertLess(time.monotonic() - started, 15)
        self.assertTrue(wait_until(lambda: not pid_alive(pid)), "timed-out instance still runs")
        self.assertEqual(self.fmetric("sluice_function_timeouts_total", "sleep"), 1)
        self.assertEqual(self.fmetric("sluice_function_instances_killed_total", "sleep"), 1)
        again = self.get("/sleep?ms=0")
        self.assertEqual(again.status, 200, again)
        self.assertNotEqual(again.json()["pid"], pid)

    def test_memory_limit_kills_instance(self):
        self.start(function_yaml("hog", "testfn.hog", memory_mb=128, timeout="20s"),
                   self.routes("hog"))
        ok = self.get("/hog?mb=1")
        self.assertEqual(ok.status, 200, ok)
        pid = ok.json()["pid"]
        r = self.get("/hog?mb=400&ms=%d" % (3000 * SLOW))
        self.assertJsonError(r, 502, "Internal server error")
        self.assertTrue(wait_until(lambda: not pid_alive(pid)))
        self.assertIn("over memory_mb 128", self.log())

    def test_init_error_is_502(self):
        self.start(function_yaml("broken", "initfail.handler"), self.routes("broken"))
        r = self.get("/broken")
        self.assertJsonError(r, 502, "Internal server error")
        self.assertTrue(wait_until(lambda: "failed to initialise" in self.log()), self.log())

    def test_command_that_exits_at_once_is_502(self):
        self.start(function_yaml("quits", "x.y", runtime_cmd=["false"]), self.routes("quits"))
        r = self.get("/quits")
        self.assertJsonError(r, 502, "Internal server error")
        self.assertTrue(wait_until(lambda: "instance failed to start" in self.log()
                                   or "exited with status 1" in self.log()), self.log())


class TestRuntimeApi(ProcessRuntimeCase):
    """The Runtime API against runtimes that misbehave, and against intruders."""

    def misbehave(self, name, mode, **settings):
        return function_yaml(name, "x.y", runtime_cmd=["python3", "misbehave.py"],
                             environment="{MODE: %s}" % mode, **settings)

    def test_other_local_processes_cannot_use_an_instance_runtime_api(self):
        self.start(function_yaml("echo", "testfn.echo"),
                   '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        first = self.get("/echo")
        api = first.json()["env"]["AWS_LAMBDA_RUNTIME_API"]
        host, port = api.rsplit(":", 1)
        # The test process is not the instance: refused, and told to go away.
        with Client(host, int(port), timeout=10) as c:
            r = c.request("GET", "/2018-06-01/runtime/invocation/next")
        self.assertEqual(r.status, 403, r)
        with Client(host, int(port), timeout=10) as c:
            r = c.request("POST", "/2018-06-01/runtime/invocation/x/response", body=b"{}")
        self.assertEqual(r.status, 403, r)
        # The instance itself goes on serving.
        second = self.get("/echo")
        self.assertEqual(second.status, 200, second)
        self.assertEqual(second.json()["pid"], first.json()["pid"])
        self.assertIn("refused a Runtime API connection", self.log())

    def test_instance_that_stops_asking_is_replaced(self):
        self.start(self.misbehave("stall", "stall", max_concurrency=1, init_timeout="1s",
                                  timeout="20s"),
                   '  - name: stall\n    match: {path: /stall}\n    function: stall\n')
        r1 = self.get("/stall")
        self.assertEqual(r1.status, 200, r1)
        r2 = self.get("/stall")
        self.assertEqual(r2.status, 200, r2)
        self.assertNotEqual(r1.body.split()[1], r2.body.split()[1], "a new instance served")
        self.assertIn("never asked for the next invocation", self.log())

    def test_instance_that_never_asks_for_work_is_killed_after_init_timeout(self):
        self.start(self.misbehave("silent", "silent", init_timeout="%dms" % (500 * SLOW),
                                  timeout="20s"),
                   '  - name: silent\n    match: {path: /silent}\n    function: silent\n')
        r = self.get("/silent")
        self.assertJsonError(r, 502, "Internal server error")
        self.assertTrue(wait_until(lambda: "did not ask for work within init_timeout"
                                   in self.log()), self.log())
        self.assertTrue(wait_until(
            lambda: self.fmetric("sluice_function_instances_killed_total", "silent") == 1))
        self.assertTrue(wait_until(lambda: self.fmetric("sluice_function_instances", "silent")
                                   == 0))

    def test_runtime_that_reconnects_its_long_poll_is_served(self):
        for mode in ("reconnect", "drop"):
            with self.subTest(mode=mode):
                self.start(self.misbehave(mode, mode, min_instances=1, max_concurrency=1),
                           '  - name: m\n    match: {path: /m}\n    function: %s\n' % mode)
                # Let the runtime give up on its first long poll (after 0.3 s).
                time.sleep(1.0)
                r = self.get("/m")
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.body.startswith(mode.encode()), r)
                self.stop_sluice(self.s)

    def test_queued_requests_of_clients_that_left_are_not_run(self):
        self.start(function_yaml("sleep", "testfn.sleep", max_concurrency=1, timeout="20s"),
                   '  - name: sleep\n    match: {path: /sleep}\n    function: sleep\n')
        self.assertEqual(self.get("/sleep?ms=0").status, 200)
        busy = threading.Thread(target=self.get, args=("/sleep?ms=%d" % (1500 * SLOW),))
        busy.start()
        self.assertTrue(wait_until(lambda: "sleep %d" % (1500 * SLOW) in self.log()))
        for i in range(5):
            c = Client(self.s.host, self.s.port)
            c.send(build_request("GET", "/sleep?ms=%d" % (1000 + i)))
            # Gone before an instance is free: an abortive close (RST). A plain FIN after
            # a complete request reads as a half-close, which still gets its response.
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        busy.join(30 * SLOW)
        self.assertEqual(self.get("/sleep?ms=7").status, 200)
        self.assertTrue(wait_until(lambda: "sleep 7" in self.log()))
        ran = [l for l in self.log().splitlines() if " stdout: sleep 10" in l]
        self.assertEqual(ran, [], "invocations of departed clients ran")


class TestScaling(ProcessRuntimeCase):
    def test_concurrency_limit_queue_and_throttle(self):
        self.start(function_yaml("sleep", "testfn.sleep", max_concurrency=1, max_queue=1,
                                 timeout="20s", queue_timeout="20s"),
                   '  - name: sleep\n    match: {path: /sleep}\n    function: sleep\n')
        warm = self.get("/sleep?ms=0")
        self.assertEqual(warm.status, 200, warm)
        results = {}

        def call(tag, ms):
            results[tag] = self.get("/sleep?ms=%d" % ms)

        busy = threading.Thread(target=call, args=("busy", 1500 * SLOW))
        busy.start()
        self.assertTrue(wait_until(
            lambda: metric(self.metrics(), "sluice_function_concurrent_executions",
                           function="sleep") == 1))
        queued = threading.Thread(target=call, args=("queued", 0))
        queued.start()
        self.assertTrue(wait_until(lambda: self.fmetric("sluice_function_queued", "sleep") == 1))
        # One running, one waiting: the third is refused at once.
        third = self.get("/sleep?ms=0")
        self.assertJsonError(third, 429, "Too Many Requests")
        busy.join(30 * SLOW)
        queued.join(30 * SLOW)
        self.assertEqual(results["busy"].status, 200, results["busy"])
        self.assertEqual(results["queued"].status, 200, results["queued"])
        pids = {warm.json()["pid"], results["busy"].json()["pid"], results["queued"].json()["pid"]}
        self.assertEqual(len(pids), 1, "max_concurrency 1 means one instance")
        self.assertEqual(self.fmetric("sluice_function_throttles_total", "sleep"), 1)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "sleep"), 1)

    def test_queue_timeout_is_429(self):
        self.start(function_yaml("sleep", "testfn.sleep", max_concurrency=1, max_queue=5,
                                 timeout="20s", queue_timeout="%dms" % (300 * SLOW)),
                   '  - name: sleep\n    match: {path: /sleep}\n    function: sleep\n')
        busy = threading.Thread(target=self.get, args=("/sleep?ms=%d" % (3000 * SLOW),))
        busy.start()
        self.assertTrue(wait_until(
            lambda: metric(self.metrics(), "sluice_function_concurrent_executions",
                           function="sleep") == 1))
        r = self.get("/sleep?ms=0")
        self.assertJsonError(r, 429, "Too Many Requests")
        busy.join(30 * SLOW)

    def test_parallel_requests_start_parallel_instances(self):
        self.start(function_yaml("sleep", "testfn.sleep", max_concurrency=3, timeout="20s"),
                   '  - name: sleep\n    match: {path: /sleep}\n    function: sleep\n')
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get("/sleep?ms=800")))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SLOW)
        self.assertEqual([r.status for r in results], [200, 200, 200], results)
        self.assertEqual(len({r.json()["pid"] for r in results}), 3)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "sleep"), 3)

    def test_idle_instances_scale_to_zero(self):
        self.start(function_yaml("echo", "testfn.echo", idle_timeout="%dms" % (400 * SLOW)),
                   '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        r = self.get("/echo")
        self.assertEqual(r.status, 200, r)
        pid = r.json()["pid"]
        self.assertTrue(wait_until(lambda: not pid_alive(pid)), "idle instance still runs")
        self.assertTrue(wait_until(lambda: self.fmetric("sluice_function_instances", "echo") == 0))
        r = self.get("/echo")
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.json()["pid"], pid)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "echo"), 2)

    def test_min_instances_are_started_and_kept_warm(self):
        self.start(function_yaml("echo", "testfn.echo", min_instances=2, max_concurrency=4,
                                 idle_timeout="200ms"),
                   '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        self.assertTrue(wait_until(lambda: self.fmetric("sluice_function_instances", "echo") == 2))
        time.sleep(0.6)  # past idle_timeout: the warm ones stay
        self.assertEqual(self.fmetric("sluice_function_instances", "echo"), 2)
        self.assertEqual(self.get("/echo").status, 200)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "echo"), 2)


class TestLifecycle(ProcessRuntimeCase):
    def test_no_orphan_after_sigkill(self):
        s = self.start(function_yaml("echo", "testfn.echo", min_instances=1),
                       '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        r = self.get("/echo")
        self.assertEqual(r.status, 200, r)
        pid = r.json()["pid"]
        self.assertTrue(pid_alive(pid))
        s.stopped_by_test = True
        s.proc.kill()
        s.proc.wait(10)
        self.assertTrue(wait_until(lambda: not pid_alive(pid)), "instance outlived sluice")

    def test_sigterm_stops_instances(self):
        s = self.start(function_yaml("echo", "testfn.echo"),
                       '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        pid = self.get("/echo").json()["pid"]
        self.stop_sluice(s)
        self.assertTrue(wait_until(lambda: not pid_alive(pid)))

    def test_reload_keeps_warm_instance_when_function_unchanged(self):
        s = self.start(function_yaml("echo", "testfn.echo"),
                       '  - name: echo\n    match: {path: /echo}\n    function: echo\n')
        pid = self.get("/echo").json()["pid"]
        with open(s.config_path) as f:
            text = f.read()
        with open(s.config_path, "w") as f:
            f.write(text + "  - name: ping\n    match: {path: /ping}\n"
                           "    response: {status: 200, body: pong}\n")
        s.send_signal(signal.SIGHUP)
        s.signalled = False
        self.assertTrue(wait_until(lambda: self.get("/ping").status == 200))
        self.assertEqual(self.get("/echo").json()["pid"], pid)
        self.assertEqual(self.fmetric("sluice_function_cold_starts_total", "echo"), 1)


class TestNode(ProcessRuntimeCase):
    def test_node_bootstrap_echo_error_and_crash(self):
        node = ["node", NODE_BOOTSTRAP]
        self.start(function_yaml("echo", "testfn.echo", runtime_cmd=node)
                   + function_yaml("fail", "testfn.fail", runtime_cmd=node)
                   + function_yaml("crash", "testfn.crash", runtime_cmd=node),
                   "".join('  - name: %s\n    match: {path: /%s}\n    function: %s\n'
                           % (n, n, n) for n in ("echo", "fail", "crash")))
        r1 = self.get("/echo?q=1")
        self.assertEqual(r1.status, 200, r1)
        r2 = self.get("/echo")
        self.assertEqual(r2.json()["pid"], r1.json()["pid"])
        self.assertEqual(r1.json()["event"]["queryStringParameters"], {"q": "1"})
        self.assertJsonError(self.get("/fail"), 502, "Internal server error")
        self.assertJsonError(self.get("/crash"), 502, "Internal server error")
        self.assertEqual(self.get("/echo").status, 200)


class TestExamples(ProcessRuntimeCase):
    def test_python_and_node_hello_examples(self):
        py_dir = os.path.join(ROOT, "examples", "functions", "python")
        node_dir = os.path.join(ROOT, "examples", "functions", "node")
        self.start("  hello-py:\n    runtime: process\n    command: [python3, bootstrap.py]\n"
                   "    working_dir: %s\n    handler: hello.handler\n"
                   "  hello-node:\n    runtime: process\n    command: [node, bootstrap.js]\n"
                   "    working_dir: %s\n    handler: hello.handler\n" % (py_dir, node_dir),
                   '  - name: py\n    match: {path: "/py/{name}"}\n    function: hello-py\n'
                   '  - name: node\n    match: {path: "/node/{name}"}\n    function: hello-node\n')
        for prefix in ("py", "node"):
            r = self.get("/%s/sluice" % prefix)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["message"], "Hello, sluice!")


if __name__ == "__main__":
    unittest.main()
