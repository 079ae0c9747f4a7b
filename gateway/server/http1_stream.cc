#include "gateway/server/http1_stream.h"

#include <event2/buffer.h>

#include <vector>

#include "gateway/server/http1_connection.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"

namespace sluice {
namespace {

// Streams are big (a RequestHead holds room for 100 headers); recycling them per thread
// keeps the request path free of allocations once warm.
thread_local std::vector<std::unique_ptr<Http1Stream>> t_free_streams;
constexpr size_t kMaxFreeStreams = 256;

bool isHopByHop(std::string_view name) {
  using http::iequals;
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      return iequals(name, "content-length");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

// True if `name` is listed as a token in a Connection header value.
bool listedIn(std::string_view connection, std::string_view name) {
  size_t pos = 0;
  while (pos < connection.size()) {
    size_t comma = connection.find(',', pos);
    if (comma == std::string_view::npos) comma = connection.size();
    std::string_view token = connection.substr(pos, comma - pos);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (http::iequals(token, name)) return true;
    pos = comma + 1;
  }
  return false;
}

}  // namespace

std::unique_ptr<Http1Stream> Http1Stream::acquire(Http1Connection* conn) {
  std::unique_ptr<Http1Stream> s;
  if (!t_free_streams.empty()) {
    s = std::move(t_free_streams.back());
    t_free_streams.pop_back();
  } else {
    s = std::make_unique<Http1Stream>();
  }
  s->reset(conn);
  return s;
}

void Http1Stream::release(std::unique_ptr<Http1Stream> stream) {
  stream->exchange_.end(false);
  stream->conn_ = nullptr;
  stream->config_.reset();
  if (t_free_streams.size() < kMaxFreeStreams) t_free_streams.push_back(std::move(stream));
}

void Http1Stream::reset(Http1Connection* conn) {
  conn_ = conn;
  config_ = conn->worker_.configPtr();
  head_buf_.clear();
  head_.header_count = 0;
  has_body_ = false;
  body_complete_ = true;
  body_failed_ = false;
  continue_sent_ = false;
  body_remaining_ = 0;
  max_body_ = UINT64_MAX;
  decoder_.reset();
  head_sent_ = false;
  ended_ = false;
  chunked_out_ = false;
  no_body_out_ = false;
  close_after_ = false;
}

Worker& Http1Stream::worker() { return conn_->worker_; }

std::string_view Http1Stream::clientIp() const { return conn_->client_ip_; }

std::string_view Http1Stream::listenerName() const { return conn_->info_->name; }

std::string_view Http1Stream::scheme() const { return conn_->secure() ? "https" : "http"; }

std::string_view Http1Stream::tlsClientSubject() const { return conn_->tlsSubject(); }

bool Http1Stream::parseHead() {
  http::ParseResult r = http::parseRequestHead(head_buf_.data(), head_buf_.size(), head_);
  if (r.state != http::ParseState::kComplete) {
    LOG_DEBUG("refused request from %s: %s", conn_->client_ip_, r.error ? r.error : "");
    close_after_ = true;
    uint16_t status = r.error_status ? r.error_status : 400;
    conn_->worker_.requestRefused(status);
    sendLocalReply(status, io::reasonPhrase(status));
    return false;
  }
  switch (head_.framing) {
    case http::Framing::kContentLength:
      has_body_ = head_.content_length > 0;
      body_remaining_ = head_.content_length;
      body_complete_ = !has_body_;
      break;
    case http::Framing::kChunked:
      has_body_ = true;
      body_complete_ = false;
      break;
    default:
      break;
  }
  if (!head_.keep_alive) close_after_ = true;
  return true;
}

int64_t Http1Stream::bodyLength() const {
  if (head_.framing == http::Framing::kChunked) return -1;
  return static_cast<int64_t>(head_.content_length);
}

void Http1Stream::sendContinueIfNeeded() {
  if (continue_sent_ || !head_.expect_continue || body_complete_) return;
  continue_sent_ = true;
  static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
  evbuffer_add(conn_->out_, k100.data(), k100.size());
}

size_t Http1Stream::readBody(evbuffer* out, size_t max) {
  if (body_complete_ || body_failed_) return 0;
  sendContinueIfNeeded();
  evbuffer* in = conn_->in_;
  size_t moved = 0;
  if (head_.framing == http::Framing::kContentLength) {
    size_t n = std::min<uint64_t>({body_remaining_, evbuffer_get_length(in), max});
    if (n > 0) evbuffer_remove_buffer(in, out, n);
    body_remaining_ -= n;
    moved = n;
    if (body_remaining_ == 0) body_complete_ = true;
  } else {
    uint64_t before = decoder_.payloadBytes();
    http::ChunkedDecoder::Status st = decoder_.decode(in, out, max);
    moved = decoder_.payloadBytes() - before;
    if (decoder_.payloadBytes() > max_body_) {
      failBody(413, "body over max_body");
      return moved;
    }
    if (st == http::ChunkedDecoder::Status::kError) {
      failBody(400, decoder_.error());
      return moved;
    }
    if (st == http::ChunkedDecoder::Status::kDone) body_complete_ = true;
  }
  if (continue_sent_) conn_->flush();
  conn_->updateReading();
  return moved;
}

void Http1Stream::failBody(uint16_t status, const char* why) {
  LOG_DEBUG("request body from %s refused: %s", conn_->client_ip_, why ? why : "");
  body_failed_ = true;
  close_after_ = true;
  std::string_view message = status == 413 ? "Request Entity Too Large" : io::reasonPhrase(status);
  if (head_sent_) {
    abort();
  } else if (exchange_.active()) {
    // Through the exchange, so that response filters and the access log see the reply.
    exchange_.sendLocalReply(status, message);
  } else {
    sendLocalReply(status, message);
  }
}

void Http1Stream::sendHead(const ResponseStart& start) {
  std::string& h = conn_->worker_.scratch();
  h.clear();
  h.append("HTTP/1.1 ");
  io::appendUint(h, start.status);
  h.push_back(' ');
  h.append(start.reason.empty() ? io::reasonPhrase(start.status) : start.reason);
  h.append("\r\n");
  std::string_view connection;
  for (size_t i = 0; i < start.header_count; ++i) {
    if (http::iequals(start.headers[i].name, "connection")) connection = start.headers[i].value;
  }
  bool is_head = head_.method == "HEAD";
  // A reply without a body (HEAD, 304) still tells the length the full reply would
  // have; that Content-Length is metadata, not framing, and passes through.
  bool keep_length = is_head || start.status == 304;
  bool length_copied = false;
  for (size_t i = 0; i < start.header_count; ++i) {
    const http::Header& hd = start.headers[i];
    if (isHopByHop(hd.name)) {
      if (!keep_length || length_copied || !http::iequals(hd.name, "content-length")) continue;
      length_copied = true;
    }
    if (!connection.empty() && listedIn(connection, hd.name)) continue;
    h.append(hd.name).append(": ").append(hd.value).append("\r\n");
  }
  if (is_head || !start.has_body) {
    no_body_out_ = true;
    if (is_head && !length_copied && start.content_length >= 0) {
      h.append("Content-Length: ");
      io::appendUint(h, static_cast<uint64_t>(start.content_length));
      h.append("\r\n");
    }
  } else if (start.content_length >= 0) {
    h.append("Content-Length: ");
    io::appendUint(h, static_cast<uint64_t>(start.content_length));
    h.append("\r\n");
  } else if (head_.version_minor >= 1) {
    chunked_out_ = true;
    h.append("Transfer-Encoding: chunked\r\n");
  } else {
    close_after_ = true;  // HTTP/1.0: the close delimits the body
  }
  if (!body_complete_ || conn_->draining() || conn_->peer_closed_) close_after_ = true;
  if (close_after_) {
    h.append("Connection: close\r\n");
  } else if (head_.version_minor == 0) {
    h.append("Connection: keep-alive\r\n");
  }
  h.append("\r\n");
  evbuffer_add(conn_->out_, h.data(), h.size());
  head_sent_ = true;
}

void Http1Stream::sendBody(evbuffer* data) {
  size_t n = evbuffer_get_length(data);
  if (n == 0) return;
  if (no_body_out_) {
    evbuffer_drain(data, n);
    return;
  }
  if (chunked_out_) {
    http::appendChunkHeader(conn_->out_, n);
    evbuffer_add_buffer(conn_->out_, data);
    evbuffer_add(conn_->out_, http::kChunkEnd, 2);
  } else {
    evbuffer_add_buffer(conn_->out_, data);
  }
}

void Http1Stream::sendEnd() {
  if (ended_) return;
  ended_ = true;
  if (chunked_out_) evbuffer_add(conn_->out_, http::kLastChunk, sizeof http::kLastChunk - 1);
  conn_->finishStream();
}

void Http1Stream::flush() { conn_->flush(); }

size_t Http1Stream::pendingResponseBytes() const { return evbuffer_get_length(conn_->out_); }

void Http1Stream::abort() { conn_->close(); }

void Http1Stream::writeLocal(uint16_t status, std::string_view content_type, std::string_view body,
                             std::string_view extra_headers) {
  if (head_sent_) {
    abort();
    return;
  }
  std::string& h = conn_->worker_.scratch();
  h.clear();
  h.append("HTTP/1.1 ");
  io::appendUint(h, status);
  h.push_back(' ');
  h.append(io::reasonPhrase(status));
  h.append("\r\n");
  if (!content_type.empty()) h.append("Content-Type: ").append(content_type).append("\r\n");
  h.append(extra_headers);
  bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
  if (!bodyless) {
    h.append("Content-Length: ");
    io::appendUint(h, body.size());
    h.append("\r\n");
  }
  // A request whose body we did not read leaves the connection in an unknown state.
  if (!body_complete_ || conn_->draining() || conn_->peer_closed_) close_after_ = true;
  if (close_after_) {
    h.append("Connection: close\r\n");
  } else if (head_.header_count > 0 && head_.version_minor == 0) {
    h.append("Connection: keep-alive\r\n");
  }
  h.append("\r\n");
  if (!bodyless && head_.method != "HEAD") h.append(body);
  evbuffer_add(conn_->out_, h.data(), h.size());
  head_sent_ = true;
  sendEnd();
}

void Http1Stream::sendLocalReply(uint16_t status, std::string_view message) {
  std::string body = "{\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') body.push_back('\\');
    body.push_back(c);
  }
  body.append("\"}");
  writeLocal(status, "application/json", body, {});
}

}  // namespace sluice
