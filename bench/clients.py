"""Load clients for bench/run that wrk cannot replace: a fixed-count keep-alive client
(for instruction counts under callgrind, where the count must be exact) and an opener
of many idle keep-alive connections (for memory per connection). Standard library
only; single-threaded, non-blocking sockets on a selector."""

import errno
import selectors
import socket
import time


def _request(host_header, path="/"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host_header)).encode()


class _Framer:
    """Finds where one HTTP/1.1 response ends in a byte stream (Content-Length or
    chunked; the bench upstream never sends close-delimited bodies)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def pop_response(self):
        """Returns the status of the first complete response (and drops it), or None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        pos = end + 4
        if chunked:
            while True:
                nl = self.buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(self.buf[pos:nl]).split(b";")[0], 16)
                pos = nl + 2
                if size == 0:
                    tend = self.buf.find(b"\r\n\r\n", pos - 2)
                    if tend < 0:
                        return None
                    pos = tend + 4
                    break
                if len(self.buf) < pos + size + 2:
                    return None
                pos += size + 2
        else:
            if len(self.buf) < pos + length:
                return None
            pos += length
        del self.buf[:pos]
        return status


def fixed_count(port, total, concurrency=16, host="127.0.0.1", timeout=300.0, path="/"):
    """Sends exactly `total` GET `path` requests over `concurrency` keep-alive connections,
    one outstanding request per connection. Returns {status: count}."""
    sel = selectors.DefaultSelector()
    req = _request("%s:%d" % (host, port), path)
    sent = done = 0
    statuses = {}
    conns = []
    for _ in range(min(concurrency, total)):
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        framer = _Framer()
        conns.append(s)
        sel.register(s, selectors.EVENT_READ, framer)
        s.sendall(req)
        sent += 1
    deadline = time.monotonic() + timeout
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError("fixed_count: %d/%d responses after %.0fs" % (done, total, timeout))
        for key, _ in sel.select(1.0):
            s, framer = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("fixed_count: the proxy closed a keep-alive connection "
                                      "after %d responses" % done)
            framer.feed(data)
            while True:
                status = framer.pop_response()
                if status is None:
                    break
                statuses[status] = statuses.get(status, 0) + 1
                done += 1
                if sent < total:
                    s.sendall(req)
                    sent += 1
    for s in conns:
        sel.unregister(s)
        s.close()
    sel.close()
    return statuses


def open_idle(port, count, host="127.0.0.1", batch=256, timeout=120.0):
    """Opens `count` connections, completes one GET / on each, and leaves them open and
    idle. Returns (sockets, statuses); the caller closes the sockets."""
    req = _request("%s:%d" % (host, port))
    socks = []
    statuses = {}
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    opened = 0
    while opened < count:
        n = min(batch, count - opened)
        pending = {}
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, "connect: %s" % errno.errorcode.get(err, err))
            pending[s] = "connect"
            sel.register(s, selectors.EVENT_WRITE, _Framer())
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError("open_idle: %d/%d connections after %.0fs"
                                   % (opened, count, timeout))
            for key, ev in sel.select(1.0):
                s, framer = key.fileobj, key.data
                if pending[s] == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect: %s" % errno.errorcode.get(err, err))
                    s.send(req)
                    pending[s] = "read"
                    sel.modify(s, selectors.EVENT_READ, framer)
                    continue
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("open_idle: connection closed before its response")
                framer.feed(data)
                status = framer.pop_response()
                if status is not None:
                    statuses[status] = statuses.get(status, 0) + 1
                    sel.unregister(s)
                    del pending[s]
                    socks.append(s)
                    opened += 1
    sel.close()
    return socks, statuses
