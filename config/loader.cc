// YAML → Config. Validation is done in one pass that records every error and keeps
// going, so a user sees all the problems of a file at once, in file order.

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <sstream>
#include <tuple>

#include "config/admin_config.h"
#include "config/api_keys_config.h"
#include "config/config.h"
#include "config/filter_chain.h"
#include "config/function_config.h"
#include "config/redis_config.h"
#include "config/tls_config.h"
#include "config/yaml_reader.h"
#include "gateway/http/message.h"

namespace sluice::config {

namespace {

using detail::Field;
using detail::Fields;
using detail::Reader;
using detail::Schema;

const Schema kTopLevel{{"workers", "drain_timeout", "listeners", "services", "routes", "filters",
                        "plugins", "admin", "watch", "api_keys", "usage_plans", "redis",
                        "functions", "function_pricing"}};
const Schema kListener{{"name", "address", "header_timeout", "idle_timeout", "max_connections",
                        "stage", "tls", "h2c", "http2"}};
const Schema kHttp2{{"max_concurrent_streams", "max_header_list_size", "initial_stream_window",
                     "connection_window"}};
const Schema kService{{"endpoints", "load_balancer", "connect_timeout", "timeout",
                       "max_idle_connections", "tls", "protocol"}};
const Schema kServiceTls{{"verify", "ca", "sni"}};
// "websocket" is a backend of the design that is not built yet; it gets its own
// message (readBackend) rather than the generic one.
const Schema kRoute{
    {"name", "match", "service", "function", "response", "max_body", "filters", "stage"},
    {},
    false,
    {"websocket"}};
const Schema kMatch{{"methods", "path", "host"}};
const Schema kResponse{{"status", "headers", "body"}};
const Schema kFreeForm{{}, {}, true};

constexpr int kMaxWorkers = 256;

bool sameAddress(const SocketAddress& a, const SocketAddress& b) {
  return a.len == b.len && std::memcmp(&a.addr, &b.addr, a.len) == 0;
}

// "api.example.com", "*.example.com" or "*" (any); no port, no path.
bool isValidHost(std::string_view host) {
  if (host == "*") return true;
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.front() == '.' || host.back() == '.') return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

class Loader {
 public:
  Loader(const std::string& file, std::vector<Error>& errors) : reader_(file, errors) {
    size_t slash = file.rfind('/');
    config_dir_ = slash == std::string::npos ? "." : file.substr(0, slash == 0 ? 1 : slash);
  }

  std::shared_ptr<Config> load(const YAML::Node& root);

 private:
  // Where a listener's name and address were written, to point duplicates there.
  struct ListenerMarks {
    Mark name;
    Mark address;
  };

  void readWorkers(const Field& field);
  void readListeners(const Field& field);
  bool readListener(const Field& item, Listener& out, ListenerMarks& marks);
  void readServices(const Field& field);
  void readService(const Field& item, Service& out);
  void readRoutes(const Field& field);
  // False when the route cannot be given to the router (no usable match).
  bool readRoute(const Field& item, Route& out, Mark& name_mark);
  bool readMatch(const Field& field, Route& out);
  bool readMethods(const Field& field, Route& out);
  void readBackend(const Field& item, const Fields& fields, Route& out);
  void readResponse(const Field& field, StaticResponse& out);
  std::string readName(const Field& field);
  void checkServiceNames();
  void checkFunctionNames();
  void buildRouter();

  void composeChains();

  Reader reader_;
  std::string config_dir_;
  std::unique_ptr<FilterRegistry> plugins_;  // filters of the `plugins:` list, for this load
  std::vector<detail::FilterEntry> global_filters_;
  std::vector<std::vector<detail::FilterEntry>> route_filters_;  // by route index
  std::shared_ptr<Config> config_ = std::make_shared<Config>();
  std::vector<bool> routable_;  // per route: handed to the router
  struct ServiceRef {
    Field field;
    std::string name;
  };
  std::vector<ServiceRef> service_refs_;
  std::vector<ServiceRef> function_refs_;
};

std::shared_ptr<Config> Loader::load(const YAML::Node& root) {
  Field top{"", YAML::Node(), root, false};
  Fields fields;
  if (!reader_.map(top, kTopLevel, fields)) return nullptr;
  if (const Field* f = fields.get("workers")) readWorkers(*f);
  if (const Field* f = fields.get("drain_timeout")) {
    reader_.duration(*f, /*allow_zero=*/true, config_->drain_timeout);
  }
  if (const Field* f = reader_.required(top, fields, "listeners")) readListeners(*f);
  if (const Field* f = fields.get("services")) readServices(*f);
  if (const Field* f = fields.get("functions")) {
    detail::readFunctions(reader_, *f, config_dir_, config_->functions);
  }
  if (const Field* f = fields.get("function_pricing")) {
    detail::readFunctionPricing(reader_, *f, config_->function_pricing);
  }
  if (const Field* f = fields.get("admin")) {
    detail::readAdmin(reader_, *f, config_->listeners, config_->admin);
  }
  if (const Field* f = fields.get("watch")) detail::readBool(reader_, *f, config_->watch);
  // Before any filter: filters check config.redis.enabled.
  if (const Field* f = fields.get("redis")) {
    detail::readRedis(reader_, *f, config_dir_, config_->redis);
  }
  if (const Field* f = fields.get("plugins")) {
    plugins_ = detail::readPluginList(reader_, *f, config_dir_);
  }
  // Before any filter list: api_key filters check their settings against these.
  if (const Field* f = fields.get("usage_plans")) {
    detail::readUsagePlans(reader_, *f, config_->usage_plans);
  }
  if (const Field* f = fields.get("api_keys")) {
    detail::readApiKeys(reader_, *f, config_->usage_plans, config_->api_keys);
  }
  if (const Field* f = fields.get("filters")) {
    detail::readFilterList(reader_, *f, true, config_dir_, plugins_.get(), config_.get(),
                           global_filters_);
  }
  if (const Field* f = reader_.required(top, fields, "routes")) readRoutes(*f);
  detail::checkUsagePlanRoutes(reader_, *config_);
  checkServiceNames();
  checkFunctionNames();
  buildRouter();
  composeChains();
  return config_;
}

void Loader::composeChains() {
  for (const detail::FilterEntry& g : global_filters_) {
    if (g.factory) config_->global_chain.push_back(g.factory);
  }
  static const std::vector<detail::FilterEntry> kNone;
  for (size_t i = 0; i < config_->routes.size(); ++i) {
    const auto& own = i < route_filters_.size() ? route_filters_[i] : kNone;
    detail::composeChain(reader_, global_filters_, own, config_->routes[i].chain);
  }
}

void Loader::readWorkers(const Field& field) {
  static const std::string kHint =
      "expected 'auto' or an integer from 1 to " + std::to_string(kMaxWorkers);
  if (!field.value.IsScalar()) {
    reader_.error(field, kHint);
    return;
  }
  std::optional<std::string> text = reader_.string(field);
  if (!text) return;
  if (*text == "auto") {
    config_->workers = 0;
    return;
  }
  unsigned workers = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), workers);
  if (ec != std::errc() || end != text->data() + text->size() || workers < 1 ||
      workers > kMaxWorkers) {
    reader_.error(field, kHint);
    return;
  }
  config_->workers = workers;
}

std::string Loader::readName(const Field& field) {
  std::optional<std::string> name = reader_.string(field);
  if (!name) return "";
  if (!detail::isValidName(*name)) {
    reader_.error(field, "invalid name '" + *name + "' (use letters, digits, '_', '-' and '.')");
    return "";
  }
  return *name;
}

void Loader::readListeners(const Field& field) {
  std::vector<Field> items;
  if (!reader_.list(field, items)) return;
  if (field.value.size() == 0) reader_.error(field, "expected at least one listener");
  std::vector<ListenerMarks> seen;
  for (const Field& item : items) {
    Listener listener;
    ListenerMarks marks;
    bool ok = readListener(item, listener, marks);
    for (size_t i = 0; i < seen.size(); ++i) {
      const Listener& other = config_->listeners[i];
      if (!listener.name.empty() && other.name == listener.name) {
        reader_.error(marks.name, "duplicate listener name '" + listener.name +
                                      "' (first at line " + std::to_string(seen[i].name.line) +
                                      ")");
      }
      if (ok && other.address.len != 0 && sameAddress(other.address, listener.address) &&
          detail::addressPort(listener.address) != 0) {
        reader_.error(marks.address, "address " + listener.address.text +
                                         " is already used by listener '" + other.name + "'");
      }
    }
    if (!ok) listener.address = {};
    seen.push_back(marks);
    config_->listeners.push_back(std::move(listener));
  }
}

bool Loader::readListener(const Field& item, Listener& out, ListenerMarks& marks) {
  out.mark = Reader::markOf(item.value);
  Fields fields;
  if (!reader_.map(item, kListener, fields)) return false;
  const Field* name = reader_.required(item, fields, "name");
  const Field* address = reader_.required(item, fields, "address");
  if (name != nullptr) {
    marks.name = Reader::valueMark(*name);
    out.name = readName(*name);
  }
  bool ok = false;
  if (address != nullptr) {
    marks.address = Reader::valueMark(*address);
    ok = reader_.address(*address, /*allow_port_zero=*/true, out.address);
  }
  if (const Field* f = fields.get("header_timeout")) {
    reader_.duration(*f, false, out.header_timeout);
  }
  if (const Field* f = fields.get("idle_timeout")) reader_.duration(*f, false, out.idle_timeout);
  if (const Field* f = fields.get("max_connections")) {
    int64_t value = 0;
    if (reader_.integer(*f, 1, UINT32_MAX, value)) out.max_connections = value;
  }
  if (const Field* f = fields.get("stage")) detail::readStage(reader_, *f, out.stage);
  if (const Field* f = fields.get("h2c")) detail::readBool(reader_, *f, out.h2c);
  if (const Field* f = fields.get("http2")) {
    Fields h2;
    if (reader_.map(*f, kHttp2, h2)) {
      int64_t n = 0;
      if (const Field* v = h2.get("max_concurrent_streams")) {
        if (reader_.integer(*v, 1, 10'000, n)) out.http2.max_concurrent_streams = n;
      }
      uint64_t size = 0;
      if (const Field* v = h2.get("max_header_list_size")) {
        if (reader_.size(*v, size)) {
          if (size < 4096 || size > (1u << 24)) {
            reader_.error(*v, "expected a size from 4KiB to 16MiB");
          } else {
            out.http2.max_header_list_size = static_cast<uint32_t>(size);
          }
        }
      }
      // RFC 9113 §6.9.2: a window is at most 2^31-1; less than the protocol's initial
      // 65535 would only slow clients down.
      for (auto [key, target] :
           {std::pair{"initial_stream_window", &out.http2.initial_stream_window},
            std::pair{"connection_window", &out.http2.connection_window}}) {
        const Field* v = h2.get(key);
        if (v == nullptr || !reader_.size(*v, size)) continue;
        if (size < 65'535 || size > 0x7fffffff) {
          reader_.error(*v, "expected a window from 65535 bytes to 2GiB-1");
        } else {
          *target = static_cast<uint32_t>(size);
        }
      }
    }
  }
  if (const Field* f = fields.get("tls")) {
    detail::readListenerTls(reader_, *f, config_dir_, out.tls);
  }
  return ok;
}

void Loader::readServices(const Field& field) {
  Fields services;
  if (!reader_.map(field, kFreeForm, services)) return;
  for (const Field& item : services.all()) {
    Service service;
    service.mark = Reader::markOf(item.key);
    if (!detail::isValidName(item.name)) {
      reader_.error(item.key,
                    "invalid name '" + item.name + "' (use letters, digits, '_', '-' and '.')");
    }
    service.name = item.name;
    readService(item, service);
    config_->services.emplace(service.name, std::move(service));
  }
}

void Loader::readService(const Field& item, Service& out) {
  Fields fields;
  if (!reader_.map(item, kService, fields)) return;
  if (const Field* f = reader_.required(item, fields, "endpoints")) {
    std::vector<Field> endpoints;
    if (reader_.list(*f, endpoints)) {
      if (f->value.size() == 0) reader_.error(*f, "expected at least one endpoint");
      for (const Field& endpoint : endpoints) {
        SocketAddress address;
        if (reader_.address(endpoint, /*allow_port_zero=*/false, address)) {
          out.endpoints.push_back(std::move(address));
        }
      }
    }
  }
  if (const Field* f = fields.get("load_balancer")) {
    if (std::optional<std::string> text = reader_.string(*f)) {
      if (*text == "round_robin") {
        out.load_balancer = LoadBalancer::kRoundRobin;
      } else if (*text == "least_request") {
        out.load_balancer = LoadBalancer::kLeastRequest;
      } else {
        reader_.error(
            *f, "unknown load balancer '" + *text + "'; expected round_robin or least_request");
      }
    }
  }
  if (const Field* f = fields.get("connect_timeout")) {
    reader_.duration(*f, false, out.connect_timeout);
  }
  if (const Field* f = fields.get("timeout")) reader_.duration(*f, false, out.timeout);
  if (const Field* f = fields.get("max_idle_connections")) {
    int64_t value = 0;
    if (reader_.integer(*f, 0, UINT32_MAX, value)) out.max_idle_connections = value;
  }
  if (const Field* f = fields.get("tls")) {
    Fields tls;
    out.tls = true;
    if (!f->value.IsNull() && reader_.map(*f, kServiceTls, tls)) {
      if (const Field* v = tls.get("verify")) detail::readBool(reader_, *v, out.tls_verify);
      if (const Field* ca = tls.get("ca")) {
        if (std::optional<std::string> path = reader_.string(*ca)) {
          std::string full =
              !path->empty() && (*path)[0] != '/' ? config_dir_ + "/" + *path : *path;
          std::string problem;
          if (path->empty()) {
            reader_.error(*ca, "expected a file name");
          } else if (!detail::readCaFile(full, problem)) {
            reader_.error(*ca, problem);
          } else {
            out.tls_ca = full;
          }
        }
      }
      if (const Field* sni = tls.get("sni")) {
        if (std::optional<std::string> name = reader_.string(*sni)) {
          if (!isValidHost(*name) || name->find('*') != std::string::npos) {
            reader_.error(*sni, "invalid server name '" + *name + "'");
          } else {
            out.tls_sni = http::asciiLower(*name);
          }
        }
      }
    }
  }
  if (const Field* f = fields.get("protocol")) {
    if (std::optional<std::string> text = reader_.string(*f)) {
      if (*text == "http2" || *text == "h2c") {
        reader_.error(
            *f, "protocol '" + *text + "' to services is not in this version yet (HTTP/1.1 only)");
      } else if (*text != "http1") {
        reader_.error(*f, "unknown protocol '" + *text + "'; expected http1, http2 or h2c");
      }
    }
  }
}

void Loader::readRoutes(const Field& field) {
  std::vector<Field> items;
  if (!reader_.list(field, items)) return;
  std::vector<Mark> name_marks;
  for (const Field& item : items) {
    Route route;
    Mark name_mark;
    routable_.push_back(readRoute(item, route, name_mark));
    for (size_t i = 0; i < config_->routes.size() && !route.name.empty(); ++i) {
      if (config_->routes[i].name == route.name) {
        reader_.error(name_mark, "duplicate route name '" + route.name + "' (first at line " +
                                     std::to_string(name_marks[i].line) + ")");
        break;
      }
    }
    name_marks.push_back(name_mark);
    config_->routes.push_back(std::move(route));
  }
}

bool Loader::readRoute(const Field& item, Route& out, Mark& name_mark) {
  out.mark = Reader::markOf(item.value);
  Fields fields;
  route_filters_.emplace_back();
  if (!reader_.map(item, kRoute, fields)) return false;
  if (const Field* f = fields.get("filters")) {
    detail::readFilterList(reader_, *f, false, config_dir_, plugins_.get(), config_.get(),
                           route_filters_.back());
  }
  if (const Field* f = reader_.required(item, fields, "name")) {
    name_mark = Reader::valueMark(*f);
    out.name = readName(*f);
  }
  bool routable = false;
  if (const Field* f = reader_.required(item, fields, "match")) routable = readMatch(*f, out);
  readBackend(item, fields, out);
  if (const Field* f = fields.get("max_body")) reader_.size(*f, out.max_body);
  if (const Field* f = fields.get("stage")) {
    if (out.kind != BackendKind::kFunction) {
      reader_.error(f->key, "'stage' applies to routes with a 'function' backend");
    }
    detail::readStage(reader_, *f, out.stage);
  }
  return routable;
}

bool Loader::readMatch(const Field& field, Route& out) {
  Fields fields;
  if (!reader_.map(field, kMatch, fields)) return false;
  bool ok = true;
  if (const Field* f = reader_.required(field, fields, "path")) {
    std::optional<std::string> path = reader_.string(*f);
    if (path && !path->starts_with("/")) {
      reader_.error(*f, "path must start with '/'");
      path.reset();
    }
    if (path) out.path = *path;
    ok = path.has_value();
  } else {
    ok = false;
  }
  if (const Field* f = fields.get("host")) {
    std::optional<std::string> host = reader_.string(*f);
    if (host && !isValidHost(*host)) {
      reader_.error(*f, "invalid host '" + *host +
                            "' (expected a name like api.example.com or *.example.com, "
                            "without port)");
      host.reset();
    }
    if (host && *host != "*") out.host = http::asciiLower(*host);
    ok = ok && host.has_value();
  }
  if (const Field* f = fields.get("methods")) ok = readMethods(*f, out) && ok;
  return ok;
}

// Methods are case-sensitive in HTTP (RFC 9110 §9.1), so "get" is refused rather than
// normalised: a route that silently matches something else than written is worse.
bool Loader::readMethods(const Field& field, Route& out) {
  std::vector<Field> items;
  if (!reader_.list(field, items)) return false;
  if (field.value.size() == 0) {
    reader_.error(field, "expected at least one method (leave out 'methods' to match any)");
    return false;
  }
  bool ok = true;
  for (const Field& item : items) {
    std::optional<std::string> method = reader_.string(item);
    if (!method) {
      ok = false;
    } else if (!detail::isToken(*method)) {
      reader_.error(item, "invalid method '" + *method + "'");
      ok = false;
    } else if (std::any_of(method->begin(), method->end(),
                           [](char c) { return std::islower(static_cast<unsigned char>(c)); })) {
      std::string upper = *method;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      reader_.error(item,
                    "methods are case-sensitive: write '" + upper + "', not '" + *method + "'");
      ok = false;
    } else if (std::find(out.methods.begin(), out.methods.end(), *method) != out.methods.end()) {
      reader_.error(item, "duplicate method '" + *method + "'");
      ok = false;
    } else {
      out.methods.push_back(*method);
    }
  }
  return ok;
}

void Loader::readBackend(const Field& item, const Fields& fields, Route& out) {
  bool unsupported = false;
  if (const Field* f = fields.get("websocket")) {
    reader_.error(f->key, "backend 'websocket' is not supported by this version of sluice");
    unsupported = true;
  }
  const Field* service = fields.get("service");
  const Field* function = fields.get("function");
  const Field* response = fields.get("response");
  std::vector<const Field*> given;
  for (const Field* f : {service, function, response}) {
    if (f != nullptr) given.push_back(f);
  }
  if (given.size() > 1) {
    auto later = [](const Field* a, const Field* b) {
      Mark x = Reader::markOf(a->key);
      Mark y = Reader::markOf(b->key);
      return std::tie(x.line, x.column) < std::tie(y.line, y.column);
    };
    std::sort(given.begin(), given.end(), later);
    reader_.error(given.back()->key,
                  "a route has exactly one backend: 'service', 'function' or 'response', not "
                  "several");
    return;
  }
  if (function != nullptr) {
    out.kind = BackendKind::kFunction;
    if (std::optional<std::string> name = reader_.string(*function)) {
      out.function = *name;
      function_refs_.push_back({*function, *name});
    }
  } else if (service != nullptr) {
    out.kind = BackendKind::kService;
    if (std::optional<std::string> name = reader_.string(*service)) {
      out.service = *name;
      service_refs_.push_back({*service, *name});
    }
  } else if (response != nullptr) {
    out.kind = BackendKind::kResponse;
    readResponse(*response, out.response);
  } else if (!unsupported) {
    reader_.error(item, "missing backend: a route needs 'service', 'function' or 'response'");
  }
}

void Loader::readResponse(const Field& field, StaticResponse& out) {
  Fields fields;
  if (!reader_.map(field, kResponse, fields)) return;
  if (const Field* f = fields.get("status")) {
    int64_t status = 0;
    if (reader_.integer(*f, 100, 599, status)) out.status = status;
  }
  if (const Field* f = fields.get("headers")) {
    Fields headers;
    if (reader_.map(*f, kFreeForm, headers)) {
      std::set<std::string> seen;
      for (const Field& header : headers.all()) {
        std::string lower = http::asciiLower(header.name);
        if (!detail::isToken(header.name)) {
          reader_.error(header.key, "invalid header name '" + header.name + "'");
        } else if (lower == "content-length" || lower == "transfer-encoding") {
          reader_.error(header.key, "'" + header.name + "' is set by sluice from the body");
        } else if (!seen.insert(lower).second) {
          reader_.error(header.key, "duplicate header '" + header.name + "'");
        }
        std::optional<std::string> value = reader_.string(header);
        if (value && value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
          reader_.error(header, "header values must not contain CR, LF or NUL");
        } else if (value) {
          out.headers.emplace_back(header.name, *value);
        }
      }
    }
  }
  if (const Field* f = fields.get("body")) {
    if (std::optional<std::string> body = reader_.string(*f)) out.body = *body;
    bool no_body = out.status < 200 || out.status == 204 || out.status == 304;
    if (no_body && !out.body.empty()) {
      reader_.error(*f, "a " + std::to_string(out.status) + " response cannot have a body");
    }
  }
}

void Loader::checkServiceNames() {
  for (const ServiceRef& ref : service_refs_) {
    if (config_->services.count(ref.name) != 0) continue;
    std::string known;
    for (const auto& [name, service] : config_->services) {
      known += (known.empty() ? "" : ", ") + name;
    }
    reader_.error(ref.field, "unknown service '" + ref.name + "'" +
                                 (known.empty() ? "; no services are defined"
                                                : "; defined services: " + known));
  }
}

void Loader::checkFunctionNames() {
  for (const ServiceRef& ref : function_refs_) {
    if (config_->functions.count(ref.name) != 0) continue;
    std::string known;
    for (const auto& [name, fn] : config_->functions) {
      known += (known.empty() ? "" : ", ") + name;
    }
    reader_.error(ref.field, "unknown function '" + ref.name + "'" +
                                 (known.empty() ? "; no functions are defined"
                                                : "; defined functions: " + known));
  }
}

void Loader::buildRouter() {
  std::vector<router::RouteSpec> specs;
  for (size_t i = 0; i < config_->routes.size(); ++i) {
    if (!routable_[i]) continue;
    const Route& route = config_->routes[i];
    specs.push_back({i, route.name, route.host, route.methods, route.path});
  }
  std::vector<router::BuildError> errors;
  std::unique_ptr<router::Router> built = router::Router::build(specs, errors);
  for (const router::BuildError& error : errors) {
    Mark mark = error.id < config_->routes.size() ? config_->routes[error.id].mark : Mark{};
    reader_.error(mark, error.message);
  }
  if (built == nullptr && errors.empty()) reader_.error(Mark{}, "cannot build the route table");
  config_->router = std::move(built);
}

LoadResult finish(std::shared_ptr<Config> config, std::vector<Error> errors) {
  // Errors are found map by map; users read files top to bottom. An alias (*x) can
  // make the same node report twice.
  std::stable_sort(errors.begin(), errors.end(), [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  errors.erase(std::unique(errors.begin(), errors.end(),
                           [](const Error& a, const Error& b) {
                             return a.line == b.line && a.column == b.column &&
                                    a.message == b.message;
                           }),
               errors.end());
  LoadResult result;
  if (errors.empty()) result.config = std::move(config);
  result.errors = std::move(errors);
  return result;
}

// Notes where documents start, nothing else.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

LoadResult load(const std::string& yaml, const std::string& name, const std::string& file) {
  std::vector<Error> errors;
  YAML::Node root;
  DocumentCounter documents;
  try {
    // Not YAML::LoadAll: in yaml-cpp 0.7 it never returns on some malformed input (a
    // stray ',' yields empty documents forever). Counting stops at the second document.
    std::istringstream in(yaml);
    YAML::Parser parser(in);
    while (documents.starts.size() < 2 && parser.HandleNextDocument(documents)) {
    }
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    Mark mark = Reader::markOf(e.mark);
    errors.push_back({name, mark.line, mark.column, e.msg});
    return finish(nullptr, std::move(errors));
  }
  if (documents.starts.empty()) {
    errors.push_back({name, 1, 1, "the configuration is empty"});
    return finish(nullptr, std::move(errors));
  }
  if (documents.starts.size() > 1) {
    const YAML::Mark& start = documents.starts[1];
    Mark mark = Reader::markOf(start);
    // From line and column rather than Mark::pos, which a byte-order mark shifts.
    size_t pos = 0;
    for (int line = 0; line < start.line && pos != std::string::npos; ++line) {
      pos = yaml.find('\n', pos);
      if (pos != std::string::npos) ++pos;
    }
    pos = pos == std::string::npos ? yaml.size() : std::min(yaml.size(), pos + start.column);
    if (yaml.compare(pos, 3, "---") == 0) {
      errors.push_back({name, mark.line, mark.column,
                        "expected one YAML document; this is the start of another one"});
    } else {
      // Not a second document but text yaml-cpp could not place: a syntax error.
      std::string what = pos < yaml.size() ? "'" + yaml.substr(pos, 1) + "'" : "end of input";
      errors.push_back({name, mark.line, mark.column, "unexpected " + what});
      return finish(nullptr, std::move(errors));
    }
  }
  std::shared_ptr<Config> config;
  try {
    config = Loader(name, errors).load(root);
  } catch (const std::exception& e) {
    // A bug, not a user error; still reported the same way rather than thrown.
    errors.push_back({name, 0, 0, std::string("internal error: ") + e.what()});
  }
  if (config != nullptr) config->file = file;
  return finish(std::move(config), std::move(errors));
}

}  // namespace

LoadResult loadFile(const std::string& path) {
  std::string yaml;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  int error = fd < 0 ? errno : 0;
  char buffer[64 * 1024];
  while (error == 0) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      yaml.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      error = errno;
    }
  }
  if (fd >= 0) ::close(fd);
  if (error != 0) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, std::string("cannot read: ") + std::strerror(error)});
    return result;
  }
  return load(yaml, path, path);
}

LoadResult loadString(const std::string& yaml, const std::string& name) {
  return load(yaml, name, "");
}

}  // namespace sluice::config
