// A queue of functions that other threads post to an event loop: the only way into a
// worker from outside, and the way workers report back to the main thread. The poster
// takes a mutex briefly; the loop never blocks on it. Meant for control messages; the
// one per-request use is the process function runtime (one post each way per
// invocation, next to a Runtime API round trip that costs far more). A burst of posts
// wakes the loop once.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

struct event;
struct event_base;

namespace sluice {

class Mailbox {
 public:
  explicit Mailbox(event_base* base);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Runs `fn` on the loop's thread, in posting order. Thread-safe.
  void post(std::function<void()> fn);

 private:
  static void onReadable(int fd, short what, void* arg);

  int fd_ = -1;  // eventfd
  event* ev_ = nullptr;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;
};

}  // namespace sluice
