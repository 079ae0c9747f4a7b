// What a client connection needs from its listener, made once per listener and worker
// (and again after a reload changes the listener) and shared by the connections it
// accepts: a reload may retire the listener's config while a connection lives, and one
// pointer per connection keeps idle connections small.
#pragma once

#include <sys/time.h>

#include <memory>
#include <string>

#include "config/config.h"

namespace sluice {

struct ListenerMetrics;
namespace tls {
class ServerContext;
}

struct ListenerInfo {
  config::Duration header_timeout_ms{0};
  config::Duration idle_timeout_ms{0};
  const timeval* header_timeout = nullptr;  // common timeouts of the worker's event_base
  const timeval* idle_timeout = nullptr;
  std::string name;                               // function events carry the listener's stage
  std::shared_ptr<const tls::ServerContext> tls;  // null: plain HTTP
  ListenerMetrics* metrics = nullptr;
  bool h2c = false;  // cleartext HTTP/2 with prior knowledge is accepted
  config::Http2Settings http2;
};

}  // namespace sluice
