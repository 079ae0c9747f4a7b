#include "plugins/settings_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace sluice::plugins {
namespace {

using config::detail::Field;
using config::detail::Reader;

bool allOf(std::string_view text, bool (*pred)(char)) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!pred(c)) return false;
  }
  return true;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isOctal(char c) { return c >= '0' && c <= '7'; }

bool integer(std::string_view text, int base, nlohmann::json& out) {
  bool negative = false;
  if (base == 10 && !text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (!negative) {
    out = value;
  } else if (value <= static_cast<uint64_t>(INT64_MAX) + 1) {
    out = static_cast<int64_t>(0 - value);
  } else {
    return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool isFloat(std::string_view t) {
  size_t i = 0;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < t.size() && isDigit(t[i])) ++i, ++int_digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && isDigit(t[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < t.size() && isDigit(t[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == t.size();
}

// The YAML 1.2 core schema for plain scalars. What JSON cannot hold (.inf, .nan,
// integers beyond 64 bits) stays a string rather than becoming something else.
nlohmann::json typedScalar(const std::string& text) {
  std::string_view t = text;
  if (t.empty() || t == "~" || t == "null" || t == "Null" || t == "NULL") return nullptr;
  if (t == "true" || t == "True" || t == "TRUE") return true;
  if (t == "false" || t == "False" || t == "FALSE") return false;
  nlohmann::json number;
  std::string_view body = t;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
  if (allOf(body, isDigit) && integer(t, 10, number)) return number;
  if (t.starts_with("0x") && allOf(t.substr(2), isHex) && integer(t.substr(2), 16, number)) {
    return number;
  }
  if (t.starts_with("0o") && allOf(t.substr(2), isOctal) && integer(t.substr(2), 8, number)) {
    return number;
  }
  if (isFloat(t)) {
    double value = std::strtod(text.c_str(), nullptr);
    if (std::isfinite(value)) return value;
  }
  return text;
}

bool quoted(const YAML::Node& node) {
  // yaml-cpp tags quoted and block scalars "!" and plain ones "?"; an explicit !!str
  // also means "a string".
  const std::string& tag = node.Tag();
  return tag == "!" || tag == "tag:yaml.org,2002:str";
}

}  // namespace

bool settingsToJson(Reader& reader, const Field& field, nlohmann::json& out) {
  const YAML::Node& node = field.value;
  switch (node.Type()) {
    case YAML::NodeType::Null:
      out = nullptr;
      return true;
    case YAML::NodeType::Scalar: {
      std::optional<std::string> text = reader.string(field);
      if (!text) return false;
      out = quoted(node) ? nlohmann::json(*text) : typedScalar(*text);
      return true;
    }
    case YAML::NodeType::Sequence: {
      out = nlohmann::json::array();
      bool ok = true;
      for (const YAML::Node& item : node) {
        nlohmann::json value;
        ok = settingsToJson(reader, Field{"", YAML::Node(), item, false}, value) && ok;
        out.push_back(std::move(value));
      }
      return ok;
    }
    case YAML::NodeType::Map: {
      out = nlohmann::json::object();
      bool ok = true;
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) {
          reader.error(it->first, "expected a string key");
          ok = false;
          continue;
        }
        const std::string& key = it->first.Scalar();
        if (out.contains(key)) {
          reader.error(it->first, "duplicate key '" + key + "'");
          ok = false;
          continue;
        }
        nlohmann::json value;
        ok = settingsToJson(reader, Field{key, it->first, it->second, true}, value) && ok;
        out[key] = std::move(value);
      }
      return ok;
    }
    default:
      reader.error(field, "expected a value");
      return false;
  }
}

}  // namespace sluice::plugins
