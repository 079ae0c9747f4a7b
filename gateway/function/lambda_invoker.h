// The `runtime: lambda` Invoker: the Lambda Invoke API over HTTP/1.1 (plain or TLS),
// SigV4-signed, on the worker's loop. AWS itself, LocalStack and the Lambda runtime
// interface emulator all speak it.
//
//   POST {endpoint}/2015-03-31/functions/{function_name}/invocations[?Qualifier=q]
//   X-Amz-Invocation-Type: RequestResponse | Event
//
// Replies map to Outcomes as the function backend expects: 200 → kOk (200 with
// X-Amz-Function-Error → kFunctionError), 202 → kAccepted, 429 → kThrottled, any other
// status, a reply over Lambda's payload limit or a broken connection → kFailed, no
// reply within the function's timeout → kTimeout. Connections are kept alive and reused
// (up to max_idle_connections idle ones). No DNS (the config resolved the address) and
// no blocking call. Without an access key the requests go unsigned (the runtime
// interface emulator needs no signature).
#pragma once

#include <event2/event.h>

#include <memory>

#include "config/config.h"
#include "gateway/function/invoker.h"

namespace sluice::function {

// The largest reply body accepted: Lambda's 6 MB synchronous payload limit plus room
// for the service's own framing of it. A larger one fails the invocation.
inline constexpr size_t kMaxLambdaResponseBytes = 6 * 1024 * 1024 + 64 * 1024;

// `fn.runtime` must be kLambda. The invoker copies what it needs from `fn`, and must be
// destroyed before `base`; destroying it drops every invocation in flight without a
// callback.
std::unique_ptr<Invoker> makeLambdaInvoker(event_base* base, const config::Function& fn);

}  // namespace sluice::function
