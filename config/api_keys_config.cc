#include "config/api_keys_config.h"

#include <openssl/evp.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "config/admin_config.h"
#include "gateway/http/message.h"

namespace sluice::config::detail {
namespace {

const Schema kPlan{{"throttle", "quota", "routes"}};
const Schema kThrottle{{"rate", "burst"}};
const Schema kQuota{{"limit", "period", "offset"}};
const Schema kRouteOverride{{"throttle"}};
const Schema kApiKey{{"name", "key", "usage_plan", "enabled"}};
const Schema kFreeForm{{}, {}, true};

constexpr std::string_view kHashPrefix = "sha256:";
// The local quota store packs a window's count into 32 bits (gateway/limits/quota.h).
constexpr int64_t kMaxQuotaLimit = 4'000'000'000;
constexpr double kMaxRate = 1e9;

std::string upperCase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// A finite decimal number ("10", "0.5", "1e3") in (0, kMaxRate], and >= `min`.
bool readNumber(Reader& reader, const Field& field, double min, double& out) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected a number");
    return false;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return false;
  char* end = nullptr;
  double value = text->empty() ? NAN : std::strtod(text->c_str(), &end);
  if (text->empty() || end != text->c_str() + text->size() || !std::isfinite(value)) {
    reader.error(field, "expected a number");
    return false;
  }
  if (value <= 0 || value < min) {
    reader.error(field, min <= 0 ? "must be greater than 0" : "must be at least 1");
    return false;
  }
  if (value > kMaxRate) {
    reader.error(field, "must be at most 1000000000");
    return false;
  }
  out = value;
  return true;
}

void readThrottle(Reader& reader, const Field& field, Throttle& out) {
  out.mark = Reader::markOf(field.key);
  Fields fields;
  if (!reader.map(field, kThrottle, fields)) return;
  const Field* rate = reader.required(field, fields, "rate");
  const Field* burst = reader.required(field, fields, "burst");
  bool ok = rate != nullptr && burst != nullptr;
  // rate > 0: a zero rate is a plan that refuses everything, which a disabled key does.
  if (rate != nullptr) ok = readNumber(reader, *rate, 0, out.rate) && ok;
  if (burst != nullptr) ok = readNumber(reader, *burst, 1, out.burst) && ok;
  out.set = ok;
}

void readPeriod(Reader& reader, const Field& field, Quota& out) {
  static const std::string kHint = "expected DAY, WEEK, MONTH or a duration like 10s";
  if (!field.value.IsScalar()) {
    reader.error(field, kHint);
    return;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return;
  std::string upper = upperCase(*text);
  if (upper == "DAY") {
    out.period = QuotaPeriod::kDay;
  } else if (upper == "WEEK") {
    out.period = QuotaPeriod::kWeek;
  } else if (upper == "MONTH") {
    out.period = QuotaPeriod::kMonth;
  } else if (Duration d; parseDuration(*text, d)) {
    // Windows are counted in whole seconds from the epoch, in Redis as locally.
    if (d.count() < 1000 || d.count() % 1000 != 0) {
      reader.error(field, "a custom quota period must be a whole number of seconds, at least 1s");
      return;
    }
    out.period = QuotaPeriod::kCustom;
    out.length = d;
  } else {
    reader.error(field, kHint);
  }
}

void readQuota(Reader& reader, const Field& field, Quota& out) {
  Fields fields;
  if (!reader.map(field, kQuota, fields)) return;
  bool ok = true;
  if (const Field* f = reader.required(field, fields, "limit")) {
    int64_t limit = 0;
    ok = reader.integer(*f, 1, kMaxQuotaLimit, limit);
    out.limit = static_cast<uint64_t>(limit);
  } else {
    ok = false;
  }
  size_t errors = reader.errorCount();
  if (const Field* f = reader.required(field, fields, "period")) readPeriod(reader, *f, out);
  ok = ok && reader.errorCount() == errors;
  if (const Field* f = fields.get("offset")) {
    int64_t max = 0;
    const char* what = "";
    switch (out.period) {
      case QuotaPeriod::kDay:
        what = "DAY";
        break;
      case QuotaPeriod::kWeek:
        max = 6, what = "WEEK (0 = Sunday)";
        break;
      case QuotaPeriod::kMonth:
        max = 27, what = "MONTH (day of the month - 1)";
        break;
      case QuotaPeriod::kCustom:
        what = "a custom period";
        break;
    }
    int64_t offset = 0;
    if (!f->value.IsScalar()) {
      reader.error(*f, "expected an integer");
      ok = false;
    } else if (reader.integer(*f, INT32_MIN, INT32_MAX, offset)) {
      if (offset < 0 || offset > max) {
        reader.error(*f, max == 0 ? std::string("the offset of ") + what + " must be 0"
                                  : "the offset of " + std::string(what) +
                                        " must be between 0 and " + std::to_string(max));
        ok = false;
      }
      out.offset = static_cast<int>(offset);
    } else {
      ok = false;
    }
  }
  out.set = ok;
}

void readPlanRoutes(Reader& reader, const Field& field, UsagePlan& plan) {
  Fields routes;
  if (!reader.map(field, kFreeForm, routes)) return;
  for (const Field& route : routes.all()) {
    Fields fields;
    if (!reader.map(route, kRouteOverride, fields)) continue;
    Throttle throttle;
    if (const Field* f = reader.required(route, fields, "throttle"))
      readThrottle(reader, *f, throttle);
    throttle.mark = Reader::markOf(route.key);  // where checkUsagePlanRoutes points
    plan.route_throttles.emplace(route.name, throttle);
  }
}

void readPlan(Reader& reader, const Field& field, UsagePlan& out) {
  if (field.value.IsNull()) return;  // a plan that only names and meters its keys
  Fields fields;
  if (!reader.map(field, kPlan, fields)) return;
  if (const Field* f = fields.get("throttle")) readThrottle(reader, *f, out.throttle);
  if (const Field* f = fields.get("quota")) readQuota(reader, *f, out.quota);
  if (const Field* f = fields.get("routes")) readPlanRoutes(reader, *f, out);
}

// `key:` as a value (normally ${ENV}) or `sha256:<64 hex>`; messages never quote it.
bool readKey(Reader& reader, const Field& field, std::string& sha) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected a string (the key, or sha256:<64 hex digits>)");
    return false;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return false;
  if (text->empty()) {
    // An unset ${VAR:-} must not become a key that anyone can send.
    reader.error(field, "the key is empty");
    return false;
  }
  if (!std::string_view(*text).starts_with(kHashPrefix)) {
    sha = sha256(*text);
    return true;
  }
  std::string_view hex = std::string_view(*text).substr(kHashPrefix.size());
  if (hex.size() != 64) {
    reader.error(field, "expected sha256: followed by 64 hex digits (got " +
                            std::to_string(hex.size()) + " characters)");
    return false;
  }
  sha.resize(32);
  for (size_t i = 0; i < 32; ++i) {
    int hi = http::hexDigitValue(hex[2 * i]), lo = http::hexDigitValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      reader.error(field,
                   "expected sha256: followed by 64 hex digits (found a character that "
                   "is not a hex digit)");
      return false;
    }
    sha[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

void readUsagePlans(Reader& reader, const Field& field, std::map<std::string, UsagePlan>& out) {
  Fields plans;
  if (!reader.map(field, kFreeForm, plans)) return;
  for (const Field& item : plans.all()) {
    UsagePlan plan;
    plan.name = item.name;
    plan.mark = Reader::markOf(item.key);
    if (!isValidName(item.name)) {
      reader.error(item.key,
                   "invalid name '" + item.name + "' (use letters, digits, '_', '-' and '.')");
    }
    readPlan(reader, item, plan);
    out.emplace(plan.name, std::move(plan));
  }
}

void readApiKeys(Reader& reader, const Field& field, const std::map<std::string, UsagePlan>& plans,
                 std::vector<ApiKey>& out) {
  std::vector<Field> items;
  if (!reader.list(field, items)) return;
  std::map<std::string, int> names;   // name → line
  std::map<std::string, int> hashes;  // sha → line
  for (const Field& item : items) {
    ApiKey key;
    key.mark = Reader::markOf(item.value);
    Fields fields;
    if (!reader.map(item, kApiKey, fields)) continue;
    bool ok = true;
    if (const Field* f = reader.required(item, fields, "name")) {
      std::optional<std::string> name = reader.string(*f);
      if (name && !isValidName(*name)) {
        reader.error(*f, "invalid name '" + *name + "' (use letters, digits, '_', '-' and '.')");
        name.reset();
      }
      if (name) {
        auto [it, fresh] = names.emplace(*name, Reader::valueMark(*f).line);
        if (!fresh) {
          reader.error(*f, "duplicate API key name '" + *name + "' (first at line " +
                               std::to_string(it->second) + ")");
        }
        key.name = *name;
      }
      ok = name.has_value();
    } else {
      ok = false;
    }
    if (const Field* f = reader.required(item, fields, "key")) {
      if (readKey(reader, *f, key.sha256)) {
        auto [it, fresh] = hashes.emplace(key.sha256, Reader::valueMark(*f).line);
        if (!fresh) {
          // Two names for one secret: a request could not tell which one it is.
          reader.error(*f, "this key is the same as the key at line " + std::to_string(it->second));
          ok = false;
        }
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (const Field* f = fields.get("usage_plan")) {
      if (std::optional<std::string> plan = reader.string(*f)) {
        if (plans.count(*plan) == 0) {
          std::string known;
          for (const auto& [name, p] : plans) known += (known.empty() ? "" : ", ") + name;
          reader.error(*f, "unknown usage plan '" + *plan + "'" +
                               (known.empty() ? "; no usage_plans are defined"
                                              : "; defined plans: " + known));
          ok = false;
        }
        key.usage_plan = *plan;
      }
    }
    if (const Field* f = fields.get("enabled")) readBool(reader, *f, key.enabled);
    if (ok) out.push_back(std::move(key));
  }
}

void checkUsagePlanRoutes(Reader& reader, const Config& config) {
  std::set<std::string_view> routes;
  for (const Route& r : config.routes) routes.insert(r.name);
  for (const auto& [name, plan] : config.usage_plans) {
    for (const auto& [route, throttle] : plan.route_throttles) {
      if (routes.count(route) != 0) continue;
      reader.error(throttle.mark, "usage plan '" + name + "' names unknown route '" + route + "'");
    }
  }
}

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string toHex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) {
    out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
    out += kHex[static_cast<unsigned char>(c) & 0xF];
  }
  return out;
}

}  // namespace sluice::config::detail
