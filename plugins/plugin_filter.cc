#include "plugins/plugin_filter.h"

#include <event2/event.h>
#include <event2/event_struct.h>

#include <vector>

#include "filters/exchange.h"
#include "gateway/http/message.h"
#include "gateway/server/log.h"
#include "gateway/server/worker.h"

namespace sluice::plugins {
namespace {

using PhaseFn = int (*)(void* instance, sluice_request req, void** request_data);

class PluginFactory;

// One request's use of one plugin filter. Calls are pooled per worker thread and named
// to the plugin by a handle (generation << 32 | slot): a handle kept past its request,
// or passed from another thread, finds a newer generation (or another pool) and is
// refused, so plugins never reach an Exchange that has moved on to another request.
class PluginCall final : public Filter {
 public:
  enum class State : uint8_t { kFree, kRequest, kResponse, kDone };

  struct Timer {
    PluginCall* owner = nullptr;
    event ev;
    sluice_deferred_fn fn = nullptr;
    void* user_data = nullptr;
    bool armed = false;
    ~Timer() {
      if (armed) event_del(&ev);
    }
  };

  FilterStatus onRequest(Exchange& x) override;
  FilterStatus onResponse(Exchange& x) override;
  void onCancel(Exchange& x) override { stopped_ = false; }
  void onDone(const Exchange& x) override;

  sluice_request handle() const { return (static_cast<uint64_t>(generation_) << 32) | slot_; }
  // The plugin may change the request or answer it: it is being called, or it stopped
  // the chain and has not handed it back yet.
  bool holds() const { return in_call_ || stopped_; }

  Exchange* x_ = nullptr;
  const PluginFactory* factory_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t generation_ = 1;
  State state_ = State::kFree;
  bool in_call_ = false;
  bool handed_back_ = false;  // resume() or reply() during the call
  bool stopped_ = false;
  void* data_ = nullptr;
  std::vector<std::unique_ptr<Timer>> timers_;  // reused: armed ones are in use

 private:
  FilterStatus call(PhaseFn fn);
};

class PluginFactory final : public FilterFactory {
 public:
  PluginFactory(std::shared_ptr<const Library> library, void* instance)
      : library_(std::move(library)), instance_(instance) {}
  ~PluginFactory() override { library_->api().destroy(instance_); }

  Filter* create(Exchange& x) const override;
  void destroy(Filter* filter) const override;

  const sluice_plugin_v1& api() const { return library_->api(); }
  void* instance() const { return instance_; }

 private:
  std::shared_ptr<const Library> library_;
  void* instance_;
};

struct Pool {
  std::vector<std::unique_ptr<PluginCall>> calls;
  std::vector<uint32_t> free;
};
thread_local Pool t_pool;

Filter* PluginFactory::create(Exchange& x) const {
  PluginCall* c;
  if (!t_pool.free.empty()) {
    c = t_pool.calls[t_pool.free.back()].get();
    t_pool.free.pop_back();
  } else {
    t_pool.calls.push_back(std::make_unique<PluginCall>());
    c = t_pool.calls.back().get();
    c->slot_ = static_cast<uint32_t>(t_pool.calls.size() - 1);
  }
  c->x_ = &x;
  c->factory_ = this;
  c->state_ = PluginCall::State::kRequest;
  c->in_call_ = c->handed_back_ = c->stopped_ = false;
  c->data_ = nullptr;
  return c;
}

void PluginFactory::destroy(Filter* filter) const {
  auto* c = static_cast<PluginCall*>(filter);
  c->x_ = nullptr;
  c->factory_ = nullptr;
  c->state_ = PluginCall::State::kFree;
  if (++c->generation_ == 0) c->generation_ = 1;  // handle 0 is never valid
  t_pool.free.push_back(c->slot_);
}

PluginCall* lookup(sluice_request req) {
  uint32_t slot = static_cast<uint32_t>(req);
  uint32_t generation = static_cast<uint32_t>(req >> 32);
  if (slot >= t_pool.calls.size()) return nullptr;
  PluginCall* c = t_pool.calls[slot].get();
  if (c->generation_ != generation || c->state_ == PluginCall::State::kFree) return nullptr;
  return c;
}

FilterStatus PluginCall::call(PhaseFn fn) {
  if (!fn) return FilterStatus::kContinue;
  in_call_ = true;
  handed_back_ = false;
  int rc = fn(factory_->instance(), handle(), &data_);
  in_call_ = false;
  if (rc != SLUICE_STOP) return FilterStatus::kContinue;
  // A resume() or reply() that came before the return already moved the chain on.
  stopped_ = !handed_back_;
  return FilterStatus::kStop;
}

FilterStatus PluginCall::onRequest(Exchange&) {
  state_ = State::kRequest;
  return call(factory_->api().on_request);
}

FilterStatus PluginCall::onResponse(Exchange&) {
  state_ = State::kResponse;
  return call(factory_->api().on_response);
}

void PluginCall::onDone(const Exchange&) {
  state_ = State::kDone;
  stopped_ = false;
  // Deferred calls run exactly once: the ones still waiting learn the request is over.
  for (auto& t : timers_) {
    if (!t->armed) continue;
    event_del(&t->ev);
    t->armed = false;
    t->fn(handle(), t->user_data, 1);
  }
  const sluice_plugin_v1& api = factory_->api();
  if (api.on_done) api.on_done(factory_->instance(), handle(), data_);
  data_ = nullptr;
}

void onTimer(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<PluginCall::Timer*>(arg);
  t->armed = false;
  // May end the request (and hand this call to another request): nothing after it.
  t->fn(t->owner->handle(), t->user_data, 0);
}

// ---- The host table ----

std::string_view view(const char* data, size_t len) {
  return data ? std::string_view(data, len) : std::string_view();
}

int put(std::string_view value, sluice_str* out) {
  if (!out) return SLUICE_ERR_INVALID;
  out->data = value.data();
  out->len = value.size();
  return SLUICE_OK;
}

bool validName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!http::isTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Framing headers are sluice's: a plugin that set them could split a message in two.
bool settableName(std::string_view name) {
  return validName(name) && !http::iequals(name, "content-length") &&
         !http::iequals(name, "transfer-encoding");
}

bool validValue(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

int hostGet(sluice_request req, int field, sluice_str* out) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  Exchange& x = *c->x_;
  switch (field) {
    case SLUICE_FIELD_METHOD:
      return put(x.method(), out);
    case SLUICE_FIELD_PATH:
      return put(x.path(), out);
    case SLUICE_FIELD_QUERY:
      return put(x.query(), out);
    case SLUICE_FIELD_HOST:
      return put(x.host(), out);
    case SLUICE_FIELD_CLIENT_IP:
      return put(x.clientIp(), out);
    case SLUICE_FIELD_ROUTE:
      return put(x.routeName(), out);
    case SLUICE_FIELD_REQUEST_ID:
      return put(x.context().request_id, out);
    case SLUICE_FIELD_PRINCIPAL:
      return put(x.context().principal, out);
    default:
      return SLUICE_ERR_INVALID;
  }
}

int getHeader(const HeaderList& headers, const char* name, size_t name_len, sluice_str* out) {
  const std::string_view* value = headers.get(view(name, name_len));
  if (!value) return SLUICE_ERR_NOT_FOUND;
  return put(*value, out);
}

// The call, when the plugin may change this phase's message now; else null and `rc`.
PluginCall* holder(sluice_request req, PluginCall::State phase, int& rc) {
  PluginCall* c = lookup(req);
  if (!c) {
    rc = SLUICE_ERR_STALE;
    return nullptr;
  }
  if (c->state_ != phase || !c->holds() || c->x_->cancelled()) {
    rc = c->state_ == PluginCall::State::kDone ? SLUICE_ERR_STALE : SLUICE_ERR_PHASE;
    return nullptr;
  }
  return c;
}

int setHeader(sluice_request req, PluginCall::State phase, const char* name, size_t name_len,
              const char* value, size_t value_len) {
  int rc = SLUICE_OK;
  PluginCall* c = holder(req, phase, rc);
  if (!c) return rc;
  std::string_view n = view(name, name_len), v = view(value, value_len);
  if (!settableName(n) || !validValue(v)) return SLUICE_ERR_INVALID;
  HeaderList& headers =
      phase == PluginCall::State::kRequest ? c->x_->requestHeaders() : c->x_->responseHeaders();
  headers.set(n, v);
  return SLUICE_OK;
}

int removeHeader(sluice_request req, PluginCall::State phase, const char* name, size_t name_len) {
  int rc = SLUICE_OK;
  PluginCall* c = holder(req, phase, rc);
  if (!c) return rc;
  std::string_view n = view(name, name_len);
  if (!settableName(n)) return SLUICE_ERR_INVALID;
  HeaderList& headers =
      phase == PluginCall::State::kRequest ? c->x_->requestHeaders() : c->x_->responseHeaders();
  return headers.remove(n) ? SLUICE_OK : SLUICE_ERR_NOT_FOUND;
}

int hostGetRequestHeader(sluice_request req, const char* name, size_t name_len, sluice_str* out) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  return getHeader(c->x_->requestHeaders(), name, name_len, out);
}

int hostSetRequestHeader(sluice_request req, const char* name, size_t name_len, const char* value,
                         size_t value_len) {
  return setHeader(req, PluginCall::State::kRequest, name, name_len, value, value_len);
}

int hostRemoveRequestHeader(sluice_request req, const char* name, size_t name_len) {
  return removeHeader(req, PluginCall::State::kRequest, name, name_len);
}

int hostSetPath(sluice_request req, const char* path, size_t len) {
  int rc = SLUICE_OK;
  PluginCall* c = holder(req, PluginCall::State::kRequest, rc);
  if (!c) return rc;
  std::string_view p = view(path, len);
  if (p.empty() || p.front() != '/') return SLUICE_ERR_INVALID;
  for (char ch : p) {
    auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u == 0x7f || ch == '?' || ch == '#') return SLUICE_ERR_INVALID;
  }
  c->x_->setPath(p);
  return SLUICE_OK;
}

int hostGetStatus(sluice_request req) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  return c->state_ == PluginCall::State::kRequest ? 0 : c->x_->status();
}

int hostGetResponseHeader(sluice_request req, const char* name, size_t name_len, sluice_str* out) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  if (c->state_ == PluginCall::State::kRequest) return SLUICE_ERR_PHASE;
  return getHeader(c->x_->responseHeaders(), name, name_len, out);
}

int hostSetResponseHeader(sluice_request req, const char* name, size_t name_len, const char* value,
                          size_t value_len) {
  return setHeader(req, PluginCall::State::kResponse, name, name_len, value, value_len);
}

int hostRemoveResponseHeader(sluice_request req, const char* name, size_t name_len) {
  return removeHeader(req, PluginCall::State::kResponse, name, name_len);
}

int hostGetContext(sluice_request req, const char* key, size_t key_len, sluice_str* out) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  const auto& values = c->x_->context().values;
  auto it = values.find(view(key, key_len));
  if (it == values.end()) return SLUICE_ERR_NOT_FOUND;
  return put(it->second, out);
}

int hostSetContext(sluice_request req, const char* key, size_t key_len, const char* value,
                   size_t value_len) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  if (c->state_ == PluginCall::State::kDone || c->x_->cancelled()) return SLUICE_ERR_STALE;
  if (!c->holds()) return SLUICE_ERR_PHASE;
  std::string_view k = view(key, key_len);
  if (k.empty()) return SLUICE_ERR_INVALID;
  auto& values = c->x_->context().values;
  auto it = values.find(k);
  if (it == values.end()) it = values.emplace(std::string(k), std::string()).first;
  it->second.assign(view(value, value_len));
  return SLUICE_OK;
}

int hostResume(sluice_request req) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  if (c->state_ == PluginCall::State::kDone || c->x_->cancelled()) return SLUICE_ERR_STALE;
  if (c->in_call_) {
    c->handed_back_ = true;
    c->x_->resume();  // noted by the Exchange; acted on when the call returns
    return SLUICE_OK;
  }
  // Only the stopped plugin may resume: a stray resume() must not release another
  // filter's stop.
  if (!c->stopped_) return SLUICE_ERR_PHASE;
  c->stopped_ = false;
  c->x_->resume();  // may run the rest of the exchange; `c` may be reused after this
  return SLUICE_OK;
}

int hostReply(sluice_request req, int status, const char* message, size_t message_len) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  if (c->state_ == PluginCall::State::kDone || c->x_->cancelled()) return SLUICE_ERR_STALE;
  if (!c->holds()) return SLUICE_ERR_PHASE;
  if (status < 200 || status > 599) return SLUICE_ERR_INVALID;
  if (c->in_call_) c->handed_back_ = true;
  c->stopped_ = false;
  c->x_->reply(static_cast<uint16_t>(status), view(message, message_len));
  return SLUICE_OK;
}

int hostDefer(sluice_request req, uint32_t delay_ms, sluice_deferred_fn fn, void* user_data) {
  PluginCall* c = lookup(req);
  if (!c) return SLUICE_ERR_STALE;
  if (!fn) return SLUICE_ERR_INVALID;
  if (c->state_ == PluginCall::State::kDone || c->x_->cancelled()) return SLUICE_ERR_STALE;
  PluginCall::Timer* t = nullptr;
  for (auto& each : c->timers_) {
    if (!each->armed) {
      t = each.get();
      break;
    }
  }
  if (!t) {
    c->timers_.push_back(std::make_unique<PluginCall::Timer>());
    t = c->timers_.back().get();
    t->owner = c;
  }
  if (event_assign(&t->ev, c->x_->worker().base(), -1, 0, onTimer, t) != 0) {
    return SLUICE_ERR_INVALID;
  }
  timeval delay{static_cast<time_t>(delay_ms / 1000),
                static_cast<suseconds_t>((delay_ms % 1000) * 1000)};
  if (event_add(&t->ev, &delay) != 0) return SLUICE_ERR_INVALID;
  t->fn = fn;
  t->user_data = user_data;
  t->armed = true;
  return SLUICE_OK;
}

void hostLog(int level, const char* message, size_t len) {
  log::Level l = level <= SLUICE_LOG_DEBUG  ? log::Level::kDebug
                 : level == SLUICE_LOG_INFO ? log::Level::kInfo
                 : level == SLUICE_LOG_WARN ? log::Level::kWarn
                                            : log::Level::kError;
  if (!log::enabled(l) || !message) return;
  log::write(l, "plugin: %.*s", static_cast<int>(len), message);
}

const sluice_host_v1 kHost = {
    SLUICE_PLUGIN_ABI_VERSION,
    sizeof(sluice_host_v1),
    hostGet,
    hostGetRequestHeader,
    hostSetRequestHeader,
    hostRemoveRequestHeader,
    hostSetPath,
    hostGetStatus,
    hostGetResponseHeader,
    hostSetResponseHeader,
    hostRemoveResponseHeader,
    hostGetContext,
    hostSetContext,
    hostResume,
    hostReply,
    hostDefer,
    hostLog,
};

}  // namespace

const sluice_host_v1* hostApi() { return &kHost; }

std::shared_ptr<const FilterFactory> makeFilterFactory(std::shared_ptr<const Library> library,
                                                       void* instance) {
  return std::make_shared<PluginFactory>(std::move(library), instance);
}

}  // namespace sluice::plugins
