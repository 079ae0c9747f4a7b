// The function backend: buffers the request body, builds the API Gateway proxy event,
// hands it to the route's function runtime (an Invoker), and maps the reply back to
// an HTTP response the way API Gateway does. Errors reach the client only as API
// Gateway's own messages; the reason goes to the log with the request id.
#pragma once

#include <memory>

#include "config/config.h"
#include "gateway/server/stream.h"

namespace sluice {

class Exchange;
struct FunctionMetrics;

namespace function {

class Invoker;

// Lambda's limit for a synchronous invocation payload (request and reply).
inline constexpr size_t kMaxPayload = 6 * 1024 * 1024;

std::unique_ptr<BackendCall> makeFunctionCall(Exchange& exchange, const config::Function& fn,
                                              Invoker& invoker, FunctionMetrics& metrics);

}  // namespace function
}  // namespace sluice
