#include "config/yaml_reader.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace sluice::config::detail {

namespace {

constexpr std::string_view kDurationHint = "expected a duration like 250ms, 3s, 10m, 2h";

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool isEnvName(std::string_view name) {
  if (name.empty() || isDigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isAlpha(c) || isDigit(c) || c == '_'; });
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknownKeyMessage(std::string_view key, const Schema& schema) {
  std::string message = "unknown key '" + std::string(key) + "'";
  std::string_view closest;
  size_t best = std::min<size_t>(3, key.size() / 3 + 1);  // only near misses
  for (std::string_view allowed : schema.allowed) {
    size_t distance = editDistance(key, allowed);
    if (distance < best) best = distance, closest = allowed;
  }
  if (!closest.empty()) message += " (did you mean '" + std::string(closest) + "'?)";
  return message + "; allowed keys: " + join(schema.allowed);
}

bool isAll(std::string_view text, bool (*pred)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}

}  // namespace

bool substituteEnv(std::string_view in, std::string& out, std::vector<std::string>& errors) {
  out.clear();
  size_t before = errors.size();
  size_t i = 0;
  while (i < in.size()) {
    if (in.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0) {
      out += in[i++];
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      errors.push_back("unterminated '${' (write '$${' for a literal '${')");
      return false;
    }
    std::string_view inner = in.substr(i + 2, close - i - 2);
    i = close + 1;
    std::optional<std::string_view> fallback;
    if (size_t sep = inner.find(":-"); sep != std::string_view::npos) {
      fallback = inner.substr(sep + 2);
      inner = inner.substr(0, sep);
    }
    if (!isEnvName(inner)) {
      errors.push_back("invalid environment variable name '" + std::string(inner) +
                       "' (expected ${NAME} or ${NAME:-default})");
      continue;
    }
    const char* value = std::getenv(std::string(inner).c_str());
    if (value != nullptr && (*value != '\0' || !fallback)) {
      out += value;
    } else if (fallback) {
      out += *fallback;
    } else {
      errors.push_back("environment variable " + std::string(inner) + " is not set");
    }
  }
  return errors.size() == before;
}

bool isValidName(std::string_view name) {
  return isAll(name,
               [](char c) { return isAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.'; });
}

bool isToken(std::string_view text) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return isAll(text, [](char c) {
    return isAlpha(c) || isDigit(c) || kSpecials.find(c) != std::string_view::npos;
  });
}

bool resolveAddress(const std::string& text, SocketAddress& out, std::string& error) {
  std::string host;
  std::string port;
  bool bracketed = !text.empty() && text[0] == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "expected [IPv6]:port, like [::1]:8080, got '" + text + "'";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      error = "expected host:port, like 127.0.0.1:8080, got '" + text + "'";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      error = "IPv6 addresses must be written in brackets, like [::1]:8080";
      return false;
    }
  }
  if (host.empty()) {
    error = "missing host in '" + text + "' (use 0.0.0.0 or [::] for all interfaces)";
    return false;
  }
  if (!isAll(port, isDigit) || port.size() > 5 || std::stoul(port) > 65535) {
    error = "invalid port '" + port + "' (expected 0 to 65535)";
    return false;
  }
  if (!bracketed && !isAll(host, [](char c) {
        return isAlpha(c) || isDigit(c) || c == '.' || c == '-' || c == '_';
      })) {
    error = "invalid host '" + host + "'";
    return false;
  }

  addrinfo hints{};
  hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
  addrinfo* results = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &results);
  if (rc != 0) {
    if (bracketed) {
      error = "invalid IPv6 address '" + host + "'";
    } else {
      error = "cannot resolve host '" + host +
              "': " + (rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc));
    }
    return false;
  }
  bool found = false;
  for (addrinfo* ai = results; ai != nullptr && !found; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(out.addr)) {
      continue;
    }
    out.addr = {};
    std::memcpy(&out.addr, ai->ai_addr, ai->ai_addrlen);
    out.len = static_cast<socklen_t>(ai->ai_addrlen);
    found = true;
  }
  freeaddrinfo(results);
  if (!found) {
    error = "host '" + host + "' has no IPv4 or IPv6 address";
    return false;
  }
  out.text = text;
  return true;
}

uint16_t addressPort(const SocketAddress& address) {
  if (address.addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address.addr)->sin_port);
  }
  if (address.addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address.addr)->sin6_port);
  }
  return 0;
}

std::string numericAddress(const SocketAddress& address) {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (address.addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.addr);
    inet_ntop(AF_INET, &v4->sin_addr, buffer, sizeof(buffer));
    return std::string(buffer) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (address.addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, buffer, sizeof(buffer));
    return "[" + std::string(buffer) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return address.text;
}

const Field* Fields::get(std::string_view name) const {
  for (const Field& field : fields_) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

Mark Reader::markOf(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

Mark Reader::valueMark(const Field& field) {
  if (field.has_key && field.value.IsNull()) {
    Mark key = markOf(field.key);
    Mark value = markOf(field.value);
    if (value.line != key.line) return key;
  }
  return markOf(field.value);
}

void Reader::error(Mark mark, std::string message) {
  errors_.push_back({file_, mark.line, mark.column, std::move(message)});
}

bool Reader::map(const Field& field, const Schema& schema, Fields& out) {
  if (!field.value.IsMap()) {
    error(field, "expected a map");
    return false;
  }
  std::vector<Field>& fields = out.mutableAll();
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      error(key, "expected a key name");
      continue;
    }
    const std::string& name = key.Scalar();
    if (const Field* first = out.get(name)) {
      error(key, "duplicate key '" + name + "' (first at line " +
                     std::to_string(markOf(first->key).line) + ")");
      continue;
    }
    if (!schema.free_form) {
      auto in = [&name](const std::vector<std::string_view>& names) {
        return std::find(names.begin(), names.end(), name) != names.end();
      };
      if (in(schema.unsupported)) {
        error(key, "'" + name + "' is not supported by this version of sluice");
        continue;
      }
      if (!in(schema.allowed) && !in(schema.hidden)) {
        error(key, unknownKeyMessage(name, schema));
        continue;
      }
    }
    fields.push_back({name, key, entry.second, true});
  }
  return true;
}

bool Reader::list(const Field& field, std::vector<Field>& out) {
  if (!field.value.IsSequence()) {
    error(field, "expected a list");
    return false;
  }
  size_t index = 0;
  for (const YAML::Node& item : field.value) {
    ++index;
    // An empty item ("-" alone) has the position of the next token, which would point
    // at the wrong line: name it by number at the list instead.
    if (item.IsNull()) {
      error(field, "item " + std::to_string(index) + " of the list is empty");
      continue;
    }
    out.push_back({field.name, YAML::Node(), item, false});
  }
  return true;
}

const Field* Reader::required(const Field& map, const Fields& fields, std::string_view name) {
  const Field* field = fields.get(name);
  if (field == nullptr) error(map, "missing required key '" + std::string(name) + "'");
  return field;
}

std::optional<std::string> Reader::string(const Field& field) {
  if (!field.value.IsScalar()) {
    error(field, "expected a string");
    return std::nullopt;
  }
  std::string out;
  std::vector<std::string> problems;
  if (!substituteEnv(field.value.Scalar(), out, problems)) {
    for (std::string& problem : problems) error(field, std::move(problem));
    return std::nullopt;
  }
  return out;
}

bool Reader::integer(const Field& field, int64_t min, int64_t max, int64_t& out) {
  if (!field.value.IsScalar()) {
    error(field, "expected an integer");
    return false;
  }
  std::optional<std::string> text = string(field);
  if (!text) return false;
  std::string_view digits = *text;
  bool negative = !digits.empty() && digits[0] == '-';
  if (negative) digits.remove_prefix(1);
  int64_t value = 0;
  bool ok = isAll(digits, isDigit);
  for (char c : digits) {
    if (!ok) break;
    ok = !__builtin_mul_overflow(value, 10, &value) &&
         !__builtin_add_overflow(value, c - '0', &value);
  }
  if (!ok) {
    error(field, "expected an integer");
    return false;
  }
  if (negative) value = -value;
  if (value < min || value > max) {
    error(field, max == INT64_MAX || max == UINT32_MAX
                     ? "must be at least " + std::to_string(min)
                     : "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return false;
  }
  out = value;
  return true;
}

bool Reader::duration(const Field& field, bool allow_zero, Duration& out) {
  if (!field.value.IsScalar()) {
    error(field, std::string(kDurationHint));
    return false;
  }
  std::optional<std::string> text = string(field);
  if (!text) return false;
  if (!parseDuration(*text, out)) {
    std::string message(kDurationHint);
    if (isAll(*text, isDigit)) message += " (a bare number has no unit)";
    error(field, message);
    return false;
  }
  if (!allow_zero && out.count() == 0) {
    error(field, "must be greater than 0");
    return false;
  }
  return true;
}

bool Reader::size(const Field& field, uint64_t& out) {
  static constexpr std::string_view kHint = "expected a size like 1048576, 512KiB, 10MiB, 1GB";
  if (!field.value.IsScalar()) {
    error(field, std::string(kHint));
    return false;
  }
  std::optional<std::string> text = string(field);
  if (!text) return false;
  if (!parseSize(*text, out)) {
    error(field, std::string(kHint));
    return false;
  }
  return true;
}

bool Reader::address(const Field& field, bool allow_port_zero, SocketAddress& out) {
  if (!field.value.IsScalar()) {
    error(field, "expected an address like 127.0.0.1:8080");
    return false;
  }
  std::optional<std::string> text = string(field);
  if (!text) return false;
  std::string problem;
  if (!resolveAddress(*text, out, problem)) {
    error(field, problem);
    return false;
  }
  if (!allow_port_zero && addressPort(out) == 0) {
    error(field, "port 0 is not valid here");
    return false;
  }
  return true;
}

bool readCaFile(const std::string& path, std::string& problem) {
  // A directory opens as a stream but throws on read: check for a regular file first.
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    problem = "CA file '" + path + "' is not a regular file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problem = "cannot read CA file '" + path + "'";
    return false;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    problem = "CA file '" + path + "' holds no PEM certificate";
    return false;
  }
  return true;
}

}  // namespace sluice::config::detail
