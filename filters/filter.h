// The filter API: what a filter implements, how it is configured, and how it registers
// itself by name. Filters see requests only through Exchange (filters/exchange.h); they
// never touch sockets, codecs or backends.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace YAML {
class Node;
}

namespace sluice {

class Exchange;
class Worker;

namespace config {
struct Config;
namespace detail {
class Reader;
struct Field;
}  // namespace detail
}  // namespace config

enum class FilterStatus { kContinue, kStop };  // kStop: I will call resume() or reply() later

// One request's use of a filter. Stateless filters share one instance among all
// requests (see FilterFactory::create); a filter with per-request state is created per
// request and destroyed after onDone.
class Filter {
 public:
  virtual ~Filter() = default;
  // Request phase, in chain order. Return kStop to pause the chain; then call
  // x.resume() or x.reply(...) later — or before returning (both are handled).
  virtual FilterStatus onRequest(Exchange& x) { return FilterStatus::kContinue; }
  // Response phase, in reverse chain order, before the response head reaches the client.
  virtual FilterStatus onResponse(Exchange& x) { return FilterStatus::kContinue; }
  // Always called once per request, success or not — also when an earlier filter
  // replied and this one never saw onRequest.
  virtual void onDone(const Exchange& x) {}
  // The request ended (client gone, another filter replied) while this filter had
  // stopped the chain: cancel pending work. resume()/reply() after this are ignored.
  virtual void onCancel(Exchange& x) {}
};

// One configured use of a filter (in the global chain or a route's), built when the
// config loads and shared read-only by every worker for the life of that snapshot.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // The filter for one request. Default shape: a stateless filter returns a shared
  // instance and keeps the default destroy().
  virtual Filter* create(Exchange& x) const = 0;
  virtual void destroy(Filter* filter) const {}
  // Called once per worker when a snapshot starts serving there (e.g. to open files).
  virtual void startWorker(Worker& worker) const {}
  // Appends this filter's Prometheus metrics (HELP/TYPE lines and samples).
  virtual void appendMetrics(std::string& out) const {}
  // Called on SIGUSR1 (log rotation): reopen files.
  virtual void reopen() const {}
};

// What a filter's config parser gets. `field.value` is the filter's settings (a map,
// possibly empty); report problems through `reader` (they become FILE:LINE:COL errors).
struct FilterParseContext {
  config::detail::Reader& reader;
  const config::detail::Field& field;
  std::string name;        // the filter's name as written
  std::string config_dir;  // directory of the config file, for relative paths
  bool global = false;     // in the global `filters:` list (else a route's)
  // The config being loaded, with its top-level settings (`redis:`, `api_keys:`,
  // `usage_plans:`) already read — for cross-checks only: never keep the pointer.
  const config::Config* config = nullptr;
};

// Returns null when there were errors (already reported through the reader).
using FilterParser = std::function<std::shared_ptr<const FilterFactory>(FilterParseContext& ctx)>;

// Registers a built-in filter; done by a static initializer in the filter's own folder.
bool registerFilter(const char* name, FilterParser parser);
const FilterParser* findFilter(std::string_view name);
// Plugins add filters to a registry of their own per config load (see plugins/), looked
// up before the built-in one.
class FilterRegistry {
 public:
  virtual ~FilterRegistry() = default;
  virtual const FilterParser* find(std::string_view name) const = 0;
  virtual std::vector<std::string> names() const { return {}; }  // for "known: ..." hints
};

#define SLUICE_REGISTER_FILTER(name, parser) \
  static const bool sluice_filter_registered_ = ::sluice::registerFilter(name, parser)

}  // namespace sluice
