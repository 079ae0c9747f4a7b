// `runtime: process`: sluice runs the function itself. The host owns every function
// instance of the process (a child process speaking the Lambda Runtime API) and lives
// on a thread of its own: instances are shared by all workers, so that
// max_concurrency, the queue and warm reuse are per function, not per worker.
//
// Each instance gets a Runtime API endpoint of its own (an evhttp server on a loopback
// port), so the host always knows which process asked for work or answered, and can
// kill exactly the one that timed out. Workers reach the host by message (Mailbox):
// one post per invocation each way, which is small next to the Runtime API round trip
// it replaces in cost.
#pragma once

#include <memory>

#include "config/config.h"
#include "gateway/function/invoker.h"

namespace sluice {

class Worker;
struct FunctionHostMetrics;

namespace function {

class Host {
 public:
  Host();
  ~Host();  // stops (kills every instance) if still running
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  void start();  // spawns the host thread
  // Kills every instance (SIGKILL to its process group), answers what is queued, and
  // joins the thread. Call after the workers stopped: their in-flight invocations need
  // the host until then.
  void stop();

  // For a worker's config snapshot: an Invoker for process function `fn`. Instances are
  // shared by every invoker of the same function settings (a reload that keeps them
  // keeps the warm instances); the last invoker of a settings set gone, its instances
  // stop once idle. Thread-safe.
  std::unique_ptr<Invoker> makeInvoker(Worker& worker, const config::Function& fn,
                                       FunctionHostMetrics* metrics);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace function
}  // namespace sluice
