// One HTTP/1.1 request/response on an Http1Connection: the Downstream that backends see.
// Streams are recycled through a per-thread free list, so a request costs no allocation
// of its (large) head storage once the worker is warm.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "filters/exchange.h"
#include "gateway/http/chunked.h"
#include "gateway/router/router.h"
#include "gateway/server/stream.h"

namespace sluice {

class Http1Connection;

class Http1Stream final : public Downstream {
 public:
  static std::unique_ptr<Http1Stream> acquire(Http1Connection* conn);
  static void release(std::unique_ptr<Http1Stream> stream);

  // Downstream
  const http::RequestHead& request() const override { return head_; }
  std::string_view path() const override { return head_.path; }
  std::string_view clientIp() const override;
  std::string_view scheme() const override;
  std::string_view listenerName() const override;
  std::string_view tlsClientSubject() const override;
  Worker& worker() override;
  bool hasBody() const override { return has_body_; }
  size_t readBody(evbuffer* out, size_t max) override;
  bool bodyComplete() const override { return body_complete_; }
  bool bodyFailed() const override { return body_failed_; }
  int64_t bodyLength() const override;
  void limitBody(uint64_t max) override { max_body_ = max; }
  void sendHead(const ResponseStart& start) override;
  void sendBody(evbuffer* data) override;
  void sendEnd() override;
  void flush() override;
  void sendLocalReply(uint16_t status, std::string_view message) override;
  bool headSent() const override { return head_sent_; }
  size_t pendingResponseBytes() const override;
  void abort() override;

 private:
  friend class Http1Connection;
  void reset(Http1Connection* conn);
  // Parses head_buf_; false if the request was refused (reply already queued).
  bool parseHead();
  void sendContinueIfNeeded();
  void failBody(uint16_t status, const char* why);
  void writeLocal(uint16_t status, std::string_view content_type, std::string_view body,
                  std::string_view extra_headers);

  Http1Connection* conn_ = nullptr;
  std::shared_ptr<const config::Config> config_;  // the snapshot this stream started with
  std::string head_buf_;
  http::RequestHead head_;
  Exchange exchange_;  // routing, filters and backend of this request

  bool has_body_ = false;
  bool body_complete_ = true;
  bool body_failed_ = false;
  bool continue_sent_ = false;
  uint64_t body_remaining_ = 0;  // Content-Length framing
  uint64_t max_body_ = 0;
  http::ChunkedDecoder decoder_;

  bool head_sent_ = false;
  bool ended_ = false;
  bool chunked_out_ = false;
  bool no_body_out_ = false;
  bool close_after_ = false;
};

}  // namespace sluice
