#include "gateway/router/path.h"

#include <array>

#include "gateway/http/message.h"

namespace sluice::router {
namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

bool isControl(unsigned char c) { return c < 0x20 || c == 0x7F; }

// RFC 3986 unreserved: the only characters whose escaped and raw spellings are
// equivalent everywhere, so the only ones safe to decode before routing.
bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

PathStatus fail(std::string& out, PathStatus status) {
  // A half-written path must never be mistaken for a normalised one.
  out.clear();
  return status;
}

// Bytes that can be copied as they are; everything else needs a look ('/', '%' and
// control bytes). One table lookup per byte keeps the already-normal case tight.
constexpr auto kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7F; ++c) plain[c] = c != '/' && c != '%';
  for (int c = 0x80; c < 0x100; ++c) plain[c] = true;
  return plain;
}();

}  // namespace

PathStatus normalizePath(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty() || raw[0] != '/') return fail(out, PathStatus::kInvalid);
  // Decoding and collapsing only shrink the path, so the input size is enough room;
  // writing through a pointer avoids append's per-call capacity checks.
  out.resize(raw.size());
  char* const base = out.data();
  char* w = base;
  *w++ = '/';

  const char* const end = raw.data() + raw.size();
  const char* r = raw.data() + 1;
  // Invariant at the top of the loop: w[-1] is '/', so extra slashes are dropped.
  while (r < end) {
    if (*r == '/') {
      ++r;
      continue;
    }
    char* const seg = w;
    while (r < end) {
      const auto c = static_cast<unsigned char>(*r);
      if (kPlain[c]) {
        *w++ = static_cast<char>(c);
        ++r;
        continue;
      }
      if (c == '/') break;
      if (c != '%' || end - r < 3) return fail(out, PathStatus::kInvalid);
      const int hi = http::hexDigitValue(r[1]);
      const int lo = http::hexDigitValue(r[2]);
      if (hi < 0 || lo < 0) return fail(out, PathStatus::kInvalid);
      const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
      // Upstreams written in C stop at an encoded NUL; control bytes smuggle log lines.
      if (isControl(decoded)) return fail(out, PathStatus::kInvalid);
      if (isUnreserved(decoded)) {
        *w++ = static_cast<char>(decoded);
      } else {
        *w++ = '%';
        *w++ = kUpperHex[hi];
        *w++ = kUpperHex[lo];
      }
      r += 3;
    }

    // Dot segments are judged after decoding, so "%2e%2e" cannot sneak past the root.
    const bool more = r < end;
    const size_t len = w - seg;
    if (len == 1 && seg[0] == '.') {
      w = seg;
    } else if (len == 2 && seg[0] == '.' && seg[1] == '.') {
      char* slash = seg - 1;
      if (slash == base) return fail(out, PathStatus::kEscapesRoot);
      do {
        --slash;
      } while (*slash != '/');
      w = slash + 1;
    } else if (more) {
      *w++ = '/';
    }
    if (more) ++r;
  }
  out.resize(w - base);
  return PathStatus::kOk;
}

}  // namespace sluice::router
