#!/usr/bin/env python3
"""A small HTTP/2 client on raw frames (RFC 9113) with just enough HPACK (RFC 7541),
standard library only, for tests that must send what real clients never send:
malformed requests, streams reset as soon as they are opened, endless CONTINUATION.

    conn = H2Connection.connect("127.0.0.1", port)            # h2c, prior knowledge
    conn = H2Connection.connect("127.0.0.1", port, ssl_ctx)    # TLS; ALPN "h2" is offered
    conn.start()                                  # preface + SETTINGS
    sid = conn.send_request("GET", "/api/x", authority="example.test")
    st = conn.wait_stream(sid)                    # Stream: .status, .headers, .data, .reset
    conn.goaways                                  # [(last_stream_id, error_code, debug)]

Sending: header blocks are encoded as "literal header field without indexing — new
name" only (RFC 7541 §6.2.2: a 0x00 byte, then the name and the value as strings with a
7-bit length prefix, no Huffman), so any bytes go out exactly as given, upper case
included. Receiving: a full HPACK decoder (static and dynamic table, Huffman), because a
real server compresses its responses. Received DATA is acknowledged with WINDOW_UPDATEs at
once (stream and connection), SETTINGS and PING are acknowledged, and every frame read is
kept in `conn.frames` so that a failing test can show what came.
"""

import select
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"   # RFC 9113 §3.4, sent by the client first

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
               "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]

# Flags.
END_STREAM = 0x1      # DATA, HEADERS
ACK = 0x1             # SETTINGS, PING
END_HEADERS = 0x4     # HEADERS, PUSH_PROMISE, CONTINUATION
PADDED = 0x8          # DATA, HEADERS, PUSH_PROMISE
PRIORITY_FLAG = 0x20  # HEADERS

# SETTINGS parameters (RFC 9113 §6.5.2).
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

# Error codes (RFC 9113 §7).
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, \
    STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, \
    CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)

DEFAULT_WINDOW = 65535       # initial flow-control window of every stream and connection
DEFAULT_MAX_FRAME = 16384    # largest frame payload until the peer's SETTINGS say more


def error_name(code):
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else "0x%x" % code


# --- frames ---------------------------------------------------------------------------

def frame(ftype, flags, stream_id, payload=b""):
    """One frame: 24-bit length, type, flags, reserved bit + 31-bit stream id, payload."""
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
            + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload)


def settings_frame(settings=(), ack=False):
    """settings: [(identifier, value)], each 16-bit id + 32-bit value."""
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in settings))


def window_update_frame(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment & 0x7FFFFFFF))


def rst_stream_frame(stream_id, code):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway_frame(last_stream_id, code, debug=b""):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id & 0x7FFFFFFF, code) + debug)


def ping_frame(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def headers_frame(stream_id, block, end_stream=False, end_headers=True):
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, flags, stream_id, block)


def continuation_frame(stream_id, block, end_headers=False):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, block)


def data_frame(stream_id, data, end_stream=False):
    return frame(DATA, END_STREAM if end_stream else 0, stream_id, data)


class Frame:
    def __init__(self, ftype, flags, stream_id, payload):
        self.type, self.flags, self.stream_id, self.payload = ftype, flags, stream_id, payload
        self.note = ""   # filled by H2Connection: decoded headers, error codes, ...

    def __repr__(self):
        name = FRAME_NAMES[self.type] if self.type < len(FRAME_NAMES) else "type%d" % self.type
        return "%s(stream=%d flags=0x%x len=%d%s)" % (name, self.stream_id, self.flags,
                                                      len(self.payload),
                                                      " " + self.note if self.note else "")


# --- HPACK: encoding (literal without indexing, new name; no Huffman) -------------------

def hpack_int(value, prefix_bits, first_byte=0):
    """RFC 7541 §5.1: value in a prefix of `prefix_bits` bits of a byte whose other (high)
    bits are `first_byte`, continued in 7-bit groups (high bit = more follow)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(s):
    """RFC 7541 §5.2, H bit 0 (raw octets): 7-bit-prefix length, then the bytes."""
    if isinstance(s, str):
        s = s.encode("latin-1")
    return hpack_int(len(s), 7, 0x00) + s


def encode_headers(headers):
    """A header block: every field as 0x00 (literal without indexing, new name) + name +
    value. headers: [(name, value)] of str or bytes, sent exactly as given."""
    return b"".join(b"\x00" + hpack_string(n) + hpack_string(v) for n, v in headers)


# --- HPACK: decoding -------------------------------------------------------------------

STATIC_TABLE = [  # RFC 7541 Appendix A; index 1 is STATIC_TABLE[0]
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
]

# RFC 7541 Appendix B: the code length in bits of each symbol 0..255 and EOS (256). The
# code is canonical — codes are handed out in order of (length, symbol), each the previous
# plus one, shifted left when the length grows — so the lengths alone define it.
HUFFMAN_LENGTHS = (
    [13, 23] + [28] * 7 + [24, 30, 28, 28, 30] + [28] * 8 + [30] + [28] * 9          # 0-31
    + [6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6]                       # 32-47
    + [5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10]                            # 48-63
    + [13, 6] + [7] * 22 + [8, 7, 8, 13, 19, 13, 14, 6]                              # 64-95
    + [15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7,
       15, 11, 14, 13, 28]                                                           # 96-127
    + [20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
       24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
       22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
       21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
       26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
       19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
       20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
       26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26]               # 128-255
    + [30])                                                                          # EOS


def _huffman_codes():
    codes = [0] * 257
    code, prev_len = 0, 0
    for sym in sorted(range(257), key=lambda s: (HUFFMAN_LENGTHS[s], s)):
        length = HUFFMAN_LENGTHS[sym]
        if prev_len:
            code = (code + 1) << (length - prev_len)
        codes[sym], prev_len = code, length
    return codes


HUFFMAN_CODES = _huffman_codes()
_HUFFMAN_DECODE = {(HUFFMAN_LENGTHS[s], HUFFMAN_CODES[s]): s for s in range(257)}


class HpackError(Exception):
    pass


def huffman_encode(data):
    acc, nbits, out = 0, 0, bytearray()
    for b in data:
        acc = (acc << HUFFMAN_LENGTHS[b]) | HUFFMAN_CODES[b]
        nbits += HUFFMAN_LENGTHS[b]
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
    if nbits:  # pad with the most significant bits of EOS (all ones)
        out.append(((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF)
    return bytes(out)


def huffman_decode(data):
    out = bytearray()
    code, length = 0, 0
    for byte in data:
        for i in range(7, -1, -1):
            code = (code << 1) | ((byte >> i) & 1)
            length += 1
            sym = _HUFFMAN_DECODE.get((length, code))
            if sym is not None:
                if sym == 256:
                    raise HpackError("EOS inside a Huffman string")
                out.append(sym)
                code, length = 0, 0
            elif length > 30:
                raise HpackError("bad Huffman code")
    if length > 7 or code != (1 << length) - 1:  # padding: < 8 bits, all ones
        raise HpackError("bad Huffman padding")
    return bytes(out)


def _read_int(block, i, prefix_bits):
    """(value, next index) of the integer whose prefix is in block[i]."""
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while True:
        if i >= len(block):
            raise HpackError("truncated integer")
        b = block[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _read_string(block, i):
    huffman = block[i] & 0x80
    n, i = _read_int(block, i, 7)
    if i + n > len(block):
        raise HpackError("truncated string")
    raw = bytes(block[i:i + n])
    return (huffman_decode(raw) if huffman else raw).decode("latin-1"), i + n


class HpackDecoder:
    """RFC 7541 §6: indexed fields, literals (with, without and never indexed), dynamic
    table size updates; the dynamic table is bounded by max_size (4096 by default)."""

    def __init__(self, max_size=4096):
        self.max_size = max_size
        self.table = []   # newest first: index 62 is table[0]
        self.size = 0

    def _entry(self, index):
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        if 0 <= index - len(STATIC_TABLE) - 1 < len(self.table):
            return self.table[index - len(STATIC_TABLE) - 1]
        raise HpackError("header index %d out of range" % index)

    def _evict(self):
        while self.size > self.max_size:
            n, v = self.table.pop()
            self.size -= len(n) + len(v) + 32

    def _add(self, name, value):
        self.table.insert(0, (name, value))
        self.size += len(name) + len(value) + 32   # §4.1: 32 octets of overhead per entry
        self._evict()

    def decode(self, block):
        headers, i = [], 0
        while i < len(block):
            b = block[i]
            if b & 0x80:                        # 1xxxxxxx indexed field
                index, i = _read_int(block, i, 7)
                headers.append(self._entry(index))
                continue
            if b & 0xE0 == 0x20:                # 001xxxxx dynamic table size update
                self.max_size, i = _read_int(block, i, 5)
                self._evict()
                continue
            indexing = bool(b & 0x40)           # 01xxxxxx: literal, incremental indexing
            index, i = _read_int(block, i, 6 if indexing else 4)   # 0000/0001: not indexed
            if index:
                name = self._entry(index)[0]
            else:
                name, i = _read_string(block, i)
            value, i = _read_string(block, i)
            headers.append((name, value))
            if indexing:
                self._add(name, value)
        return headers


# --- a connection ----------------------------------------------------------------------

class Stream:
    def __init__(self, stream_id):
        self.id = stream_id
        self.headers = None       # the final response's [(name, value)]
        self.interim = []         # 1xx header lists
        self.trailers = None
        self.data = bytearray()
        self.ended = False        # END_STREAM received
        self.reset = None         # RST_STREAM error code received

    @property
    def status(self):
        for n, v in self.headers or ():
            if n == ":status":
                return int(v)
        return None

    def header(self, name):
        for n, v in self.headers or ():
            if n == name:
                return v
        return None

    @property
    def done(self):
        return self.ended or self.reset is not None

    def __repr__(self):
        body = bytes(self.data[:300])
        return "<Stream %d status=%s ended=%s reset=%s headers=%r data(%d)=%r>" % (
            self.id, self.status, self.ended,
            None if self.reset is None else error_name(self.reset), self.headers,
            len(self.data), body)


class H2Connection:
    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.closed = False            # EOF or reset read from the peer
        self.frames = []               # every frame read, in order
        self.server_settings = []      # [(id, value)] of each non-ACK SETTINGS, in order
        self.settings_acked = 0
        self.goaways = []              # [(last_stream_id, error_code, debug bytes)]
        self.streams = {}
        self.next_stream_id = 1
        self.decoder = HpackDecoder()
        self._block = None             # (stream_id, bytearray): a header block in progress
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.send_window = DEFAULT_WINDOW          # connection-level, for our DATA
        self.stream_send_window = {}
        self.pings = []                # payloads of PING ACKs received
        # While we are sending a header block in pieces (HEADERS, CONTINUATION...), no
        # other frame may come in between (§6.10): automatic replies wait in _deferred.
        self.defer_replies = False
        self._deferred = bytearray()

    @classmethod
    def connect(cls, host, port, ssl_context=None, server_hostname="localhost",
                timeout=10.0):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname)
            except BaseException:
                sock.close()
                raise
        return cls(sock, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # sending

    def send(self, data):
        """Sends raw bytes; False if the peer has gone (reset or broken pipe)."""
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.closed = True
            return False

    def start(self, settings=((SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20))):
        """The client connection preface: the magic string and our SETTINGS."""
        return self.send(PREFACE + settings_frame(settings))

    def handshake(self, timeout=None):
        """start(), then reads until the server's SETTINGS came and our SETTINGS were
        acknowledged. True on success."""
        return self.start() and self.run_until(
            lambda: self.server_settings and self.settings_acked, timeout)

    def reply(self, data):
        """An automatic reply (ACK, WINDOW_UPDATE): sent now unless defer_replies."""
        if self.defer_replies:
            self._deferred += data
        else:
            self.send(data)

    def flush_replies(self):
        self.defer_replies = False
        if self._deferred:
            data, self._deferred = bytes(self._deferred), bytearray()
            self.send(data)

    def new_stream_id(self):
        sid = self.next_stream_id
        self.next_stream_id += 2
        self.streams[sid] = Stream(sid)
        self.stream_send_window[sid] = self.peer_initial_window
        return sid

    @staticmethod
    def request_headers(method, path, authority="example.test", scheme="http", headers=()):
        return [(":method", method), (":scheme", scheme), (":path", path),
                (":authority", authority)] + list(headers)

    def send_request(self, method, path, headers=(), body=None, authority="example.test",
                     scheme="http"):
        """Opens a stream: HEADERS (END_STREAM when there is no body), then DATA. Returns
        the stream id."""
        sid = self.new_stream_id()
        block = encode_headers(self.request_headers(method, path, authority, scheme, headers))
        self.send(headers_frame(sid, block, end_stream=not body))
        if body:
            self.send_data(sid, body, end_stream=True)
        return sid

    def send_data(self, sid, data, end_stream=True):
        """DATA frames within the peer's flow-control windows (waits for WINDOW_UPDATEs)."""
        view = memoryview(data)
        while True:
            n = min(len(view), self.peer_max_frame, self.send_window,
                    self.stream_send_window.get(sid, 0))
            if n <= 0 and len(view):
                if not self.run_until(lambda: min(self.send_window,
                                                  self.stream_send_window.get(sid, 0)) > 0
                                      or self.streams[sid].done):
                    return False
                if self.streams[sid].done:
                    return False
                continue
            last = n == len(view)
            if not self.send(data_frame(sid, bytes(view[:n]), end_stream and last)):
                return False
            self.send_window -= n
            self.stream_send_window[sid] -= n
            view = view[n:]
            if last:
                return True

    # receiving

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b""
        except OSError as e:   # ssl.SSLError for a TLS connection torn down under us
            if isinstance(e, socket.timeout):
                raise
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def read_frame(self, timeout=None):
        """The next frame (processed: see _process), None at EOF; raises socket.timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    f = Frame(self.buf[3], self.buf[4],
                              int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                              bytes(self.buf[9:9 + length]))
                    del self.buf[:9 + length]
                    self._process(f)
                    self.frames.append(f)
                    return f
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame within the timeout")
            if not self._fill(left):
                return None

    def run_until(self, predicate, timeout=None):
        """Reads frames until predicate() holds (True), or EOF / timeout (False)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if self.read_frame(left) is None:
                    return predicate()
            except socket.timeout:
                return predicate()
        return True

    def poll(self):
        """Processes the frames that have already arrived, without waiting."""
        while True:
            try:
                while self.read_frame(0) is not None:   # complete frames already buffered
                    pass
            except socket.timeout:
                pass
            if self.closed:
                return
            pending = getattr(self.sock, "pending", lambda: 0)()   # TLS: decrypted bytes
            if not pending and not select.select([self.sock], [], [], 0)[0]:
                return
            try:
                self._fill(1.0)
            except socket.timeout:
                return

    def wait_stream(self, sid, timeout=None):
        """Reads until stream `sid` ends or is reset (or the connection ends); the Stream."""
        self.run_until(lambda: self.streams[sid].done or self.goaway_below(sid), timeout)
        return self.streams[sid]

    def goaway_below(self, sid):
        """True if a GOAWAY said stream `sid` will not be processed."""
        return any(last < sid for last, _, _ in self.goaways)

    def wait_closed(self, timeout):
        """Reads (and processes) until EOF: True, or False if still open after timeout."""
        return self.run_until(lambda: self.closed, timeout) or self.closed

    def _process(self, f):
        p = f.payload
        if f.type == SETTINGS:
            if f.flags & ACK:
                self.settings_acked += 1
                return
            settings = [struct.unpack(">HI", p[i:i + 6]) for i in range(0, len(p) - 5, 6)]
            f.note = repr(settings)
            self.server_settings.append(settings)
            for k, v in settings:
                if k == SETTINGS_INITIAL_WINDOW_SIZE:   # §6.9.2: adjust open streams
                    for sid in self.stream_send_window:
                        self.stream_send_window[sid] += v - self.peer_initial_window
                    self.peer_initial_window = v
                elif k == SETTINGS_MAX_FRAME_SIZE:
                    self.peer_max_frame = v
            self.reply(settings_frame(ack=True))
        elif f.type == PING:
            if f.flags & ACK:
                self.pings.append(p)
            else:
                self.reply(ping_frame(p, ack=True))
        elif f.type == GOAWAY:
            last, code = struct.unpack(">II", p[:8])
            last &= 0x7FFFFFFF
            self.goaways.append((last, code, p[8:]))
            f.note = "last_stream_id=%d %s %r" % (last, error_name(code), p[8:200])
        elif f.type == RST_STREAM:
            code = struct.unpack(">I", p[:4])[0]
            f.note = error_name(code)
            self._stream(f.stream_id).reset = code
        elif f.type == WINDOW_UPDATE:
            inc = struct.unpack(">I", p[:4])[0] & 0x7FFFFFFF
            f.note = "increment=%d" % inc
            if f.stream_id == 0:
                self.send_window += inc
            else:
                self.stream_send_window[f.stream_id] = \
                    self.stream_send_window.get(f.stream_id, 0) + inc
        elif f.type == DATA:
            if f.flags & PADDED:
                p = p[1:len(p) - p[0]]
            st = self._stream(f.stream_id)
            st.data += p
            if f.flags & END_STREAM:
                st.ended = True
            if f.payload:   # give the credit back at once (padding counts too)
                self.reply(window_update_frame(0, len(f.payload))
                          + (b"" if st.ended else window_update_frame(f.stream_id,
                                                                      len(f.payload))))
        elif f.type in (HEADERS, CONTINUATION):
            if f.type == HEADERS:
                if f.flags & PADDED:
                    p = p[1:len(p) - p[0]]
                if f.flags & PRIORITY_FLAG:
                    p = p[5:]
                self._block = (f.stream_id, bytearray(p), f.flags & END_STREAM)
            elif self._block is not None:
                self._block[1].extend(p)
            if f.flags & END_HEADERS and self._block is not None:
                sid, block, end = self._block
                self._block = None
                headers = self.decoder.decode(block)
                f.note = repr(headers)
                st = self._stream(sid)
                status = dict(headers).get(":status")
                if st.headers is None and status and status.startswith("1"):
                    st.interim.append(headers)
                elif st.headers is None:
                    st.headers = headers
                else:
                    st.trailers = headers
                if end:
                    st.ended = True

    def _stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def describe(self, last=40):
        """The frames read (the last `last` of them) and the GOAWAYs, for messages."""
        lines = ["frames read from the server (%d; last %d):" % (len(self.frames), last)]
        lines += ["  %r" % f for f in self.frames[-last:]]
        lines.append("goaways: %r; closed: %s" % (self.goaways, self.closed))
        return "\n".join(lines)
