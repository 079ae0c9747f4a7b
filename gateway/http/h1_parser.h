// Strict HTTP/1.1 head parsing (RFC 9110/9112). Refuses anything ambiguous rather than
// guessing, because a proxy that reads a request differently from its upstream is a
// request-smuggling hole. Pure functions over bytes: no sockets, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gateway/http/message.h"

namespace sluice::http {

enum class ParseState : uint8_t { kIncomplete, kComplete, kError };

struct ParseResult {
  ParseState state = ParseState::kIncomplete;
  size_t head_length = 0;  // kComplete: bytes of the head, including the final CRLFCRLF
  // kError, requests: 400, 414, 417, 431, 501 (unsupported coding, CONNECT), 505.
  // kError, responses: always 502 — the status the proxy owes its client for a bad upstream.
  uint16_t error_status = 0;
  const char* error = nullptr;  // kError: short reason for the log (static string)
};

// Up to this many empty lines (CRLF) before a request line are skipped (RFC 9112 §2.2
// robustness, e.g. a stray CRLF after a previous body); they count in head_length.
inline constexpr size_t kMaxLeadingEmptyLines = 2;

// Finds where a head ends, across calls, so that a head trickling in one byte at a
// time is scanned once in total (no quadratic re-scan). Enforces the request-line
// (414) and head-size (431) limits as bytes arrive, before the head is complete.
class HeadScanner {
 public:
  explicit HeadScanner(bool is_request) : is_request_(is_request) {}
  // `data` is the whole buffered input from the start of the head; only bytes after
  // the previously scanned prefix are examined. Returns kComplete with head_length
  // once CRLFCRLF is found; kError when a limit is exceeded (or a bare LF/CR/NUL is
  // seen in the head). After kComplete or kError, reset() before the next head.
  ParseResult scan(const char* data, size_t len);
  void reset();

 private:
  enum class LineEnd : uint8_t { kNextLine, kHeadEnd, kEmptyStartLine };
  LineEnd endLine(size_t cr);
  ParseResult finishScan(size_t pos);

  bool is_request_;
  bool in_first_line_ = true;
  bool pending_cr_ = false;  // the last byte scanned was a CR; its LF has not arrived yet
  uint8_t leading_empty_lines_ = 0;
  size_t scanned_ = 0;
  size_t line_start_ = 0;
};

// Parses a complete head (as delimited by HeadScanner; `len` includes the final
// CRLFCRLF). Views in `out` point into `data`. Fills the derived fields (host, framing,
// content_length, keep_alive, expect_continue, upgrade). Re-checks everything the scanner
// checks, so it is safe on arbitrary bytes; bytes after the head are ignored, and a head
// without its blank line yields kIncomplete.
ParseResult parseRequestHead(const char* data, size_t len, RequestHead& out);

// `request_method` decides HEAD semantics; status 1xx/204/304 and HEAD → kNone.
ParseResult parseResponseHead(const char* data, size_t len, std::string_view request_method,
                              ResponseHead& out);

}  // namespace sluice::http
