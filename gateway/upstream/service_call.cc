#include "gateway/upstream/service_call.h"

#include <event2/buffer.h>

#include <cerrno>
#include <cstring>

#include "gateway/http/chunked.h"
#include "gateway/http/h1_parser.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"
#include "gateway/server/worker.h"
#include "gateway/upstream/service_pool.h"

namespace sluice {
namespace {

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

// Request headers a proxy must not forward as received: hop-by-hop ones, the framing
// (re-created for the upstream hop), Expect (answered here) and the X-Forwarded-* that
// this proxy sets itself.
bool skipRequestHeader(std::string_view name) {
  using http::iequals;
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 6:
      return iequals(name, "expect");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      return iequals(name, "content-length");
    case 15:
      return iequals(name, "x-forwarded-for");
    case 16:
      return iequals(name, "proxy-connection") || iequals(name, "x-forwarded-host");
    case 17:
      return iequals(name, "transfer-encoding") || iequals(name, "x-forwarded-proto");
    default:
      return false;
  }
}

// The response head is needed only while it is turned into the client's head; one per
// thread avoids initialising 100 header slots for every request.
thread_local http::ResponseHead t_response_head;

bool connectionLists(std::string_view connection, std::string_view name) {
  size_t pos = 0;
  while (pos <= connection.size()) {
    size_t comma = connection.find(',', pos);
    if (comma == std::string_view::npos) comma = connection.size();
    std::string_view token = connection.substr(pos, comma - pos);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty() && http::iequals(token, name)) return true;
    pos = comma + 1;
  }
  return false;
}

class ServiceCall final : public BackendCall, public UpstreamConnection::Handler {
 public:
  ServiceCall(Downstream& ds, ServicePool& pool) : ds_(ds), pool_(pool) {}
  ~ServiceCall() override {
    releaseConnection(false);
    if (body_buf_) evbuffer_free(body_buf_);
  }

  // BackendCall
  void start() override { attempt(SIZE_MAX, true); }
  void cancel() override {
    cancelled_ = true;
    releaseConnection(false);
  }
  void onRequestBody() override {
    if (conn_ && conn_->connected() && !cancelled_) {
      pumpBody();
      if (!cancelled_ && conn_ && !conn_->flush()) onClosed(false);
    }
  }
  void onResponseWritable() override {
    if (conn_ && paused_ && !cancelled_) {
      paused_ = false;
      conn_->resumeReading();
      processResponse();
    }
  }

  // UpstreamConnection::Handler
  void onConnected() override { sendRequest(); }
  void onConnectFailed(bool timed_out) override;
  void onReadable() override { processResponse(); }
  void onClosed(bool timed_out) override;
  void onWritable() override {
    if (!cancelled_ && conn_) {
      pumpBody();
      if (!cancelled_ && conn_ && !conn_->flush()) onClosed(false);
    }
  }

 private:
  void attempt(size_t avoid, bool allow_idle);
  void sendRequest();
  void buildHead(evbuffer* out);
  void pumpBody();
  void processResponse();
  bool parseHead();
  void finish();
  void fail(uint16_t status, const char* message, const char* why);
  void count(metrics::UpstreamError kind) { pool_.countError(endpoint_, kind); }
  void releaseConnection(bool reusable);

  Downstream& ds_;
  ServicePool& pool_;
  std::unique_ptr<UpstreamConnection> conn_;
  size_t endpoint_ = SIZE_MAX;
  bool counted_ = false;
  int attempts_ = 0;
  bool reused_ = false;
  bool cancelled_ = false;
  bool body_started_ = false;  // some request body left the client buffer
  bool body_sent_ = false;     // the whole request (with its end) is in conn out()
  bool chunked_up_ = false;
  bool head_done_ = false;
  bool paused_ = false;
  bool saw_response_bytes_ = false;
  http::HeadScanner scanner_{false};
  http::Framing framing_ = http::Framing::kNone;
  bool upstream_keep_alive_ = false;
  uint64_t remaining_ = 0;
  http::ChunkedDecoder decoder_;
  evbuffer* body_buf_ = nullptr;
};

void ServiceCall::attempt(size_t avoid, bool allow_idle) {
  ++attempts_;
  size_t ep = pool_.pickEndpoint(avoid);
  if (counted_) pool_.requestEnded(endpoint_);
  endpoint_ = ep;
  pool_.requestStarted(ep);
  counted_ = true;
  if (allow_idle) conn_ = pool_.takeIdle(ep);
  if (conn_) {
    reused_ = true;
    conn_->setHandler(this);
    sendRequest();
    return;
  }
  reused_ = false;
  conn_ = std::make_unique<UpstreamConnection>(pool_.worker(), ep);
  conn_->setHandler(this);
  const config::Service& svc = pool_.service();
  if (!conn_->connect(svc.endpoints[ep], svc.connect_timeout, pool_.tlsFor(ep))) {
    onConnectFailed(false);
  }
}

void ServiceCall::onConnectFailed(bool timed_out) {
  int err = errno;
  count(timed_out ? metrics::UpstreamError::kTimeout : metrics::UpstreamError::kConnect);
  const config::Service& svc = pool_.service();
  LOG_WARN("service %s: connect to %s failed: %s", svc.name.c_str(),
           svc.endpoints[endpoint_].text.c_str(), timed_out ? "timed out" : std::strerror(err));
  releaseConnection(false);
  // Nothing was sent, so an idempotent request can safely go to another endpoint.
  if (attempts_ < 2 && pool_.endpointCount() > 1 && isIdempotent(ds_.request().method)) {
    attempt(endpoint_, true);
    return;
  }
  if (timed_out) {
    fail(504, "Endpoint request timed out", "connect timeout");
  } else {
    fail(502, "Bad Gateway", "connect failed");
  }
}

void ServiceCall::sendRequest() {
  buildHead(conn_->out());
  ++conn_->requests;
  pumpBody();
  if (cancelled_) return;
  conn_->readWithTimeout(pool_.responseTimeout());
  if (!conn_->flush()) onClosed(false);
}

void ServiceCall::buildHead(evbuffer* out) {
  const http::RequestHead& req = ds_.request();
  std::string& h = ds_.worker().scratch();
  h.clear();
  h.append(req.method).push_back(' ');
  h.append(ds_.path());
  if (ds_.hasQuery()) h.append("?").append(ds_.query());
  h.append(" HTTP/1.1\r\n");
  std::string_view connection;
  std::string_view xff;
  bool multi_xff = false;
  const http::Header* headers = ds_.requestHeaderData();
  size_t header_count = ds_.requestHeaderCount();
  for (size_t i = 0; i < header_count; ++i) {
    const http::Header& hd = headers[i];
    if (hd.name.size() == 10 && http::iequals(hd.name, "connection")) connection = hd.value;
    if (hd.name.size() == 15 && http::iequals(hd.name, "x-forwarded-for")) {
      if (!xff.empty()) multi_xff = true;
      xff = hd.value;
    }
  }
  for (size_t i = 0; i < header_count; ++i) {
    const http::Header& hd = headers[i];
    if (skipRequestHeader(hd.name)) continue;
    if (!connection.empty() && connectionLists(connection, hd.name)) continue;
    h.append(hd.name).append(": ").append(hd.value).append("\r\n");
  }
  if (req.host.empty()) {
    h.append("Host: ").append(pool_.service().endpoints[endpoint_].text).append("\r\n");
  }
  h.append("X-Forwarded-For: ");
  if (multi_xff) {
    for (size_t i = 0; i < header_count; ++i) {
      const http::Header& hd = headers[i];
      if (hd.name.size() == 15 && http::iequals(hd.name, "x-forwarded-for")) {
        h.append(hd.value).append(", ");
      }
    }
  } else if (!xff.empty()) {
    h.append(xff).append(", ");
  }
  h.append(ds_.clientIp()).append("\r\n");
  h.append("X-Forwarded-Proto: ").append(ds_.scheme()).append("\r\n");
  if (!req.host.empty()) h.append("X-Forwarded-Host: ").append(req.host).append("\r\n");
  int64_t len = ds_.bodyLength();
  chunked_up_ = false;
  if (ds_.hasBody()) {
    if (len >= 0) {
      h.append("Content-Length: ");
      io::appendUint(h, static_cast<uint64_t>(len));
      h.append("\r\n");
    } else {
      chunked_up_ = true;
      h.append("Transfer-Encoding: chunked\r\n");
    }
  } else if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    h.append("Content-Length: 0\r\n");
  }
  h.append("\r\n");
  evbuffer_add(out, h.data(), h.size());
  body_sent_ = !ds_.hasBody();
}

void ServiceCall::pumpBody() {
  if (body_sent_ || !conn_) return;
  evbuffer* out = conn_->out();
  bool progressed = false;
  while (!ds_.bodyComplete()) {
    size_t queued = evbuffer_get_length(out);
    if (queued >= kHighWatermark) break;
    size_t room = kHighWatermark - queued;
    size_t moved;
    if (chunked_up_) {
      if (!body_buf_) body_buf_ = evbuffer_new();
      moved = ds_.readBody(body_buf_, room);
      if (cancelled_) return;
      if (moved > 0) {
        http::appendChunkHeader(out, moved);
        evbuffer_add_buffer(out, body_buf_);
        evbuffer_add(out, http::kChunkEnd, 2);
      }
    } else {
      moved = ds_.readBody(out, room);
      if (cancelled_) return;
    }
    if (ds_.bodyFailed()) return;
    if (moved == 0) break;
    body_started_ = true;
    progressed = true;
  }
  if (ds_.bodyComplete()) {
    if (chunked_up_) evbuffer_add(out, http::kLastChunk, sizeof http::kLastChunk - 1);
    body_sent_ = true;
  }
  // An upload in progress is activity: restart the response clock.
  if (progressed && !head_done_) conn_->readWithTimeout(pool_.responseTimeout());
}

bool ServiceCall::parseHead() {
  http::ResponseHead& resp = t_response_head;
  while (true) {
    evbuffer* in = conn_->in();
    size_t len = std::min(evbuffer_get_length(in), http::kMaxHeadBytes + 1024);
    if (len == 0) return false;
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, len));
    http::ParseResult r = scanner_.scan(data, len);
    if (r.state == http::ParseState::kIncomplete) return false;
    if (r.state == http::ParseState::kComplete) {
      r = http::parseResponseHead(data, r.head_length, ds_.request().method, resp);
    }
    if (r.state == http::ParseState::kError) {
      LOG_WARN("service %s: invalid response from %s: %s", pool_.service().name.c_str(),
               pool_.service().endpoints[endpoint_].text.c_str(), r.error ? r.error : "");
      count(metrics::UpstreamError::kInvalid);
      fail(502, "Bad Gateway", "invalid response");
      return false;
    }
    scanner_.reset();
    if (resp.status >= 100 && resp.status < 200) {
      // Interim responses (100 Continue and the like) were already handled on the
      // client hop; 101 would need an upgrade this backend does not do.
      if (resp.status == 101) {
        count(metrics::UpstreamError::kInvalid);
        fail(502, "Bad Gateway", "unexpected 101 from upstream");
        return false;
      }
      evbuffer_drain(in, r.head_length);
      continue;
    }
    ResponseStart start;
    start.status = resp.status;
    start.reason = resp.reason;
    start.headers = resp.headers;
    start.header_count = resp.header_count;
    start.has_body = resp.framing != http::Framing::kNone;
    start.content_length = resp.framing == http::Framing::kContentLength
                               ? static_cast<int64_t>(resp.content_length)
                               : -1;
    remaining_ = resp.content_length;
    framing_ = resp.framing;
    upstream_keep_alive_ = resp.keep_alive;
    ds_.sendHead(start);
    if (cancelled_) return false;
    // The views in resp point into `in`; they are dead once the head is drained.
    evbuffer_drain(in, r.head_length);
    head_done_ = true;
    return true;
  }
}

void ServiceCall::processResponse() {
  if (cancelled_ || !conn_) return;
  evbuffer* in = conn_->in();
  if (evbuffer_get_length(in) > 0) saw_response_bytes_ = true;
  if (!head_done_ && !parseHead()) return;
  bool done = false;
  switch (framing_) {
    case http::Framing::kNone:
      done = true;
      break;
    case http::Framing::kContentLength: {
      size_t avail = evbuffer_get_length(in);
      if (avail <= remaining_) {
        remaining_ -= avail;
        ds_.sendBody(in);
      } else {
        if (!body_buf_) body_buf_ = evbuffer_new();
        evbuffer_remove_buffer(in, body_buf_, remaining_);
        remaining_ = 0;
        ds_.sendBody(body_buf_);
      }
      done = remaining_ == 0;
      break;
    }
    case http::Framing::kChunked: {
      if (!body_buf_) body_buf_ = evbuffer_new();
      http::ChunkedDecoder::Status st = decoder_.decode(in, body_buf_);
      ds_.sendBody(body_buf_);
      if (st == http::ChunkedDecoder::Status::kError) {
        LOG_WARN("service %s: bad chunked response: %s", pool_.service().name.c_str(),
                 decoder_.error() ? decoder_.error() : "");
        count(metrics::UpstreamError::kInvalid);
        releaseConnection(false);
        ds_.abort();
        return;
      }
      done = st == http::ChunkedDecoder::Status::kDone;
      break;
    }
    case http::Framing::kUntilClose:
      ds_.sendBody(in);
      break;
  }
  if (cancelled_) return;
  if (done) {
    finish();
    return;
  }
  if (ds_.pendingResponseBytes() >= kHighWatermark) {
    paused_ = true;
    conn_->pauseReading();
  }
  ds_.flush();
}

void ServiceCall::finish() {
  // Reuse needs a clean end: keep-alive, the whole request sent, nothing extra received.
  bool reusable = upstream_keep_alive_ && body_sent_ && evbuffer_get_length(conn_->in()) == 0;
  releaseConnection(reusable);
  ds_.sendEnd();
}

void ServiceCall::onClosed(bool timed_out) {
  if (cancelled_ || !conn_) return;
  if (!timed_out && head_done_ && framing_ == http::Framing::kUntilClose) {
    processResponse();  // whatever is left in the buffer
    if (cancelled_) return;
    releaseConnection(false);
    ds_.sendEnd();
    return;
  }
  if (head_done_) {
    LOG_WARN("service %s: response from %s cut short (%s)", pool_.service().name.c_str(),
             pool_.service().endpoints[endpoint_].text.c_str(),
             timed_out ? "timeout" : "connection closed");
    count(timed_out ? metrics::UpstreamError::kTimeout : metrics::UpstreamError::kReset);
    releaseConnection(false);
    ds_.abort();
    return;
  }
  // A pooled connection may have been closed by the upstream just as we reused it.
  // If nothing came back and no body has left the client, a fresh connection is safe.
  if (!timed_out && reused_ && !saw_response_bytes_ && !body_started_ && attempts_ < 3) {
    releaseConnection(false);
    attempt(SIZE_MAX, false);
    return;
  }
  count(timed_out ? metrics::UpstreamError::kTimeout : metrics::UpstreamError::kReset);
  if (timed_out) {
    fail(504, "Endpoint request timed out", "response timeout");
  } else {
    fail(502, "Bad Gateway", "connection closed before response");
  }
}

void ServiceCall::fail(uint16_t status, const char* message, const char* why) {
  std::string_view id = ds_.requestId();
  LOG_WARN("service %s: %d (%s) for %.*s %.*s request_id=%.*s", pool_.service().name.c_str(),
           status, why, static_cast<int>(ds_.request().method.size()), ds_.request().method.data(),
           static_cast<int>(ds_.path().size()), ds_.path().data(), static_cast<int>(id.size()),
           id.data());
  releaseConnection(false);
  if (ds_.headSent()) {
    ds_.abort();
  } else {
    ds_.sendLocalReply(status, message);
  }
}

void ServiceCall::releaseConnection(bool reusable) {
  if (counted_) {
    pool_.requestEnded(endpoint_);
    counted_ = false;
  }
  if (!conn_) return;
  if (reusable) {
    pool_.putIdle(std::move(conn_));
  } else {
    conn_.reset();
  }
}

}  // namespace

std::unique_ptr<BackendCall> makeServiceCall(Downstream& downstream, ServicePool& pool) {
  return std::make_unique<ServiceCall>(downstream, pool);
}

}  // namespace sluice
