#include "gateway/server/http1_connection.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/router/path.h"
#include "gateway/server/clock.h"
#include "gateway/server/http1_stream.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"
#include "gateway/server/tls_io.h"
#include "gateway/upstream/service_call.h"

namespace sluice {
namespace {
// One read never takes more than this; a bigger body arrives over several reads, which
// keeps memory per connection bounded and lets other connections run in between.
constexpr size_t kReadSize = 16 * 1024;
// While waiting for a head, input beyond a maximal head cannot be a valid request.
constexpr size_t kMaxBufferedHead = http::kMaxHeadBytes + 1024;
}  // namespace

namespace {
int64_t cachedNowMs(event_base* base) {
  timeval now;
  event_base_gettimeofday_cached(base, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_usec / 1000;
}
}  // namespace

Http1Connection::Http1Connection(Worker& worker, int fd, const sockaddr_storage& peer,
                                 std::shared_ptr<const ListenerInfo> info, void* listener_tag)
    : worker_(worker),
      fd_(fd),
      in_(evbuffer_new()),
      out_(evbuffer_new()),
      info_(std::move(info)),
      listener_tag_(listener_tag) {
  std::string ip = io::ipString(peer);
  std::strncpy(client_ip_, ip.c_str(), sizeof client_ip_ - 1);
  client_ip_[sizeof client_ip_ - 1] = '\0';
  event_assign(&read_ev_, worker_.base(), fd_, EV_READ | EV_PERSIST, &onReadEvent, this);
  event_assign(&write_ev_, worker_.base(), fd_, EV_WRITE | EV_PERSIST, &onWriteEvent, this);
  if (info_->tls) {
    ssl_ = info_->tls->newSession(fd_);
    state_ = State::kHandshake;
  }
}

Http1Connection::~Http1Connection() {
  close();
  evbuffer_free(in_);
  evbuffer_free(out_);
}

void Http1Connection::start() {
  if (state_ == State::kHandshake) {
    if (ssl_ == nullptr) {  // OpenSSL could not make a session (out of memory)
      if (info_->metrics) info_->metrics->tls_handshakes_failed.add();
      close();
      return;
    }
    // The whole handshake must be done within handshake_timeout, however the client
    // spreads its bytes: a deadline, re-armed after each step (see handshake()).
    head_deadline_ms_ = cachedNowMs(worker_.base()) + info_->tls->handshakeTimeout().count();
    timeval tv = toTimeval(info_->tls->handshakeTimeout());
    event_add(&read_ev_, &tv);
    reading_ = true;
    return;
  }
  // A client that connects and says nothing is held only for header_timeout.
  armHeadTimer(true);
}

void Http1Connection::drain() {
  draining_ = true;
  if (h2_) {
    h2_->drain();  // GOAWAY: streams in flight finish, then the connection closes
    if (h2_ && h2_->streamCount() == 0 && state_ == State::kHttp2) closeAfterFlush();
    return;
  }
  if (state_ == State::kWaitingHead && evbuffer_get_length(in_) == 0) {
    close();
  }
  // Otherwise the current or partially received request completes with
  // "Connection: close" because the connection is draining.
}

void Http1Connection::armHeadTimer(bool header) {
  head_timer_is_header_ = header;
  if (header) {
    head_deadline_ms_ = cachedNowMs(worker_.base()) + info_->header_timeout_ms.count();
  } else {
    head_deadline_ms_ = cachedNowMs(worker_.base()) + info_->idle_timeout_ms.count();
  }
  // Re-adding a pending event only moves its timer; deleting it first would cost an
  // epoll_ctl per request.
  event_add(&read_ev_, header ? info_->header_timeout : info_->idle_timeout);
  reading_ = true;
}

void Http1Connection::updateReading() {
  if (state_ != State::kWaitingHead && state_ != State::kActive) return;
  bool want = !peer_closed_ && evbuffer_get_length(in_) < kHighWatermark;
  if (state_ == State::kWaitingHead) return;  // the head timer owns read_ev_ then
  if (want && !reading_) {
    event_add(&read_ev_, nullptr);
    reading_ = true;
  } else if (!want && reading_) {
    event_del(&read_ev_);
    reading_ = false;
  }
}

void Http1Connection::onReadEvent(evutil_socket_t, short what, void* arg) {
  static_cast<Http1Connection*>(arg)->handleRead(what);
}

void Http1Connection::onWriteEvent(evutil_socket_t, short, void* arg) {
  static_cast<Http1Connection*>(arg)->handleWrite();
}

void Http1Connection::handleRead(short what) {
  if (state_ == State::kHttp2) {
    readHttp2(what);
    return;
  }
  if (state_ == State::kHandshake) {
    if (what & EV_TIMEOUT) {
      if (info_->metrics) info_->metrics->tls_handshakes_failed.add();
      close();
      return;
    }
    handshake();
    return;
  }
  if (state_ == State::kLingering) {
    if (what & EV_TIMEOUT) {
      close();
      return;
    }
    char discard[4096];
    ssize_t n = ::read(fd_, discard, sizeof discard);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close();
    return;
  }
  if (what & EV_TIMEOUT) {
    if (state_ != State::kWaitingHead) return;
    if (head_timer_is_header_ && evbuffer_get_length(in_) > 0) {
      replyAndClose(408, "Request Timeout");
    } else {
      close();
    }
    return;
  }
  if (state_ == State::kWaitingHead && evbuffer_get_length(in_) >= kMaxBufferedHead) {
    return;  // unreachable in practice: the scanner refuses long heads first
  }
  ssize_t n = readSome();
  if (n == 0) {
    peer_closed_ = true;
    // A client that half-closes after a complete request still gets its response;
    // anything else (idle, partial head, body cut short) ends here.
    if (state_ == State::kActive && stream_ && stream_->body_complete_) {
      event_del(&read_ev_);
      reading_ = false;
      return;
    }
    close();
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      close();
      return;
    }
    // Woken by finishStream for a pipelined request already buffered.
    if (evbuffer_get_length(in_) == 0) {
      if (state_ == State::kWaitingHead) {
        // A wake-up that brought no bytes (over TLS: a key update, an empty record)
        // restarted the persistent event's timer: put the header or idle deadline
        // back, or such wake-ups would keep a connection alive past its timeouts.
        int64_t left = head_deadline_ms_ - cachedNowMs(worker_.base());
        if (left <= 0) {
          close();
          return;
        }
        timeval tv = toTimeval(config::Duration(left));
        event_add(&read_ev_, &tv);
      }
      return;
    }
  }
  if (state_ == State::kWaitingHead && !head_timer_is_header_) {
    armHeadTimer(true);  // the first bytes of a new request start the header clock
  }
  process();
  if (state_ == State::kWaitingHead && head_timer_is_header_) {
    // A persistent event restarts its timer whenever it fires, so a client trickling a
    // head byte by byte would never time out: re-arm with what is left of the deadline.
    int64_t left = head_deadline_ms_ - cachedNowMs(worker_.base());
    if (left <= 0) {
      replyAndClose(408, "Request Timeout");
      return;
    }
    timeval tv{static_cast<time_t>(left / 1000), static_cast<suseconds_t>((left % 1000) * 1000)};
    event_add(&read_ev_, &tv);
  }
}

void Http1Connection::process() {
  if (in_process_) return;
  if (fresh_ && info_->h2c && state_ == State::kWaitingHead) {
    // h2c with prior knowledge: the connection starts with HTTP/2's client preface
    // (RFC 9113 §3.3) instead of a request line.
    static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t len = std::min(evbuffer_get_length(in_), kPreface.size());
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, len));
    if (len > 0 && kPreface.starts_with(std::string_view(data, len))) {
      if (len < kPreface.size()) return;  // wait for the rest of it
      startHttp2();
      return;
    }
  }
  in_process_ = true;
  while (state_ == State::kWaitingHead) {
    size_t len = evbuffer_get_length(in_);
    if (len == 0) break;
    size_t look = std::min(len, kMaxBufferedHead);
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, look));
    http::ParseResult r = scanner_.scan(data, look);
    if (r.state == http::ParseState::kIncomplete) break;
    if (r.state == http::ParseState::kError) {
      LOG_DEBUG("refused request from %s: %s", client_ip_, r.error ? r.error : "");
      replyAndClose(r.error_status, io::reasonPhrase(r.error_status));
      break;
    }
    startStream(r.head_length);
  }
  if (state_ == State::kActive && stream_ && stream_->exchange_.active() &&
      !stream_->body_complete_ && evbuffer_get_length(in_) > 0) {
    stream_->exchange_.onRequestBody();
  }
  in_process_ = false;
  updateReading();
}

void Http1Connection::startStream(size_t head_length) {
  fresh_ = false;
  stream_ = Http1Stream::acquire(this);
  const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in_, head_length));
  stream_->head_buf_.assign(data, head_length);
  evbuffer_drain(in_, head_length);
  scanner_.reset();
  state_ = State::kActive;
  // No client timer while a request is in flight: the backend's timeouts bound it.
  event_remove_timer(&read_ev_);
  if (!stream_->parseHead()) return;
  stream_->exchange_.begin(*stream_, stream_->config_, head_length);
}

void Http1Connection::finishStream() {
  // Called by the stream once its response is completely queued.
  std::unique_ptr<Http1Stream> done = std::move(stream_);
  bool keep = !done->close_after_ && done->body_complete_ && !draining() && !peer_closed_ &&
              state_ == State::kActive;
  done->exchange_.end(true);
  Http1Stream::release(std::move(done));
  if (!keep) {
    closeAfterFlush();
    return;
  }
  state_ = State::kWaitingHead;
  if (!flush()) return;
  armHeadTimer(evbuffer_get_length(in_) > 0);
  // A pipelined request waits for the next loop iteration: starting it here would run
  // it inside the callbacks of the request that just ended.
  if (evbuffer_get_length(in_) > 0) wake(&read_ev_, EV_READ);
}

// Every deferred wake-up goes through here: a connection closed in the meantime (a
// write error deep in a send, a failed start) must not be woken, since the worker
// deletes it on the next loop iteration.
void Http1Connection::wake(event* ev, short what) {
  if (state_ != State::kClosed) event_active(ev, what, 0);
}

void Http1Connection::replyAndClose(uint16_t status, std::string_view message) {
  if (state_ != State::kWaitingHead && state_ != State::kActive) return;
  if (!stream_) stream_ = Http1Stream::acquire(this);
  if (!stream_->exchange_.active()) worker_.requestRefused(status);
  stream_->close_after_ = true;
  state_ = State::kActive;
  stream_->sendLocalReply(status, message);
}

bool Http1Connection::flush() {
  if (state_ == State::kClosed) return false;
  if (writing_ || evbuffer_get_length(out_) == 0) return true;
  if (ssl_ && state_ != State::kClosing) {
    // TLS: written once per loop pass. Written at once, a response's head and body
    // (HTTP/2: its HEADERS and DATA) would go out as separate records and write(2)s,
    // which costs both ends a record each.
    if (!flush_scheduled_) {
      flush_scheduled_ = true;
      wake(&write_ev_, EV_WRITE);
    }
    return true;
  }
  int n = writeSome();
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    close();
    return false;
  }
  if (evbuffer_get_length(out_) > 0) {
    event_add(&write_ev_, nullptr);
    writing_ = true;
  }
  return true;
}

void Http1Connection::handleWrite() {
  flush_scheduled_ = false;
  if (state_ == State::kHandshake) {
    handshake();
    return;
  }
  if (state_ == State::kHttp2) {
    int n = writeSome();
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      close();
      return;
    }
    if (evbuffer_get_length(out_) == 0) {
      event_del(&write_ev_);
      writing_ = false;
    } else if (!writing_) {  // a scheduled flush (TLS) that did not write everything
      event_add(&write_ev_, nullptr);
      writing_ = true;
    }
    if (evbuffer_get_length(out_) < kLowWatermark) h2_->onWritable();
    afterHttp2();
    return;
  }
  int n = writeSome();
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    close();
    return;
  }
  if (io_.write_wants_read && writing_) {
    // OpenSSL needs to read before it can write: a writable socket would wake us in a
    // loop. The read path wakes the write again (readSome).
    event_del(&write_ev_);
    writing_ = false;
    return;
  }
  size_t left = evbuffer_get_length(out_);
  if (left == 0) {
    event_del(&write_ev_);
    writing_ = false;
    if (state_ == State::kClosing) {
      linger();
      return;
    }
  } else if (!writing_) {  // a scheduled flush (TLS) that did not write everything
    event_add(&write_ev_, nullptr);
    writing_ = true;
  }
  if (state_ == State::kActive && stream_ && stream_->exchange_.active() && left < kLowWatermark) {
    stream_->exchange_.onResponseWritable();
  }
}

void Http1Connection::closeAfterFlush() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosing;
  event_del(&read_ev_);
  reading_ = false;
  if (!flush()) return;
  if (!writing_) linger();
}

void Http1Connection::linger() {
  if (peer_closed_) {
    close();
    return;
  }
  state_ = State::kLingering;
  if (ssl_) {
    // close_notify, best effort: the reply is complete by its framing anyway.
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  ::shutdown(fd_, SHUT_WR);
  evbuffer_drain(in_, evbuffer_get_length(in_));
  static const timeval kLinger{2, 0};
  event_add(&read_ev_, &kLinger);
  reading_ = true;
}

void Http1Connection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  event_del(&read_ev_);
  event_del(&write_ev_);
  if (stream_) Http1Stream::release(std::move(stream_));  // ends its exchange
  if (h2_) {
    // Streams may be on the stack (a write error inside a send): the session goes on
    // the next loop iteration, its streams told the client is gone now.
    h2_->shutdown();
    worker_.deferDelete(std::move(h2_));
  }
  if (ssl_) {
    // A session whose connection just ends (no close_notify of ours) stays resumable:
    // OpenSSL would otherwise drop it from the cache as "bad".
    if (SSL_is_init_finished(ssl_))
      SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  ::close(fd_);
  fd_ = -1;
  worker_.onConnectionClosed(this);
}

void Http1Connection::handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    if (info_->metrics) info_->metrics->tls_handshakes_ok.add();
    std::string subject = tls::ServerContext::clientSubject(ssl_);
    if (!subject.empty()) tls_subject_ = std::make_unique<std::string>(std::move(subject));
    if (writing_) {
      event_del(&write_ev_);
      writing_ = false;
    }
    const unsigned char* proto = nullptr;
    unsigned int proto_len = 0;
    SSL_get0_alpn_selected(ssl_, &proto, &proto_len);
    if (proto_len == 2 && std::memcmp(proto, "h2", 2) == 0) {
      startHttp2();
      wake(&read_ev_, EV_READ);
      return;
    }
    state_ = State::kWaitingHead;
    armHeadTimer(true);
    // The request often came with the handshake's last flight, and OpenSSL may hold
    // decrypted bytes the socket's readiness will not announce. When draining, that
    // request (if any) is served with Connection: close; an idle one closes at once.
    if (draining() && SSL_pending(ssl_) == 0) {
      char byte;
      if (recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
        close();
        return;
      }
    }
    wake(&read_ev_, EV_READ);
    return;
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    if (err == SSL_ERROR_WANT_WRITE && !writing_) {
      event_add(&write_ev_, nullptr);
      writing_ = true;
    } else if (err == SSL_ERROR_WANT_READ && writing_) {
      event_del(&write_ev_);
      writing_ = false;
    }
    int64_t left = head_deadline_ms_ - cachedNowMs(worker_.base());
    if (left <= 0) {
      if (info_->metrics) info_->metrics->tls_handshakes_failed.add();
      close();
      return;
    }
    timeval tv = toTimeval(config::Duration(left));
    event_add(&read_ev_, &tv);
    return;
  }
  // Counted, and logged only at debug level: a client controls how often this happens.
  if (info_->metrics) info_->metrics->tls_handshakes_failed.add();
  if (log::enabled(log::Level::kDebug)) {
    unsigned long e = ERR_peek_error();
    char text[256] = "connection closed";
    if (e != 0) ERR_error_string_n(e, text, sizeof text);
    LOG_DEBUG("TLS handshake with %s failed: %s", client_ip_, text);
  }
  ERR_clear_error();
  close();
}

ssize_t Http1Connection::readSome() {
  return io_.read(fd_, ssl_, in_, kReadSize, &read_ev_, &write_ev_, writing_);
}

int Http1Connection::writeSome() {
  int n = io_.write(fd_, ssl_, out_);
  // A read that stopped for want of writability goes on now.
  if (n >= 0 && ssl_ != nullptr &&
      (state_ == State::kWaitingHead || state_ == State::kActive || state_ == State::kHttp2)) {
    if (SSL_pending(ssl_) > 0) wake(&read_ev_, EV_READ);
  }
  return n;
}

void Http1Connection::startHttp2() {
  state_ = State::kHttp2;
  fresh_ = false;
  h2_ = std::make_unique<Http2Session>(*this);
  if (!h2_->start()) {
    close();
    return;
  }
  reading_ = true;
  if (evbuffer_get_length(in_) > 0 && !h2_->receive(in_)) {
    closeAfterFlush();
    return;
  }
  afterHttp2();
}

void Http1Connection::readHttp2(short what) {
  if (what & EV_TIMEOUT) {
    // Idle (no stream) for idle_timeout: say goodbye properly, then close.
    if (h2_->streamCount() == 0) {
      h2_->drain();
      closeAfterFlush();
    }
    return;
  }
  ssize_t n = readSome();
  if (n == 0) {
    close();  // the client is gone: its streams end now
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) close();
    return;
  }
  if (!h2_->receive(in_)) {
    closeAfterFlush();
    return;
  }
  afterHttp2();
}

// After the session did something: close when it is done, and keep the idle timer on
// only while no stream is open.
void Http1Connection::afterHttp2() {
  if (state_ != State::kHttp2 || !h2_) return;
  if (h2_->done() || (draining() && h2_->streamCount() == 0)) {
    closeAfterFlush();
    return;
  }
  if (h2_->streamCount() == 0) {
    event_add(&read_ev_, info_->idle_timeout);
  } else {
    event_add(&read_ev_, nullptr);
  }
}

}  // namespace sluice
