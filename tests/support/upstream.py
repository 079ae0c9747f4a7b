#!/usr/bin/env python3
"""A controllable HTTP/1.1 test upstream on raw asyncio streams.

It records exactly what arrived (one JSON line per request in --log) and behaves
by path, so integration tests can check what a proxy forwarded and provoke every
upstream failure a proxy must survive. Standard library only; never holds a
request or response body in memory (bodies are hashed as they stream).

    python3 upstream.py --port 0 --log FILE     # prints "PORT <n>" once listening

Paths (the first segment that is one of these keywords counts, so a route's prefix
may come before it: /svc/delay/100 behaves as /delay/100):
    (default)        200 application/json: the request record plus "port"
    /delay/<ms>      sleep, then as default
    /chunked/<n>     200, chunked, n chunks of text ("chunk <i>\\n")
    /bytes/<n>       200, n bytes of pattern(), Content-Length, written in 64 KiB pieces
    /status/<code>   that status; no body for 1xx/204/304 (else a small JSON body)
    /close           200 without Content-Length, body delimited by closing
    /hang            read the whole request, never reply (until the peer closes)
    /reset           close (RST) right after the head is read, no reply
    /garbage         reply with bytes that are not HTTP, then close
    /badframing      reply with both Content-Length and Transfer-Encoding: chunked
    /truncated       reply Content-Length: 1000 but send 10 bytes, then close
Query parameters on any path:
    pause_after=<bytes>&pause_ms=<ms>   stop reading the request body for pause_ms
                                        once pause_after body bytes have arrived
    close=1                             reply with Connection: close, then close
    close_after_ms=<ms>                 reply normally (keep-alive), then close the
                                        idle connection after ms (a stale pool entry)
HEAD gets the same headers as GET and no body. `Expect: 100-continue` gets an
interim 100 before the body is read. Anything that cannot be parsed is logged
with an "error" field and answered 400 + close, so a test sees it arrived.
With --events FILE, every accepted connection and every raw head is also logged
there as it arrives (before any body), to prove that nothing reached the upstream.
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import ssl
import socket
import struct
import sys
import threading
import urllib.parse

PIECE = 64 * 1024
MAX_HEAD = 1024 * 1024
PATTERN_PERIOD = 251
# pattern(n) is bytes(i % 251 for i in range(n)); a window of it at any offset is a slice.
_PATTERN_BLOCK = bytes(i % PATTERN_PERIOD for i in range(PIECE + PATTERN_PERIOD))

NO_BODY_STATUS = {204, 304}
KEYWORDS = {"delay", "chunked", "bytes", "status", "close", "hang", "reset", "garbage",
            "badframing", "truncated"}
REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    418: "I'm a teapot", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def pattern_piece(offset, length):
    """Bytes [offset, offset+length) of the deterministic pattern (length <= PIECE)."""
    start = offset % PATTERN_PERIOD
    return _PATTERN_BLOCK[start:start + length]


class BadRequest(Exception):
    pass


class PeerGone(Exception):
    pass


class Upstream:
    def __init__(self, log_path, events_path=None):
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.events = open(events_path, "a", buffering=1) if events_path else None
        self.port = 0
        self.next_conn_id = 0

    def record(self, rec):
        if self.log is not None:
            self.log.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.log.flush()

    def event(self, rec):
        if self.events is not None:
            self.events.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.events.flush()

    async def handle(self, reader, writer):
        self.next_conn_id += 1
        conn_id = self.next_conn_id
        self.event({"event": "accept", "conn_id": conn_id})
        try:
            while True:
                keep = await self.one_request(conn_id, reader, writer)
                if not keep:
                    break
        except (PeerGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # never let one connection take the server down
            print(f"upstream: conn {conn_id}: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def read_head(self, reader):
        buf = bytearray()
        while True:
            try:
                chunk = await reader.readuntil(b"\r\n\r\n")
                buf += chunk
                return bytes(buf)
            except asyncio.LimitOverrunError as e:
                # Separator not found within the reader's limit: take what is there.
                buf += await reader.readexactly(e.consumed)
            except asyncio.IncompleteReadError as e:
                if not buf and not e.partial:
                    raise PeerGone()
                raise BadRequest("connection closed inside the head: %r"
                                 % bytes(buf + e.partial)[:200])
            if len(buf) > MAX_HEAD:
                raise BadRequest("head too large")

    @staticmethod
    def parse_head(head):
        text = head.decode("latin-1")
        lines = text[:-4].split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise BadRequest("bad request line %r" % lines[0])
        method, target, version = parts
        headers = []
        for line in lines[1:]:
            if ":" not in line:
                raise BadRequest("bad header line %r" % line)
            name, value = line.split(":", 1)
            headers.append([name, value.strip(" \t")])
        return method, target, version, headers

    async def one_request(self, conn_id, reader, writer):
        try:
            head = await self.read_head(reader)
        except BadRequest as e:
            self.record({"conn_id": conn_id, "error": str(e)})
            await self.send_simple(writer, 400, b"", close=True)
            return False
        self.event({"event": "head", "conn_id": conn_id, "head": head.decode("latin-1")})
        try:
            method, target, version, headers = self.parse_head(head)
        except BadRequest as e:
            self.record({"conn_id": conn_id, "error": str(e),
                         "head": head.decode("latin-1")})
            await self.send_simple(writer, 400, b"", close=True)
            return False

        hmap = {}
        for name, value in headers:
            hmap.setdefault(name.lower(), []).append(value)
        url = urllib.parse.urlsplit(target)
        path = url.path
        query = dict(urllib.parse.parse_qsl(url.query))
        rec = {"conn_id": conn_id, "method": method, "target": target, "version": version,
               "headers": headers, "body_len": 0,
               "body_sha256": hashlib.sha256(b"").hexdigest(), "chunked": False}

        if self.behaviour(path) == ["reset"]:
            self.record(rec)
            sock = writer.get_extra_info("socket")
            try:  # SO_LINGER 0: close sends RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            writer.transport.abort()
            return False

        te = ",".join(hmap.get("transfer-encoding", [])).lower()
        chunked = "chunked" in [t.strip() for t in te.split(",") if t.strip()]
        try:
            if chunked:
                length = None
            elif "content-length" in hmap:
                values = {v.strip() for v in ",".join(hmap["content-length"]).split(",")}
                if len(values) != 1 or not next(iter(values)).isdigit():
                    raise BadRequest("bad content-length %r" % hmap["content-length"])
                length = int(next(iter(values)))
            else:
                length = 0
            if "100-continue" in [v.lower() for v in hmap.get("expect", [])] and \
                    (chunked or length):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
                rec["sent_100_continue"] = True
            pause_after = int(query.get("pause_after", -1))
            pause_ms = int(query.get("pause_ms", 0))
            body_len, digest = await self.read_body(reader, length, pause_after, pause_ms)
        except BadRequest as e:
            rec["error"] = str(e)
            self.record(rec)
            await self.send_simple(writer, 400, b"", close=True)
            return False
        rec["body_len"] = body_len
        rec["body_sha256"] = digest
        rec["chunked"] = chunked
        self.record(rec)

        conn_tokens = [t.strip().lower() for v in hmap.get("connection", [])
                       for t in v.split(",")]
        if version == "HTTP/1.1":
            keep = "close" not in conn_tokens
        else:
            keep = "keep-alive" in conn_tokens
        if query.get("close") == "1":
            keep = False
        head_only = method == "HEAD"
        keep = await self.respond(path, rec, writer, reader, keep, head_only, version)
        if keep and "close_after_ms" in query:
            # Like an upstream's own keep-alive timeout: the idle connection is closed
            # silently (FIN) while the proxy may still hold it in its pool.
            try:
                await asyncio.wait_for(reader.read(1), int(query["close_after_ms"]) / 1000.0)
            except asyncio.TimeoutError:
                pass
            return False
        return keep

    async def read_body(self, reader, length, pause_after, pause_ms):
        h = hashlib.sha256()
        total = 0
        paused = False

        async def maybe_pause():
            nonlocal paused
            if not paused and pause_after >= 0 and total >= pause_after:
                paused = True
                await asyncio.sleep(pause_ms / 1000.0)

        if length is not None:
            remaining = length
            while remaining > 0:
                await maybe_pause()
                want = min(remaining, PIECE)
                if not paused and pause_after >= 0:
                    want = max(1, min(want, pause_after - total))
                data = await reader.read(want)
                if not data:
                    raise PeerGone()
                h.update(data)
                total += len(data)
                remaining -= len(data)
            return total, h.hexdigest()
        # chunked
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("bad chunk size %r" % line)
            if size == 0:
                break
            remaining = size
            while remaining > 0:
                await maybe_pause()
                data = await reader.read(min(remaining, PIECE))
                if not data:
                    raise PeerGone()
                h.update(data)
                total += len(data)
                remaining -= len(data)
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")
        while True:  # trailers
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
        return total, h.hexdigest()

    @staticmethod
    def status_line(status):
        return "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status"))

    async def send_simple(self, writer, status, body, close=False, ctype="application/json",
                          head_only=False, extra=()):
        head = self.status_line(status)
        if status not in NO_BODY_STATUS and not (100 <= status < 200):
            head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
        for name, value in extra:
            head += "%s: %s\r\n" % (name, value)
        if close:
            head += "Connection: close\r\n"
        head += "\r\n"
        out = head.encode("latin-1")
        if not head_only and status not in NO_BODY_STATUS:
            out += body
        try:
            writer.write(out)
            await writer.drain()
        except ConnectionError:
            raise PeerGone()

    @staticmethod
    def behaviour(path):
        """The first behaviour keyword among the path's segments, with the rest: routes
        may put any prefix before it ("/svc/delay/100" behaves as "/delay/100")."""
        segs = path.strip("/").split("/")
        for i, seg in enumerate(segs):
            if seg in KEYWORDS:
                return segs[i:]
        return [""]

    async def respond(self, path, rec, writer, reader, keep, head_only, version):
        segs = self.behaviour(path)
        close = not keep
        if segs[0] == "delay" and len(segs) == 2 and segs[1].isdigit():
            await asyncio.sleep(int(segs[1]) / 1000.0)
        elif segs[0] == "chunked" and len(segs) == 2 and segs[1].isdigit():
            n = int(segs[1])
            head = self.status_line(200) + "Content-Type: text/plain\r\n"
            head += "Transfer-Encoding: chunked\r\n"
            if close:
                head += "Connection: close\r\n"
            writer.write((head + "\r\n").encode())
            if not head_only:
                for i in range(n):
                    piece = ("chunk %d\n" % i).encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            return keep
        elif segs[0] == "bytes" and len(segs) == 2 and segs[1].isdigit():
            n = int(segs[1])
            head = self.status_line(200) + "Content-Type: application/octet-stream\r\n"
            head += "Content-Length: %d\r\n" % n
            if close:
                head += "Connection: close\r\n"
            writer.write((head + "\r\n").encode())
            if not head_only:
                off = 0
                while off < n:
                    k = min(PIECE, n - off)
                    writer.write(pattern_piece(off, k))
                    off += k
                    await writer.drain()
            await writer.drain()
            return keep
        elif segs[0] == "status" and len(segs) == 2 and segs[1].isdigit():
            status = int(segs[1])
            body = json.dumps({"status": status}).encode()
            await self.send_simple(writer, status, body, close=close, head_only=head_only)
            return keep
        elif segs == ["close"]:
            head = self.status_line(200) + "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
            writer.write(head.encode())
            if not head_only:
                writer.write(b"closing body: the end of this body is the end of the connection\n")
            await writer.drain()
            return False
        elif segs == ["garbage"]:
            writer.write(b"THIS IS NOT HTTP\r\n\r\n")
            await writer.drain()
            return False
        elif segs == ["badframing"]:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            await writer.drain()
            return False
        elif segs == ["truncated"]:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            await writer.drain()
            return False
        elif segs == ["hang"]:
            while await reader.read(PIECE):  # until the peer gives up
                pass
            return False
        out = dict(rec)
        out["port"] = self.port
        body = json.dumps(out).encode()
        await self.send_simple(writer, 200, body, close=close, head_only=head_only)
        return keep


def watch_stdin_and_exit():
    """With --exit-on-stdin-eof: the parent holds our stdin; when it dies, we go too."""
    def run():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)
    threading.Thread(target=run, daemon=True).start()


async def main_async(args):
    up = Upstream(args.log, args.events)
    tls = None
    if args.tls_cert:
        # HTTPS, for the tests of services with `tls:`.
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = await asyncio.start_server(up.handle, args.host, args.port, limit=MAX_HEAD,
                                        backlog=1024, ssl=tls)
    up.port = server.sockets[0].getsockname()[1]
    print("PORT %d" % up.port, flush=True)
    loop = asyncio.get_running_loop()
    # Log lines are flushed as written, so there is nothing to finish: leave at once
    # (waiting for open connections would only slow the tests' cleanups down).
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, os._exit, 0)
    await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", default=None, help="append one JSON line per request here")
    ap.add_argument("--events", default=None,
                    help="append connection events here: accept, and each raw head as read")
    ap.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin reaches EOF (the parent died or closed it)")
    args = ap.parse_args()
    if args.exit_on_stdin_eof:
        watch_stdin_and_exit()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
