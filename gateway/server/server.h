// The process: binds the listeners, starts the workers, and turns signals into actions
// (SIGTERM/SIGINT drain and stop). Runs on the main thread, never on a worker.
#pragma once

#include <memory>

#include "config/config.h"

namespace sluice {

// Returns the process exit code.
int runServer(std::shared_ptr<const config::Config> config);

}  // namespace sluice
