// Chunked transfer-coding decoder over libevent buffers. Data bytes are moved between
// evbuffers (chain moves, no copies), so a large chunked body streams in bounded memory.
// Strict: hex sizes only, no overflow, CRLF exactly where the grammar says.
#pragma once

#include <cstddef>
#include <cstdint>

struct evbuffer;

namespace sluice::http {

class ChunkedDecoder {
 public:
  enum class Status : uint8_t { kNeedMore, kDone, kError };

  // Moves up to `max_out` payload bytes from `in` to `out` (out may be null: payload is
  // drained). Chunk framing is consumed from `in`. Returns kDone after the last chunk
  // and its trailer section (trailers are discarded); after kDone, bytes left in `in`
  // belong to the next message. kNeedMore means `in` ran dry or `max_out` was reached;
  // framing after the last allowed payload byte is still consumed, so a body whose final
  // bytes fit the budget reports kDone in the same call. kError and kDone are sticky.
  Status decode(evbuffer* in, evbuffer* out, size_t max_out = SIZE_MAX);

  uint64_t payloadBytes() const { return total_; }  // decoded so far
  const char* error() const { return error_; }
  void reset();

 private:
  enum class State : uint8_t {
    kSizeStart,   // first hex digit of a chunk-size
    kSizeDigits,  // more hex digits, or what ends them
    kSizeWs,      // BWS after the size: only ';' may follow
    kExt,         // chunk-ext, up to the CR
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,  // start of a trailer field line, or the CR of the final empty line
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kEndLf,
    kDone,
    kError,
  };

  bool step(uint8_t c);
  bool consumeFraming(evbuffer* in);
  bool fail(const char* why);

  State state_ = State::kSizeStart;
  uint8_t size_digits_ = 0;
  uint32_t line_bytes_ = 0;  // of the current chunk-size line
  uint32_t trailer_bytes_ = 0;
  uint64_t remaining_ = 0;  // of the current chunk's data
  uint64_t total_ = 0;
  const char* error_ = nullptr;
};

// Writes chunk framing: "<hex>\r\n" before `len` bytes of data; the caller appends data
// then kChunkEnd. kLastChunk ends the body (no trailers).
void appendChunkHeader(evbuffer* out, size_t len);
inline constexpr const char kChunkEnd[] = "\r\n";
inline constexpr const char kLastChunk[] = "0\r\n\r\n";

}  // namespace sluice::http
