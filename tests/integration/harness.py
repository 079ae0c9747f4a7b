"""Helpers for the integration tests: start the real sluice binary and the test
upstream (tests/support/upstream.py) on loopback ephemeral ports, talk to sluice
with a raw-socket HTTP/1.1 client that sends exact bytes, and read what the
upstream received. Every process started here is stopped by the test's cleanups,
also when the test fails, and dies with the test process if that one is killed.

Config text uses @NAME@ placeholders (not ${...}, which is sluice's own env
substitution, and not {...}, which is YAML): @LISTEN@ is the listener address that
SluiceTestCase.start_sluice() picks; pass any others as keyword arguments.
"""

import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_ROOT") or os.path.dirname(os.path.dirname(HERE))
SLUICE_BIN = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, "build", "sluice")
UPSTREAM_PY = os.path.join(ROOT, "tests", "support", "upstream.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import upstream as _upstream_mod  # noqa: E402  (pattern helpers)

DEFAULT_TIMEOUT = 10.0
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port():
    """A loopback port with nothing listening (connect → ECONNREFUSED)."""
    return free_port()


def pattern(n):
    """The deterministic body the upstream's /bytes/<n> sends: byte i is i % 251."""
    return b"".join(pattern_pieces(n))


def pattern_pieces(n, piece=_upstream_mod.PIECE):
    """pattern(n) in pieces of `piece` bytes (the last one shorter)."""
    off = 0
    step = _upstream_mod.PIECE
    while off < n:
        k = min(piece, n - off)
        if k <= step:
            yield _upstream_mod.pattern_piece(off, k)
        else:
            yield b"".join(_upstream_mod.pattern_piece(o, min(step, off + k - o))
                           for o in range(off, off + k, step))
        off += k


def pattern_sha256(n):
    h = hashlib.sha256()
    for p in pattern_pieces(n):
        h.update(p)
    return h.hexdigest()


def vm_rss_kib(pid):
    """VmRSS of a process in KiB, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def write_config(directory, text, name="sluice.yaml", **subst):
    """Writes dedented `text` with @NAME@ placeholders substituted; returns its path."""
    text = textwrap.dedent(text).lstrip("\n")
    for key, value in subst.items():
        text = text.replace("@%s@" % key, str(value))
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _listening_inodes(port):
    """Socket inodes of TCP sockets listening on `port` (any address), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            pass
    return inodes


def pid_listens_on(pid, port):
    """True if process `pid` itself holds a socket listening on `port`. A free_port()
    number can be taken by another test's process between probe and bind (ctest runs
    tests in parallel), so "something accepts on the port" does not mean "ours does"."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def wait_for_port(host, port, timeout, proc=None):
    """True once host:port accepts a TCP connection (and, given proc, once proc itself
    listens there); False on timeout or if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if proc is not None and not pid_listens_on(proc.pid, port):
            time.sleep(0.02)
            continue
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def run_sluice(*args, timeout=30, env=None):
    """Runs `sluice ARGS...` to completion: (returncode, stdout, stderr)."""
    p = subprocess.run([SLUICE_BIN, *args], capture_output=True, text=True, timeout=timeout,
                       env=env, preexec_fn=_die_with_parent)
    return p.returncode, p.stdout, p.stderr


class RssSampler:
    """Samples a process's VmRSS every 10 ms in a thread; .peak in KiB."""

    def __init__(self, sluice):
        self.sluice = sluice
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss = self.sluice.rss_kib()
            if rss is not None:
                self.peak = max(self.peak, rss)
                self.samples += 1
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Upstream:
    """tests/support/upstream.py in a subprocess, with its request log."""

    def __init__(self, directory, tls_cert=None, tls_key=None):
        fd, self.log_path = tempfile.mkstemp(prefix="upstream-", suffix=".jsonl", dir=directory)
        os.close(fd)
        self.events_path = self.log_path + ".events"
        self.stderr_path = self.log_path + ".stderr"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, UPSTREAM_PY, "--port", "0", "--log", self.log_path,
             "--events", self.events_path, "--exit-on-stdin-eof"]
            + (["--tls-cert", tls_cert, "--tls-key", tls_key] if tls_cert else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            preexec_fn=_die_with_parent)
        line = self._readline_with_timeout(DEFAULT_TIMEOUT)
        if not line.startswith(b"PORT "):
            self.stop()
            raise RuntimeError("upstream did not start: %r %s" % (line, self.stderr()))
        self.port = int(line.split()[1])
        self.address = "127.0.0.1:%d" % self.port

    def _readline_with_timeout(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n") and time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            c = os.read(self.proc.stdout.fileno(), 1)
            if not c:
                break
            buf += c
        sel.close()
        return buf

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""

    @staticmethod
    def _read_jsonl(path):
        out = []
        try:
            with open(path) as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def records(self):
        """Every request the upstream has logged so far, in arrival order."""
        return self._read_jsonl(self.log_path)

    def events(self):
        """Connection events: {"event": "accept"|"head", "conn_id", ["head"]}, as they came."""
        return self._read_jsonl(self.events_path)

    def wait_records(self, n, timeout=DEFAULT_TIMEOUT):
        """Waits until at least n records are logged; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records()
            if len(recs) >= n or time.monotonic() >= deadline:
                return recs
            time.sleep(0.01)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass
        self._stderr.close()


class Sluice:
    """`sluice run CONFIG` in a subprocess."""

    def __init__(self, config_path, listen_host, listen_port, directory,
                 start_timeout=DEFAULT_TIMEOUT, env=None):
        self.config_path = config_path
        self.host, self.port = listen_host, listen_port
        self.stdout_path = os.path.join(directory, "sluice-%d.stdout" % listen_port)
        self.stderr_path = os.path.join(directory, "sluice-%d.stderr" % listen_port)
        self._out = open(self.stdout_path, "w")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([SLUICE_BIN, "run", config_path], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, env=env,
                                     preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self.signalled = False
        self.stopped_by_test = False
        self.ready = wait_for_port(listen_host, listen_port, start_timeout, self.proc)

    def output(self):
        out = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            out.append("--- sluice %s ---\n%s" % (label, text[-8000:]))
        return "\n".join(out)

    def send_signal(self, sig=signal.SIGTERM):
        """Sends sig (once: a second SIGTERM means "stop now" to sluice)."""
        if self.proc.poll() is None:
            self.signalled = True
            self.proc.send_signal(sig)

    def terminate(self, sig=signal.SIGTERM, timeout=20):
        """Sends sig unless one was already sent, waits, and returns the exit code
        (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        if not self.signalled:
            self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def close_files(self):
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass

    def rss_kib(self):
        return vm_rss_kib(self.pid)


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []          # [(name, value)] as received
        self.body = b""            # None when the body was streamed into a hash only
        self.body_len = 0
        self.body_sha256 = None
        self.chunked = False
        self.interim = []          # 1xx responses seen before this one: [(status, headers)]

    def header(self, name, default=None):
        """Value of the first header called `name` (case-insensitive)."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return "<Response %s %s headers=%r body=%r>" % (self.status, self.reason, self.headers,
                                                        body)


class ConnectionClosed(Exception):
    pass


class Client:
    """A raw HTTP/1.1 client connection: sends exact bytes, parses responses strictly
    enough to frame them (Content-Length, chunked, close-delimited), never hangs
    (every read has a timeout)."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        """Reads more bytes into buf; False at EOF (or connection reset)."""
        if self.eof:
            return False
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, limit=1024 * 1024):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long in response")
            if not self._fill():
                raise ConnectionClosed("connection closed while reading a line; got %r"
                                       % bytes(self.buf[:200]))

    def _read_exact(self, n, sink):
        while n > 0:
            if not self.buf and not self._fill():
                raise ConnectionClosed("connection closed with %d body bytes missing" % n)
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k

    def _read_head(self):
        line = self._read_line()
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % line)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t")))
        return version, status, reason, headers

    def read_response(self, method="GET", keep_body=True, on_body=None):
        """Reads one final response (collecting 1xx interim ones on the way).
        method: the request's method (HEAD → no body). keep_body=False hashes the body
        without keeping it; on_body(n_bytes_so_far) is called as body bytes arrive."""
        r = Response()
        while True:
            r.version, r.status, r.reason, r.headers = self._read_head()
            if 100 <= r.status < 200 and r.status != 101:
                r.interim.append((r.status, r.headers))
                continue
            break
        h = hashlib.sha256()
        body = bytearray()
        count = [0]

        def sink(data):
            h.update(data)
            count[0] += len(data)
            if keep_body:
                body.extend(data)
            if on_body:
                on_body(count[0])

        te = ",".join(r.header_all("Transfer-Encoding")).lower()
        cl = r.header_all("Content-Length")
        if method == "HEAD" or r.status in (204, 304) or r.status == 101:
            pass
        elif "chunked" in te:
            r.chunked = True
            while True:
                size_line = self._read_line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    break
                self._read_exact(size, sink)
                if self._read_line() != b"":
                    raise ValueError("chunk data not followed by CRLF")
        elif cl:
            if len(set(cl)) != 1:
                raise ValueError("conflicting Content-Length in response: %r" % cl)
            self._read_exact(int(cl[0]), sink)
        else:  # close-delimited
            while True:
                if self.buf:
                    data = bytes(self.buf)
                    self.buf.clear()
                    sink(data)
                if not self._fill():
                    break
        r.body = bytes(body) if keep_body else None
        r.body_len = count[0]
        r.body_sha256 = h.hexdigest()
        return r

    def read_interim(self):
        """Reads exactly one response head (e.g. a 100 Continue) and returns
        (status, headers) without reading a body."""
        version, status, reason, headers = self._read_head()
        return status, headers

    def request(self, method, target, headers=(), body=b"", host="example.test",
                version="HTTP/1.1"):
        """Sends a well-formed request (Host and Content-Length added) and reads the reply."""
        self.send(build_request(method, target, headers, body, host, version))
        return self.read_response(method)

    def is_closed(self, timeout=2.0):
        """True if the peer closed (EOF or RST) within `timeout`, with no further bytes
        pending beyond what was already buffered. Extra bytes make it False."""
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.eof = True
                return True
            if not data:
                self.eof = True
                return True
            self.buf += data
            return False
        return False


def build_request(method, target, headers=(), body=b"", host="example.test",
                  version="HTTP/1.1"):
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, target, version)]
    names = {n.lower() for n, _ in headers}
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    for n, v in headers:
        lines.append("%s: %s" % (n, v))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunk_encode(body, sizes=(7, 1, 300, 4096)):
    """Chunked encoding of body with varying chunk sizes, ending with the last chunk."""
    out = bytearray()
    i = k = 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        piece = body[i:i + n]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        i += n
        k += 1
    out += b"0\r\n\r\n"
    return bytes(out)


class SluiceTestCase(unittest.TestCase):
    """Base class: start_upstream() / start_sluice() with cleanups that always run.
    A sluice still running at cleanup is stopped with SIGTERM and must exit 0; one that
    died during the test is reported (a crash never passes silently)."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="sluice-it-")
        self.tmp = self._tmp.name
        self.addCleanup(self._tmp.cleanup)

    def start_upstream(self, tls_cert=None, tls_key=None):
        up = Upstream(self.tmp, tls_cert, tls_key)
        self.addCleanup(up.stop)
        return up

    def write_config(self, text, name="sluice.yaml", **subst):
        return write_config(self.tmp, text, name, **subst)

    def start_sluice(self, text, start_timeout=DEFAULT_TIMEOUT, env=None, **subst):
        """Writes the config (with @LISTEN@ set to a fresh port unless given), starts
        sluice and waits for its listener. Returns the Sluice."""
        if "LISTEN" not in subst:
            subst["LISTEN"] = "127.0.0.1:%d" % free_port()
        host, port = subst["LISTEN"].rsplit(":", 1)
        path = self.write_config(text, "sluice-%s.yaml" % port, **subst)
        s = Sluice(path, host, int(port), self.tmp, start_timeout, env)
        self.addCleanup(self._cleanup_sluice, s)
        if not s.ready:
            s.start_failed = True
            rc = s.proc.poll()
            with open(path) as f:
                cfg = f.read()
            self.fail("sluice did not accept connections on %s within %.0fs (exit code %s)\n"
                      "--- config ---\n%s\n%s" % (subst["LISTEN"], start_timeout, rc, cfg,
                                                   s.output()))
        return s

    def _cleanup_sluice(self, s):
        if s.stopped_by_test:
            s.close_files()
            return
        alive = s.proc.poll() is None and not s.signalled
        rc = s.terminate()
        s.close_files()
        if getattr(s, "start_failed", False):
            return  # already reported by start_sluice()
        if not alive:
            raise AssertionError("sluice exited during the test with code %s\n%s"
                                 % (rc, s.output()))
        if rc != 0:
            raise AssertionError("sluice did not exit 0 on SIGTERM at cleanup (code %s)\n%s"
                                 % (rc, s.output()))

    def stop_sluice(self, s, sig=signal.SIGTERM, timeout=20):
        """Stops sluice with SIGTERM (unless the test already sent a signal with
        s.send_signal()) and asserts exit code 0."""
        s.stopped_by_test = True
        rc = s.terminate(sig, timeout)
        self.assertEqual(rc, 0, "sluice exit code after %s (None = had to be killed)\n%s"
                         % (signal.Signals(sig).name, s.output()))
        return rc

    def client(self, s, timeout=DEFAULT_TIMEOUT):
        c = Client(s.host, s.port, timeout)
        self.addCleanup(c.close)
        return c

    def assertJsonError(self, resp, status, message=None):
        """An error reply in API Gateway's style: status, application/json, {"message":...}
        (with exactly `message` when given)."""
        self.assertEqual(resp.status, status, resp)
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json", resp)
        try:
            doc = resp.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % resp)
        self.assertIsInstance(doc, dict, resp)
        self.assertIn("message", doc, resp)
        if message is not None:
            self.assertEqual(doc["message"], message, resp)


def header_names(record):
    return [n.lower() for n, _ in record["headers"]]


def header_values(record, name):
    return [v for n, v in record["headers"] if n.lower() == name.lower()]
