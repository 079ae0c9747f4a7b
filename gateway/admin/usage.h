// Admin `GET /usage?key=NAME`: one API key's usage plan, quota (limit, used, remaining,
// when it resets) and throttle buckets, read from where the api_key filters keep them —
// the process-wide local stores (thread-safe reads) or Redis, through a client of its
// own on the admin event loop. It never shows a key or a key's hash, and never touches
// a worker.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

struct event_base;

namespace sluice {

namespace redis {
class Client;
}

class UsageEndpoint {
 public:
  using Done = std::function<void(uint16_t status, const std::string& body)>;

  explicit UsageEndpoint(event_base* base);
  ~UsageEndpoint();
  UsageEndpoint(const UsageEndpoint&) = delete;
  UsageEndpoint& operator=(const UsageEndpoint&) = delete;

  // Answers `query` (the request's query string). True when answered at once (status and
  // body set); else `done` runs later, from the event loop, never after destruction.
  bool handle(const config::Config& config, std::string_view query, uint16_t& status,
              std::string& body, Done done);

 private:
  struct Query;
  void finished(uint64_t id);
  redis::Client* client(const config::Redis& config);

  event_base* base_;
  config::Redis redis_config_;
  std::unique_ptr<redis::Client> redis_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Query>> queries_;
};

}  // namespace sluice
