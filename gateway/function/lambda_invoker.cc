#include "gateway/function/lambda_invoker.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gateway/function/sigv4.h"
#include "gateway/http/chunked.h"
#include "gateway/http/h1_parser.h"
#include "gateway/http/message.h"
#include "gateway/server/clock.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"
#include "gateway/server/tls_client.h"

namespace sluice::function {
namespace {

// An idle connection is closed after this long: servers drop idle keep-alive
// connections sooner or later, and one that vanished while idle costs a retry.
constexpr int64_t kIdleLifetimeMs = 30'000;
// Error messages from the service go into the detail (a log line): keep them short.
constexpr size_t kMaxDetailMessage = 240;

// Printable ASCII only, at most `max` bytes: the text ends up in a log line.
void appendSanitized(std::string& out, std::string_view s, size_t max) {
  bool cut = s.size() > max;
  if (cut) s = s.substr(0, max);
  for (char c : s) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (cut) out.append("...");
}

// "Lambda returned 403 (InvalidSignatureException: signature mismatch)". The error type
// comes from x-amzn-ErrorType ("Name:http://internal..." → "Name") or the JSON body. Only
// the message's first line is kept: AWS's signature errors go on with the canonical
// request it expected, which holds the session token. `session_token` is masked anyway.
std::string serviceError(unsigned status, std::string_view error_type, const std::string& body,
                         const std::string& session_token) {
  std::string type(error_type.substr(0, error_type.find(':')));
  std::string message;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object()) {
    for (const char* key : {"__type", "Type", "type", "code"}) {
      if (!type.empty()) break;
      auto it = doc.find(key);
      if (it != doc.end() && it->is_string()) type = it->get<std::string>();
    }
    for (const char* key : {"message", "Message", "errorMessage"}) {
      auto it = doc.find(key);
      if (it != doc.end() && it->is_string()) {
        message = it->get<std::string>();
        break;
      }
    }
  } else {
    message = body;
  }
  if (size_t nl = message.find_first_of("\r\n"); nl != std::string::npos) message.resize(nl);
  if (!session_token.empty()) {
    for (size_t at; (at = message.find(session_token)) != std::string::npos;) {
      message.replace(at, session_token.size(), "***");
    }
  }
  std::string out = "Lambda returned " + std::to_string(status);
  if (!type.empty() || !message.empty()) {
    out.append(" (");
    appendSanitized(out, type, 80);
    if (!type.empty() && !message.empty()) out.append(": ");
    appendSanitized(out, message, kMaxDetailMessage);
    out.append(")");
  }
  return out;
}

class LambdaInvoker;

struct Conn;

struct Call {
  LambdaInvoker* owner = nullptr;
  uint64_t ticket = 0;
  InvokeHandler* handler = nullptr;  // null once cancelled (an orphan draining its reply)
  std::string payload;               // kept until the reply starts, for a stale-conn retry
  std::string request_id;
  Conn* conn = nullptr;
  event timer;             // the function's timeout, or a zero delay for `immediate`
  bool immediate = false;  // timer delivers `result` (a failure found inside invoke())
  bool retried = false;
  Result result;
};

struct Conn {
  enum class State : uint8_t { kConnecting, kIdle, kBusy };

  LambdaInvoker* owner = nullptr;
  std::list<std::unique_ptr<Conn>>::iterator self;
  bufferevent* bev = nullptr;
  event timer;  // connect timeout (kConnecting) or idle lifetime (kIdle)
  State state = State::kConnecting;
  Call* call = nullptr;
  bool served = false;     // answered a request before: may have gone stale while idle
  bool got_bytes = false;  // of the current reply
  bool closing = false;    // the service closed it: not reusable after this reply

  // The current reply.
  http::HeadScanner scanner{false};
  bool head_done = false;
  uint16_t status = 0;
  bool keep_alive = false;
  http::Framing framing = http::Framing::kNone;
  uint64_t remaining = 0;
  std::string function_error;  // X-Amz-Function-Error
  std::string error_type;      // x-amzn-ErrorType
  http::ChunkedDecoder decoder;
  evbuffer* chunks = nullptr;  // decoded chunked payload, moved into body as it comes
  std::string body;

  void resetReply() {
    scanner.reset();
    head_done = false;
    status = 0;
    keep_alive = false;
    framing = http::Framing::kNone;
    remaining = 0;
    function_error.clear();
    error_type.clear();
    decoder.reset();
    body.clear();
    got_bytes = false;
    closing = false;
  }
};

class LambdaInvoker final : public Invoker {
 public:
  LambdaInvoker(event_base* base, const config::Function& fn);
  ~LambdaInvoker() override;

  uint64_t invoke(std::string&& payload, std::string_view request_id,
                  InvokeHandler* handler) override;
  void cancel(uint64_t ticket) override;

 private:
  static void onCallTimer(evutil_socket_t, short, void* arg);
  static void onConnTimer(evutil_socket_t, short, void* arg);
  static void onRead(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);

  void start(Call* call, bool allow_idle);
  Conn* takeIdle();
  Conn* connect(std::string& error);
  void sendRequest(Conn* c);
  // Consumes reply bytes. False when `c` is no longer waiting for its reply (the reply
  // ended or failed and the call was finished; `c` may be gone, and so may this invoker).
  bool readReply(Conn* c);
  enum class HeadState : uint8_t { kIncomplete, kParsed, kFailed };
  HeadState parseHead(Conn* c);
  // Takes the call off `c`, closes `c` and finishes the call with kFailed.
  void failReply(Conn* c, std::string detail);
  void completeReply(Conn* c);
  void connectionFailed(Conn* c, const std::string& reason);
  void makeIdle(Conn* c);
  void closeConn(Conn* c);
  void failSoon(Call* call, std::string detail);
  // Removes the call and, unless it was cancelled, hands `result` to its handler. Must be
  // the last thing done: the handler may invoke again, cancel, or destroy this invoker.
  void finish(Call* call, Outcome outcome, std::string payload, std::string detail);
  std::string logName(const Call* call) const;

  event_base* base_;
  std::string name_;  // the function's config name, for logs
  std::string endpoint_;
  config::SocketAddress address_;
  bool tls_ = false;
  std::string host_;  // SNI and certificate name
  bool tls_verify_ = true;
  SSL_CTX* ssl_ctx_ = nullptr;
  std::string setup_error_;  // why no invocation can work ("" = none)
  int64_t timeout_ms_;
  int64_t connect_timeout_ms_;
  size_t max_idle_;
  bool invocation_event_;

  std::string host_header_;  // host[:port]
  std::string path_;         // /2015-03-31/functions/<encoded name>/invocations
  std::string query_;        // "Qualifier=..." or ""
  bool sign_ = false;
  sigv4::Signer signer_;
  sigv4::Signature signature_;
  std::string head_;  // request head scratch

  uint64_t next_ticket_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls_;
  std::list<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;      // most recently used last
  http::ResponseHead response_;  // only used while a head is parsed
};

LambdaInvoker::LambdaInvoker(event_base* base, const config::Function& fn)
    : base_(base),
      name_(fn.name),
      endpoint_(fn.endpoint),
      address_(fn.address),
      tls_(fn.tls),
      host_(fn.host),
      tls_verify_(fn.tls_verify),
      timeout_ms_(std::max<int64_t>(1, fn.timeout.count())),
      connect_timeout_ms_(std::max<int64_t>(1, fn.connect_timeout.count())),
      max_idle_(fn.max_idle_connections),
      invocation_event_(fn.invocation_event),
      sign_(!fn.access_key_id.empty()),
      signer_(fn.region, "lambda",
              sigv4::Credentials{fn.access_key_id, fn.secret_access_key, fn.session_token}) {
  bool ipv6 = host_.find(':') != std::string::npos;
  host_header_ = ipv6 ? "[" + host_ + "]" : host_;
  if (fn.port != (tls_ ? 443 : 80)) host_header_ += ":" + std::to_string(fn.port);
  path_ = "/2015-03-31/functions/";
  // A path segment, encoded like the AWS SDKs do ("arn:aws:lambda:..." → "arn%3Aaws%3A...").
  sigv4::uriEncode(fn.function_name, false, path_);
  path_ += "/invocations";
  if (!fn.qualifier.empty()) {
    query_ = "Qualifier=";
    sigv4::uriEncode(fn.qualifier, false, query_);
  }
  if (tls_) {
    std::string who = "function " + name_;
    ssl_ctx_ = tls::makeClientContext(tls_verify_, fn.tls_ca, who.c_str());
    if (ssl_ctx_ == nullptr) setup_error_ = "cannot create a TLS context";
  }
  if (address_.len == 0) setup_error_ = "the endpoint address is not resolved";
}

LambdaInvoker::~LambdaInvoker() {
  // Nothing is called back: the owners of the calls are going away too.
  while (!conns_.empty()) closeConn(conns_.front().get());
  for (auto& [ticket, call] : calls_) event_del(&call->timer);
  calls_.clear();
  if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
}

std::string LambdaInvoker::logName(const Call* call) const {
  std::string s = "function " + name_;
  if (!call->request_id.empty()) s += " (request " + call->request_id + ")";
  return s;
}

uint64_t LambdaInvoker::invoke(std::string&& payload, std::string_view request_id,
                               InvokeHandler* handler) {
  auto owned = std::make_unique<Call>();
  Call* call = owned.get();
  call->owner = this;
  call->ticket = next_ticket_++;
  call->handler = handler;
  call->payload = std::move(payload);
  call->request_id = std::string(request_id);
  event_assign(&call->timer, base_, -1, 0, &onCallTimer, call);
  calls_.emplace(call->ticket, std::move(owned));
  uint64_t ticket = call->ticket;
  if (!setup_error_.empty() || (tls_ && ssl_ctx_ == nullptr)) {
    failSoon(call, setup_error_.empty() ? "TLS is not available" : setup_error_);
    return ticket;
  }
  timeval tv = toTimeval(config::Duration(timeout_ms_));
  event_add(&call->timer, &tv);
  start(call, true);
  return ticket;
}

void LambdaInvoker::failSoon(Call* call, std::string detail) {
  // The handler must never run inside invoke(): the failure goes through the loop.
  call->immediate = true;
  call->result.outcome = Outcome::kFailed;
  call->result.detail = std::move(detail);
  timeval zero{0, 0};
  event_add(&call->timer, &zero);
}

void LambdaInvoker::start(Call* call, bool allow_idle) {
  Conn* c = allow_idle ? takeIdle() : nullptr;
  if (c != nullptr) {
    c->call = call;
    call->conn = c;
    sendRequest(c);
    return;
  }
  std::string error;
  c = connect(error);
  if (c == nullptr) {
    event_del(&call->timer);
    failSoon(call, "cannot connect to " + endpoint_ + ": " + error);
    return;
  }
  // The request is written once connected, so that a call cancelled meanwhile leaves a
  // clean connection behind.
  c->call = call;
  call->conn = c;
}

Conn* LambdaInvoker::takeIdle() {
  while (!idle_.empty()) {
    Conn* c = idle_.back();
    idle_.pop_back();
    event_del(&c->timer);
    // Bytes (or a close) waiting on an idle connection mean it is not clean: drop it.
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) != 0) {
      closeConn(c);
      continue;
    }
    c->state = Conn::State::kBusy;
    return c;
  }
  return nullptr;
}

Conn* LambdaInvoker::connect(std::string& error) {
  // Callbacks are deferred to the loop so that none runs inside invoke() or cancel().
  const int options = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
  bufferevent* bev = nullptr;
  if (tls_) {
    bev = tls::newClientBufferevent(base_, ssl_ctx_, host_, tls_verify_, options);
  } else {
    bev = bufferevent_socket_new(base_, -1, options);
  }
  if (bev == nullptr) {
    error = "cannot create a socket";
    return nullptr;
  }
  if (bufferevent_socket_connect(bev, reinterpret_cast<const sockaddr*>(&address_.addr),
                                 static_cast<int>(address_.len)) != 0) {
    error = std::strerror(errno);
    bufferevent_free(bev);
    return nullptr;
  }
  conns_.push_back(std::make_unique<Conn>());
  Conn* c = conns_.back().get();
  c->owner = this;
  c->self = std::prev(conns_.end());
  c->bev = bev;
  c->state = Conn::State::kConnecting;
  event_assign(&c->timer, base_, -1, 0, &onConnTimer, c);
  bufferevent_setcb(bev, &onRead, nullptr, &onEvent, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  timeval tv = toTimeval(config::Duration(connect_timeout_ms_));
  event_add(&c->timer, &tv);
  return c;
}

void LambdaInvoker::sendRequest(Conn* c) {
  Call* call = c->call;
  c->state = Conn::State::kBusy;
  c->resetReply();
  std::string_view invocation_type = invocation_event_ ? "Event" : "RequestResponse";
  std::string& h = head_;
  h.clear();
  h.append("POST ").append(path_);
  if (!query_.empty()) h.append("?").append(query_);
  h.append(" HTTP/1.1\r\nHost: ").append(host_header_);
  h.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  io::appendUint(h, call->payload.size());
  h.append("\r\nX-Amz-Invocation-Type: ").append(invocation_type);
  h.append("\r\nUser-Agent: sluice\r\n");
  if (sign_) {
    sigv4::Header signed_headers[] = {{"content-type", "application/json"},
                                      {"x-amz-invocation-type", invocation_type}};
    sigv4::Request req;
    req.method = "POST";
    req.path = path_;
    req.query = query_;
    req.host = host_header_;
    req.headers = signed_headers;
    req.header_count = 2;
    req.payload = call->payload;
    signer_.sign(req, std::time(nullptr), signature_);
    h.append("X-Amz-Date: ").append(signature_.amz_date).append("\r\n");
    if (!signer_.credentials().session_token.empty()) {
      h.append("X-Amz-Security-Token: ").append(signer_.credentials().session_token);
      h.append("\r\n");
    }
    h.append("Authorization: ").append(signature_.authorization).append("\r\n");
  }
  h.append("\r\n");
  evbuffer* out = bufferevent_get_output(c->bev);
  evbuffer_add(out, h.data(), h.size());
  evbuffer_add(out, call->payload.data(), call->payload.size());
}

void LambdaInvoker::onCallTimer(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<Call*>(arg);
  LambdaInvoker* self = call->owner;
  if (call->immediate) {
    Result r = std::move(call->result);
    self->finish(call, r.outcome, std::move(r.payload), std::move(r.detail));
    return;
  }
  // The connection may be mid-reply; a late reply must never meet the next request.
  if (call->conn != nullptr) {
    Conn* c = call->conn;
    c->call = nullptr;
    call->conn = nullptr;
    self->closeConn(c);
  }
  self->finish(call, Outcome::kTimeout, {},
               "no reply within " + std::to_string(self->timeout_ms_) + " ms");
}

void LambdaInvoker::onConnTimer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  LambdaInvoker* self = c->owner;
  if (c->state == Conn::State::kConnecting) {
    self->connectionFailed(
        c, "connect timeout (" + std::to_string(self->connect_timeout_ms_) + " ms)");
    return;
  }
  self->closeConn(c);  // idle too long
}

void LambdaInvoker::onEvent(bufferevent* bev, short what, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  LambdaInvoker* self = c->owner;
  if (what & BEV_EVENT_CONNECTED) {
    event_del(&c->timer);
    if (evutil_socket_t fd = bufferevent_getfd(bev); fd >= 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (c->call != nullptr) {
      self->sendRequest(c);
    } else {
      self->makeIdle(c);  // its call was cancelled while connecting
    }
    return;
  }
  if (c->state == Conn::State::kBusy) {
    // Bytes read before the close or error may complete the reply (or start it, which
    // rules out a retry): they go first.
    c->closing = true;
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0 && !self->readReply(c)) return;
    if ((what & BEV_EVENT_EOF) && c->head_done && c->framing == http::Framing::kUntilClose) {
      self->completeReply(c);  // the close ends the body
      return;
    }
  }
  std::string reason;
  if (what & BEV_EVENT_EOF) {
    reason = "connection closed by the service";
  } else {
    int err = EVUTIL_SOCKET_ERROR();
    std::string tls = self->tls_ ? tls::lastError(bev) : "";
    reason = c->state == Conn::State::kConnecting ? "cannot connect: " : "connection lost: ";
    reason += !tls.empty() ? "TLS: " + tls : std::string(evutil_socket_error_to_string(err));
  }
  self->connectionFailed(c, reason);
}

void LambdaInvoker::connectionFailed(Conn* c, const std::string& reason) {
  Call* call = c->call;
  bool connecting = c->state == Conn::State::kConnecting;
  // A connection kept idle may have been closed by the service just as it was reused:
  // with no reply byte seen, the request is sent again once, on a new connection (the
  // AWS SDKs retry these too).
  bool stale = !connecting && c->served && !c->got_bytes;
  if (call != nullptr) {
    c->call = nullptr;
    call->conn = nullptr;
  }
  closeConn(c);
  if (call == nullptr) return;
  if (call->handler == nullptr) {
    finish(call, Outcome::kFailed, {}, {});  // an orphan: dropped without a word
    return;
  }
  if (stale && !call->retried) {
    call->retried = true;
    LOG_DEBUG("%s: kept-alive connection went stale (%s); sending again", logName(call).c_str(),
              reason.c_str());
    start(call, false);
    return;
  }
  finish(call, Outcome::kFailed, {}, endpoint_ + ": " + reason);
}

void LambdaInvoker::onRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  c->owner->readReply(c);
}

bool LambdaInvoker::readReply(Conn* c) {
  evbuffer* in = bufferevent_get_input(c->bev);
  if (c->state == Conn::State::kIdle) {
    // Nothing is owed on an idle connection: anything arriving makes it unusable.
    if (evbuffer_get_length(in) > 0) closeConn(c);
    return false;
  }
  if (c->state != Conn::State::kBusy || evbuffer_get_length(in) == 0) return true;
  c->got_bytes = true;
  if (!c->head_done) {
    HeadState hs = parseHead(c);
    if (hs == HeadState::kFailed) return false;
    if (hs == HeadState::kIncomplete) return true;
    // A reply has started: the payload will not be sent again.
    if (c->call != nullptr) std::string().swap(c->call->payload);
  }
  bool done = false;
  switch (c->framing) {
    case http::Framing::kNone:
      done = true;
      break;
    case http::Framing::kContentLength: {
      size_t n = std::min<uint64_t>(evbuffer_get_length(in), c->remaining);
      size_t old = c->body.size();
      c->body.resize(old + n);
      evbuffer_remove(in, c->body.data() + old, n);
      c->remaining -= n;
      done = c->remaining == 0;
      break;
    }
    case http::Framing::kChunked: {
      if (c->chunks == nullptr) c->chunks = evbuffer_new();
      // One byte over the limit is enough to know the reply is too large.
      size_t budget = kMaxLambdaResponseBytes + 1 - c->body.size();
      http::ChunkedDecoder::Status st = c->decoder.decode(in, c->chunks, budget);
      size_t n = evbuffer_get_length(c->chunks);
      size_t old = c->body.size();
      c->body.resize(old + n);
      evbuffer_remove(c->chunks, c->body.data() + old, n);
      if (st == http::ChunkedDecoder::Status::kError) {
        failReply(c, std::string("bad chunked reply from Lambda: ") +
                         (c->decoder.error() ? c->decoder.error() : ""));
        return false;
      }
      done = st == http::ChunkedDecoder::Status::kDone;
      break;
    }
    case http::Framing::kUntilClose: {
      size_t old = c->body.size();
      size_t n = std::min(evbuffer_get_length(in), kMaxLambdaResponseBytes + 1 - old);
      c->body.resize(old + n);
      evbuffer_remove(in, c->body.data() + old, n);
      evbuffer_drain(in, evbuffer_get_length(in));
      break;
    }
  }
  if (c->body.size() > kMaxLambdaResponseBytes) {
    failReply(c, "reply larger than " + std::to_string(kMaxLambdaResponseBytes) + " bytes");
    return false;
  }
  if (!done) return true;
  completeReply(c);
  return false;
}

void LambdaInvoker::failReply(Conn* c, std::string detail) {
  Call* call = c->call;
  c->call = nullptr;
  if (call != nullptr) call->conn = nullptr;
  closeConn(c);
  if (call != nullptr) finish(call, Outcome::kFailed, {}, std::move(detail));
}

LambdaInvoker::HeadState LambdaInvoker::parseHead(Conn* c) {
  evbuffer* in = bufferevent_get_input(c->bev);
  http::ResponseHead& resp = response_;
  while (true) {
    size_t len = std::min(evbuffer_get_length(in), http::kMaxHeadBytes + 1024);
    if (len == 0) return HeadState::kIncomplete;
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, len));
    http::ParseResult r = c->scanner.scan(data, len);
    if (r.state == http::ParseState::kIncomplete) return HeadState::kIncomplete;
    if (r.state == http::ParseState::kComplete) {
      r = http::parseResponseHead(data, r.head_length, "POST", resp);
    }
    if (r.state == http::ParseState::kError) {
      failReply(c, std::string("invalid reply from Lambda: ") + (r.error ? r.error : ""));
      return HeadState::kFailed;
    }
    c->scanner.reset();
    if (resp.status >= 100 && resp.status < 200) {
      evbuffer_drain(in, r.head_length);  // interim (100 Continue): the reply follows
      continue;
    }
    c->status = resp.status;
    c->keep_alive = resp.keep_alive;
    c->framing = resp.framing;
    c->remaining = resp.content_length;
    if (const http::Header* h = resp.find("x-amz-function-error")) {
      c->function_error = std::string(h->value);
    }
    if (const http::Header* h = resp.find("x-amzn-errortype")) {
      c->error_type = std::string(h->value);
    }
    // The views in resp point into `in`: dead once the head is drained.
    evbuffer_drain(in, r.head_length);
    c->head_done = true;
    if (c->framing == http::Framing::kContentLength) {
      if (c->remaining > kMaxLambdaResponseBytes) {
        failReply(c, "reply of " + std::to_string(c->remaining) + " bytes is over the limit of " +
                         std::to_string(kMaxLambdaResponseBytes));
        return HeadState::kFailed;
      }
      c->body.reserve(c->remaining);
    }
    return HeadState::kParsed;
  }
}

void LambdaInvoker::completeReply(Conn* c) {
  Call* call = c->call;
  c->call = nullptr;
  if (call) call->conn = nullptr;
  uint16_t status = c->status;
  std::string body = std::move(c->body);
  c->body = std::string();
  std::string function_error = std::move(c->function_error);
  std::string error_type = std::move(c->error_type);
  // Reuse needs a clean end: keep-alive, the whole request sent, nothing extra received.
  bool reusable = c->keep_alive && !c->closing && c->framing != http::Framing::kUntilClose &&
                  evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
                  evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
  if (reusable) {
    makeIdle(c);
  } else {
    closeConn(c);
  }
  if (call == nullptr) return;
  if (status == 200 && !function_error.empty()) {
    std::string detail = "function error (";
    appendSanitized(detail, function_error, 80);
    detail.append(")");
    finish(call, Outcome::kFunctionError, std::move(body), std::move(detail));
  } else if (status == 202) {
    finish(call, Outcome::kAccepted, {}, {});
  } else if (status >= 200 && status < 300) {
    finish(call, Outcome::kOk, std::move(body), {});
  } else if (status == 429) {
    finish(call, Outcome::kThrottled, {},
           serviceError(status, error_type, body, signer_.credentials().session_token));
  } else {
    finish(call, Outcome::kFailed, {},
           serviceError(status, error_type, body, signer_.credentials().session_token));
  }
}

void LambdaInvoker::makeIdle(Conn* c) {
  if (idle_.size() >= max_idle_) {
    closeConn(c);
    return;
  }
  c->state = Conn::State::kIdle;
  c->served = true;
  c->resetReply();
  if (c->chunks != nullptr) {
    evbuffer_free(c->chunks);
    c->chunks = nullptr;
  }
  idle_.push_back(c);
  timeval tv = toTimeval(config::Duration(kIdleLifetimeMs));
  event_add(&c->timer, &tv);
}

void LambdaInvoker::closeConn(Conn* c) {
  if (c->state == Conn::State::kIdle) {
    auto it = std::find(idle_.begin(), idle_.end(), c);
    if (it != idle_.end()) idle_.erase(it);
  }
  event_del(&c->timer);
  if (c->bev != nullptr) {
    bufferevent_setcb(c->bev, nullptr, nullptr, nullptr, nullptr);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_free(c->bev);  // closes the socket (and frees the SSL object)
  }
  if (c->chunks != nullptr) evbuffer_free(c->chunks);
  if (c->call != nullptr) c->call->conn = nullptr;
  conns_.erase(c->self);
}

void LambdaInvoker::cancel(uint64_t ticket) {
  auto it = calls_.find(ticket);
  if (it == calls_.end()) return;
  Call* call = it->second.get();
  Conn* c = call->conn;
  if (c != nullptr && c->state == Conn::State::kBusy) {
    // The request is (being) sent: the reply is read and dropped, so that the
    // connection can serve again; the timeout still bounds the wait.
    call->handler = nullptr;
    std::string().swap(call->payload);
    return;
  }
  if (c != nullptr) c->call = nullptr;  // connecting: it goes idle once connected
  event_del(&call->timer);
  calls_.erase(it);
}

void LambdaInvoker::finish(Call* call, Outcome outcome, std::string payload, std::string detail) {
  auto it = calls_.find(call->ticket);
  std::unique_ptr<Call> owned = std::move(it->second);
  calls_.erase(it);
  event_del(&call->timer);
  if (call->conn != nullptr) call->conn->call = nullptr;
  InvokeHandler* handler = call->handler;
  if (handler == nullptr) return;
  if (outcome == Outcome::kFailed || outcome == Outcome::kTimeout) {
    LOG_DEBUG("%s: %s", logName(call).c_str(), detail.c_str());
  }
  Result result;
  result.outcome = outcome;
  result.payload = std::move(payload);
  result.detail = std::move(detail);
  owned.reset();
  handler->onInvokeResult(std::move(result));
}

}  // namespace

std::unique_ptr<Invoker> makeLambdaInvoker(event_base* base, const config::Function& fn) {
  return std::make_unique<LambdaInvoker>(base, fn);
}

}  // namespace sluice::function
