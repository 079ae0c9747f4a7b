// Forwards one request to a service over HTTP/1.1 and streams the response back:
// endpoint choice, keep-alive reuse, connect/response timeouts, one safe retry, and
// flow control in both directions. Sees the client only through Downstream.
#pragma once

#include <memory>

#include "gateway/server/stream.h"

namespace sluice {

class ServicePool;

std::unique_ptr<BackendCall> makeServiceCall(Downstream& downstream, ServicePool& pool);

}  // namespace sluice
