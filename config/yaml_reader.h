// Internal to the config loader: walks yaml-cpp nodes, records every error with its
// 1-based position, substitutes ${VAR} in scalar values and turns scalars into typed
// values. It never stops at the first error and never throws to its caller.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sluice::config::detail {

// Expands ${VAR} and ${VAR:-default} (the default is used when VAR is unset or
// empty); "$${" is a literal "${". Each problem found is appended to `errors`.
// Applied to every scalar value after parsing (never to keys), so positions in errors
// stay exact; substituted text is not scanned again. Inside a flow list or map
// ("[a, b]") YAML needs the value quoted: ["${HOST}:80"].
bool substituteEnv(std::string_view in, std::string& out, std::vector<std::string>& errors);

// "host:port", "[v6]:port" or "hostname:port"; a hostname is resolved with
// getaddrinfo and the first IPv4/IPv6 result is kept. On failure `error` says why.
bool resolveAddress(const std::string& text, SocketAddress& out, std::string& error);

// The numeric form of an address: "127.0.0.1:8080", "[::1]:8080".
std::string numericAddress(const SocketAddress& address);

uint16_t addressPort(const SocketAddress& address);

// Names of listeners, services and routes end up in logs and metric labels.
bool isValidName(std::string_view name);

// An RFC 9110 token (method and header names).
bool isToken(std::string_view text);

// True if `path` is readable and holds a PEM certificate; else `problem` says why.
bool readCaFile(const std::string& path, std::string& problem);

// One entry of a YAML map, or one item of a list (then there is no key).
struct Field {
  std::string name;
  YAML::Node key;  // null node for list items
  YAML::Node value;
  bool has_key = false;
};

// The known keys of one YAML map.
class Fields {
 public:
  const Field* get(std::string_view name) const;
  const std::vector<Field>& all() const { return fields_; }
  std::vector<Field>& mutableAll() { return fields_; }

 private:
  std::vector<Field> fields_;
};

// What a map may contain: `allowed` keys are read; `unsupported` ones are design
// features this version does not have yet and are reported as such. A free-form map
// (services by name, response headers) takes any key.
struct Schema {
  std::vector<std::string_view> allowed;
  std::vector<std::string_view> unsupported = {};
  bool free_form = false;
  // Read like `allowed` but not offered in hints: the caller reports them itself.
  std::vector<std::string_view> hidden = {};
};

class Reader {
 public:
  Reader(std::string file, std::vector<Error>& errors) : file_(std::move(file)), errors_(errors) {}

  static Mark markOf(const YAML::Mark& mark);
  static Mark markOf(const YAML::Node& node) { return markOf(node.Mark()); }
  // Where to report a problem with a field's value. An empty value (`key:`) has the
  // position of whatever follows it, so it is reported at its key instead.
  static Mark valueMark(const Field& field);

  void error(Mark mark, std::string message);
  void error(const YAML::Node& node, std::string message) { error(markOf(node), message); }
  void error(const Field& field, std::string message) { error(valueMark(field), message); }
  size_t errorCount() const { return errors_.size(); }

  // Collects a map's entries into `out`, reporting duplicate, unknown and unsupported
  // keys. False (with "expected a map") if `field` is not a map.
  bool map(const Field& field, const Schema& schema, Fields& out);
  // The items of a list, as Fields without keys; empty items are reported and left out.
  // False (with "expected a list") if `field` is not a list.
  bool list(const Field& field, std::vector<Field>& out);
  // "missing required key 'x'" at the map when `fields` lacks it.
  const Field* required(const Field& map, const Fields& fields, std::string_view name);

  // Scalars, after ${VAR} substitution. Each reports its own error and returns false
  // (or nullopt).
  std::optional<std::string> string(const Field& field);
  bool integer(const Field& field, int64_t min, int64_t max, int64_t& out);
  bool duration(const Field& field, bool allow_zero, Duration& out);
  bool size(const Field& field, uint64_t& out);
  bool address(const Field& field, bool allow_port_zero, SocketAddress& out);

 private:
  std::string file_;
  std::vector<Error>& errors_;
};

}  // namespace sluice::config::detail
