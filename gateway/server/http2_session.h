// HTTP/2 on a client connection (RFC 9113), with nghttp2: ALPN "h2" after a TLS
// handshake, or cleartext with prior knowledge (h2c). The connection (transport, timers,
// worker bookkeeping) stays the one Http1Connection owns; this session is its codec once
// HTTP/2 is spoken. Each stream is a Downstream with its own Exchange, so routing,
// filters and backends are the same as for HTTP/1.1.
//
// Flow control is tied to the backend: request DATA is acknowledged (WINDOW_UPDATE)
// only as the backend reads it, and a response body waits in its stream until the
// client's window lets it out, so memory per stream and per connection stays bounded.
// nghttp2 checks HTTP messaging (pseudo-headers, connection-specific and upper-case
// header names, content-length against DATA) and bounds resets (rapid reset),
// CONTINUATION frames, SETTINGS and PING floods.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/server/deferred.h"

struct evbuffer;
struct nghttp2_session;

namespace sluice {

class Http1Connection;
class Http2Stream;

class Http2Session : public Deferred {
 public:
  explicit Http2Session(Http1Connection& conn);
  ~Http2Session() override;
  // The connection closes: every stream still open ends (its exchange is told the
  // client went away). The session itself is deleted on the next loop iteration.
  void shutdown();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Queues the server preface (SETTINGS, connection window). False: the connection
  // must close.
  bool start();
  // Feeds what the connection read (its input buffer, drained). False: a fatal error;
  // the connection closes once what is queued (a GOAWAY) is written.
  bool receive(evbuffer* in);
  // The connection's output fell below the low watermark: more frames may go.
  void onWritable();
  // Graceful stop: GOAWAY; streams in flight finish.
  void drain();
  // Nothing more to read or write (GOAWAY exchanged and no stream left).
  bool done() const;
  size_t streamCount() const { return open_streams_; }

  // For streams: serialises pending frames into the connection's output and writes.
  void sendPending();
  void notifyBody(Http2Stream* stream);
  void notifyWritable(Http2Stream* stream);

 private:
  void runNotifications();

  Http1Connection& conn_;
  nghttp2_session* session_ = nullptr;
  bool in_callback_ = false;  // inside nghttp2: no send from there
  bool sending_ = false;
  bool shut_ = false;
  bool notifying_ = false;
  size_t open_streams_ = 0;
  std::vector<Http2Stream*> body_ready_;  // request DATA arrived: tell their backend
  std::vector<Http2Stream*> writable_;    // response room freed: tell their backend
  std::unordered_map<int32_t, std::unique_ptr<Http2Stream>> streams_;  // open, by id
  friend class Http2Stream;
  friend struct Http2Callbacks;
};

}  // namespace sluice
