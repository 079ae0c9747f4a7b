// The HTTP/1.1 server codec: one client connection, its requests one at a time (pipelined
// requests wait in the input buffer, so responses stay in order), keep-alive, chunked
// bodies both ways, Expect: 100-continue, and the limits and timeouts of the listener.
// It routes each request and hands it to a backend through the Downstream interface;
// it never knows what a backend does with it.
#pragma once

#include <event2/event_struct.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "gateway/http/h1_parser.h"
#include "gateway/server/http2_session.h"
#include "gateway/server/listener_info.h"
#include "gateway/server/stream.h"
#include "gateway/server/tls_io.h"
#include "gateway/server/tls_server.h"
#include "gateway/server/worker.h"

struct evbuffer;

namespace sluice {

class Http1Stream;

class Http1Connection : public Deferred {
 public:
  Http1Connection(Worker& worker, int fd, const sockaddr_storage& peer,
                  std::shared_ptr<const ListenerInfo> info, void* listener_tag);
  ~Http1Connection() override;

  void start();
  // Drain (shutdown, or its listener removed by a reload): close now if no request is
  // in flight, otherwise after the current response.
  void drain();
  bool draining() const { return draining_ || worker_.draining(); }
  // Close the socket now and cancel what is in flight. Safe to call more than once.
  void close();

  void* listenerTag() const { return listener_tag_; }
  bool secure() const { return ssl_ != nullptr; }
  std::string_view tlsSubject() const {
    return tls_subject_ ? std::string_view(*tls_subject_) : std::string_view();
  }
  Http1Connection* prev = nullptr;  // worker's connection list
  Http1Connection* next = nullptr;

 private:
  friend class Http1Stream;
  // Once HTTP/2 is spoken, the session is the codec and this object the transport.
  friend class Http2Session;
  friend class Http2Stream;
  friend struct Http2Callbacks;
  enum class State : uint8_t {
    kHandshake,  // TLS only: before the first request
    kHttp2,      // h2_ handles everything read
    kWaitingHead,
    kActive,
    kClosing,
    kLingering,
    kClosed
  };

  static void onReadEvent(evutil_socket_t fd, short what, void* arg);
  static void onWriteEvent(evutil_socket_t fd, short what, void* arg);
  void handleRead(short what);
  void handleWrite();
  void process();
  void startStream(size_t head_length);
  void finishStream();
  void replyAndClose(uint16_t status, std::string_view message);
  void updateReading();
  void armHeadTimer(bool header);
  // Writes as much of out_ as the socket takes; arms the write event for the rest.
  // Returns false if the connection was closed because of a write error.
  bool flush();
  void closeAfterFlush();
  // After a final reply: half-close and discard what the client still sends for a moment,
  // so that its unread data does not turn our close into a reset that destroys the reply.
  void linger();
  // TLS: drives the handshake; on success the connection waits for its first head.
  void handshake();
  // Hands the connection to an HTTP/2 session (ALPN h2, or the h2c preface).
  void startHttp2();
  void wake(event* ev, short what);  // event_active, unless the connection closed
  void readHttp2(short what);
  void afterHttp2();
  // The transport: plain socket or TLS. Same contract as io::readInto (bytes, 0 on EOF,
  // -1 with errno, EAGAIN included) and as evbuffer_write.
  ssize_t readSome();
  int writeSome();

  Worker& worker_;
  int fd_;
  event read_ev_;  // readiness and, while waiting for a head, the header/idle timer
  event write_ev_;
  evbuffer* in_;
  evbuffer* out_;
  const std::shared_ptr<const ListenerInfo> info_;
  void* listener_tag_;
  State state_ = State::kWaitingHead;
  bool reading_ = false;
  bool writing_ = false;
  bool in_process_ = false;
  bool head_timer_is_header_ = false;
  int64_t head_deadline_ms_ = 0;  // when the head being received must be complete
  bool peer_closed_ = false;
  bool draining_ = false;
  bool fresh_ = true;             // nothing received yet: the h2c preface may still come
  bool flush_scheduled_ = false;  // TLS: a write is queued for this loop pass
  http::HeadScanner scanner_{true};
  std::unique_ptr<Http1Stream> stream_;
  std::unique_ptr<Http2Session> h2_;          // once HTTP/2 is spoken
  SSL* ssl_ = nullptr;                        // TLS session; null for plain HTTP
  tls::EventIo io_;                           // reads and writes, plain or through ssl_
  std::unique_ptr<std::string> tls_subject_;  // the verified client certificate's subject (mTLS)
  char client_ip_[46];
};

}  // namespace sluice
