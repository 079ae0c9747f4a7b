#include "gateway/http/chunked.h"

#include <event2/buffer.h>

#include <algorithm>
#include <climits>

#include "gateway/http/message.h"

namespace sluice::http {
namespace {

// A size line is "1*16HEXDIG [chunk-ext] CRLF"; nothing legitimate is near this long, and
// the bound keeps a peer from making us hold or walk an endless extension.
constexpr uint32_t kMaxSizeLine = 4 * 1024;
constexpr uint32_t kMaxTrailerBytes = 8 * 1024;
constexpr int kMaxHexDigits = 16;
// Data is moved in steps that fit evbuffer_remove_buffer's int return value.
constexpr size_t kMaxMoveStep = size_t{1} << 30;

bool isOws(uint8_t c) { return c == ' ' || c == '\t'; }
// field-vchar / HTAB / SP; also good enough for chunk-ext, which is validated loosely.
bool isValueByte(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

}  // namespace

bool ChunkedDecoder::fail(const char* why) {
  state_ = State::kError;
  error_ = why;
  return false;
}

// Advances the framing state machine by one byte. Returns false when the byte ends the
// framing run (data follows, the body is done, or an error).
bool ChunkedDecoder::step(uint8_t c) {
  if (state_ <= State::kSizeLf && ++line_bytes_ > kMaxSizeLine) {
    return fail("chunk size line too long");
  }
  if (state_ >= State::kTrailerStart && ++trailer_bytes_ > kMaxTrailerBytes) {
    return fail("trailer section too large");
  }
  switch (state_) {
    case State::kSizeStart: {
      int v = http::hexDigitValue(c);
      if (v < 0) return fail("invalid chunk size");
      remaining_ = v;
      size_digits_ = 1;
      state_ = State::kSizeDigits;
      return true;
    }
    case State::kSizeDigits: {
      if (int v = http::hexDigitValue(c); v >= 0) {
        if (++size_digits_ > kMaxHexDigits) return fail("chunk size has too many digits");
        // Capped at INT64_MAX like Content-Length, so signed offsets downstream stay safe.
        if (remaining_ > (uint64_t{INT64_MAX} >> 4)) return fail("chunk size overflow");
        remaining_ = (remaining_ << 4) | static_cast<uint64_t>(v);
        return true;
      }
      if (c == ';') {
        state_ = State::kExt;
      } else if (isOws(c)) {
        state_ = State::kSizeWs;
      } else if (c == '\r') {
        state_ = State::kSizeLf;
      } else {
        return fail("invalid chunk size");
      }
      return true;
    }
    case State::kSizeWs:
      if (c == ';') {
        state_ = State::kExt;
      } else if (!isOws(c)) {
        return fail("invalid chunk size");
      }
      return true;
    case State::kExt:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (!isValueByte(c)) {
        return fail("invalid chunk extension");
      }
      return true;
    case State::kSizeLf:
      if (c != '\n') return fail("bare CR in chunk size line");
      if (remaining_ == 0) {
        state_ = State::kTrailerStart;
        return true;
      }
      if (remaining_ > uint64_t{INT64_MAX} - total_) return fail("chunked body too large");
      state_ = State::kData;
      return false;
    case State::kDataCr:
      if (c != '\r') return fail("missing CRLF after chunk data");
      state_ = State::kDataLf;
      return true;
    case State::kDataLf:
      if (c != '\n') return fail("missing CRLF after chunk data");
      state_ = State::kSizeStart;
      line_bytes_ = 0;
      return true;
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kEndLf;
      } else if (isTokenChar(c)) {
        state_ = State::kTrailerName;
      } else {
        // Includes SP/HTAB: obs-fold is refused here as in the head.
        return fail("invalid trailer field");
      }
      return true;
    case State::kTrailerName:
      if (c == ':') {
        state_ = State::kTrailerValue;
      } else if (!isTokenChar(c)) {
        return fail("invalid trailer field name");
      }
      return true;
    case State::kTrailerValue:
      if (c == '\r') {
        state_ = State::kTrailerLf;
      } else if (!isValueByte(c)) {
        return fail("invalid trailer field value");
      }
      return true;
    case State::kTrailerLf:
      if (c != '\n') return fail("bare CR in trailer section");
      state_ = State::kTrailerStart;
      return true;
    case State::kEndLf:
      if (c != '\n') return fail("bare CR after trailer section");
      state_ = State::kDone;
      return false;
    case State::kData:
    case State::kDone:
    case State::kError:
      break;
  }
  return false;
}

// Runs framing bytes from the front of `in` through step() without copying them out, and
// drains what was used. Byte-wise state means a size line trickling in is walked once in
// total, where re-searching for its EOL on every call would be quadratic.
bool ChunkedDecoder::consumeFraming(evbuffer* in) {
  evbuffer_iovec vec[4];
  int n = std::min(evbuffer_peek(in, -1, nullptr, vec, 4), 4);
  size_t used = 0;
  bool more = true;
  for (int i = 0; i < n && more; ++i) {
    const auto* p = static_cast<const uint8_t*>(vec[i].iov_base);
    size_t j = 0;
    while (j < vec[i].iov_len && more) more = step(p[j++]);
    used += j;
  }
  if (used == 0 && more) {
    // Only if the front extents were all empty: take one byte the slow way to progress.
    uint8_t c;
    if (evbuffer_copyout(in, &c, 1) != 1) return false;
    step(c);
    used = 1;
  }
  return evbuffer_drain(in, used) == 0;
}

ChunkedDecoder::Status ChunkedDecoder::decode(evbuffer* in, evbuffer* out, size_t max_out) {
  size_t moved = 0;
  while (true) {
    switch (state_) {
      case State::kDone:
        return Status::kDone;
      case State::kError:
        return Status::kError;
      case State::kData: {
        size_t n = std::min({remaining_, uint64_t{evbuffer_get_length(in)},
                             uint64_t{max_out - moved}, uint64_t{kMaxMoveStep}});
        if (n == 0) return Status::kNeedMore;
        // Whole chains are relinked rather than copied; only a partial chain is copied.
        bool ok = out != nullptr ? evbuffer_remove_buffer(in, out, n) == static_cast<int>(n)
                                 : evbuffer_drain(in, n) == 0;
        if (!ok) {
          fail("evbuffer move failed");
          return Status::kError;
        }
        remaining_ -= n;
        total_ += n;
        moved += n;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      default:
        if (evbuffer_get_length(in) == 0) return Status::kNeedMore;
        if (!consumeFraming(in) && state_ != State::kError) {
          fail("evbuffer read failed");
        }
        break;
    }
  }
}

void ChunkedDecoder::reset() {
  state_ = State::kSizeStart;
  size_digits_ = 0;
  line_bytes_ = 0;
  trailer_bytes_ = 0;
  remaining_ = 0;
  total_ = 0;
  error_ = nullptr;
}

void appendChunkHeader(evbuffer* out, size_t len) {
  char buf[sizeof(size_t) * 2 + 2];
  char* p = buf + sizeof(buf);
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = "0123456789abcdef"[len & 15];
    len >>= 4;
  } while (len != 0);
  evbuffer_add(out, p, buf + sizeof(buf) - p);
}

}  // namespace sluice::http
