// The process: binds the listeners, starts the workers, runs the admin listener, and
// turns signals into actions (SIGTERM/SIGINT drain and stop, SIGHUP reloads, SIGUSR1
// reopens log files). Runs on the main thread, never on a worker; a reload is loaded
// and validated here and only then handed to the workers.
#pragma once

#include <memory>

#include "config/config.h"

namespace sluice {

// Returns the process exit code.
int runServer(std::shared_ptr<const config::Config> config);

}  // namespace sluice
