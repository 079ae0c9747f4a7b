#include "gateway/function/function_call.h"

#include <event2/buffer.h>
#include <time.h>

#include <string>
#include <utility>
#include <vector>

#include "filters/exchange.h"
#include "filters/uuid.h"
#include "gateway/admin/metrics.h"
#include "gateway/function/event.h"
#include "gateway/function/invoker.h"
#include "gateway/http/message.h"
#include "gateway/server/clock.h"
#include "gateway/server/log.h"

namespace sluice::function {
namespace {

// Headers sluice sets itself from the body it sends; a function's copy would clash.
bool framingHeader(std::string_view name) {
  return http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding") ||
         http::iequals(name, "connection");
}

class FunctionCall final : public BackendCall, public InvokeHandler {
 public:
  FunctionCall(Exchange& x, const config::Function& fn, Invoker& invoker, FunctionMetrics& metrics)
      : x_(x), fn_(fn), invoker_(invoker), metrics_(metrics), scratch_(evbuffer_new()) {}

  ~FunctionCall() override {
    cancel();
    evbuffer_free(scratch_);
  }

  void start() override {
    request_id_ = x_.context().request_id;
    if (request_id_.empty()) newUuid(request_id_);
    int64_t length = x_.bodyLength();
    if (length > 0) body_.reserve(static_cast<size_t>(length));
    if (!x_.hasBody()) {
      invoke();
      return;
    }
    onRequestBody();
  }

  void cancel() override {
    if (state_ == State::kInvoking) {
      invoker_.cancel(ticket_);
      metrics_.in_flight.add(-1);
    }
    state_ = State::kDone;
    cancelled_ = true;
  }

  void onRequestBody() override {
    if (state_ != State::kReading) return;
    if (x_.bodyFailed()) {
      state_ = State::kDone;  // the codec answers by itself
      return;
    }
    while (true) {
      size_t n = x_.readBody(scratch_, 64 * 1024);
      if (n == 0) break;
      size_t len = evbuffer_get_length(scratch_);
      size_t at = body_.size();
      body_.resize(at + len);
      evbuffer_remove(scratch_, body_.data() + at, len);
      if (cancelled_) return;  // the read ended the stream
    }
    if (x_.bodyComplete()) invoke();
  }

  void onResponseWritable() override {}

  void onInvokeResult(Result&& result) override {
    if (state_ != State::kInvoking) return;
    state_ = State::kDone;
    uint64_t round_trip = nowMicros(CLOCK_MONOTONIC) - invoked_us_;
    metrics_.in_flight.add(-1);
    const char* name = fn_.name.c_str();
    switch (result.outcome) {
      case Outcome::kOk:
        record(result, round_trip, nullptr);
        respond(result.payload);
        return;
      case Outcome::kAccepted:
        record(result, round_trip, nullptr);
        accepted();
        return;
      case Outcome::kFunctionError:
        record(result, round_trip, &metrics_.errors);
        LOG_WARN("function %s: request %s: function error: %s", name, request_id_.c_str(),
                 summary(result).c_str());
        x_.sendLocalReply(502, "Internal server error");
        return;
      case Outcome::kTimeout:
        record(result, round_trip, &metrics_.timeouts);
        LOG_WARN("function %s: request %s: timed out: %s", name, request_id_.c_str(),
                 result.detail.c_str());
        x_.sendLocalReply(504, "Endpoint request timed out");
        return;
      case Outcome::kThrottled:
        metrics_.throttles.add();
        LOG_INFO("function %s: request %s: throttled: %s", name, request_id_.c_str(),
                 result.detail.c_str());
        x_.sendLocalReply(429, "Too Many Requests");
        return;
      case Outcome::kFailed:
        metrics_.errors.add();
        LOG_WARN("function %s: request %s: invoke failed: %s", name, request_id_.c_str(),
                 result.detail.c_str());
        x_.sendLocalReply(502, "Internal server error");
        return;
    }
  }

 private:
  enum class State : uint8_t { kReading, kInvoking, kDone };

  static std::string summary(const Result& r) {
    std::string s = r.detail;
    if (!r.payload.empty()) {
      if (!s.empty()) s += ": ";
      // The error document is the function's own (errorType, errorMessage): useful in
      // the log, bounded so that a huge one cannot flood it.
      s.append(r.payload, 0, 1024);
    }
    return s;
  }

  // Billed work (a reply, a function error, a timeout) counts its duration.
  void record(const Result& r, uint64_t round_trip, Counter* outcome) {
    if (outcome) outcome->add();
    metrics_.recordDuration(r.duration_us > 0 ? r.duration_us : round_trip, fn_.memory_mb);
  }

  void invoke() {
    if (state_ != State::kReading) return;
    std::string event = buildEventText();
    if (event.size() > kMaxPayload) {
      state_ = State::kDone;
      LOG_INFO("function %s: request %s: event of %zu bytes exceeds the %zu-byte payload limit",
               fn_.name.c_str(), request_id_.c_str(), event.size(), kMaxPayload);
      x_.sendLocalReply(413, "Request Entity Too Large");
      return;
    }
    state_ = State::kInvoking;
    invoked_us_ = nowMicros(CLOCK_MONOTONIC);
    metrics_.invocations.add();
    metrics_.in_flight.add(1);
    ticket_ = invoker_.invoke(std::move(event), request_id_, this);
  }

  std::string buildEventText() {
    const config::Route* route = std::as_const(x_).route();
    EventRequest e;
    e.format = fn_.payload_format;
    e.method = x_.method();
    e.raw_path = x_.request().path;
    e.raw_query = x_.query();
    e.protocol = x_.request().version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    e.headers = x_.requestHeaderData();
    e.header_count = x_.requestHeaderCount();
    e.source_ip = x_.clientAddress();
    e.request_id = request_id_;
    e.resource = route->path;
    route_key_.clear();
    route_key_.append(route->methods.empty() ? std::string_view("ANY") : x_.method());
    route_key_.push_back(' ');
    route_key_.append(route->path);
    e.route_key = route_key_;
    const config::Stage* stage = &route->stage;
    if (!stage->set) {
      std::string_view listener = x_.listenerName();
      for (const config::Listener& l : x_.config().listeners) {
        if (l.name == listener && l.stage.set) stage = &l.stage;
      }
    }
    e.stage = stage->name;
    if (!stage->variables.empty()) e.stage_variables = &stage->variables;
    // Decoded parameter values live in one string, sized first so views stay valid.
    size_t need = 0;
    for (size_t i = 0; i < x_.paramCount(); ++i) need += x_.param(i).value.size();
    params_.clear();
    params_.reserve(need);
    std::vector<std::pair<size_t, size_t>> spans;
    for (size_t i = 0; i < x_.paramCount(); ++i) {
      size_t at = params_.size();
      // Route parameters keep their percent-encoding (path normalisation decodes only
      // unreserved characters); API Gateway hands functions decoded values.
      appendPercentDecoded(params_, x_.param(i).value, /*plus_is_space=*/false);
      spans.emplace_back(at, params_.size() - at);
    }
    for (size_t i = 0; i < x_.paramCount(); ++i) {
      e.path_parameters.emplace_back(
          x_.param(i).name, std::string_view(params_).substr(spans[i].first, spans[i].second));
    }
    const RequestContext& ctx = x_.context();
    if (!ctx.api_key_name.empty()) {
      e.api_key_id = ctx.api_key_name;
      if (const std::string_view* key = x_.requestHeaders().get("x-api-key")) e.api_key = *key;
    }
    e.principal = ctx.principal;
    std::vector<std::pair<std::string_view, std::string_view>> authorizer;
    for (const auto& [k, v] : ctx.values) {
      if (k == "client_ip") continue;  // ip_filter's finding, not an authorizer fact
      authorizer.emplace_back(k, v);
    }
    if (!authorizer.empty() || !ctx.principal.empty()) e.authorizer = &authorizer;
    e.time_epoch_ms = x_.startMicros() / 1000;
    e.domain_name = x_.host();
    e.body = body_;
    e.binary_media_types = &fn_.binary_media_types;
    return buildEvent(e);
  }

  void respond(const std::string& payload) {
    if (payload.size() > kMaxPayload) {
      metrics_.errors.add();
      LOG_WARN("function %s: request %s: reply of %zu bytes exceeds the payload limit",
               fn_.name.c_str(), request_id_.c_str(), payload.size());
      x_.sendLocalReply(502, "Internal server error");
      return;
    }
    MappedResponse r = mapResponse(fn_.payload_format, payload);
    if (r.ok && r.status < 200) {
      r.ok = false;
      r.error = "status " + std::to_string(r.status) + " cannot be a final response";
    }
    if (!r.ok) {
      metrics_.errors.add();
      LOG_WARN("function %s: request %s: malformed reply: %s", fn_.name.c_str(),
               request_id_.c_str(), r.error.c_str());
      x_.sendLocalReply(502, "Internal server error");
      return;
    }
    std::vector<http::Header> headers;
    headers.reserve(r.headers.size());
    for (const auto& [n, v] : r.headers) {
      if (!framingHeader(n)) headers.push_back({n, v});
    }
    bool bodyless = r.status == 204 || r.status == 304 || x_.method() == "HEAD";
    ResponseStart start;
    start.status = r.status;
    start.headers = headers.data();
    start.header_count = headers.size();
    start.has_body = !bodyless;
    start.content_length = bodyless ? -1 : static_cast<int64_t>(r.body.size());
    if (x_.method() == "HEAD" && r.status != 204 && r.status != 304) {
      // HEAD: the length of the body a GET would have had.
      start.content_length = static_cast<int64_t>(r.body.size());
    }
    x_.sendHead(start);
    if (cancelled_) return;
    if (!bodyless && !r.body.empty()) {
      evbuffer_add(scratch_, r.body.data(), r.body.size());
      x_.sendBody(scratch_);
      if (cancelled_) return;
    }
    x_.sendEnd();
  }

  // `invocation: event`: Lambda queued the event; the client learns only that.
  void accepted() {
    std::string body = "{\"message\":\"Accepted\",\"requestId\":\"" + request_id_ + "\"}";
    http::Header headers[] = {{"Content-Type", "application/json"}};
    ResponseStart start;
    start.status = 202;
    start.headers = headers;
    start.header_count = 1;
    start.content_length = static_cast<int64_t>(body.size());
    start.has_body = x_.method() != "HEAD";
    x_.sendHead(start);
    if (cancelled_) return;
    if (start.has_body) {
      evbuffer_add(scratch_, body.data(), body.size());
      x_.sendBody(scratch_);
      if (cancelled_) return;
    }
    x_.sendEnd();
  }

  Exchange& x_;
  const config::Function& fn_;
  Invoker& invoker_;
  FunctionMetrics& metrics_;
  evbuffer* scratch_;
  State state_ = State::kReading;
  bool cancelled_ = false;
  uint64_t ticket_ = 0;
  uint64_t invoked_us_ = 0;
  std::string request_id_;
  std::string body_;
  std::string params_;
  std::string route_key_;
};

}  // namespace

std::unique_ptr<BackendCall> makeFunctionCall(Exchange& exchange, const config::Function& fn,
                                              Invoker& invoker, FunctionMetrics& metrics) {
  return std::make_unique<FunctionCall>(exchange, fn, invoker, metrics);
}

}  // namespace sluice::function
