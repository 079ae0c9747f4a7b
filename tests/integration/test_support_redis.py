"""The test helper tests/support/redis_server.py does what its docstring says: a real
redis-server on a free port, cli(), password, kill/restart on the same port, TLS."""

import socket
import ssl
import unittest

import harness  # noqa: F401  (puts tests/support on sys.path)
from redis_server import RedisError, RedisServer, redis_server_available


@unittest.skipUnless(redis_server_available(), "redis-server is not installed "
                     "(scripts/install-deps installs it)")
class RedisServerHelperTest(unittest.TestCase):
    def test_plain_cli_kill_restart(self):
        with RedisServer() as r:
            self.assertEqual(r.url, "redis://127.0.0.1:%d/0" % r.port)
            self.assertEqual(r.cli("SET", "k", "v"), "OK")
            self.assertEqual(r.cli("GET", "k"), "v")
            self.assertEqual(r.cli("INCR", "n"), 1)
            self.assertEqual(r.cli("GET", "missing"), None)
            self.assertEqual(r.cli("RPUSH", "l", "a", "b"), 2)
            self.assertEqual(r.cli("LRANGE", "l", "0", "-1"), ["a", "b"])
            self.assertEqual(r.cli_bytes("GET", "k"), b"v")
            self.assertEqual(r.pause(10), "OK")
            with self.assertRaises(RedisError):
                r.cli("INCR", "k")
            port = r.port
            r.kill()
            self.assertFalse(r.alive())
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            r.restart()
            self.assertTrue(r.alive())
            self.assertEqual(r.port, port)
            self.assertEqual(r.cli("GET", "k"), None)  # nothing persisted
            r.stop()
            r.stop()  # idempotent
            self.assertFalse(r.alive())

    def test_password(self):
        with RedisServer(password="s3cret") as r:
            self.assertEqual(r.cli("PING"), "PONG")
            with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                self.assertTrue(s.recv(100).startswith(b"-NOAUTH"))

    def test_tls(self):
        with RedisServer(tls=True) as r:
            self.assertEqual(r.url, "rediss://127.0.0.1:%d/0" % r.tls_port)
            ctx = ssl.create_default_context(cafile=r.ca_file)
            for name in ("localhost", "127.0.0.1"):
                with socket.create_connection(("127.0.0.1", r.tls_port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname=name) as s:
                        s.sendall(b"*1\r\n$4\r\nPING\r\n")
                        self.assertEqual(s.recv(100), b"+PONG\r\n")
            r.kill()
            r.restart()
            self.assertEqual(r.cli("PING"), "PONG")


if __name__ == "__main__":
    unittest.main()
