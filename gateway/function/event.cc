// Builds API Gateway Lambda proxy events and maps replies back. Where AWS documents a
// behaviour we follow the documentation; where it does not, we follow what AWS's own
// emulators (SAM CLI, the .NET Lambda test tool) observed, and say so next to the code.
#include "gateway/function/event.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <exception>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "gateway/http/message.h"

namespace sluice::function {
namespace {

// One JSON type for events and replies. Not nlohmann::ordered_json: its objects insert in
// linear time, so a reply with 100k keys would hold the worker for seconds. Losing the
// order of distinct header names is harmless (RFC 9110 §5.3); values of one name, and
// cookies, are arrays and keep theirs.
using Json = nlohmann::json;
using config::PayloadFormat;

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUpperHex[] = "0123456789ABCDEF";

// ---------------------------------------------------------------------------------------
// Small text helpers

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Length of the well-formed UTF-8 sequence starting at data[i], or 0 when the bytes
// there are not one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8SequenceLength(std::string_view data, size_t i) {
  const auto b0 = static_cast<unsigned char>(data[i]);
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (data.size() - i < len) return 0;
  const auto b1 = static_cast<unsigned char>(data[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const auto b = static_cast<unsigned char>(data[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

// For the raw path and query: they travel percent-encoded, so a byte that is not
// part of valid UTF-8 is escaped (lossless) instead of being replaced by U+FFFD.
std::string escapeInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8SequenceLength(s, i);
    if (len == 0) {
      const auto b = static_cast<unsigned char>(s[i]);
      out += '%';
      out += kUpperHex[b >> 4];
      out += kUpperHex[b & 0xF];
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// application/x-www-form-urlencoded decoding, as API Gateway applies to query strings
// ('+' is a space).
std::string decodeQueryComponent(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  appendPercentDecoded(out, s, /*plus_is_space=*/true);
  return out;
}

// "12/Mar/2020:19:03:58 +0000" — the CLF time API Gateway uses. Month names are spelt
// out here so the process locale can never change them.
std::string clfTime(uint64_t epoch_ms) {
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto seconds = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
                kMonths[static_cast<size_t>(tm.tm_mon) % 12], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buf;
}

// The first DNS label of the host, without a port: "api" for "api.example.com:8443".
// IP literals have no meaningful label, so they are returned whole.
std::string domainPrefix(std::string_view authority) {
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return std::string(host.substr(0, close == std::string_view::npos ? host.size() : close + 1));
  }
  if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.find_first_not_of("0123456789.") == std::string_view::npos) return std::string(host);
  return std::string(host.substr(0, host.find('.')));
}

// ---------------------------------------------------------------------------------------
// Request side

// Headers grouped by name, case-insensitively, keeping the first spelling seen and
// every value in arrival order.
struct HeaderGroup {
  std::string name;
  std::vector<std::string_view> values;
};

std::vector<HeaderGroup> groupHeaders(const EventRequest& r, bool lowercase_names,
                                      std::string_view skip_lower) {
  std::vector<HeaderGroup> groups;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    std::string key = toLower(h.name);
    if (!skip_lower.empty() && key == skip_lower) continue;
    auto [it, inserted] = index.try_emplace(key, groups.size());
    if (inserted) groups.push_back({lowercase_names ? key : std::string(h.name), {}});
    groups[it->second].values.push_back(h.value);
  }
  return groups;
}

const http::Header* lastHeader(const EventRequest& r, std::string_view name) {
  const http::Header* found = nullptr;
  for (size_t i = 0; i < r.header_count; ++i) {
    if (http::iequals(r.headers[i].name, name)) found = &r.headers[i];
  }
  return found;
}

const http::Header* firstHeader(const EventRequest& r, std::string_view name) {
  for (size_t i = 0; i < r.header_count; ++i) {
    if (http::iequals(r.headers[i].name, name)) return &r.headers[i];
  }
  return nullptr;
}

struct QueryParam {
  std::string key;
  std::vector<std::string> values;
};

// Keys keep first-appearance order; "a" and "a=" both give "a": "". Pieces with an
// empty key ("=x", "&&") carry nothing addressable and are dropped.
std::vector<QueryParam> parseQuery(std::string_view raw) {
  std::vector<QueryParam> params;
  std::unordered_map<std::string, size_t> index;
  while (!raw.empty()) {
    const size_t amp = raw.find('&');
    const std::string_view piece = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    const size_t eq = piece.find('=');
    std::string key = decodeQueryComponent(piece.substr(0, eq));
    if (key.empty()) continue;
    std::string value =
        eq == std::string_view::npos ? std::string() : decodeQueryComponent(piece.substr(eq + 1));
    auto [it, inserted] = index.try_emplace(key, params.size());
    if (inserted) params.push_back({std::move(key), {}});
    params[it->second].values.push_back(std::move(value));
  }
  return params;
}

Json stringMap(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Json out = Json::object();
  for (const auto& [k, v] : pairs) out[k] = v;
  return out;
}

bool hasAuthorizer(const EventRequest& r) {
  return !r.principal.empty() || (r.authorizer != nullptr && !r.authorizer->empty());
}

// The authorizer's context as a flat map (what a Lambda authorizer produces); values
// are strings because that is all the filters hand us.
Json authorizerContext(const EventRequest& r) {
  Json ctx = Json::object();
  if (!r.principal.empty()) ctx["principalId"] = std::string(r.principal);
  if (r.authorizer != nullptr) {
    for (const auto& [k, v] : *r.authorizer) ctx[std::string(k)] = std::string(v);
  }
  return ctx;
}

struct Body {
  bool present = false;
  bool base64 = false;
  std::string text;
};

Body eventBody(const EventRequest& r) {
  Body b;
  if (r.body.empty()) return b;
  b.present = true;
  const http::Header* ct = firstHeader(r, "content-type");
  const bool binary_type = r.binary_media_types != nullptr &&
                           isBinaryMediaType(ct ? ct->value : "", *r.binary_media_types);
  // JSON strings must be valid UTF-8, so bytes that are not travel as base64 whatever
  // the content type says.
  if (binary_type || !isValidUtf8(r.body)) {
    b.base64 = true;
    b.text = base64Encode(r.body);
  } else {
    b.text = std::string(r.body);
  }
  return b;
}

std::string_view stageOf(const EventRequest& r) { return r.stage.empty() ? "$default" : r.stage; }

std::string dumpEvent(const Json& event) {
  // replace: any stray invalid UTF-8 in a header or decoded parameter becomes U+FFFD, so
  // the event is always valid JSON; never throws for encoding reasons.
  return event.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string buildV1(const EventRequest& r) {
  const std::string path = escapeInvalidUtf8(r.raw_path);
  const std::string_view stage = stageOf(r);
  const http::Header* ua = lastHeader(r, "user-agent");

  Json event = Json::object();
  event["resource"] = std::string(r.resource);
  event["path"] = path;
  event["httpMethod"] = std::string(r.method);

  Json headers = Json::object();
  Json multi_headers = Json::object();
  for (const HeaderGroup& g : groupHeaders(r, /*lowercase_names=*/false, "")) {
    headers[g.name] = std::string(g.values.back());  // the last one wins, as on AWS
    Json& list = multi_headers[g.name] = Json::array();
    for (std::string_view v : g.values) list.push_back(std::string(v));
  }
  event["headers"] = std::move(headers);
  event["multiValueHeaders"] = std::move(multi_headers);

  const std::vector<QueryParam> query = parseQuery(r.raw_query);
  if (query.empty()) {
    event["queryStringParameters"] = nullptr;
    event["multiValueQueryStringParameters"] = nullptr;
  } else {
    Json single = Json::object();
    Json multi = Json::object();
    for (const QueryParam& q : query) {
      single[q.key] = q.values.back();
      multi[q.key] = q.values;
    }
    event["queryStringParameters"] = std::move(single);
    event["multiValueQueryStringParameters"] = std::move(multi);
  }

  if (r.path_parameters.empty()) {
    event["pathParameters"] = nullptr;
  } else {
    Json params = Json::object();
    for (const auto& [k, v] : r.path_parameters) params[std::string(k)] = std::string(v);
    event["pathParameters"] = std::move(params);
  }
  event["stageVariables"] = (r.stage_variables == nullptr || r.stage_variables->empty())
                                ? Json(nullptr)
                                : stringMap(*r.stage_variables);

  Json identity = Json::object();
  for (const char* key : {"accessKey", "accountId", "caller", "cognitoAuthenticationProvider",
                          "cognitoAuthenticationType", "cognitoIdentityId", "cognitoIdentityPoolId",
                          "principalOrgId", "user", "userArn", "clientCert"}) {
    identity[key] = nullptr;
  }
  identity["apiKey"] = r.api_key.empty() ? Json(nullptr) : Json(std::string(r.api_key));
  identity["apiKeyId"] = r.api_key_id.empty() ? Json(nullptr) : Json(std::string(r.api_key_id));
  identity["sourceIp"] = std::string(r.source_ip);
  identity["userAgent"] = ua ? Json(std::string(ua->value)) : Json(nullptr);

  Json ctx = Json::object();
  ctx["accountId"] = std::string(r.account_id);
  ctx["apiId"] = std::string(r.api_id);
  ctx["authorizer"] = hasAuthorizer(r) ? authorizerContext(r) : Json(nullptr);
  ctx["domainName"] = std::string(r.domain_name);
  ctx["domainPrefix"] = domainPrefix(r.domain_name);
  ctx["extendedRequestId"] = std::string(r.request_id);
  ctx["httpMethod"] = std::string(r.method);
  ctx["identity"] = std::move(identity);
  // REST APIs reached on their execute-api URL report the path the client used, which
  // starts with the stage ("/prod/hello"); the $default stage has no such prefix.
  ctx["path"] = stage == "$default" ? path : "/" + std::string(stage) + path;
  ctx["protocol"] = std::string(r.protocol);
  ctx["requestId"] = std::string(r.request_id);
  ctx["requestTime"] = clfTime(r.time_epoch_ms);
  ctx["requestTimeEpoch"] = r.time_epoch_ms;
  ctx["resourceId"] = nullptr;  // sluice routes have no API Gateway resource ids
  ctx["resourcePath"] = std::string(r.resource);
  ctx["stage"] = std::string(stage);
  event["requestContext"] = std::move(ctx);

  Body body = eventBody(r);
  event["body"] = body.present ? Json(std::move(body.text)) : Json(nullptr);
  event["isBase64Encoded"] = body.base64;
  return dumpEvent(event);
}

std::string buildV2(const EventRequest& r) {
  const std::string raw_path = escapeInvalidUtf8(r.raw_path);
  const std::string_view stage = stageOf(r);
  const std::string_view route_key = r.route_key.empty() ? "$default" : r.route_key;
  const http::Header* ua = lastHeader(r, "user-agent");

  Json event = Json::object();
  event["version"] = "2.0";
  event["routeKey"] = std::string(route_key);
  event["rawPath"] = raw_path;
  event["rawQueryString"] = escapeInvalidUtf8(r.raw_query);

  Json cookies = Json::array();
  for (size_t i = 0; i < r.header_count; ++i) {
    if (!http::iequals(r.headers[i].name, "cookie")) continue;
    std::string_view rest = r.headers[i].value;
    while (!rest.empty()) {
      const size_t semi = rest.find(';');
      const std::string_view cookie = trimOws(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      if (!cookie.empty()) cookies.push_back(std::string(cookie));
    }
  }
  if (!cookies.empty()) event["cookies"] = std::move(cookies);

  // Cookie headers travel in `cookies` only; the rest are lower-cased and joined.
  Json headers = Json::object();
  for (const HeaderGroup& g : groupHeaders(r, /*lowercase_names=*/true, "cookie")) {
    std::string joined;
    for (size_t i = 0; i < g.values.size(); ++i) {
      if (i > 0) joined += ',';
      joined.append(g.values[i]);
    }
    headers[g.name] = std::move(joined);
  }
  event["headers"] = std::move(headers);

  const std::vector<QueryParam> query = parseQuery(r.raw_query);
  if (!query.empty()) {
    Json params = Json::object();
    for (const QueryParam& q : query) {
      std::string joined;
      for (size_t i = 0; i < q.values.size(); ++i) {
        if (i > 0) joined += ',';
        joined += q.values[i];
      }
      params[q.key] = std::move(joined);
    }
    event["queryStringParameters"] = std::move(params);
  }
  if (!r.path_parameters.empty()) {
    Json params = Json::object();
    for (const auto& [k, v] : r.path_parameters) params[std::string(k)] = std::string(v);
    event["pathParameters"] = std::move(params);
  }
  if (r.stage_variables != nullptr && !r.stage_variables->empty()) {
    event["stageVariables"] = stringMap(*r.stage_variables);
  }

  Json ctx = Json::object();
  ctx["accountId"] = std::string(r.account_id);
  ctx["apiId"] = std::string(r.api_id);
  if (hasAuthorizer(r)) {
    // HTTP APIs nest the context by authorizer kind: {"jwt": {"claims", "scopes"}},
    // {"lambda": {...}} or {"iam": {...}}. The filters hand us one flat string map
    // whatever produced it, and only the Lambda shape carries an arbitrary flat map
    // (JWT claims would need typed values and scopes), so everything goes under
    // "lambda", with principalId when there is one.
    ctx["authorizer"] = Json{{"lambda", authorizerContext(r)}};
  }
  ctx["domainName"] = std::string(r.domain_name);
  ctx["domainPrefix"] = domainPrefix(r.domain_name);
  ctx["http"] = Json{{"method", std::string(r.method)},
                     {"path", raw_path},
                     {"protocol", std::string(r.protocol)},
                     {"sourceIp", std::string(r.source_ip)},
                     {"userAgent", ua ? std::string(ua->value) : std::string()}};
  ctx["requestId"] = std::string(r.request_id);
  ctx["routeKey"] = std::string(route_key);
  ctx["stage"] = std::string(stage);
  ctx["time"] = clfTime(r.time_epoch_ms);
  ctx["timeEpoch"] = r.time_epoch_ms;
  event["requestContext"] = std::move(ctx);

  Body body = eventBody(r);
  if (body.present) event["body"] = std::move(body.text);
  event["isBase64Encoded"] = body.base64;
  return dumpEvent(event);
}

// ---------------------------------------------------------------------------------------
// Response side

MappedResponse malformed(std::string reason) {
  MappedResponse m;
  m.ok = false;
  m.status = 502;
  m.error = std::move(reason);
  return m;
}

// Headers that describe this hop or the framing of the message. A function that sets
// them would desynchronise the connection (Content-Length vs the real body) or switch
// protocols under the client, so they are renamed the way REST APIs rename them.
bool isRemappedHeader(std::string_view lower_name) {
  static const std::unordered_set<std::string_view> kNames = {
      "connection", "content-length", "keep-alive",        "proxy-connection",
      "te",         "trailer",        "transfer-encoding", "upgrade"};
  return kNames.count(lower_name) != 0;
}

bool validHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!http::isTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// field-value (RFC 9110 §5.5): visible bytes, SP, HTAB and obs-text. CR and LF above
// all: they would let a function write extra headers or a second response.
bool validHeaderValue(std::string_view value) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  }
  return true;
}

// Numbers and booleans are accepted and written as their JSON text (functions often
// send {"Access-Control-Max-Age": 600}); null means "no such header". Objects and
// arrays have no sensible text form and make the reply malformed.
bool headerValueText(const Json& v, std::string& out) {
  switch (v.type()) {
    case Json::value_t::string:
      out = v.get<std::string>();
      return true;
    case Json::value_t::boolean:
      out = v.get<bool>() ? "true" : "false";
      return true;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      out = v.dump();
      return true;
    default:
      return false;
  }
}

// statusCode: an integer, or a string of digits (REST APIs accept "200", and old AWS
// blueprints send it so); a float only when it is integral.
bool parseStatus(const Json& v, int64_t& out) {
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    out = u > 100000 ? 100000 : static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= -1e6 && d <= 1e6) || d != static_cast<double>(static_cast<int64_t>(d))) {
      return false;
    }
    out = static_cast<int64_t>(d);
    return true;
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty() || s.size() > 6) return false;
    int64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + (c - '0');
    }
    out = n;
    return true;
  }
  return false;
}

bool parseBoolFlag(const Json& v, bool& out) {
  if (v.is_null()) {
    out = false;
    return true;
  }
  if (v.is_boolean()) {
    out = v.get<bool>();
    return true;
  }
  if (v.is_string()) {  // "true"/"false": SAM CLI found API Gateway accepts these
    const std::string s = toLower(v.get_ref<const std::string&>());
    if (s == "true" || s == "false") {
      out = s == "true";
      return true;
    }
  }
  return false;
}

struct HeaderSink {
  std::vector<std::pair<std::string, std::string>>& headers;
  bool content_type_declared = false;  // also true for "Content-Type": null
  std::string error;

  bool add(std::string_view name, std::string value) {
    if (!validHeaderName(name)) {
      error = "invalid header name";
      return false;
    }
    if (!validHeaderValue(value)) {
      error = "invalid value for header " + std::string(name);
      return false;
    }
    const std::string lower_name = toLower(name);
    if (lower_name == "content-type") content_type_declared = true;
    if (isRemappedHeader(lower_name)) {
      headers.emplace_back("x-amzn-Remapped-" + std::string(name), std::move(value));
    } else {
      headers.emplace_back(std::string(name), std::move(value));
    }
    return true;
  }
};

MappedResponse mapStructured(PayloadFormat format, const Json& doc) {
  const bool v1 = format == PayloadFormat::kV1;
  if (v1) {
    // REST APIs reject replies with fields they do not know ("Malformed Lambda proxy
    // response"); HTTP APIs ignore them.
    static const std::unordered_set<std::string_view> kAllowed = {
        "statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "base64Encoded"};
    for (const auto& [key, value] : doc.items()) {
      if (kAllowed.count(key) == 0) return malformed("unexpected field " + key);
    }
  }

  MappedResponse m;
  const auto status_it = doc.find("statusCode");
  if (status_it == doc.end()) return malformed("statusCode missing");
  int64_t status = 0;
  if (!parseStatus(*status_it, status)) return malformed("statusCode is not an integer");
  // 1xx are interim responses in HTTP: sent as the final one, the client would wait for
  // another response and read the body as one.
  if (status < 200 || status > 599) {
    return malformed("statusCode " + std::to_string(status) + " out of range");
  }
  m.status = static_cast<uint16_t>(status);

  bool base64 = false;
  auto flag_it = doc.find("isBase64Encoded");
  if (v1 && flag_it == doc.end()) flag_it = doc.find("base64Encoded");
  if (flag_it != doc.end() && !parseBoolFlag(*flag_it, base64)) {
    return malformed("isBase64Encoded is not a boolean");
  }

  std::string body;
  if (const auto it = doc.find("body"); it != doc.end() && !it->is_null()) {
    if (!it->is_string()) return malformed("body is not a string");
    body = it->get<std::string>();
  }

  HeaderSink sink{m.headers, false, {}};
  std::unordered_set<std::string> multi_names;  // lower-cased
  const Json* multi = nullptr;
  if (v1) {
    // HTTP APIs (2.0) do not read multiValueHeaders; REST APIs merge them with headers.
    if (const auto it = doc.find("multiValueHeaders"); it != doc.end() && !it->is_null()) {
      if (!it->is_object()) return malformed("multiValueHeaders is not an object");
      multi = &*it;
      for (const auto& [name, values] : multi->items()) multi_names.insert(toLower(name));
    }
  }
  if (const auto it = doc.find("headers"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) return malformed("headers is not an object");
    for (const auto& [name, value] : it->items()) {
      // A name in both maps: the multi-value list wins (it can say everything the
      // single value can).
      if (multi_names.count(toLower(name)) != 0) continue;
      if (value.is_null()) {
        if (http::iequals(name, "content-type")) sink.content_type_declared = true;
        continue;
      }
      std::string text;
      if (!headerValueText(value, text)) return malformed("header " + name + " is not a string");
      if (!sink.add(name, std::move(text))) return malformed(sink.error);
    }
  }
  if (multi != nullptr) {
    for (const auto& [name, values] : multi->items()) {
      if (values.is_null()) {
        if (http::iequals(name, "content-type")) sink.content_type_declared = true;
        continue;
      }
      if (!values.is_array()) return malformed("multiValueHeaders." + name + " is not a list");
      for (const Json& value : values) {
        if (value.is_null()) continue;
        std::string text;
        if (!headerValueText(value, text)) {
          return malformed("multiValueHeaders." + name + " has a non-string value");
        }
        if (!sink.add(name, std::move(text))) return malformed(sink.error);
      }
    }
  }
  if (!v1) {
    if (const auto it = doc.find("cookies"); it != doc.end() && !it->is_null()) {
      if (!it->is_array()) return malformed("cookies is not a list");
      for (const Json& cookie : *it) {
        if (cookie.is_null()) continue;
        if (!cookie.is_string()) return malformed("cookies has a non-string value");
        if (!sink.add("Set-Cookie", cookie.get<std::string>())) return malformed(sink.error);
      }
    }
  }
  // What the client gets when the function names no type: REST APIs answer JSON, HTTP
  // APIs plain text (observed behaviour, reproduced by AWS's own emulators; the docs are
  // silent). "Content-Type": null suppresses the default on AWS, and here too.
  if (!sink.content_type_declared) {
    m.headers.emplace_back("Content-Type", v1 ? "application/json" : "text/plain; charset=utf-8");
  }

  if (base64) {
    if (!base64Decode(body, m.body)) return malformed("body is not valid base64");
  } else {
    m.body = std::move(body);
  }
  m.ok = true;
  return m;
}

MappedResponse mapReply(PayloadFormat format, std::string_view payload) {
  const Json doc = Json::parse(payload.begin(), payload.end(), nullptr,
                               /*allow_exceptions=*/false);
  if (doc.is_discarded()) return malformed("reply is not valid JSON");
  if (format == PayloadFormat::kV2 && !(doc.is_object() && doc.contains("statusCode"))) {
    // Format 2.0 infers a response from any JSON without a statusCode: 200, JSON, the
    // reply as the body. A JSON string is the body's text itself (the documented
    // "Hello from Lambda!" example); anything else is passed on exactly as received.
    MappedResponse m;
    m.ok = true;
    m.status = 200;
    m.headers.emplace_back("Content-Type", "application/json");
    m.body = doc.is_string() ? doc.get<std::string>() : std::string(payload);
    return m;
  }
  if (!doc.is_object()) return malformed("reply is not a JSON object");
  return mapStructured(format, doc);
}

}  // namespace

std::string buildEvent(const EventRequest& request) {
  return request.format == PayloadFormat::kV1 ? buildV1(request) : buildV2(request);
}

MappedResponse mapResponse(PayloadFormat format, std::string_view payload) {
  // Whatever the function sends, the caller gets an answer to act on, never an
  // exception on the event loop.
  try {
    return mapReply(format, payload);
  } catch (const std::exception& e) {
    return malformed(std::string("cannot map reply: ") + e.what());
  } catch (...) {
    return malformed("cannot map reply");
  }
}

bool isBinaryMediaType(std::string_view content_type, const std::vector<std::string>& types) {
  const auto essence = [](std::string_view t) {
    return toLower(trimOws(t.substr(0, t.find(';'))));
  };
  const std::string type = essence(content_type);
  for (const std::string& entry : types) {
    const std::string pattern = essence(entry);
    if (pattern.empty()) continue;
    if (pattern == "*/*") return true;  // everything is binary, even an untyped body
    if (type.empty()) continue;
    if (pattern.size() >= 2 && pattern.compare(pattern.size() - 2, 2, "/*") == 0) {
      // "image/*": the same top-level type.
      const size_t slash = type.find('/');
      if (slash != std::string::npos && type.compare(0, slash + 1, pattern, 0, slash + 1) == 0 &&
          slash + 1 == pattern.size() - 1) {
        return true;
      }
    } else if (pattern == type) {
      return true;
    }
  }
  return false;
}

std::string base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16 |
                       static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8 |
                       static_cast<unsigned char>(data[i + 2]);
    out += kBase64Alphabet[n >> 18 & 63];
    out += kBase64Alphabet[n >> 12 & 63];
    out += kBase64Alphabet[n >> 6 & 63];
    out += kBase64Alphabet[n & 63];
  }
  if (const size_t rest = data.size() - i; rest > 0) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += kBase64Alphabet[n >> 18 & 63];
    out += kBase64Alphabet[n >> 12 & 63];
    out += rest == 2 ? kBase64Alphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

// Standard alphabet only. Padding may be left out (common encoders drop it and the usual
// decoders accept that) but, when present, must be exact; whitespace and URL-safe
// characters are errors rather than guesses.
bool base64Decode(std::string_view text, std::string& out) {
  static constexpr auto kValues = [] {
    std::array<int8_t, 256> values{};
    values.fill(-1);
    for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(kBase64Alphabet[i])] = i;
    return values;
  }();
  out.clear();
  size_t len = text.size();
  size_t padding = 0;
  while (padding < 2 && len > 0 && text[len - 1] == '=') {
    --len;
    ++padding;
  }
  if (padding > 0 && text.size() % 4 != 0) return false;
  if (len % 4 == 1) return false;
  if (padding > 0 && (len + padding) % 4 != 0) return false;
  out.reserve(len / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; ++i) {
    const int v = kValues[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      out.clear();
      return false;
    }
    acc = (acc << 6 | static_cast<uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xFF);
    }
  }
  return true;
}

bool isValidUtf8(std::string_view data) {
  for (size_t i = 0; i < data.size();) {
    // ASCII fast path: bodies are mostly ASCII.
    if (static_cast<unsigned char>(data[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8SequenceLength(data, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void appendPercentDecoded(std::string& out, std::string_view in, bool plus_is_space) {
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    int hi = c == '%' && i + 2 < in.size() ? http::hexDigitValue(in[i + 1]) : -1;
    int lo = hi >= 0 ? http::hexDigitValue(in[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
  }
}

}  // namespace sluice::function
