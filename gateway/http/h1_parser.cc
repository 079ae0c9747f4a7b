#include "gateway/http/h1_parser.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice::http {
namespace {

// Byte classes for the per-byte loops (names, hosts); one load per byte.
enum : uint8_t {
  kTok = 1,   // tchar
  kHost = 2,  // reg-name byte: unreserved, sub-delims except ',' ('%' is checked apart)
};

constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (isTokenChar(static_cast<unsigned char>(c))) t[c] |= kTok;
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum ||
        std::string_view("-._~!$&'()*+;=").find(static_cast<char>(c)) != std::string_view::npos) {
      t[c] |= kHost;
    }
  }
  return t;
}();

inline bool is(char c, uint8_t cls) { return kClass[static_cast<uint8_t>(c)] & cls; }
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline bool isOws(char c) { return c == ' ' || c == '\t'; }

// Word-at-a-time classification (SWAR), 8 bytes a step, for the long runs: start lines,
// field values, targets. bytes*() set 0x80 in exactly the matching bytes; any*() are cheaper,
// never miss a match but may fire without one, so only words they flag get the exact test.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kLows = kOnes * 0x7F;
constexpr uint64_t kHighs = kOnes * 0x80;

inline uint64_t load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
// Bytes below n, n in 1..128. No carry crosses a byte: the sum is at most 0x7F + 0x7F.
constexpr uint64_t bytesBelow(uint64_t x, uint8_t n) {
  return ~(((x & kLows) + kOnes * (0x80 - n)) | x | kLows);
}
constexpr uint64_t bytesEqual(uint64_t x, uint8_t b) { return bytesBelow(x ^ (kOnes * b), 1); }
constexpr uint64_t anyBelow(uint64_t x, uint8_t n) { return (x - kOnes * n) & ~x & kHighs; }
constexpr uint64_t anyEqual(uint64_t x, uint8_t b) { return anyBelow(x ^ (kOnes * b), 1); }
static_assert(bytesBelow(0x21201F807F000121ULL, 0x20) == 0x0000800000808000ULL);
static_assert(bytesEqual(0x0D0A0D000A0D0D0DULL, '\r') == 0x8000800000808080ULL);

// Offset of the lowest-addressed flagged byte of a non-zero mask.
inline size_t firstFlagged(uint64_t m) {
  if constexpr (std::endian::native == std::endian::little) return std::countr_zero(m) / 8;
  return std::countl_zero(m) / 8;
}
// Clears the flags of the `n` lowest-addressed bytes, n in 0..7.
inline uint64_t dropFirst(uint64_t m, size_t n) {
  if constexpr (std::endian::native == std::endian::little) return m & (~uint64_t{0} << (8 * n));
  return m & (~uint64_t{0} >> (8 * n));
}

// First byte of [p, end) flagged by `exact`, or end. `base` is the start of the caller's
// buffer: a short tail is tested as the last 8 bytes of [base, end), so it needs no byte loop.
template <typename Any, typename Exact>
inline const char* findFlagged(const char* base, const char* p, const char* end, Any any,
                               Exact exact) {
  for (; end - p >= 8; p += 8) {
    uint64_t w = load8(p);
    if (any(w) == 0) continue;
    if (uint64_t m = exact(w); m != 0) return p + firstFlagged(m);
  }
  if (p == end) return end;
  if (end - base >= 8) {
    uint64_t m = dropFirst(exact(load8(end - 8)), 8 - (end - p));
    return m != 0 ? end - 8 + firstFlagged(m) : end;
  }
  for (; p < end; ++p) {
    if (exact(static_cast<uint8_t>(*p)) & 0x80) return p;  // the low byte is the one tested
  }
  return end;
}

// First CR, LF or NUL in [p, end), or end: the only bytes the scanner must look at. Every
// byte of every head passes through here, hence SSE2 (x86-64 baseline) where available.
inline const char* findScanStop(const char* base, const char* p, const char* end) {
#if defined(__SSE2__)
  auto stops = [](const char* at) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
                               _mm_cmpeq_epi8(v, _mm_setzero_si128()));
    return static_cast<unsigned>(_mm_movemask_epi8(hit));
  };
  for (; end - p >= 16; p += 16) {
    if (unsigned m = stops(p); m != 0) return p + std::countr_zero(m);
  }
  if (p == end) return end;
  if (end - base >= 16) {  // the tail, as the last 16 bytes of the buffer
    unsigned m = stops(end - 16) >> (16 - (end - p));
    return m != 0 ? p + std::countr_zero(m) : end;
  }
#endif
  return findFlagged(
      base, p, end, [](uint64_t w) { return anyBelow(w, '\r' + 1); },
      [](uint64_t w) { return bytesEqual(w, '\r') | bytesEqual(w, '\n') | bytesEqual(w, 0); });
}

// HTAB, SP, VCHAR, obs-text: field values and reason phrases.
inline bool validFieldValue(const char* base, const char* p, const char* end) {
  return findFlagged(
             base, p, end, [](uint64_t w) { return anyBelow(w, 0x20) | anyEqual(w, 0x7F); },
             [](uint64_t w) {
               return (bytesBelow(w, 0x20) & ~bytesEqual(w, '\t')) | bytesEqual(w, 0x7F);
             }) == end;
}

// VCHAR except '#': a fragment never belongs on the wire. No obs-text: URIs are ASCII.
inline bool validTarget(const char* base, const char* p, const char* end) {
  auto bad = [](uint64_t w) {
    return bytesBelow(w, 0x21) | (w & kHighs) | bytesEqual(w, 0x7F) | bytesEqual(w, '#');
  };
  return findFlagged(base, p, end, bad, bad) == end;
}

// Header-name match against a lowercase literal of letters and '-'. For tchar input, c | 0x20
// equals such a literal byte only when c is that letter in either case, or '-' itself.
inline bool nameIs(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if ((name[i] | 0x20) != lower[i]) return false;
  }
  return true;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

// Calls fn on each OWS-trimmed element of a comma-separated list, stopping at an error.
template <typename Fn>
ParseResult forEachElement(std::string_view v, Fn fn) {
  for (size_t start = 0;;) {
    size_t comma = v.find(',', start);
    if (ParseResult r = fn(trimOws(v.substr(start, comma - start)));
        r.state != ParseState::kIncomplete) {
      return r;
    }
    if (comma == std::string_view::npos) return {};
    start = comma + 1;
  }
}

// uri-host [":" port] (RFC 3986). Stricter than the grammar where laxness would let two
// parsers disagree: ',' is refused (a comma reads as a list join of two Host fields), a
// port needs 1-5 digits, and an IP-literal may hold only hex digits, ':' and '.'.
bool validHostPort(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  if (n == 0) return true;  // RFC 9110 §7.2: empty Host is how a client says "no authority"
  if (s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      if (!isHexDigit(s[i]) && s[i] != ':' && s[i] != '.') return false;
    }
    i = close + 1;
  } else {
    while (true) {
      while (i < n && is(s[i], kHost)) ++i;
      if (i + 2 >= n || s[i] != '%') break;
      if (!isHexDigit(s[i + 1]) || !isHexDigit(s[i + 2])) return false;
      i += 3;
    }
    if (i == 0) return false;  // a port without a host
  }
  if (i == n) return true;
  if (s[i] != ':') return false;
  size_t digits = n - i - 1;
  if (digits == 0 || digits > 5) return false;
  return std::all_of(s.begin() + i + 1, s.end(), isDigit);
}

ParseResult fail(uint16_t status, const char* why) {
  return ParseResult{ParseState::kError, 0, status, why};
}
ParseResult complete(size_t head_length) {
  return ParseResult{ParseState::kComplete, head_length, 0, nullptr};
}

// What the semantic headers said, gathered in one pass so the head is never re-scanned.
struct Facts {
  std::string_view host;
  uint64_t content_length = 0;
  bool has_host = false;
  bool has_cl = false;
  bool has_te = false;
  bool te_last_chunked = false;
  bool te_other = false;  // a coding other than chunked: we cannot decode it
  uint8_t chunked_count = 0;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  bool has_upgrade = false;
  bool expect_continue = false;
  bool expect_other = false;
};

// RFC 9110 §8.6: a list or several fields are fine only when every value is the same number;
// any doubt (empty element, sign, non-digit, overflow) is a 400, never a guess.
ParseResult addContentLength(std::string_view v, Facts& f) {
  size_t i = 0;
  while (true) {
    while (i < v.size() && isOws(v[i])) ++i;
    if (i == v.size() || !isDigit(v[i])) return fail(400, "invalid Content-Length");
    uint64_t n = 0;
    for (; i < v.size() && isDigit(v[i]); ++i) {
      uint64_t d = v[i] - '0';
      if (n > (uint64_t{INT64_MAX} - d) / 10) return fail(400, "Content-Length overflow");
      n = n * 10 + d;
    }
    if (f.has_cl && n != f.content_length) return fail(400, "conflicting Content-Length values");
    f.has_cl = true;
    f.content_length = n;
    while (i < v.size() && isOws(v[i])) ++i;
    if (i == v.size()) return {};
    if (v[i] != ',') return fail(400, "invalid Content-Length");
    ++i;
  }
}

// Elements are judged in order across all Transfer-Encoding fields; the verdict (chunked
// last, exactly once, nothing else) is given once all fields are read.
ParseResult addCodings(std::string_view v, Facts& f) {
  f.has_te = true;
  return forEachElement(v, [&f](std::string_view elem) {
    size_t t = 0;
    while (t < elem.size() && is(elem[t], kTok)) ++t;
    if (t == 0) return fail(400, "invalid transfer coding");
    std::string_view params = trimOws(elem.substr(t));
    if (!params.empty() && params[0] != ';') return fail(400, "invalid transfer coding");
    if (nameIs(elem.substr(0, t), "chunked")) {
      if (!params.empty()) return fail(400, "parameters on chunked");
      if (f.chunked_count < 2) ++f.chunked_count;
      f.te_last_chunked = true;
    } else {
      // Parameters are not parsed further: any such coding is refused below anyway.
      f.te_other = true;
      f.te_last_chunked = false;
    }
    return ParseResult{};
  });
}

ParseResult addConnection(std::string_view v, Facts& f) {
  return forEachElement(v, [&f](std::string_view opt) {
    // Empty elements are ignored as RFC 9110 §5.6.1 asks; they cannot change framing.
    for (char c : opt) {
      if (!is(c, kTok)) return fail(400, "invalid Connection option");
    }
    f.conn_close |= nameIs(opt, "close");
    f.conn_keep_alive |= nameIs(opt, "keep-alive");
    f.conn_upgrade |= nameIs(opt, "upgrade");
    return ParseResult{};
  });
}

ParseResult noteField(std::string_view name, std::string_view value, bool is_request, Facts& f) {
  switch (name.size()) {
    case 4:
      if (is_request && nameIs(name, "host")) {
        if (f.has_host) return fail(400, "duplicate Host");
        if (!validHostPort(value)) return fail(400, "invalid Host");
        f.has_host = true;
        f.host = value;
      }
      break;
    case 6:
      if (is_request && nameIs(name, "expect")) {
        if (iequals(value, "100-continue")) {
          f.expect_continue = true;
        } else {
          f.expect_other = true;
        }
      }
      break;
    case 7:
      if (nameIs(name, "upgrade") && !value.empty()) f.has_upgrade = true;
      break;
    case 10:
      if (nameIs(name, "connection")) return addConnection(value, f);
      break;
    case 14:
      if (nameIs(name, "content-length")) return addContentLength(value, f);
      break;
    case 17:
      if (nameIs(name, "transfer-encoding")) return addCodings(value, f);
      break;
    default:
      break;
  }
  return {};
}

// Parses field lines from `p` through the empty line that ends the head. `limit` is where
// the head may end at the latest (kMaxHeadBytes); `full` says no more bytes may follow.
ParseResult parseFields(const char* data, const char* p, const char* limit, bool full,
                        bool is_request, Header* headers, uint16_t& count, Facts& f) {
  while (true) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', limit - p));
    if (lf == nullptr) return full ? fail(431, "head too large") : ParseResult{};
    if (lf == p || lf[-1] != '\r') return fail(400, "bare LF");
    const char* eol = lf - 1;
    if (eol == p) return complete(lf + 1 - data);
    // obs-fold: RFC 9112 §5.2 lets a server refuse it, and unfolding is where parsers differ.
    if (isOws(*p)) return fail(400, "obsolete line folding");
    if (count == kMaxHeaders) return fail(431, "too many header fields");
    const char* colon = p;
    while (is(*colon, kTok)) ++colon;  // stops at the CR at the latest
    if (colon == p || *colon != ':') return fail(400, "invalid field name");
    const char* v = colon + 1;
    const char* ve = eol;
    while (v < ve && isOws(*v)) ++v;
    while (ve > v && isOws(ve[-1])) --ve;
    if (!validFieldValue(data, v, ve)) return fail(400, "invalid byte in field value");
    std::string_view name(p, colon - p);
    std::string_view value(v, ve - v);
    headers[count++] = Header{name, value};
    if (ParseResult r = noteField(name, value, is_request, f); r.state == ParseState::kError) {
      return r;
    }
    p = lf + 1;
  }
}

// Validates codings once all Transfer-Encoding fields are seen; statuses are the request's.
ParseResult checkCodings(const Facts& f, uint8_t version_minor) {
  // RFC 9112 §6.1: TE in a 1.0 message means faulty framing.
  if (version_minor == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
  if (f.has_cl) return fail(400, "both Content-Length and Transfer-Encoding");
  if (f.chunked_count > 1) return fail(400, "chunked applied twice");
  if (!f.te_last_chunked) return fail(400, "chunked is not the final coding");
  if (f.te_other) return fail(501, "unsupported transfer coding");
  return {};
}

// Reads "HTTP/d.d" at p; 0 = not a version at all, else 10 * major + minor.
int readVersion(const char* p) {
  if (std::memcmp(p, "HTTP/", 5) != 0 || !isDigit(p[5]) || p[6] != '.' || !isDigit(p[7])) {
    return 0;
  }
  return (p[5] - '0') * 10 + (p[7] - '0') + 100;  // +100 keeps "HTTP/0.0" non-zero
}

ParseResult parseTarget(RequestHead& out, std::string_view& authority) {
  std::string_view rest = out.target;
  if (rest == "*") {
    if (out.method != "OPTIONS") return fail(400, "asterisk-form outside OPTIONS");
    out.path = rest;
    return {};
  }
  if (rest[0] != '/') {
    // absolute-form. The authority becomes the request's host (RFC 9112 §3.2.2).
    size_t scheme = iequals(rest.substr(0, 7), "http://")    ? 7
                    : iequals(rest.substr(0, 8), "https://") ? 8
                                                             : 0;
    if (scheme == 0) return fail(400, "unsupported request-target form");
    size_t end = std::min(rest.find_first_of("/?", scheme), rest.size());
    authority = rest.substr(scheme, end - scheme);
    // Userinfo ('@') fails here too: RFC 9110 §4.2.4 says to treat it as an error.
    if (authority.empty() || !validHostPort(authority)) return fail(400, "invalid authority");
    rest.remove_prefix(end);
  }
  size_t q = rest.find('?');
  out.path = rest.substr(0, q);
  if (out.path.empty()) out.path = "/";  // "http://a?x"; static storage, valid like the rest
  if (q != std::string_view::npos) {
    out.has_query = true;
    out.query = rest.substr(q + 1);
  }
  return {};
}

ParseResult parseRequestLine(const char* p, const char* eol, RequestHead& out,
                             std::string_view& authority) {
  const char* sp = p;
  while (is(*sp, kTok)) ++sp;  // stops at the CR at the latest
  if (sp == p || *sp != ' ') return fail(400, "invalid method");
  // method SP target SP "HTTP/d.d": the version has a fixed width, so the target is what lies
  // between; any stray SP then shows up inside the target and is refused there.
  if (eol - sp < 10) return fail(400, "malformed request line");
  const char* version = eol - 8;
  int v = readVersion(version);
  if (version[-1] != ' ' || v == 0) return fail(400, "malformed HTTP version");
  if (v != 110 && v != 111) return fail(505, "HTTP version not supported");
  out.version_minor = static_cast<uint8_t>(v - 110);
  out.method = std::string_view(p, sp - p);
  if (out.method == "CONNECT") return fail(501, "CONNECT not supported");
  const char* t = sp + 1;
  const char* te = version - 1;
  if (t == te || !validTarget(p, t, te)) return fail(400, "invalid request-target");
  out.target = std::string_view(t, te - t);
  return parseTarget(out, authority);
}

ParseResult parseStatusLine(const char* p, const char* eol, ResponseHead& out) {
  if (eol - p < 12) return fail(502, "malformed status line");
  int v = readVersion(p);
  if (v != 110 && v != 111) return fail(502, "unsupported HTTP version");
  out.version_minor = static_cast<uint8_t>(v - 110);
  if (p[8] != ' ' || !isDigit(p[9]) || !isDigit(p[10]) || !isDigit(p[11])) {
    return fail(502, "malformed status code");
  }
  int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  if (status < 100 || status > 599) return fail(502, "status code out of range");
  out.status = static_cast<uint16_t>(status);
  // "HTTP/1.1 200" without the SP before an empty reason is common and harmless.
  if (eol - p == 12) return {};
  if (p[12] != ' ' || !validFieldValue(p, p + 13, eol)) return fail(502, "invalid reason phrase");
  out.reason = std::string_view(p + 13, eol - p - 13);
  return {};
}

// Finds the first line's LF, bounded by kMaxRequestLine. Returns null with `r` set when the
// line is not there (too long, or more input needed).
const char* findFirstLine(const char* p, const char* end, ParseResult& r) {
  size_t window = std::min<size_t>(end - p, kMaxRequestLine + 2);  // content, CR, LF
  const char* lf = static_cast<const char*>(std::memchr(p, '\n', window));
  if (lf == nullptr) {
    if (static_cast<size_t>(end - p) > kMaxRequestLine + 1) r = fail(414, "request line too long");
    return nullptr;
  }
  if (lf == p || lf[-1] != '\r') {
    r = fail(400, "bare LF");
    return nullptr;
  }
  return lf;
}

}  // namespace

void HeadScanner::reset() {
  in_first_line_ = true;
  pending_cr_ = false;
  leading_empty_lines_ = 0;
  scanned_ = 0;
  line_start_ = 0;
}

ParseResult HeadScanner::scan(const char* data, size_t len) {
  const uint16_t bad = is_request_ ? 400 : 502;
  if (len < scanned_) return fail(bad, "scanner input shrank");
  // Never look past the largest allowed head: reaching that point unfinished is the error.
  const size_t limit = std::min(len, kMaxHeadBytes);
  size_t pos = scanned_;
  LineEnd end = LineEnd::kNextLine;
  if (pending_cr_) {
    if (pos == limit) return finishScan(pos);
    if (data[pos] != '\n') return fail(bad, "bare CR");
    pending_cr_ = false;
    end = endLine(pos - 1);
    pos = line_start_;
  }
  while (end == LineEnd::kNextLine) {
    pos = findScanStop(data, data + pos, data + limit) - data;
    if (in_first_line_ && pos - line_start_ > kMaxRequestLine) {
      return fail(is_request_ ? 414 : 502, "start line too long");
    }
    if (pos == limit) return finishScan(pos);
    if (data[pos] != '\r') return fail(bad, data[pos] == '\n' ? "bare LF" : "NUL in head");
    if (pos + 1 == limit) {
      pending_cr_ = true;
      return finishScan(pos + 1);
    }
    if (data[pos + 1] != '\n') return fail(bad, "bare CR");
    end = endLine(pos);
    pos = line_start_;
  }
  if (end == LineEnd::kEmptyStartLine) return fail(bad, "empty line before the start line");
  scanned_ = pos;
  return complete(pos);
}

// A CRLF whose CR is at `cr` ends the current line.
HeadScanner::LineEnd HeadScanner::endLine(size_t cr) {
  const size_t content = cr - line_start_;
  line_start_ = cr + 2;
  if (content != 0) {
    in_first_line_ = false;
    return LineEnd::kNextLine;
  }
  if (!in_first_line_) return LineEnd::kHeadEnd;
  if (!is_request_ || ++leading_empty_lines_ > kMaxLeadingEmptyLines) {
    return LineEnd::kEmptyStartLine;
  }
  return LineEnd::kNextLine;
}

ParseResult HeadScanner::finishScan(size_t pos) {
  scanned_ = pos;
  if (pos == kMaxHeadBytes) return fail(is_request_ ? 431 : 502, "head too large");
  return {};
}

ParseResult parseRequestHead(const char* data, size_t len, RequestHead& out) {
  out.method = out.target = out.path = out.query = out.host = {};
  out.has_query = false;
  out.version_minor = 1;
  out.header_count = 0;
  out.framing = Framing::kNone;
  out.content_length = 0;
  out.keep_alive = true;
  out.expect_continue = false;
  out.upgrade = false;

  const char* p = data;
  const char* end = data + len;
  for (size_t i = 0; i < kMaxLeadingEmptyLines && end - p >= 2 && p[0] == '\r' && p[1] == '\n';
       ++i) {
    p += 2;
  }
  ParseResult r;
  const char* lf = findFirstLine(p, end, r);
  if (lf == nullptr) return r;
  std::string_view authority;  // set for absolute-form only
  r = parseRequestLine(p, lf - 1, out, authority);
  if (r.state == ParseState::kError) return r;

  Facts f;
  const char* limit = data + std::min(len, kMaxHeadBytes);
  r = parseFields(data, lf + 1, limit, len >= kMaxHeadBytes, true, out.headers, out.header_count,
                  f);
  if (r.state != ParseState::kComplete) return r;

  const bool v11 = out.version_minor == 1;
  if (f.has_te) {
    if (ParseResult c = checkCodings(f, out.version_minor); c.state == ParseState::kError) {
      return c;
    }
    out.framing = Framing::kChunked;
  } else if (f.has_cl) {
    // CL 0 stays kContentLength (with 0): "the client said zero" is kept distinct from "no
    // framing headers", and a reader treats both as an empty body.
    out.framing = Framing::kContentLength;
    out.content_length = f.content_length;
  }
  if (v11 && !f.has_host) return fail(400, "missing Host");
  out.host = f.host;
  if (!authority.empty()) {
    // Routing on one host while forwarding another is the ambiguity to refuse.
    if (f.has_host && !iequals(f.host, authority)) return fail(400, "Host differs from target");
    out.host = authority;
  }
  out.keep_alive = !f.conn_close && (v11 || f.conn_keep_alive);
  if (f.expect_other) return fail(417, "unsupported expectation");
  // RFC 9110 §10.1.1 and §7.8: a 1.0 request's 100-continue and Upgrade are ignored.
  out.expect_continue = v11 && f.expect_continue;
  out.upgrade = v11 && f.conn_upgrade && f.has_upgrade;
  return r;
}

ParseResult parseResponseHead(const char* data, size_t len, std::string_view request_method,
                              ResponseHead& out) {
  out.status = 0;
  out.reason = {};
  out.version_minor = 1;
  out.header_count = 0;
  out.framing = Framing::kNone;
  out.content_length = 0;
  out.keep_alive = true;

  const char* end = data + len;
  ParseResult r;
  const char* lf = findFirstLine(data, end, r);
  if (lf == nullptr) {
    if (r.state == ParseState::kError) r.error_status = 502;
    return r;
  }
  r = parseStatusLine(data, lf - 1, out);
  if (r.state == ParseState::kError) return r;

  Facts f;
  const char* limit = data + std::min(len, kMaxHeadBytes);
  r = parseFields(data, lf + 1, limit, len >= kMaxHeadBytes, false, out.headers, out.header_count,
                  f);
  if (r.state == ParseState::kError) r.error_status = 502;
  if (r.state != ParseState::kComplete) return r;

  if (f.has_te) {
    // Even where the body is ignored below, CL+TE or a bad coding list marks an upstream we
    // cannot trust to frame its next response either.
    if (ParseResult c = checkCodings(f, out.version_minor); c.state == ParseState::kError) {
      c.error_status = 502;
      return c;
    }
  }
  const uint16_t s = out.status;
  // RFC 9112 §6.3 rule 1: these end at the blank line whatever their headers say.
  if (request_method == "HEAD" || s < 200 || s == 204 || s == 304) {
    out.framing = Framing::kNone;
  } else if (f.has_te) {
    out.framing = Framing::kChunked;
  } else if (f.has_cl) {
    out.framing = Framing::kContentLength;
    out.content_length = f.content_length;
  } else {
    out.framing = Framing::kUntilClose;
  }
  out.keep_alive = !f.conn_close && (out.version_minor == 1 || f.conn_keep_alive) &&
                   out.framing != Framing::kUntilClose;
  return r;
}

}  // namespace sluice::http
