// Base for objects that often die inside their own callbacks: the worker destroys them
// on its next loop iteration, after every callback on the stack has returned.
#pragma once

namespace sluice {

class Deferred {
 public:
  virtual ~Deferred() = default;
};

}  // namespace sluice
