#include "filters/exchange.h"

#include <event2/buffer.h>
#include <time.h>

#include "gateway/function/function_call.h"
#include "gateway/router/path.h"
#include "gateway/server/clock.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"
#include "gateway/server/worker.h"
#include "gateway/upstream/service_call.h"

namespace sluice {
namespace {

std::string jsonMessage(std::string_view message) {
  std::string body = "{\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') body.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) continue;
    body.push_back(c);
  }
  body.append("\"}");
  return body;
}

}  // namespace

void RequestContext::clear() {
  request_id.clear();
  api_key_name.clear();
  usage_plan.clear();
  principal.clear();
  values.clear();
  secret_query_param = {};
}

Exchange::Exchange() : hold_(evbuffer_new()) {}

Exchange::~Exchange() {
  end(false);
  evbuffer_free(hold_);
}

const std::string_view* Exchange::param(std::string_view name) const {
  for (size_t i = 0; i < match_.param_count; ++i) {
    if (match_.params[i].name == name) return &match_.params[i].value;
  }
  return nullptr;
}

void Exchange::begin(Downstream& ds, std::shared_ptr<const config::Config> config,
                     size_t head_bytes) {
  ds_ = &ds;
  config_ = std::move(config);
  chain_ = nullptr;
  filters_.clear();
  route_ = nullptr;
  match_.param_count = 0;
  path_.clear();
  param_storage_.clear();
  const http::RequestHead& head = ds.request();
  request_headers_.assign(head.headers, head.header_count);
  response_headers_.clear();
  context_.clear();
  phase_ = Phase::kRequest;
  index_ = 0;
  in_call_ = resume_pending_ = waiting_ = false;
  refusal_ = 0;
  status_ = 0;
  has_body_ = true;
  content_length_ = -1;
  holding_ = head_forwarded_ = backend_ended_ = false;
  evbuffer_drain(hold_, evbuffer_get_length(hold_));
  completed_ = false;
  start_us_ = nowMicros(CLOCK_REALTIME);
  start_mono_us_ = nowMicros(CLOCK_MONOTONIC);
  dispatch_mono_us_ = 0;
  duration_us_ = 0;
  upstream_us_ = -1;
  bytes_in_ = head_bytes;
  bytes_out_ = 0;
  ds.worker().streamStarted();

  route();
  runRequest();
}

void Exchange::route() {
  const http::RequestHead& head = ds_->request();
  const config::Config& cfg = *config_;
  chain_ = &cfg.global_chain;
  if (head.path == "*") {
    refusal_ = 404;
    return;
  }
  if (router::normalizePath(head.path, path_) != router::PathStatus::kOk) {
    refusal_ = 400;
    return;
  }
  cfg.router->match(head.host, head.method, path_, match_);
  if (match_.result == router::Match::Result::kNotFound) {
    refusal_ = 404;
    return;
  }
  if (match_.result == router::Match::Result::kMethodNotAllowed) {
    refusal_ = 405;
    return;
  }
  route_ = &cfg.routes[match_.id];
  chain_ = &route_->chain;
  ds_->limitBody(route_->max_body);
  if (head.framing == http::Framing::kContentLength && head.content_length > route_->max_body) {
    refusal_ = 413;
  }
}

void Exchange::runRequest() {
  const auto& chain = *chain_;
  while (index_ < chain.size()) {
    if (filters_.size() <= index_) filters_.push_back(chain[index_]->create(*this));
    Filter* f = filters_[index_];
    in_call_ = true;
    resume_pending_ = false;
    FilterStatus st = f->onRequest(*this);
    in_call_ = false;
    if (phase_ == Phase::kResponse) {  // the filter replied before returning
      runResponse();
      return;
    }
    if (phase_ != Phase::kRequest) return;  // the stream ended meanwhile
    if (st == FilterStatus::kStop && !resume_pending_) {
      waiting_ = true;
      return;
    }
    ++index_;
  }
  dispatch();
}

limits::Limiter* Exchange::limiter() { return worker().limiterFor(config_.get()); }

redis::Client* Exchange::redis() { return worker().redisFor(config_.get()); }

void Exchange::limitRequestBody(uint64_t max) {
  if (ds_) ds_->limitBody(route_ ? std::min<uint64_t>(route_->max_body, max) : max);
}

void Exchange::resume() {
  if (phase_ != Phase::kRequest && phase_ != Phase::kResponse) return;
  if (in_call_) {
    resume_pending_ = true;  // completion arrived before the filter returned
    return;
  }
  if (!waiting_) return;
  waiting_ = false;
  if (phase_ == Phase::kRequest) {
    ++index_;
    runRequest();
  } else {
    --index_;
    runResponse();
  }
}

bool Exchange::routeRefusal() {
  switch (refusal_) {
    case 0:
      return false;
    case 405: {
      std::vector<std::pair<std::string, std::string>> allow{{"Allow", match_.allow}};
      startLocal(405, "application/json", jsonMessage("Method Not Allowed"), &allow);
      return true;
    }
    default:
      startLocal(
          refusal_, "application/json",
          jsonMessage(refusal_ == 413 ? "Request Entity Too Large" : io::reasonPhrase(refusal_)),
          nullptr);
      return true;
  }
}

void Exchange::dispatch() {
  if (routeRefusal()) return;
  phase_ = Phase::kBackend;
  dispatch_mono_us_ = nowMicros(CLOCK_MONOTONIC);
  if (route_->kind == config::BackendKind::kResponse) {
    const config::StaticResponse& r = route_->response;
    std::string_view content_type;
    std::vector<std::pair<std::string, std::string>> extra;
    for (const auto& [name, value] : r.headers) {
      if (http::iequals(name, "content-type")) {
        content_type = value;
      } else {
        extra.emplace_back(name, value);
      }
    }
    startLocal(r.status, content_type, r.body, &extra);
    return;
  }
  if (route_->kind == config::BackendKind::kFunction) {
    const Worker::FunctionBinding& f = worker().functionForRoute(config_.get(), match_.id);
    backend_ = function::makeFunctionCall(*this, *f.fn, *f.invoker, *f.metrics);
    backend_->start();
    return;
  }
  // The pool of this stream's own snapshot: a reload may have switched the worker since.
  ServicePool* pool = worker().poolForRoute(config_.get(), match_.id);
  backend_ = makeServiceCall(*this, *pool);
  backend_->start();
}

void Exchange::startLocal(uint16_t status, std::string_view content_type, std::string_view body,
                          const std::vector<std::pair<std::string, std::string>>* extra) {
  // The local response takes the place of a backend response: it goes through the
  // response phase of the filters whose request phase ran.
  dropBackend();
  evbuffer_drain(hold_, evbuffer_get_length(hold_));
  response_headers_.clear();
  if (!content_type.empty()) response_headers_.add("Content-Type", content_type);
  if (extra) {
    for (const auto& [name, value] : *extra) response_headers_.add(name, value);
  }
  status_ = status;
  bool bodyless = status == 204 || status == 304 || status < 200;
  has_body_ = !bodyless;
  content_length_ = bodyless ? -1 : static_cast<int64_t>(body.size());
  if (!bodyless) evbuffer_add(hold_, body.data(), body.size());
  backend_ended_ = true;
  holding_ = true;
  if (phase_ == Phase::kRequest) {
    // Filters before the replying one (index_) see the reply; the replier does not.
    phase_ = Phase::kResponse;
  } else if (phase_ == Phase::kResponse) {
    // A response filter replied: filters below it continue with the new response.
    --index_;
  } else {
    phase_ = Phase::kResponse;
    index_ = filters_.size();
  }
  if (!in_call_) runResponse();
}

void Exchange::reply(uint16_t status, std::string_view message) {
  if (phase_ != Phase::kRequest && phase_ != Phase::kResponse) return;
  if (head_forwarded_) return;
  waiting_ = false;
  resume_pending_ = false;
  startLocal(status, "application/json", jsonMessage(message), nullptr);
}

void Exchange::replyWith(uint16_t status,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         std::string_view body) {
  if (phase_ != Phase::kRequest && phase_ != Phase::kResponse) return;
  if (head_forwarded_) return;
  waiting_ = false;
  resume_pending_ = false;
  std::string_view content_type;
  std::vector<std::pair<std::string, std::string>> extra;
  for (const auto& [name, value] : headers) {
    if (http::iequals(name, "content-type")) {
      content_type = value;
    } else {
      extra.emplace_back(name, value);
    }
  }
  startLocal(status, content_type, body, &extra);
}

void Exchange::runResponse() {
  // index_ is one past the filter to run next (they run in reverse order).
  while (index_ > 0) {
    Filter* f = filters_[index_ - 1];
    in_call_ = true;
    resume_pending_ = false;
    size_t before = index_;
    FilterStatus st = f->onResponse(*this);
    in_call_ = false;
    if (phase_ != Phase::kResponse) return;
    if (index_ != before) {
      // The filter replied: startLocal moved index_ below it; go on from there.
      continue;
    }
    if (st == FilterStatus::kStop && !resume_pending_) {
      waiting_ = true;
      response_headers_.own();  // the backend's buffer may not outlive this call
      return;
    }
    --index_;
  }
  forwardResponse();
}

void Exchange::forwardResponse() {
  holding_ = false;
  head_forwarded_ = true;
  ResponseStart start;
  start.status = status_;
  start.headers = response_headers_.data();
  start.header_count = response_headers_.size();
  start.has_body = has_body_;
  start.content_length = content_length_;
  ds_->sendHead(start);
  if (phase_ == Phase::kDone) return;
  size_t held = evbuffer_get_length(hold_);
  if (held > 0) {
    bytes_out_ += held;
    ds_->sendBody(hold_);
    if (phase_ == Phase::kDone) return;
  }
  phase_ = Phase::kBackend;
  if (backend_ended_) {
    completed_ = true;
    ds_->sendEnd();  // may end the stream; nothing may follow
    return;
  }
  ds_->flush();
  // The backend may have paused on the body held while a response filter had stopped.
  // If that body left in one write, the codec has no reason to call onResponseWritable.
  if (held > 0 && phase_ == Phase::kBackend && backend_ && pendingResponseBytes() < kLowWatermark) {
    backend_->onResponseWritable();
  }
}

size_t Exchange::readBody(evbuffer* out, size_t max) {
  bytes_in_ += max;  // corrected below; the read may end the stream (a body error reply)
  size_t n = ds_->readBody(out, max);
  bytes_in_ -= max - n;
  return n;
}

void Exchange::setPath(std::string_view path) {
  // Path parameters are views into path_: move them to storage of their own first.
  if (match_.param_count > 0 && param_storage_.empty()) {
    size_t total = 0;
    for (size_t i = 0; i < match_.param_count; ++i) total += match_.params[i].value.size();
    param_storage_.reserve(total);  // no reallocation below, so the views stay valid
    for (size_t i = 0; i < match_.param_count; ++i) {
      std::string_view v = match_.params[i].value;
      size_t at = param_storage_.size();
      param_storage_.append(v);
      match_.params[i].value = std::string_view(param_storage_).substr(at, v.size());
    }
  }
  path_.assign(path);
}

void Exchange::sendHead(const ResponseStart& start) {
  if (phase_ != Phase::kBackend) return;
  if (dispatch_mono_us_) {
    upstream_us_ = static_cast<int64_t>(nowMicros(CLOCK_MONOTONIC) - dispatch_mono_us_);
  }
  status_ = start.status;
  has_body_ = start.has_body;
  content_length_ = start.content_length;
  response_headers_.assign(start.headers, start.header_count);
  holding_ = true;
  phase_ = Phase::kResponse;
  index_ = filters_.size();
  runResponse();
}

void Exchange::sendBody(evbuffer* data) {
  if (holding_) {
    evbuffer_add_buffer(hold_, data);
    return;
  }
  if (phase_ != Phase::kBackend) {
    evbuffer_drain(data, evbuffer_get_length(data));
    return;
  }
  bytes_out_ += evbuffer_get_length(data);
  ds_->sendBody(data);
}

void Exchange::sendEnd() {
  if (holding_) {
    backend_ended_ = true;
    return;
  }
  if (phase_ != Phase::kBackend) return;
  completed_ = true;
  ds_->sendEnd();  // may end the stream; nothing may follow
}

void Exchange::flush() {
  if (!holding_ && phase_ == Phase::kBackend) ds_->flush();
}

void Exchange::sendLocalReply(uint16_t status, std::string_view message) {
  // A backend failure (502/504) before any response: it goes through the response
  // filters like any other response.
  if (phase_ != Phase::kBackend || head_forwarded_) return;
  startLocal(status, "application/json", jsonMessage(message), nullptr);
}

size_t Exchange::pendingResponseBytes() const {
  return evbuffer_get_length(hold_) + (ds_ ? ds_->pendingResponseBytes() : 0);
}

void Exchange::abort() {
  if (phase_ == Phase::kDone || !ds_) return;
  ds_->abort();
}

void Exchange::onRequestBody() {
  if (backend_ && phase_ != Phase::kDone) backend_->onRequestBody();
}

void Exchange::onResponseWritable() {
  if (backend_ && phase_ != Phase::kDone) backend_->onResponseWritable();
}

void Exchange::dropBackend() {
  if (!backend_) return;
  backend_->cancel();
  worker().deferDelete(std::move(backend_));
}

void Exchange::end(bool completed) {
  if (!ds_) return;
  Phase was = phase_;
  bool was_waiting = waiting_;
  phase_ = Phase::kDone;
  completed_ = completed_ && completed;
  if (!head_forwarded_ && status_ == 0) status_ = 499;  // client closed before a reply
  duration_us_ = nowMicros(CLOCK_MONOTONIC) - start_mono_us_;
  dropBackend();
  if (was_waiting && (was == Phase::kRequest || was == Phase::kResponse)) {
    size_t i = was == Phase::kRequest ? index_ : index_ - 1;
    if (i < filters_.size()) filters_[i]->onCancel(*this);
  }
  waiting_ = false;
  const auto& chain = *chain_;
  // onDone reaches every filter of the chain, also those that an earlier reply kept
  // from seeing the request: an access log must log refused requests too.
  while (filters_.size() < chain.size()) filters_.push_back(chain[filters_.size()]->create(*this));
  for (size_t i = 0; i < filters_.size(); ++i) filters_[i]->onDone(*this);
  for (size_t i = 0; i < filters_.size(); ++i) chain[i]->destroy(filters_[i]);
  filters_.clear();
  worker().streamEnded(config_.get(), route_ ? match_.id : SIZE_MAX, ds_->request().method, status_,
                       duration_us_);
  ds_ = nullptr;
  config_.reset();
}

}  // namespace sluice
