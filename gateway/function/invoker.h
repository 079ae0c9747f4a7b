// The seam between the function backend (which builds events and maps replies) and a
// function runtime (which delivers a payload to the function and brings back its
// reply). One Invoker per worker and function; it lives on that worker's loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::function {

enum class Outcome : uint8_t {
  kOk,             // payload = the function's reply
  kAccepted,       // asynchronous invocation queued (invocation: event)
  kFunctionError,  // the function raised or crashed → 502
  kTimeout,        // past the function's timeout → 504
  kThrottled,      // no capacity (concurrency limit, full queue, Lambda 429) → 429
  kFailed,         // could not invoke (connection, bad reply from the service) → 502
};

struct Result {
  Outcome outcome = Outcome::kFailed;
  std::string payload;  // kOk: the reply; kFunctionError: the error document, if any
  std::string detail;   // why, for the log line (never sent to the client)
  // Execution time as the runtime measured it (process runtime); 0 = unknown, and the
  // caller uses the round trip.
  uint64_t duration_us = 0;
};

class InvokeHandler {
 public:
  virtual ~InvokeHandler() = default;
  // Exactly once per invoke() not cancelled, on the worker's loop, never from inside
  // invoke() itself.
  virtual void onInvokeResult(Result&& result) = 0;
};

class Invoker {
 public:
  virtual ~Invoker() = default;
  // Starts one invocation. `request_id` is for logs (may be empty). Returns a ticket
  // for cancel().
  virtual uint64_t invoke(std::string&& payload, std::string_view request_id,
                          InvokeHandler* handler) = 0;
  // The handler must not be called for this ticket any more (the client went away).
  // The invocation itself may still run to its end, as on Lambda.
  virtual void cancel(uint64_t ticket) = 0;
};

}  // namespace sluice::function
