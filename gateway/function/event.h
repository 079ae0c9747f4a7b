// API Gateway proxy events and responses, the way Amazon API Gateway builds and maps
// them: payload format 1.0 (REST API) and 2.0 (HTTP API). Pure functions over plain
// data, shared by both function runtimes; nothing here touches sockets or the loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "gateway/http/message.h"

namespace sluice::function {

// Everything an event is built from. Views must stay valid during buildEvent().
struct EventRequest {
  config::PayloadFormat format = config::PayloadFormat::kV2;
  std::string_view method;                // "GET"
  std::string_view raw_path;              // as received, percent-encoding kept ("/hello/a%20b")
  std::string_view raw_query;             // after '?', without it ("a=1&a=2"); "" when none
  std::string_view protocol;              // "HTTP/1.1"
  const http::Header* headers = nullptr;  // as they would be forwarded (in order)
  size_t header_count = 0;
  std::string_view source_ip;
  std::string_view request_id;  // requestContext.requestId (and 1.0 extendedRequestId)
  std::string_view resource;    // the route's path template ("/hello/{name}")
  std::string_view route_key;   // 2.0: "GET /hello/{name}" (or "$default")
  std::string_view stage;       // "$default", "prod", ...
  const std::vector<std::pair<std::string, std::string>>* stage_variables = nullptr;
  // Route parameters, already percent-decoded: {"name", "a b"}; "proxy" for {proxy+}.
  std::vector<std::pair<std::string_view, std::string_view>> path_parameters;
  std::string_view api_key;     // 1.0 identity.apiKey ("" = null)
  std::string_view api_key_id;  // 1.0 identity.apiKeyId ("" = null)
  std::string_view principal;   // authorizer principalId ("" = none)
  // Authorizer context (JWT claims, authorizer output); empty = no authorizer.
  const std::vector<std::pair<std::string_view, std::string_view>>* authorizer = nullptr;
  uint64_t time_epoch_ms = 0;    // when the request arrived
  std::string_view domain_name;  // the Host header ("api.example.com")
  std::string_view account_id = "000000000000";
  std::string_view api_id = "sluice";
  std::string_view body;  // the whole request body
  const std::vector<std::string>* binary_media_types = nullptr;
};

// The event as JSON text (what the function receives).
std::string buildEvent(const EventRequest& request);

// The function's reply, mapped as API Gateway maps it.
struct MappedResponse {
  bool ok = false;  // false: malformed reply → the caller answers 502
  uint16_t status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Set-Cookie: one each
  std::string body;                                          // decoded when isBase64Encoded
  std::string error;  // why !ok, for the log (never for the client)
};

MappedResponse mapResponse(config::PayloadFormat format, std::string_view payload);

// True when a body of this Content-Type is binary under `types` ("image/png",
// "image/*", "*/*"; parameters such as "; charset=" are ignored).
bool isBinaryMediaType(std::string_view content_type, const std::vector<std::string>& types);

// RFC 4648 base64 (with padding); decode returns false on malformed input.
std::string base64Encode(std::string_view data);
bool base64Decode(std::string_view text, std::string& out);
bool isValidUtf8(std::string_view data);

// Appends `in` with its %XX escapes decoded ('+' as a space too when `plus_is_space`:
// form encoding). A malformed escape ("%zz", a trailing '%') is kept as written rather
// than failing the request: API Gateway does the same.
void appendPercentDecoded(std::string& out, std::string_view in, bool plus_is_space);

}  // namespace sluice::function
