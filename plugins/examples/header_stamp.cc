// header_stamp: an example plugin. It adds a configured header to every response, and
// with `delay_ms` it holds each request that long before letting it go on — the way a
// plugin stops the chain and resumes it later from the worker's loop, without threads.
// Only sluice_plugin.h is shared with sluice; C++ stays inside the plugin.
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "sluice_plugin.h"

namespace {

const sluice_host_v1* host = nullptr;

struct Settings {
  std::string header;
  std::string value = "sluice";
  uint32_t delay_ms = 0;
};

bool isToken(const std::string& text) {
  if (text.empty()) return false;
  for (unsigned char c : text) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              std::string("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string::npos;
    if (!ok) return false;
  }
  return true;
}

// Settings are validated here, when the config loads: a mistake is a config error that
// points at the filter's line, never a surprise on the first request.
void* create(const char* json, size_t len, char* error, size_t error_size) {
  try {
    nlohmann::json doc = nlohmann::json::parse(json, json + len);
    Settings s;
    for (const auto& [key, value] : doc.items()) {
      if (key == "header" && value.is_string() && isToken(value.get<std::string>())) {
        s.header = value.get<std::string>();
      } else if (key == "value" && value.is_string()) {
        s.value = value.get<std::string>();
      } else if (key == "delay_ms" && value.is_number_unsigned() &&
                 value.get<uint64_t>() <= 60000) {
        s.delay_ms = value.get<uint32_t>();
      } else if (key == "header" || key == "value" || key == "delay_ms") {
        std::snprintf(error, error_size, "bad '%s': expected %s", key.c_str(),
                      key == "header"  ? "a header name"
                      : key == "value" ? "a string"
                                       : "milliseconds from 0 to 60000");
        return nullptr;
      } else {
        std::snprintf(error, error_size, "unknown setting '%s' (expected header, value, delay_ms)",
                      key.c_str());
        return nullptr;
      }
    }
    if (s.header.empty()) {
      std::snprintf(error, error_size, "missing setting 'header'");
      return nullptr;
    }
    return new Settings(std::move(s));
  } catch (const std::exception& e) {  // exceptions never cross into sluice
    std::snprintf(error, error_size, "%s", e.what());
    return nullptr;
  }
}

void destroy(void* instance) { delete static_cast<Settings*>(instance); }

void resumeLater(sluice_request req, void*, int cancelled) {
  if (!cancelled) host->resume(req);  // the request may be gone: then there is nothing to do
}

int onRequest(void* instance, sluice_request req, void**) {
  const auto* s = static_cast<const Settings*>(instance);
  if (s->delay_ms == 0) return SLUICE_CONTINUE;
  if (host->defer(req, s->delay_ms, resumeLater, nullptr) != SLUICE_OK) return SLUICE_CONTINUE;
  return SLUICE_STOP;
}

int onResponse(void* instance, sluice_request req, void**) {
  const auto* s = static_cast<const Settings*>(instance);
  host->set_response_header(req, s->header.data(), s->header.size(), s->value.data(),
                            s->value.size());
  return SLUICE_CONTINUE;
}

const sluice_plugin_v1 kPlugin = {
    SLUICE_PLUGIN_ABI_VERSION, "header_stamp", create, destroy, onRequest, onResponse, nullptr,
};

}  // namespace

extern "C" {

SLUICE_PLUGIN_DEFINE_ABI_VERSION();

const sluice_plugin_v1* sluice_plugin_init(uint32_t host_abi_version, const sluice_host_v1* h) {
  if (host_abi_version != SLUICE_PLUGIN_ABI_VERSION || !h || h->size < sizeof(sluice_host_v1)) {
    return nullptr;
  }
  host = h;
  return &kPlugin;
}

}  // extern "C"
