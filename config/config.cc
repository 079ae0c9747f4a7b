#include "config/config.h"

#include <cstdint>
#include <string_view>

#include "config/yaml_reader.h"

namespace sluice::config {

namespace {

// Reads the leading decimal digits of `text` into `value`; false on overflow.
bool takeDigits(std::string_view& text, uint64_t& value, size_t& count) {
  value = 0;
  count = 0;
  while (count < text.size() && text[count] >= '0' && text[count] <= '9') {
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(text[count] - '0'), &value)) {
      return false;
    }
    ++count;
  }
  text.remove_prefix(count);
  return true;
}

}  // namespace

std::string Error::str() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out + ": " + message;
}

// A fraction is allowed ("1.5s") as long as the result is a whole number of
// milliseconds: "1.5ms" is refused rather than silently rounded.
bool parseDuration(const std::string& text, Duration& out) {
  std::string_view rest = text;
  uint64_t whole = 0;
  size_t whole_digits = 0;
  if (!takeDigits(rest, whole, whole_digits) || whole_digits == 0) return false;
  uint64_t fraction = 0;
  size_t fraction_digits = 0;
  if (!rest.empty() && rest[0] == '.') {
    rest.remove_prefix(1);
    if (!takeDigits(rest, fraction, fraction_digits) || fraction_digits == 0 ||
        fraction_digits > 9) {
      return false;
    }
  }
  uint64_t unit = 0;
  if (rest == "ms") {
    unit = 1;
  } else if (rest == "s") {
    unit = 1000;
  } else if (rest == "m") {
    unit = 60 * 1000;
  } else if (rest == "h") {
    unit = 60 * 60 * 1000;
  } else {
    return false;
  }
  uint64_t scale = 1;
  for (size_t i = 0; i < fraction_digits; ++i) scale *= 10;
  // (whole + fraction / scale) * unit, computed exactly in integers.
  uint64_t whole_ms = 0;
  uint64_t fraction_scaled = 0;
  if (__builtin_mul_overflow(whole, unit, &whole_ms) ||
      __builtin_mul_overflow(fraction, unit, &fraction_scaled) || fraction_scaled % scale != 0) {
    return false;
  }
  uint64_t total = 0;
  if (__builtin_add_overflow(whole_ms, fraction_scaled / scale, &total) ||
      total > static_cast<uint64_t>(Duration::max().count())) {
    return false;
  }
  out = Duration(static_cast<Duration::rep>(total));
  return true;
}

bool parseSize(const std::string& text, uint64_t& out) {
  std::string_view rest = text;
  uint64_t value = 0;
  size_t digits = 0;
  if (!takeDigits(rest, value, digits) || digits == 0) return false;
  static constexpr struct {
    std::string_view suffix;
    uint64_t multiplier;
  } kUnits[] = {
      {"", 1},       {"KB", 1000},         {"MB", 1000 * 1000},         {"GB", 1000 * 1000 * 1000},
      {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024},
  };
  for (const auto& unit : kUnits) {
    if (rest == unit.suffix) return !__builtin_mul_overflow(value, unit.multiplier, &out);
  }
  return false;
}

std::string summary(const Config& config) {
  std::string out = config.file.empty() ? "config OK\n" : "config OK: " + config.file + "\n";
  out += "workers: " + (config.workers == 0 ? std::string("auto") : std::to_string(config.workers));
  out += "\n";
  auto address = [](const SocketAddress& a) {
    std::string numeric = detail::numericAddress(a);
    return numeric == a.text ? a.text : a.text + " (" + numeric + ")";
  };
  for (const Listener& listener : config.listeners) {
    out += "listener " + listener.name + " on " + address(listener.address);
    if (listener.tls.enabled) {
      size_t n = listener.tls.certificates.size();
      out += " (tls: " + std::to_string(n) + (n == 1 ? " certificate" : " certificates");
      std::string names;
      for (const TlsCertificate& cert : listener.tls.certificates) {
        for (const std::string& name : cert.names) names += (names.empty() ? "" : ", ") + name;
      }
      out += names.empty() ? ", no names)" : ", names " + names + ")";
    }
    out += "\n";
  }
  if (config.admin.enabled) {
    out += "admin on " + address(config.admin.address) +
           (config.admin.token.empty() ? "\n" : " (bearer token)\n");
  }
  if (config.watch) out += "watch: reloads when the file changes\n";
  if (config.redis.enabled) {
    // `url` never holds the password.
    out += "redis " + config.redis.url + " (" + detail::numericAddress(config.redis.address) +
           ", pool " + std::to_string(config.redis.pool) + ")\n";
  }
  for (const auto& [name, service] : config.services) {
    out += "service " + name + ":";
    for (size_t i = 0; i < service.endpoints.size(); ++i) {
      out += (i == 0 ? " " : ", ") + address(service.endpoints[i]);
    }
    out += service.load_balancer == LoadBalancer::kRoundRobin ? " (round_robin)\n"
                                                              : " (least_request)\n";
  }
  for (const auto& [name, fn] : config.functions) {
    out += "function " + name + ": ";
    if (fn.runtime == FunctionRuntime::kProcess) {
      out += "process";
      for (const std::string& arg : fn.command) out += " " + arg;
      out += " (handler " + fn.handler + ", max_concurrency " + std::to_string(fn.max_concurrency) +
             ")\n";
    } else {
      // The endpoint holds no secret; credentials are never shown.
      out += "lambda " + fn.function_name + (fn.qualifier.empty() ? "" : ":" + fn.qualifier) +
             " at " + fn.endpoint + (fn.invocation_event ? " (event)" : "") + "\n";
    }
  }
  for (const Route& route : config.routes) {
    out += "route " + route.name + ": ";
    if (route.methods.empty()) out += "*";
    for (size_t i = 0; i < route.methods.size(); ++i) {
      out += (i == 0 ? "" : ",") + route.methods[i];
    }
    out += " " + route.path;
    if (!route.host.empty()) out += " (host " + route.host + ")";
    if (route.kind == BackendKind::kService) {
      out += " -> service " + route.service + "\n";
    } else if (route.kind == BackendKind::kFunction) {
      out += " -> function " + route.function + "\n";
    } else {
      out += " -> response " + std::to_string(route.response.status) + "\n";
    }
  }
  return out;
}

}  // namespace sluice::config
