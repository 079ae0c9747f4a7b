#include "filters/rate_limit/rate_limit_config.h"

#include <cmath>
#include <cstdlib>

#include "config/yaml_reader.h"

namespace sluice::rate_limit {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Reader;
using config::detail::Schema;

constexpr const char* kKnown =
    "known: client_ip, api_key, route, header:NAME, context:NAME, const:TEXT";

// A number in [min, 1e9]; `min_exclusive`: above min rather than at least min.
bool number(Reader& reader, const Field& f, double min, bool min_exclusive, double& out) {
  std::optional<std::string> text = reader.string(f);
  if (!text) return false;
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (text->empty() || end != text->c_str() + text->size() || !std::isfinite(v)) {
    reader.error(f, "expected a number");
    return false;
  }
  if ((min_exclusive ? v <= min : v < min) || v > 1e9) {
    reader.error(f, std::string(min_exclusive ? "expected a number above " : "expected at least ") +
                        (min == 0 ? "0" : "1") + " (and at most 1000000000)");
    return false;
  }
  out = v;
  return true;
}

bool descriptor(Reader& reader, const Field& f, Descriptor& out) {
  std::optional<std::string> text = reader.string(f);
  if (!text) return false;
  std::string_view t = *text;
  using Kind = Descriptor::Kind;
  if (t == "client_ip") {
    out.kind = Kind::kClientIp;
  } else if (t == "api_key") {
    out.kind = Kind::kApiKey;
  } else if (t == "route") {
    out.kind = Kind::kRoute;
  } else if (t.starts_with("header:")) {
    out.kind = Kind::kHeader;
    out.arg = t.substr(7);
    if (!config::detail::isToken(out.arg) || out.arg.empty()) {
      reader.error(f, "expected a header name after 'header:'");
      return false;
    }
    for (char& c : out.arg) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  } else if (t.starts_with("context:")) {
    out.kind = Kind::kContext;
    out.arg = t.substr(8);
    if (out.arg.empty()) {
      reader.error(f, "expected a context value name after 'context:'");
      return false;
    }
  } else if (t.starts_with("const:")) {
    out.kind = Kind::kConstant;
    appendEscaped(out.arg, t.substr(6));
  } else {
    // A typo here would silently turn into one bucket for everybody: refuse it.
    reader.error(f, "unknown key descriptor '" + *text + "' (" + kKnown + ")");
    return false;
  }
  return true;
}

// rate, burst and key of one limit, from `fields` (the filter's own map or an item of
// `limits:`).
bool readLimit(Reader& reader, const Field& where, const Fields& fields, LimitSettings& out) {
  const Field* rate = reader.required(where, fields, "rate");
  if (!rate || !number(reader, *rate, 0, true, out.spec.rate)) return false;
  out.spec.burst = std::max(1.0, out.spec.rate);
  if (const Field* f = fields.get("burst")) {
    if (!number(reader, *f, 1, false, out.spec.burst)) return false;
  }
  if (const Field* f = fields.get("key")) {
    std::vector<Field> items;
    if (!reader.list(*f, items)) return false;
    bool ok = true;
    for (const Field& item : items) {
      Descriptor d;
      if (descriptor(reader, item, d)) {
        out.key.push_back(std::move(d));
      } else {
        ok = false;
      }
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void appendEscaped(std::string& out, std::string_view value) {
  // Most values have nothing to escape: one plain scan, then a single append.
  size_t i = 0;
  while (i < value.size() && value[i] != '%' && value[i] != ':') ++i;
  out.append(value.data(), i);
  for (; i < value.size(); ++i) {
    char c = value[i];
    if (c == '%') {
      out.append("%25");
    } else if (c == ':') {
      out.append("%3A");
    } else {
      out.push_back(c);
    }
  }
}

bool parseSettings(FilterParseContext& ctx, Settings& out) {
  static const Schema kSchema{
      {"rate", "burst", "key", "limits", "store", "on_redis_failure", "instances_hint", "name"}};
  static const Schema kLimitSchema{{"rate", "burst", "key"}};
  Reader& reader = ctx.reader;
  Fields fields;
  if (!reader.map(ctx.field, kSchema, fields)) return false;
  out.global = ctx.global;
  bool ok = true;

  if (const Field* f = fields.get("name")) {
    std::optional<std::string> v = reader.string(*f);
    if (!v) return false;
    if (v->empty() || !config::detail::isValidName(*v)) {
      reader.error(*f, "expected a name (letters, digits, '_', '-', '.')");
      return false;
    }
    out.name = *v;
  }

  const Field* limits_field = fields.get("limits");
  if (limits_field) {
    for (const char* single : {"rate", "burst", "key"}) {
      if (const Field* f = fields.get(single)) {
        reader.error(f->key, std::string("'") + single +
                                 "' goes inside each item of 'limits' when 'limits' is given");
        ok = false;
      }
    }
    std::vector<Field> items;
    if (!reader.list(*limits_field, items)) return false;
    if (items.empty()) {
      reader.error(*limits_field, "expected at least one limit");
      return false;
    }
    if (items.size() > limits::Limiter::kMaxLimits) {
      reader.error(*limits_field, "at most 8 limits per filter");
      return false;
    }
    for (const Field& item : items) {
      Fields limit_fields;
      LimitSettings limit;
      if (!reader.map(item, kLimitSchema, limit_fields) ||
          !readLimit(reader, item, limit_fields, limit)) {
        ok = false;
        continue;
      }
      out.limits.push_back(std::move(limit));
    }
  } else {
    if (!fields.get("rate")) {
      reader.error(ctx.field.key, "rate_limit needs 'rate' (or a list of 'limits')");
      return false;
    }
    LimitSettings limit;
    if (!readLimit(reader, ctx.field, fields, limit)) return false;
    out.limits.push_back(std::move(limit));
  }

  const Field* store = fields.get("store");
  if (store) {
    std::optional<std::string> v = reader.string(*store);
    if (!v) return false;
    if (*v == "local") {
      out.store.store = limits::Store::kLocal;
    } else if (*v == "redis") {
      out.store.store = limits::Store::kRedis;
      if (!ctx.config || !ctx.config->redis.enabled) {
        reader.error(*store, "store: redis needs a top-level 'redis:' section");
        ok = false;
      }
    } else {
      reader.error(*store, "expected local or redis");
      return false;
    }
  }
  bool redis = out.store.store == limits::Store::kRedis;
  if (const Field* f = fields.get("on_redis_failure")) {
    std::optional<std::string> v = reader.string(*f);
    if (!v) return false;
    if (*v == "allow") {
      out.store.on_failure = limits::OnRedisFailure::kAllow;
    } else if (*v == "deny") {
      out.store.on_failure = limits::OnRedisFailure::kDeny;
    } else if (*v == "local") {
      out.store.on_failure = limits::OnRedisFailure::kLocal;
    } else {
      reader.error(*f, "expected allow, deny or local");
      return false;
    }
    if (!redis) {
      reader.error(f->key, "on_redis_failure applies to store: redis only");
      ok = false;
    }
  }
  if (const Field* f = fields.get("instances_hint")) {
    int64_t v = 0;
    if (!reader.integer(*f, 1, 10000, v)) return false;
    out.store.instances_hint = static_cast<unsigned>(v);
    if (!redis) {
      reader.error(f->key, "instances_hint applies to store: redis only");
      ok = false;
    }
  }
  return ok;
}

}  // namespace sluice::rate_limit
