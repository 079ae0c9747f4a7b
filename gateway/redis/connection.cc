#include "gateway/redis/connection.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "gateway/server/log.h"
#include "gateway/server/tls_client.h"

namespace sluice::redis::detail {
namespace {

constexpr int64_t kBackoffFirstUs = 100'000;
constexpr int64_t kBackoffMaxUs = 5'000'000;
// EVALSHA arguments of commands already answered are dropped from the front of the
// buffer once they are this large (and more than half of it).
constexpr size_t kTailsTrim = 16 * 1024;

int64_t nowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

void appendHeader(std::string& out, char kind, size_t n) {
  char buf[24];
  buf[0] = kind;
  char* end = std::to_chars(buf + 1, buf + sizeof buf - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, end);
}

void appendBulk(std::string& out, const char* data, size_t len) {
  appendHeader(out, '$', len);
  out.append(data, len);
  out.append("\r\n", 2);
}

void appendBulk(std::string& out, std::string_view s) { appendBulk(out, s.data(), s.size()); }

}  // namespace

void Connection::Ring::push(const Pending& p) {
  if (size_ == items_.size()) {
    std::vector<Pending> bigger(items_.empty() ? 16 : items_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = at(i);
    items_.swap(bigger);
    head_ = 0;
  }
  items_[(head_ + size_) & (items_.size() - 1)] = p;
  ++size_;
}

Connection::Pending Connection::Ring::pop() {
  Pending p = front();
  head_ = (head_ + 1) & (items_.size() - 1);
  --size_;
  return p;
}

Connection::Connection(Shared& shared, unsigned index) : shared_(shared), index_(index) {
  const config::Redis& c = shared_.config;
  name_ = (c.host.find(':') != std::string::npos ? "[" + c.host + "]" : c.host) + ":" +
          std::to_string(c.port);
  event_assign(&timer_, shared_.base, -1, 0, &onTimer, this);
  connect();
}

Connection::~Connection() {
  event_del(&timer_);
  closeTransport();
  // Pending commands are dropped without a word: their owners are going away too.
}

void Connection::closeTransport() {
  if (state_ == State::kReady) shared_.metrics->connected.add(-1);
  if (bev_) {
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
    bufferevent_free(bev_);  // closes the socket (and frees the SSL object)
    bev_ = nullptr;
  }
  if (reader_) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  state_ = State::kIdle;
}

void Connection::armTimer(int64_t us) {
  timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
  event_add(&timer_, &tv);
}

void Connection::connect() {
  const config::Redis& c = shared_.config;
  // Callbacks are deferred to the loop so that none runs inside send() or cancel().
  const int options = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
  if (c.tls) {
    bev_ = tls::newClientBufferevent(shared_.base, shared_.ssl_ctx, c.host, c.tls_verify, options);
  } else {
    bev_ = bufferevent_socket_new(shared_.base, -1, options);
  }
  if (bev_ == nullptr) {
    fail("cannot create a socket");
    return;
  }
  reader_ = redisReaderCreate();
  bufferevent_setcb(bev_, &onRead, nullptr, &onEvent, this);
  state_ = State::kConnecting;
  if (bufferevent_socket_connect(bev_, reinterpret_cast<const sockaddr*>(&c.address.addr),
                                 static_cast<int>(c.address.len)) != 0) {
    fail(std::string("connect: ") + std::strerror(errno));
    return;
  }
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  armTimer(static_cast<int64_t>(c.connect_timeout.count()) * 1000);
}

void Connection::startHandshake() {
  const config::Redis& c = shared_.config;
  if (evutil_socket_t fd = bufferevent_getfd(bev_); fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (c.password.empty() && c.db == 0) {
    becomeReady();
    return;
  }
  state_ = State::kHandshake;
  // AUTH and SELECT go out together; the connection is ready when both have answered.
  if (!c.password.empty()) {
    std::string& s = shared_.scratch;
    s.clear();
    appendHeader(s, '*', c.username.empty() ? 2 : 3);
    appendBulk(s, "AUTH");
    if (!c.username.empty()) appendBulk(s, c.username);
    appendBulk(s, c.password);
    Pending p;
    p.kind = Kind::kHandshake;
    queue(p);
  }
  if (c.db != 0) {
    std::string& s = shared_.scratch;
    s.clear();
    appendHeader(s, '*', 2);
    appendBulk(s, "SELECT");
    appendBulk(s, std::to_string(c.db));
    Pending p;
    p.kind = Kind::kHandshake;
    queue(p);
  }
}

void Connection::becomeReady() {
  event_del(&timer_);
  state_ = State::kReady;
  shared_.metrics->connected.add(1);
  if (ever_ready_) {
    shared_.metrics->reconnects.add();
    LOG_INFO("redis: connected to %s again", name_.c_str());
  } else {
    LOG_DEBUG("redis: connected to %s", name_.c_str());
  }
  ever_ready_ = true;
}

void Connection::fail(const std::string& reason, bool timed_out) {
  if (failures_ == 0) {
    LOG_WARN("redis: %s: %s", name_.c_str(), reason.c_str());
  } else {
    LOG_DEBUG("redis: %s: %s", name_.c_str(), reason.c_str());
  }
  closeTransport();
  event_del(&timer_);
  int64_t delay =
      failures_ == 0 ? 0 : std::min(kBackoffMaxUs, kBackoffFirstUs << std::min(failures_ - 1, 16u));
  ++failures_;
  // Nothing can be queued from here on (not ready), so the handlers below may send().
  int64_t now = nowUs();
  retries_.clear();
  while (!pending_.empty()) {
    Pending p = pending_.pop();
    ++front_seq_;
    if (p.kind == Kind::kHandshake) continue;
    Status status = timed_out && p.deadline_us <= now ? Status::kTimeout : Status::kUnavailable;
    (status == Status::kTimeout ? shared_.metrics->timeouts : shared_.metrics->unavailable).add();
    if (p.handler) p.handler->onRedisReply(p.ticket, status, nullptr);
  }
  tails_.clear();
  tails_base_ = 0;
  // The handlers may have... nothing: the connection is idle until the timer fires.
  armTimer(delay);
}

uint64_t Connection::queue(Pending p) {
  evbuffer_add(bufferevent_get_output(bev_), shared_.scratch.data(), shared_.scratch.size());
  uint64_t seq = next_seq_++;
  if (p.ticket == 0) p.ticket = (seq << kIndexBits) | index_;
  if (p.kind != Kind::kHandshake) {
    p.deadline_us = nowUs() + static_cast<int64_t>(shared_.config.command_timeout.count()) * 1000;
    if (pending_.empty() && !event_pending(&timer_, EV_TIMEOUT, nullptr)) {
      armTimer(static_cast<int64_t>(shared_.config.command_timeout.count()) * 1000);
    }
  }
  if (pending_.empty()) front_seq_ = seq;
  pending_.push(p);
  if (p.kind == Kind::kRetry) retries_.emplace_back(p.ticket, seq);
  return p.ticket;
}

uint64_t Connection::send(Handler* handler, int argc, const char* const* argv, const size_t* lens) {
  std::string& s = shared_.scratch;
  s.clear();
  appendHeader(s, '*', static_cast<size_t>(argc));
  for (int i = 0; i < argc; ++i) appendBulk(s, argv[i], lens ? lens[i] : std::strlen(argv[i]));
  Pending p;
  p.handler = handler;
  return queue(p);
}

uint64_t Connection::eval(Handler* handler, size_t script, int nkeys, const std::string_view* keys,
                          int nargs, const std::string_view* args) {
  std::string& s = shared_.scratch;
  s.clear();
  uint32_t argc = 3 + static_cast<uint32_t>(nkeys + nargs);
  appendHeader(s, '*', argc);
  appendBulk(s, "EVALSHA");
  appendBulk(s, shared_.scripts[script].first);
  size_t tail = s.size();
  char num[16];
  char* end = std::to_chars(num, num + sizeof num, nkeys).ptr;
  appendBulk(s, num, static_cast<size_t>(end - num));
  for (int i = 0; i < nkeys; ++i) appendBulk(s, keys[i]);
  for (int i = 0; i < nargs; ++i) appendBulk(s, args[i]);
  Pending p;
  p.handler = handler;
  p.kind = Kind::kEval;
  p.script = static_cast<uint32_t>(script);
  p.argc = argc;
  p.tail_pos = tails_base_ + tails_.size();
  p.tail_len = static_cast<uint32_t>(s.size() - tail);
  tails_.append(s, tail, std::string::npos);
  return queue(p);
}

void Connection::retryAsEval(const Pending& old) {
  const std::string& source = shared_.scripts[old.script].second;
  std::string& s = shared_.scratch;
  s.clear();
  appendHeader(s, '*', old.argc);
  appendBulk(s, "EVAL");
  appendBulk(s, source);
  s.append(tails_, old.tail_pos - tails_base_, old.tail_len);
  Pending p;
  p.handler = old.handler;
  p.ticket = old.ticket;
  p.kind = Kind::kRetry;
  queue(p);
}

void Connection::cancel(uint64_t ticket) {
  uint64_t seq = ticket >> kIndexBits;
  if (seq >= front_seq_ && seq - front_seq_ < pending_.size()) {
    Pending& p = pending_.at(seq - front_seq_);
    if (p.ticket == ticket) p.handler = nullptr;
  }
  for (const auto& [orig, retry_seq] : retries_) {
    if (orig == ticket && retry_seq >= front_seq_ && retry_seq - front_seq_ < pending_.size()) {
      pending_.at(retry_seq - front_seq_).handler = nullptr;
    }
  }
}

void Connection::trimTails() {
  // Called after popping: the front's tail (if any) is the oldest still needed.
  if (pending_.empty()) {
    tails_base_ += tails_.size();
    tails_.clear();
    return;
  }
  uint64_t keep = tails_base_ + tails_.size();
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_.at(i);
    if (p.kind == Kind::kEval) {
      keep = p.tail_pos;
      break;
    }
    if (i >= 8) return;  // cheap check only; trimmed later
  }
  size_t drop = static_cast<size_t>(keep - tails_base_);
  if (drop >= kTailsTrim && drop * 2 >= tails_.size()) {
    tails_.erase(0, drop);
    tails_base_ = keep;
  }
}

void Connection::onRead(bufferevent* bev, void* arg) {
  static_cast<Connection*>(arg)->readReplies();
}

void Connection::readReplies() {
  evbuffer* in = bufferevent_get_input(bev_);
  evbuffer_iovec vec[8];
  while (evbuffer_get_length(in) > 0) {
    int n = evbuffer_peek(in, -1, nullptr, vec, 8);
    size_t fed = 0;
    for (int i = 0; i < n && i < 8; ++i) {
      redisReaderFeed(reader_, static_cast<const char*>(vec[i].iov_base), vec[i].iov_len);
      fed += vec[i].iov_len;
    }
    evbuffer_drain(in, fed);
  }
  for (;;) {
    void* obj = nullptr;
    if (redisReaderGetReply(reader_, &obj) != REDIS_OK) {
      fail(std::string("protocol error: ") + reader_->errstr);
      return;
    }
    if (obj == nullptr) return;
    auto* reply = static_cast<redisReply*>(obj);
    if (pending_.empty()) {
      freeReplyObject(reply);
      fail("reply to no command");
      return;
    }
    Pending p = pending_.pop();
    ++front_seq_;
    dispatch(p, reply);
    freeReplyObject(reply);
    if (state_ != State::kReady && state_ != State::kHandshake) return;  // failed in there
  }
}

void Connection::dispatch(Pending& p, redisReply* reply) {
  bool error = reply->type == REDIS_REPLY_ERROR;
  switch (p.kind) {
    case Kind::kHandshake:
      if (error) {
        // Redis's own message ("WRONGPASS ...") never contains the password.
        fail(std::string("handshake refused: ") + std::string(reply->str, reply->len));
      } else if (pending_.empty()) {
        becomeReady();
      }
      return;
    case Kind::kRetry: {
      auto it = std::find_if(retries_.begin(), retries_.end(),
                             [&](const auto& r) { return r.first == p.ticket; });
      if (it != retries_.end()) retries_.erase(it);
      break;
    }
    case Kind::kEval:
      if (error && reply->len >= 8 && std::memcmp(reply->str, "NOSCRIPT", 8) == 0) {
        if (p.handler) retryAsEval(p);
        trimTails();
        return;
      }
      trimTails();
      break;
    case Kind::kCommand:
      break;
  }
  failures_ = 0;  // the server answers: the next failure reconnects at once
  (error ? shared_.metrics->errors : shared_.metrics->replies).add();
  if (p.handler) p.handler->onRedisReply(p.ticket, Status::kReply, reply);
}

void Connection::onEvent(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    if (self->state_ == State::kConnecting) self->startHandshake();
    return;
  }
  std::string reason;
  if (what & BEV_EVENT_EOF) {
    reason = "connection closed by the server";
  } else {
    int err = EVUTIL_SOCKET_ERROR();
    std::string tls = self->shared_.config.tls ? tls::lastError(bev) : "";
    reason = self->state_ == State::kConnecting ? "cannot connect: " : "connection lost: ";
    reason += !tls.empty() ? "TLS: " + tls : std::string(std::strerror(err));
  }
  self->fail(reason);
}

void Connection::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  switch (self->state_) {
    case State::kIdle:
      self->connect();
      return;
    case State::kConnecting:
    case State::kHandshake:
      self->fail("connect timeout");
      return;
    case State::kReady:
      self->checkTimeouts();
      return;
  }
}

void Connection::checkTimeouts() {
  if (pending_.empty()) return;
  int64_t now = nowUs();
  int64_t left = pending_.front().deadline_us - now;
  if (left > 0) {
    armTimer(left);
    return;
  }
  // Replies come in order: a late reply would be taken for the next command's. The
  // only safe way on is a new connection.
  fail("command timeout (" + std::to_string(shared_.config.command_timeout.count()) + " ms)", true);
}

}  // namespace sluice::redis::detail
