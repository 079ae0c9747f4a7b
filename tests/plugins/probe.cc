// probe: a test-only plugin that exercises the host table and reports what it saw in
// headers, so that tests/integration/test_plugins.py can check the plugin ABI through
// the real binary: stop/resume in both phases, replies, stale handles, refused header
// values, the context, deferred calls cancelled by a client that went away.
#include <atomic>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "sluice_plugin.h"

namespace {

const sluice_host_v1* host = nullptr;

struct Settings {
  std::string fail;
  std::string deny_header;
  uint32_t request_delay_ms = 0;
  uint32_t response_delay_ms = 0;
  int reply_in_response = 0;
  bool check_late = false;  // try resume() and a header from a timer after continuing
  // Counters shared by the workers: the instance is otherwise read-only.
  mutable std::atomic<int> done{0};
  mutable std::atomic<int> cancelled{0};
  mutable std::atomic<sluice_request> last{0};  // the previous request's handle
};

// What one request's on_request found, reported in its response headers.
struct Seen {
  int crlf_rc = 0;
  int early_rc = 0;
  int stale_rc = 1;  // 1: there was no earlier request on this thread
  int late_resume_rc = 1;
  int late_header_rc = 1;
};

void setResponse(sluice_request req, const std::string& name, const std::string& value) {
  host->set_response_header(req, name.data(), name.size(), value.data(), value.size());
}

void setRequest(sluice_request req, const std::string& name, const std::string& value) {
  host->set_request_header(req, name.data(), name.size(), value.data(), value.size());
}

std::string str(sluice_str s) { return std::string(s.data, s.len); }

void* create(const char* json, size_t len, char* error, size_t error_size) {
  try {
    nlohmann::json doc = nlohmann::json::parse(json, json + len);
    auto* s = new Settings;
    s->fail = doc.value("fail", "");
    s->deny_header = doc.value("deny_header", "");
    s->request_delay_ms = doc.value("request_delay_ms", 0u);
    s->response_delay_ms = doc.value("response_delay_ms", 0u);
    s->reply_in_response = doc.value("reply_in_response", 0);
    s->check_late = doc.value("check_late", false);
    if (!s->fail.empty()) {
      std::snprintf(error, error_size, "%s (settings: %s)", s->fail.c_str(), json);
      delete s;
      return nullptr;
    }
    return s;
  } catch (const std::exception& e) {
    std::snprintf(error, error_size, "%s", e.what());
    return nullptr;
  }
}

void destroy(void* instance) { delete static_cast<Settings*>(instance); }

void requestLater(sluice_request req, void* user_data, int cancelled) {
  auto* s = static_cast<const Settings*>(user_data);
  if (cancelled) {
    s->cancelled.fetch_add(1);
    return;
  }
  setRequest(req, "x-probe-delayed", "yes");  // allowed: the plugin holds the request
  host->resume(req);
}

void responseLater(sluice_request req, void* user_data, int cancelled) {
  auto* s = static_cast<const Settings*>(user_data);
  if (cancelled) {
    s->cancelled.fetch_add(1);
    return;
  }
  setResponse(req, "x-probe-late", "yes");
  host->resume(req);
}

// Runs while the request is still in the chain (tests put a stopping filter after this
// one) but no longer held by this plugin: its resume() must not release that stop.
void afterContinue(sluice_request req, void* user_data, int cancelled) {
  auto* seen = static_cast<Seen*>(user_data);
  if (cancelled) return;
  seen->late_resume_rc = host->resume(req);
  seen->late_header_rc = host->set_request_header(req, "x-late", 6, "1", 1);
}

int onRequest(void* instance, sluice_request req, void** request_data) {
  const auto* s = static_cast<const Settings*>(instance);
  auto* seen = new Seen;
  *request_data = seen;
  sluice_str value;
  if (!s->deny_header.empty() &&
      host->get_request_header(req, s->deny_header.data(), s->deny_header.size(), &value) ==
          SLUICE_OK) {
    host->reply(req, 403, "denied by probe", 15);
    return SLUICE_STOP;  // the reply already handed the request back
  }
  if (host->get(req, SLUICE_FIELD_ROUTE, &value) == SLUICE_OK) {
    setRequest(req, "x-probe-route", str(value));
  }
  if (host->get(req, SLUICE_FIELD_METHOD, &value) == SLUICE_OK) {
    setRequest(req, "x-probe-method", str(value));
  }
  seen->crlf_rc = host->set_request_header(req, "x-bad", 5, "a\r\nb", 4);
  seen->early_rc = host->set_response_header(req, "x-early", 7, "1", 1);
  sluice_request last = s->last.exchange(req);
  if (last != 0) seen->stale_rc = host->resume(last);
  host->set_context(req, "probe", 5, "seen", 4);
  if (s->request_delay_ms > 0) {
    host->defer(req, s->request_delay_ms, requestLater, const_cast<Settings*>(s));
    return SLUICE_STOP;
  }
  if (s->check_late) host->defer(req, 0, afterContinue, seen);
  return SLUICE_CONTINUE;
}

int onResponse(void* instance, sluice_request req, void** request_data) {
  const auto* s = static_cast<const Settings*>(instance);
  const auto* seen = static_cast<const Seen*>(*request_data);
  setResponse(req, "x-probe-status", std::to_string(host->get_status(req)));
  setResponse(req, "x-probe-done", std::to_string(s->done.load()));
  setResponse(req, "x-probe-cancelled", std::to_string(s->cancelled.load()));
  if (seen) {
    setResponse(req, "x-probe-crlf", std::to_string(seen->crlf_rc));
    setResponse(req, "x-probe-early", std::to_string(seen->early_rc));
    setResponse(req, "x-probe-stale", std::to_string(seen->stale_rc));
    setResponse(req, "x-probe-late-resume", std::to_string(seen->late_resume_rc));
    setResponse(req, "x-probe-late-header", std::to_string(seen->late_header_rc));
  }
  sluice_str value;
  if (host->get_context(req, "probe", 5, &value) == SLUICE_OK) {
    setResponse(req, "x-probe-context", str(value));
  }
  if (s->reply_in_response) {
    host->reply(req, s->reply_in_response, "replaced by probe", 17);
    return SLUICE_CONTINUE;
  }
  if (s->response_delay_ms > 0) {
    host->defer(req, s->response_delay_ms, responseLater, const_cast<Settings*>(s));
    return SLUICE_STOP;
  }
  return SLUICE_CONTINUE;
}

void onDone(void* instance, sluice_request req, void* request_data) {
  static_cast<const Settings*>(instance)->done.fetch_add(1);
  delete static_cast<Seen*>(request_data);
}

const sluice_plugin_v1 kPlugin = {
    SLUICE_PLUGIN_ABI_VERSION, "probe", create, destroy, onRequest, onResponse, onDone,
};

}  // namespace

extern "C" {

SLUICE_PLUGIN_DEFINE_ABI_VERSION();

const sluice_plugin_v1* sluice_plugin_init(uint32_t host_abi_version, const sluice_host_v1* h) {
  if (host_abi_version != SLUICE_PLUGIN_ABI_VERSION) return nullptr;
  host = h;
  return &kPlugin;
}

}  // extern "C"
