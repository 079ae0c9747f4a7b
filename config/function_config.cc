#include "config/function_config.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "config/admin_config.h"
#include "gateway/http/message.h"

namespace sluice::config::detail {
namespace {

// Keys of each runtime; a key of the other runtime gets its own message.
const std::vector<std::string_view> kCommonKeys{"runtime", "payload_format", "timeout", "memory_mb",
                                                "binary_media_types"};
const std::vector<std::string_view> kProcessKeys{
    "command",   "handler",       "working_dir",  "environment",   "max_concurrency",
    "max_queue", "queue_timeout", "idle_timeout", "min_instances", "init_timeout"};
const std::vector<std::string_view> kLambdaKeys{
    "endpoint",        "function_name",        "qualifier", "region", "credentials", "invocation",
    "connect_timeout", "max_idle_connections", "tls"};
const Schema kCredentials{{"access_key_id", "secret_access_key", "session_token"}};
const Schema kTls{{"ca", "verify"}};
const Schema kPricing{{"per_million_requests", "per_gb_second"}};
const Schema kStage{{"name", "variables"}};
const Schema kFreeForm{{}, {}, true};

// Lambda's own bounds: 128 MB to 10,240 MB; 15 minutes at most.
constexpr int64_t kMinMemory = 128;
constexpr int64_t kMaxMemory = 10'240;
constexpr Duration kMaxTimeout{15 * 60 * 1000};

Schema functionSchema() {
  Schema s;
  for (auto* list : {&kCommonKeys, &kProcessKeys, &kLambdaKeys}) {
    s.allowed.insert(s.allowed.end(), list->begin(), list->end());
  }
  return s;
}

bool contains(const std::vector<std::string_view>& keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string absolutePath(const std::string& config_dir, const std::string& path) {
  std::string full = !path.empty() && path[0] == '/' ? path : config_dir + "/" + path;
  char resolved[PATH_MAX];
  if (realpath(full.c_str(), resolved) != nullptr) return resolved;
  return full;
}

const char* envOr(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// http(s)://host[:port] with no path: the Lambda service root.
bool parseEndpoint(std::string_view url, Function& out, std::string& error) {
  static const std::string kHint =
      "expected a URL like https://lambda.us-east-1.amazonaws.com or http://127.0.0.1:9001";
  std::string lower = http::asciiLower(url.substr(0, 8));
  std::string_view rest;
  if (lower.starts_with("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (lower.starts_with("http://")) {
    out.tls = false;
    rest = url.substr(7);
  } else {
    error = kHint;
    return false;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    error = "the endpoint is the service root: no path, query or user info (" + kHint + ")";
    return false;
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']' after the IPv6 address in the endpoint";
      return false;
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        error = kHint;
        return false;
      }
      port = after.substr(1);
      if (port.empty()) port = "x";
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) port = "x";
  }
  if (host.empty()) {
    error = "missing host in the endpoint";
    return false;
  }
  if (rest[0] == '[' && host.find(':') == std::string_view::npos) {
    // Not bracketed again below: it would be looked up as a host name.
    error = "endpoint host: invalid IPv6 address '" + std::string(host) + "'";
    return false;
  }
  out.host = std::string(host);
  out.port = out.tls ? 443 : 80;
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      error = "invalid port in the endpoint (expected 1 to 65535)";
      return false;
    }
    out.port = static_cast<uint16_t>(value);
  }
  return true;
}

// A map of string → string (environment, stage variables), sorted by key.
void readStringMap(Reader& reader, const Field& field, bool env_names,
                   std::vector<std::pair<std::string, std::string>>& out) {
  Fields entries;
  if (!reader.map(field, kFreeForm, entries)) return;
  for (const Field& e : entries.all()) {
    bool valid = !e.name.empty();
    for (char c : e.name) {
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                (!env_names && (c == '-' || c == '.'));
      valid = valid && ok;
    }
    if (env_names && valid && std::isdigit(static_cast<unsigned char>(e.name[0]))) valid = false;
    if (!valid) {
      reader.error(e.key, env_names ? "invalid environment variable name '" + e.name +
                                          "' (letters, digits and '_', not starting with a digit)"
                                    : "invalid variable name '" + e.name +
                                          "' (letters, digits, '_', '-' and '.')");
      continue;
    }
    if (!e.value.IsScalar()) {
      reader.error(e, "expected a string");
      continue;
    }
    std::optional<std::string> value = reader.string(e);
    if (!value) continue;
    if (env_names && value->find('\0') != std::string::npos) {
      reader.error(e, "environment values must not contain NUL");
      continue;
    }
    out.emplace_back(e.name, std::move(*value));
  }
  std::sort(out.begin(), out.end());
}

// The reserved variables sluice sets itself: a user value would be silently ignored.
bool reservedEnv(std::string_view name) {
  static const std::set<std::string_view> kReserved{"AWS_LAMBDA_RUNTIME_API",
                                                    "_HANDLER",
                                                    "LAMBDA_TASK_ROOT",
                                                    "AWS_LAMBDA_FUNCTION_NAME",
                                                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                                    "AWS_LAMBDA_FUNCTION_VERSION",
                                                    "AWS_LAMBDA_LOG_GROUP_NAME",
                                                    "AWS_LAMBDA_LOG_STREAM_NAME",
                                                    "AWS_LAMBDA_INITIALIZATION_TYPE"};
  return kReserved.count(name) != 0;
}

void readProcess(Reader& reader, const Field& item, const Fields& fields,
                 const std::string& config_dir, Function& out) {
  if (const Field* f = reader.required(item, fields, "command")) {
    std::vector<Field> args;
    if (f->value.IsScalar()) {
      reader.error(*f, "expected a list: [program, arg, ...]");
    } else if (reader.list(*f, args)) {
      if (args.empty()) reader.error(*f, "expected at least the program to run");
      for (const Field& a : args) {
        if (std::optional<std::string> s = reader.string(a)) {
          if (s->empty() || s->find('\0') != std::string::npos) {
            reader.error(a, "expected a non-empty argument");
          }
          out.command.push_back(std::move(*s));
        }
      }
    }
  }
  if (const Field* f = fields.get("handler")) {
    if (std::optional<std::string> s = reader.string(*f)) out.handler = std::move(*s);
  }
  out.working_dir = absolutePath(config_dir, ".");
  if (const Field* f = fields.get("working_dir")) {
    if (std::optional<std::string> s = reader.string(*f)) {
      std::string dir = absolutePath(config_dir, *s);
      struct stat st {};
      if (s->empty() || stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        reader.error(*f, "working_dir '" + *s + "' is not a directory");
      }
      out.working_dir = dir;
    }
  }
  if (const Field* f = fields.get("environment")) {
    readStringMap(reader, *f, /*env_names=*/true, out.environment);
    for (const auto& [name, value] : out.environment) {
      if (reservedEnv(name)) {
        reader.error(*f, "'" + name + "' is set by sluice; it cannot be set in 'environment'");
      }
    }
  }
  if (!out.command.empty() && !out.command[0].empty()) {
    // A missing program would only show at the first request, as 502s: say it now.
    const Field* f = fields.get("command");
    // Resolved here, like execvp would, so that the child after fork has nothing to
    // look up (and PATH is the function's own when its environment sets one).
    const std::string& program = out.command[0];
    auto executable = [](const std::string& path) {
      struct stat st {};
      // A directory passes access(X_OK) but cannot be executed.
      return access(path.c_str(), X_OK) == 0 && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    };
    if (program.find('/') != std::string::npos) {
      std::string path = program[0] == '/' ? program : out.working_dir + "/" + program;
      if (executable(path)) out.program = path;
    } else {
      const char* env_path = std::getenv("PATH");
      std::string_view dirs = env_path ? env_path : "/usr/local/bin:/usr/bin:/bin";
      for (const auto& [k, v] : out.environment) {
        if (k == "PATH") dirs = v;
      }
      while (out.program.empty() && !dirs.empty()) {
        size_t colon = dirs.find(':');
        std::string dir(dirs.substr(0, colon));
        dirs = colon == std::string_view::npos ? "" : dirs.substr(colon + 1);
        std::string path = (dir.empty() ? out.working_dir : dir) + "/" + program;
        if (executable(path)) out.program = path;
      }
    }
    if (out.program.empty()) {
      reader.error(*f, program.find('/') != std::string::npos
                           ? "command: '" + program + "' is not an executable file (relative " +
                                 "paths start from working_dir)"
                           : "command: program '" + program + "' not found in PATH");
    }
  }
  int64_t n = 0;
  if (const Field* f = fields.get("max_concurrency")) {
    if (reader.integer(*f, 1, 10'000, n)) out.max_concurrency = n;
  }
  if (const Field* f = fields.get("max_queue")) {
    if (reader.integer(*f, 0, 1'000'000, n)) out.max_queue = n;
  }
  if (const Field* f = fields.get("min_instances")) {
    if (reader.integer(*f, 0, 10'000, n)) out.min_instances = n;
    if (out.min_instances > out.max_concurrency) {
      reader.error(*f, "min_instances (" + std::to_string(out.min_instances) +
                           ") cannot exceed max_concurrency (" +
                           std::to_string(out.max_concurrency) + ")");
    }
  }
  if (const Field* f = fields.get("queue_timeout")) reader.duration(*f, true, out.queue_timeout);
  if (const Field* f = fields.get("idle_timeout")) reader.duration(*f, false, out.idle_timeout);
  if (const Field* f = fields.get("init_timeout")) reader.duration(*f, false, out.init_timeout);
}

void readLambda(Reader& reader, const Field& item, const Fields& fields,
                const std::string& config_dir, Function& out) {
  out.function_name = out.name;
  bool region_ok = true;
  if (const Field* f = fields.get("region")) {
    region_ok = false;
    if (std::optional<std::string> s = reader.string(*f)) {
      region_ok = !s->empty() && std::all_of(s->begin(), s->end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-';
      });
      if (!region_ok) reader.error(*f, "invalid region '" + *s + "' (like us-east-1)");
      out.region = std::move(*s);
    }
  }
  std::string problem;
  const Field* endpoint = fields.get("endpoint");
  out.endpoint = "https://lambda." + out.region + ".amazonaws.com";
  // Checked (and looked up) only when it is what the user meant: not the default built
  // from a region already reported, nor in place of an endpoint that could not be read.
  bool endpoint_read = region_ok;
  if (endpoint != nullptr) {
    std::optional<std::string> s = reader.string(*endpoint);
    endpoint_read = s.has_value();
    if (s) out.endpoint = std::move(*s);
  }
  bool endpoint_ok = endpoint_read && parseEndpoint(out.endpoint, out, problem);
  if (endpoint_read && !endpoint_ok) {
    reader.error(endpoint != nullptr ? Reader::valueMark(*endpoint) : Reader::markOf(item.key),
                 problem);
  } else if (endpoint_ok) {
    std::string hostport =
        (out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host) + ":" +
        std::to_string(out.port);
    if (!resolveAddress(hostport, out.address, problem)) {
      reader.error(endpoint != nullptr ? Reader::valueMark(*endpoint) : Reader::markOf(item.key),
                   "endpoint host: " + problem);
    }
  }
  if (const Field* f = fields.get("function_name")) {
    if (std::optional<std::string> s = reader.string(*f)) {
      if (s->empty() || s->size() > 170 ||
          s->find_first_of(std::string_view("/?#% \r\n\0", 9)) != std::string::npos) {
        reader.error(*f, "invalid function name '" + *s + "' (a name, partial ARN or ARN)");
      }
      out.function_name = std::move(*s);
    }
  }
  if (const Field* f = fields.get("qualifier")) {
    if (std::optional<std::string> s = reader.string(*f)) {
      bool ok = !s->empty() && s->size() <= 128 && std::all_of(s->begin(), s->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '$';
      });
      if (!ok) reader.error(*f, "invalid qualifier '" + *s + "' (a version or alias)");
      out.qualifier = std::move(*s);
    }
  }
  if (const Field* f = fields.get("invocation")) {
    if (std::optional<std::string> s = reader.string(*f)) {
      if (*s == "event") {
        out.invocation_event = true;
      } else if (*s != "request_response") {
        reader.error(*f, "unknown invocation '" + *s + "'; expected request_response or event");
      }
    }
  }
  const Field* creds = fields.get("credentials");
  if (creds != nullptr) {
    Fields c;
    if (reader.map(*creds, kCredentials, c)) {
      // An empty key (an unset ${VAR:-}) would sign every request with nothing.
      for (auto [key, target] : {std::pair{"access_key_id", &out.access_key_id},
                                 std::pair{"secret_access_key", &out.secret_access_key}}) {
        if (const Field* f = reader.required(*creds, c, key)) {
          if (auto s = reader.string(*f)) {
            if (s->empty()) {
              reader.error(*f, std::string("'") + key +
                                   "' is empty (leave 'credentials' out to use "
                                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
            }
            *target = std::move(*s);
          }
        }
      }
      if (const Field* f = c.get("session_token")) {
        if (auto s = reader.string(*f)) out.session_token = std::move(*s);
      }
    }
  } else {
    out.access_key_id = envOr("AWS_ACCESS_KEY_ID");
    out.secret_access_key = envOr("AWS_SECRET_ACCESS_KEY");
    out.session_token = envOr("AWS_SESSION_TOKEN");
    if (out.access_key_id.empty() || out.secret_access_key.empty()) {
      reader.error(item.key,
                   "function '" + out.name +
                       "' needs AWS credentials: set 'credentials: {access_key_id, "
                       "secret_access_key}' or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    }
  }
  for (const std::string* s : {&out.access_key_id, &out.secret_access_key, &out.session_token}) {
    if (std::any_of(s->begin(), s->end(), [](char c) { return c <= ' ' || c > '~'; })) {
      // Never echo the value: it may be a secret.
      reader.error(creds != nullptr ? Reader::valueMark(*creds) : Reader::markOf(item.key),
                   "AWS credentials must be printable ASCII without spaces");
      break;
    }
  }
  if (const Field* f = fields.get("connect_timeout")) {
    reader.duration(*f, false, out.connect_timeout);
  }
  int64_t n = 0;
  if (const Field* f = fields.get("max_idle_connections")) {
    if (reader.integer(*f, 0, 10'000, n)) out.max_idle_connections = n;
  }
  if (const Field* f = fields.get("tls")) {
    Fields tls;
    if (endpoint_ok && !out.tls) {
      reader.error(*f, "'tls' settings apply to https:// endpoints only");
    } else if (reader.map(*f, kTls, tls)) {
      if (const Field* ca = tls.get("ca")) {
        if (std::optional<std::string> path = reader.string(*ca)) {
          std::string full = absolutePath(config_dir, *path);
          if (path->empty()) {
            reader.error(*ca, "expected a file name");
          } else if (!readCaFile(full, problem)) {
            reader.error(*ca, problem);
          } else {
            out.tls_ca = full;
          }
        }
      }
      if (const Field* v = tls.get("verify")) readBool(reader, *v, out.tls_verify);
    }
  }
}

}  // namespace

void readFunctions(Reader& reader, const Field& field, const std::string& config_dir,
                   std::map<std::string, Function>& out) {
  static const Schema kFunction = functionSchema();
  Fields functions;
  if (!reader.map(field, kFreeForm, functions)) return;
  for (const Field& item : functions.all()) {
    Function fn;
    fn.name = item.name;
    fn.mark = Reader::markOf(item.key);
    if (!isValidName(item.name)) {
      reader.error(item.key,
                   "invalid name '" + item.name + "' (use letters, digits, '_', '-' and '.')");
    }
    Fields fields;
    if (!reader.map(item, kFunction, fields)) {
      out.emplace(fn.name, std::move(fn));
      continue;
    }
    bool runtime_known = false;
    if (const Field* f = reader.required(item, fields, "runtime")) {
      if (std::optional<std::string> s = reader.string(*f)) {
        if (*s == "process") {
          fn.runtime = FunctionRuntime::kProcess;
          runtime_known = true;
        } else if (*s == "lambda") {
          fn.runtime = FunctionRuntime::kLambda;
          runtime_known = true;
        } else {
          reader.error(*f, "unknown runtime '" + *s + "'; expected process or lambda");
        }
      }
    }
    if (const Field* f = fields.get("payload_format")) {
      if (std::optional<std::string> s = reader.string(*f)) {
        if (*s == "1.0") {
          fn.payload_format = PayloadFormat::kV1;
        } else if (*s == "2.0") {
          fn.payload_format = PayloadFormat::kV2;
        } else {
          reader.error(*f, "unknown payload_format '" + *s + "'; expected \"1.0\" or \"2.0\"");
        }
      }
    }
    if (const Field* f = fields.get("timeout")) {
      if (reader.duration(*f, false, fn.timeout) && fn.timeout > kMaxTimeout) {
        reader.error(*f, "timeout cannot exceed 15m (Lambda's limit)");
      }
    }
    if (const Field* f = fields.get("memory_mb")) {
      int64_t n = 0;
      if (reader.integer(*f, kMinMemory, kMaxMemory, n)) fn.memory_mb = n;
    }
    if (const Field* f = fields.get("binary_media_types")) {
      std::vector<Field> types;
      if (reader.list(*f, types)) {
        for (const Field& t : types) {
          std::optional<std::string> s = reader.string(t);
          if (!s) continue;
          size_t slash = s->find('/');
          if (slash == std::string::npos || slash == 0 || slash + 1 == s->size()) {
            reader.error(t, "invalid media type '" + *s + "' (like image/png, image/* or */*)");
            continue;
          }
          fn.binary_media_types.push_back(std::move(*s));
        }
      }
    }
    if (runtime_known) {
      const auto& other = fn.runtime == FunctionRuntime::kProcess ? kLambdaKeys : kProcessKeys;
      const char* mine = fn.runtime == FunctionRuntime::kProcess ? "process" : "lambda";
      const char* theirs = fn.runtime == FunctionRuntime::kProcess ? "lambda" : "process";
      for (const Field& f : fields.all()) {
        if (contains(other, f.name)) {
          reader.error(f.key,
                       "'" + f.name + "' applies to runtime: " + theirs + ", not runtime: " + mine);
        }
      }
      if (fn.runtime == FunctionRuntime::kProcess) {
        readProcess(reader, item, fields, config_dir, fn);
      } else {
        readLambda(reader, item, fields, config_dir, fn);
      }
    }
    out.emplace(fn.name, std::move(fn));
  }
}

void readFunctionPricing(Reader& reader, const Field& field, FunctionPricing& out) {
  Fields fields;
  if (!reader.map(field, kPricing, fields)) return;
  for (auto [key, target] : {std::pair{"per_million_requests", &out.per_million_requests},
                             std::pair{"per_gb_second", &out.per_gb_second}}) {
    const Field* f = fields.get(key);
    if (f == nullptr) continue;
    std::optional<std::string> s = reader.string(*f);
    if (!s) continue;
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s->c_str(), &end);
    if (s->empty() || end != s->c_str() + s->size() || errno != 0 || !(v >= 0) || v > 1e9) {
      reader.error(*f, "expected a price in dollars (a number, 0 or more)");
      continue;
    }
    *target = v;
  }
}

void readStage(Reader& reader, const Field& field, Stage& out) {
  auto checkName = [&](const Field& f, const std::string& name) {
    bool ok =
        !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '$';
        });
    if (!ok) reader.error(f, "invalid stage name '" + name + "' (letters, digits, '_', '-')");
    return ok;
  };
  out.set = true;
  if (field.value.IsScalar()) {
    if (std::optional<std::string> s = reader.string(field)) {
      if (checkName(field, *s)) out.name = std::move(*s);
    }
    return;
  }
  Fields fields;
  if (!reader.map(field, kStage, fields)) return;
  if (const Field* f = fields.get("name")) {
    if (std::optional<std::string> s = reader.string(*f)) {
      if (checkName(*f, *s)) out.name = std::move(*s);
    }
  }
  if (const Field* f = fields.get("variables")) {
    readStringMap(reader, *f, /*env_names=*/false, out.variables);
  }
}

}  // namespace sluice::config::detail
