// An asynchronous Redis client for one worker: commands go out on the worker's own
// event loop (pipelined when several are sent in one loop iteration) and every reply,
// timeout or failure comes back through a Handler exactly once unless cancelled. Shared
// by every filter that needs Redis (rate limits, API keys, later the cache). It must
// never block the worker, never stall on a dead server, and never log a password.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

struct event_base;
struct redisReply;  // hiredis's reply type: hiredis parses, the transport is ours

namespace sluice {
struct RedisMetrics;
}

namespace sluice::redis {

enum class Status : uint8_t {
  kReply,        // `reply` is set (it may be a Redis error reply: REDIS_REPLY_ERROR)
  kTimeout,      // no reply within command_timeout
  kUnavailable,  // not connected (connecting, backing off) or the connection was lost
};

const char* statusName(Status status);  // "reply", "timeout", "unavailable"

class Handler {
 public:
  virtual ~Handler() = default;
  // `reply` is valid only during the call (null unless kReply). Never called after
  // cancel(ticket). The handler may send() and cancel() from here, but must not
  // destroy the Client.
  virtual void onRedisReply(uint64_t ticket, Status status, const redisReply* reply) = 0;
};

// A Lua script sent with EVALSHA; on NOSCRIPT the client resends it with EVAL (which
// also loads it) — callers never see NOSCRIPT. The client keeps its own copy of the
// source, so a Script may die while its commands are in flight.
struct Script {
  explicit Script(std::string source);
  std::string source;
  std::string sha1;  // hex, computed once
};

class Client {
 public:
  virtual ~Client() = default;
  // Sends one command. Returns a ticket (never 0) for cancel(). When no connection is
  // ready (connecting, backing off after a failure) the handler is called with
  // kUnavailable before send() returns — synchronously, so callers that stopped a
  // request must be ready to resume it from inside send(). Otherwise the handler is
  // called later from the event loop, never from inside send(). A null handler sends
  // and forgets (the reply is read and dropped).
  virtual uint64_t send(Handler* handler, int argc, const char* const* argv,
                        const size_t* lens) = 0;
  // The same with up to 64 arguments: client->send(this, {"INCRBY", key, "1"}).
  uint64_t send(Handler* handler, std::initializer_list<std::string_view> args);
  // EVALSHA script numkeys keys... args... (same rules as send()).
  virtual uint64_t eval(Handler* handler, const Script& script, int nkeys,
                        const std::string_view* keys, int nargs, const std::string_view* args) = 0;
  // The handler will not be called for this ticket. O(1); safe for finished, failed
  // and unknown tickets, and from inside a handler.
  virtual void cancel(uint64_t ticket) = 0;
  // At least one connection is ready for commands.
  virtual bool connected() const = 0;
};

// One client per worker and `redis:` config (`config.enabled` must be true); it starts
// connecting at once (`pool` connections) and reconnects with backoff (100 ms doubling
// to 5 s) after a failure. `metrics` (may be null) must outlive the client; it is
// written from the event loop's thread only. Destroy the client on that thread too,
// never from inside one of its handlers: pending commands are dropped silently.
std::unique_ptr<Client> makeClient(event_base* base, const config::Redis& config,
                                   RedisMetrics* metrics = nullptr);

}  // namespace sluice::redis
