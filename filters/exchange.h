// One request as filters see it: the request (mutable headers and path), the matched
// route and its parameters, the response during the response phase, a typed context
// that filters fill for later filters and backends, and resume()/reply() for filters
// that stop the chain. The Exchange also runs the chain and picks the backend; it sits
// between a codec (which gives it a Downstream) and a backend (which sees it as one).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "filters/filter.h"
#include "filters/headers.h"
#include "gateway/router/router.h"
#include "gateway/server/stream.h"

struct evbuffer;

namespace sluice {

namespace limits {
class Limiter;
}
namespace redis {
class Client;
}

// Facts filters establish for the filters and backends after them.
struct RequestContext {
  std::string request_id;
  std::string api_key_name;  // set by api_key; logged
  std::string usage_plan;
  std::string principal;  // authenticated subject (JWT sub, authorizer principalId)
  std::map<std::string, std::string, std::less<>> values;  // claims, authorizer context
  // A query parameter that carries a secret (api_key's `query`): logs show its value as
  // "***". Points into the filter's config, which outlives the request.
  std::string_view secret_query_param;
  void clear();
};

class Exchange final : public Downstream {
 public:
  Exchange();
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // ---- For filters: the request ----
  std::string_view method() const { return ds_->request().method; }
  std::string_view host() const { return ds_->request().host; }
  std::string_view path() const override { return path_; }
  void setPath(std::string_view path);  // rewrite (before the backend); params stay valid
  std::string_view query() const override { return ds_->query(); }
  bool hasQuery() const override { return ds_->hasQuery(); }
  std::string_view clientIp() const override { return ds_->clientIp(); }
  // The client as far as we can tell: the address ip_filter read from X-Forwarded-For
  // behind a trusted proxy (context value "client_ip"), else the connection's peer.
  std::string_view clientAddress() const {
    auto it = context_.values.find(std::string_view("client_ip"));
    return it != context_.values.end() ? std::string_view(it->second) : clientIp();
  }
  std::string_view scheme() const override { return ds_->scheme(); }
  std::string_view listenerName() const override { return ds_->listenerName(); }
  std::string_view tlsClientSubject() const override { return ds_->tlsClientSubject(); }
  HeaderList& requestHeaders() { return request_headers_; }
  const HeaderList& requestHeaders() const { return request_headers_; }
  // The matched route (null when none matched: global filters still run) and params.
  const config::Route* route() const { return route_; }
  std::string_view routeName() const { return route_ ? std::string_view(route_->name) : ""; }
  size_t paramCount() const { return match_.param_count; }
  const router::Param& param(size_t i) const { return match_.params[i]; }
  const std::string_view* param(std::string_view name) const;
  RequestContext& context() { return context_; }
  const RequestContext& context() const { return context_; }

  // ---- For filters: the response (during onResponse, and in onDone) ----
  uint16_t status() const { return status_; }
  void setStatus(uint16_t status) { status_ = status; }
  HeaderList& responseHeaders() { return response_headers_; }
  const HeaderList& responseHeaders() const { return response_headers_; }

  // ---- For filters: control ----
  // Continue the chain after onRequest/onResponse returned kStop (or before it returns).
  void resume();
  // Answer locally with {"message": message} (JSON, API Gateway style). In the request
  // phase the backend is never called; in the response phase the backend's response is
  // replaced. Filters that already ran still see the reply in their response phase.
  void reply(uint16_t status, std::string_view message);
  // A local reply with explicit headers and body (e.g. a CORS preflight answer).
  void replyWith(uint16_t status, const std::vector<std::pair<std::string, std::string>>& headers,
                 std::string_view body);
  bool cancelled() const { return phase_ == Phase::kDone; }
  // Lowers the largest request body accepted (never above the route's max_body); a
  // chunked body that grows beyond it is answered 413 by the codec.
  void limitRequestBody(uint64_t max);

  // ---- For filters: facts for logs and metrics (final in onDone) ----
  uint64_t startMicros() const { return start_us_; }  // CLOCK_REALTIME
  uint64_t durationMicros() const { return duration_us_; }
  int64_t upstreamMicros() const { return upstream_us_; }  // -1 when no backend answered
  uint64_t bytesIn() const { return bytes_in_; }           // request head + body
  uint64_t bytesOut() const { return bytes_out_; }         // response body
  bool completed() const { return completed_; }            // false: client went away
  Worker& worker() override { return ds_->worker(); }
  const config::Config& config() const { return *config_; }
  // The token-bucket limiter of this request's config snapshot on this worker.
  limits::Limiter* limiter();
  // The worker's Redis client for this request's config snapshot (null without a
  // `redis:` section). See gateway/redis/redis_client.h.
  redis::Client* redis();

  // ---- For the codec ----
  // Starts handling the request `ds` just parsed: route, request phase, backend.
  void begin(Downstream& ds, std::shared_ptr<const config::Config> config, size_t head_bytes);
  void onRequestBody();
  void onResponseWritable();
  // The stream is over: `completed` says whether the response was fully queued. Runs
  // onCancel/onDone, cancels the backend, records metrics. Idempotent.
  void end(bool completed);
  bool active() const { return ds_ != nullptr; }

  // ---- Downstream, for the backend ----
  const http::RequestHead& request() const override { return ds_->request(); }
  const http::Header* requestHeaderData() const override { return request_headers_.data(); }
  size_t requestHeaderCount() const override { return request_headers_.size(); }
  std::string_view requestId() const override { return context_.request_id; }
  bool hasBody() const override { return ds_->hasBody(); }
  size_t readBody(evbuffer* out, size_t max) override;
  bool bodyComplete() const override { return ds_->bodyComplete(); }
  bool bodyFailed() const override { return ds_->bodyFailed(); }
  int64_t bodyLength() const override { return ds_->bodyLength(); }
  void sendHead(const ResponseStart& start) override;
  void sendBody(evbuffer* data) override;
  void sendEnd() override;
  void flush() override;
  void sendLocalReply(uint16_t status, std::string_view message) override;
  bool headSent() const override { return head_forwarded_ || holding_; }
  size_t pendingResponseBytes() const override;
  void abort() override;

 private:
  enum class Phase : uint8_t { kIdle, kRequest, kBackend, kResponse, kDone };
  void route();
  void runRequest();
  void runResponse();
  void dispatch();
  void startLocal(uint16_t status, std::string_view content_type, std::string_view body,
                  const std::vector<std::pair<std::string, std::string>>* extra);
  void forwardResponse();
  void dropBackend();
  bool routeRefusal();

  Downstream* ds_ = nullptr;
  std::shared_ptr<const config::Config> config_;
  const std::vector<std::shared_ptr<const FilterFactory>>* chain_ = nullptr;
  std::vector<Filter*> filters_;  // created so far, by chain index
  const config::Route* route_ = nullptr;
  router::Match match_;
  std::string path_;
  std::string param_storage_;  // parameter values once the path was rewritten
  HeaderList request_headers_;
  HeaderList response_headers_;
  RequestContext context_;
  std::unique_ptr<BackendCall> backend_;

  Phase phase_ = Phase::kIdle;
  size_t index_ = 0;  // request phase: next filter; response phase: current filter + 1
  bool in_call_ = false;
  bool resume_pending_ = false;
  bool waiting_ = false;
  uint16_t refusal_ = 0;  // 400/404/405/413 decided by routing, sent after the chain

  // The response while response filters run: held here until they all continue.
  uint16_t status_ = 0;
  bool has_body_ = true;
  int64_t content_length_ = -1;
  bool holding_ = false;
  bool head_forwarded_ = false;
  bool backend_ended_ = false;
  evbuffer* hold_ = nullptr;

  bool completed_ = false;
  uint64_t start_us_ = 0;
  uint64_t start_mono_us_ = 0;
  uint64_t dispatch_mono_us_ = 0;
  uint64_t duration_us_ = 0;
  int64_t upstream_us_ = -1;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace sluice
