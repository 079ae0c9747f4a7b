// JSON views of a config snapshot for the admin listener: GET /config (the running
// config, with the admin token redacted) and GET /routes (the compiled route table in
// precedence order). Main thread only; never includes a secret.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"

namespace sluice {

std::string configJson(const config::Config& config, uint64_t generation);
std::string routesJson(const config::Config& config);

}  // namespace sluice
