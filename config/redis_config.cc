#include "config/redis_config.h"

#include <cctype>
#include <fstream>
#include <iterator>

#include "config/admin_config.h"
#include "gateway/http/message.h"

namespace sluice::config::detail {
namespace {

const Schema kRedis{
    {"url", "username", "password", "db", "connect_timeout", "command_timeout", "pool", "tls"}};
const Schema kTls{{"ca", "verify"}};

constexpr unsigned kMaxPool = 16;
constexpr int64_t kMaxDb = 0x7fffffff;

bool percentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int hi = i + 1 < in.size() ? http::hexDigitValue(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? http::hexDigitValue(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

bool parseRedisUrl(std::string_view url, RedisUrl& out, std::string& error) {
  static const std::string kHint =
      "expected a URL like redis://[user:password@]host:port/db or rediss://...";
  std::string_view rest = url;
  std::string scheme;
  size_t sep = rest.find("://");
  if (sep != std::string_view::npos) scheme = http::asciiLower(rest.substr(0, sep));
  if (scheme == "redis") {
    out.tls = false;
  } else if (scheme == "rediss") {
    out.tls = true;
  } else {
    error = kHint;
    return false;
  }
  rest.remove_prefix(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    error =
        "query strings and fragments are not supported in the Redis URL (use the keys of "
        "'redis:' instead)";
    return false;
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  size_t at = authority.rfind('@');
  std::string_view userinfo;
  std::string_view hostport = authority;
  if (at != std::string_view::npos) {
    userinfo = authority.substr(0, at);
    hostport = authority.substr(at + 1);
  }
  if (!userinfo.empty()) {
    size_t colon = userinfo.find(':');
    if (!percentDecode(userinfo.substr(0, colon), out.username)) {
      error = "invalid %-escape in the user name of the Redis URL";
      return false;
    }
    if (colon != std::string_view::npos) {
      out.has_password = true;
      if (!percentDecode(userinfo.substr(colon + 1), out.password)) {
        error = "invalid %-escape in the password of the Redis URL";
        return false;
      }
    }
  }
  std::string_view port;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']' after the IPv6 address in the Redis URL";
      return false;
    }
    out.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        error = kHint;
        return false;
      }
      port = after.substr(1);
      if (port.empty()) port = "x";  // "host:" alone is an error
    }
  } else {
    size_t colon = hostport.rfind(':');
    out.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) port = "x";
    }
  }
  if (out.host.empty()) {
    error = "missing host in the Redis URL";
    return false;
  }
  out.port = 6379;
  if (!port.empty()) {
    if (!allDigits(port) || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
        std::stoul(std::string(port)) > 65535) {
      error = "invalid port in the Redis URL (expected 1 to 65535)";
      return false;
    }
    out.port = static_cast<uint16_t>(std::stoul(std::string(port)));
  }
  out.has_db = false;
  out.db = 0;
  if (!path.empty()) {
    if (!allDigits(path) || path.size() > 10 || std::stoull(std::string(path)) > kMaxDb) {
      error = "invalid database number in the Redis URL (expected /0, /1, ...)";
      return false;
    }
    out.has_db = true;
    out.db = static_cast<unsigned>(std::stoull(std::string(path)));
  }
  if (out.has_password) {
    // Keep what was written, minus the password.
    size_t colon = userinfo.find(':');
    size_t start = url.size() - rest.size();
    out.redacted = std::string(url.substr(0, start)) + std::string(userinfo.substr(0, colon)) +
                   ":***@" + std::string(rest.substr(at + 1));
  } else {
    out.redacted = std::string(url);
  }
  return true;
}

void readRedis(Reader& reader, const Field& field, const std::string& config_dir, Redis& out) {
  out.mark = Reader::markOf(field.key);
  Fields fields;
  if (!reader.map(field, kRedis, fields)) return;
  const Field* url_field = reader.required(field, fields, "url");
  if (url_field == nullptr) return;
  std::optional<std::string> url = reader.string(*url_field);
  if (!url) return;
  RedisUrl parsed;
  std::string problem;
  if (!parseRedisUrl(*url, parsed, problem)) {
    reader.error(*url_field, problem);
    return;
  }
  out.url = parsed.redacted;
  out.tls = parsed.tls;
  out.host = parsed.host;
  out.port = parsed.port;
  out.username = parsed.username;
  out.password = parsed.password;
  out.db = parsed.db;
  bool ok = true;
  std::string hostport =
      (out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host) + ":" +
      std::to_string(out.port);
  if (!resolveAddress(hostport, out.address, problem)) {
    reader.error(*url_field, "Redis host: " + problem);
    ok = false;
  }
  if (const Field* f = fields.get("username")) {
    if (std::optional<std::string> v = reader.string(*f)) {
      out.username = std::move(*v);
    } else {
      ok = false;
    }
  }
  if (const Field* f = fields.get("password")) {
    if (std::optional<std::string> v = reader.string(*f)) {
      out.password = std::move(*v);
    } else {
      ok = false;
    }
  }
  if (!out.username.empty() && out.password.empty()) {
    reader.error(fields.get("username") ? *fields.get("username") : *url_field,
                 "a Redis user name needs a password (AUTH takes both)");
    ok = false;
  }
  if (const Field* f = fields.get("db")) {
    int64_t db = 0;
    if (reader.integer(*f, 0, kMaxDb, db)) {
      out.db = static_cast<unsigned>(db);
    } else {
      ok = false;
    }
  }
  if (const Field* f = fields.get("connect_timeout")) {
    ok &= reader.duration(*f, false, out.connect_timeout);
  }
  if (const Field* f = fields.get("command_timeout")) {
    ok &= reader.duration(*f, false, out.command_timeout);
  }
  if (const Field* f = fields.get("pool")) {
    int64_t pool = 0;
    if (reader.integer(*f, 1, kMaxPool, pool)) {
      out.pool = static_cast<unsigned>(pool);
    } else {
      ok = false;
    }
  }
  if (const Field* f = fields.get("tls")) {
    Fields tls;
    if (!out.tls) {
      reader.error(*f, "'tls' settings apply to rediss:// URLs only");
      ok = false;
    } else if (reader.map(*f, kTls, tls)) {
      if (const Field* ca = tls.get("ca")) {
        if (std::optional<std::string> path = reader.string(*ca)) {
          std::string full = !path->empty() && (*path)[0] != '/' ? config_dir + "/" + *path : *path;
          if (path->empty()) {
            reader.error(*ca, "expected a file name");
            ok = false;
          } else if (!readCaFile(full, problem)) {
            reader.error(*ca, problem);
            ok = false;
          } else {
            out.tls_ca = full;
          }
        } else {
          ok = false;
        }
      }
      if (const Field* v = tls.get("verify")) ok &= readBool(reader, *v, out.tls_verify);
    } else {
      ok = false;
    }
  }
  out.enabled = ok;
}

}  // namespace sluice::config::detail
