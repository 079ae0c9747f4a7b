#!/usr/bin/env python3
"""A real redis-server for tests, on a free 127.0.0.1 port, in a temporary directory.

Standard library only. Nothing is persisted (--save "" --appendonly no), so a
restart() starts empty. The server is a child process: always stop() it (or use
`with RedisServer() as r:`); it is also killed when the test process exits or is killed.

    from redis_server import RedisServer, RedisError, redis_server_available

    r = RedisServer(password=None, tls=False).start()
    r.host, r.port        # "127.0.0.1", the plain TCP port (always there)
    r.tls_port            # the TLS port when tls=True, else None
    r.url                 # "redis://127.0.0.1:PORT/0" — or, with tls=True,
                          # "rediss://127.0.0.1:TLS_PORT/0"; never holds the password
    r.password            # as given (put it in the sluice config's `redis.password`)
    r.ca_file             # with tls=True: the CA (PEM) that signed the server's
                          # certificate (valid for IP 127.0.0.1 and DNS localhost)
    r.cli("SET", "k", "v")   # -> "OK"; one command over a raw RESP socket (plain port,
                             #    authenticated). Replies: str (status and bulk, decoded
                             #    as UTF-8 with surrogateescape), int, list, None; an error
                             #    reply raises RedisError. Bulk bytes: cli_bytes(...).
    r.pause(ms)           # CLIENT PAUSE ms ALL: commands hang (connects still succeed)
    r.stop()              # SIGTERM and wait (a clean shutdown; idempotent)
    r.kill()              # SIGKILL: the crash case (idempotent)
    r.restart()           # start again on the SAME port(s), same password and TLS
                          # certificates, empty data; waits until it answers PING
    r.alive()             # the process runs
    r.log()               # the server's log so far (for failure messages)

redis_server_available() tells whether redis-server is installed (tests may skip
with that message if not; scripts/install-deps installs it).
"""

import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import tls_certs  # same directory (tests/support)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: redis-server gets SIGKILL when the test process dies."""
    os.setsid()
    _libc.prctl(PR_SET_PDEATHSIG, 9)


class RedisError(Exception):
    """An error reply (-ERR ...) from the server."""


def redis_server_available():
    return os.path.exists(REDIS_SERVER)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8", "surrogateescape")
        elif isinstance(a, (int, float)):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self, raw=False):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "surrogateescape")
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            return data if raw else data.decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.reply(raw) for _ in range(n)]
        raise ConnectionError("unexpected reply %r" % line)


class RedisServer:
    def __init__(self, password=None, tls=False, extra_args=()):
        self.host = "127.0.0.1"
        self.password = password
        self.tls = tls
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="sluice-redis-")
        self.port = None
        self.tls_port = None
        self.ca_file = None
        self._server_cert = self._server_key = None
        self.proc = None
        self._log_path = os.path.join(self.dir, "redis.log")
        if tls:
            self._make_certificates()

    # ---- lifecycle ----
    def start(self):
        if self.port is None:
            for attempt in range(5):
                self.port = _free_port()
                if self.tls:
                    self.tls_port = _free_port()
                if self._spawn(quiet=attempt < 4):
                    return self
                self.port = self.tls_port = None
            raise RuntimeError("redis-server did not start:\n" + self.log())
        if not self._spawn(quiet=False):
            raise RuntimeError("redis-server did not start:\n" + self.log())
        return self

    def restart(self):
        """Starts again on the same port(s) after stop() or kill() (empty data)."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            if self._spawn(quiet=True):
                return self
            if time.monotonic() > deadline:  # the port may linger briefly after a kill
                raise RuntimeError("redis-server did not restart:\n" + self.log())
            time.sleep(0.1)

    def stop(self):
        self._end(signal.SIGTERM)

    def kill(self):
        self._end(signal.SIGKILL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self._log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        """stop() and remove the temporary directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self.alive():
                self.proc.kill()
                self.proc.wait(timeout=5)
        except Exception:
            pass

    @property
    def url(self):
        if self.tls:
            return "rediss://%s:%d/0" % (self.host, self.tls_port)
        return "redis://%s:%d/0" % (self.host, self.port)

    # ---- commands ----
    def cli(self, *args):
        r = self._command(args, raw=False)
        if isinstance(r, RedisError):
            raise r
        return r

    def cli_bytes(self, *args):
        r = self._command(args, raw=True)
        if isinstance(r, RedisError):
            raise r
        return r

    def pause(self, ms):
        return self.cli("CLIENT", "PAUSE", str(int(ms)), "ALL")

    # ---- internals ----
    def _command(self, args, raw):
        with socket.create_connection((self.host, self.port), timeout=10) as s:
            reader = _Reader(s)
            if self.password is not None:
                s.sendall(_encode(["AUTH", self.password]))
                r = reader.reply()
                if isinstance(r, RedisError):
                    raise r
            s.sendall(_encode(list(args)))
            return reader.reply(raw)

    def _spawn(self, quiet):
        args = [REDIS_SERVER, "--bind", self.host, "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", self._log_path, "--daemonize", "no",
                "--protected-mode", "no"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.tls:
            args += ["--tls-port", str(self.tls_port),
                     "--tls-cert-file", self._server_cert,
                     "--tls-key-file", self._server_key,
                     "--tls-ca-cert-file", self.ca_file,
                     "--tls-auth-clients", "no"]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False  # e.g. the port was taken meanwhile
            try:
                if self._ping():
                    return True
            except (OSError, ConnectionError, RedisError):
                pass
            time.sleep(0.02)
        self.kill()
        return False

    def _ping(self):
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            reader = _Reader(s)
            if self.password is not None:
                s.sendall(_encode(["AUTH", self.password]))
                reader.reply()
            s.sendall(_encode(["PING"]))
            if reader.reply() != "PONG":
                return False
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            with socket.create_connection((self.host, self.tls_port), timeout=1) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    pass
        return True

    def _end(self, sig):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _make_certificates(self):
        # A CA and a server certificate for IP 127.0.0.1 and DNS localhost (RSA, 2 days),
        # made by tls_certs (the `openssl` command) in the server's directory.
        ca = tls_certs.new_ca(self.dir, "ca", cn="sluice test CA", key="rsa", days=2)
        server = ca.issue("server", "localhost", dns=["localhost"], ips=["127.0.0.1"],
                          key="rsa", days=2)
        self.ca_file = ca.cert
        self._server_cert, self._server_key = server.cert, server.key


if __name__ == "__main__":
    # Smoke test: python3 redis_server.py
    with RedisServer(password="s3cret", tls=True) as r:
        print(r.url, r.cli("SET", "a", "1"), r.cli("GET", "a"), r.cli("INCR", "n"))
        r.kill()
        r.restart()
        print("after restart:", r.cli("GET", "a"))
        try:
            r.cli("NOSUCHCOMMAND")
        except RedisError as e:
            print("error:", e)
